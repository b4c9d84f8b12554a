//! The CPU engine's kernel paths and their run-time detection: the one place that asks the CPU what it can do.
//!
//! A [`KernelPath`] names the instruction set sculpt's own kernels are compiled for: AVX-512 (F), AVX2 with FMA,
//! or portable Rust (no FMA, whatever the compiler vectorises for the baseline target). Every network holds
//! one path, the best the CPU has unless `SCULPT_KERNEL_PATH` or [`crate::engine::cpu::CpuNetwork::set_kernel_path`]
//! picks a lower one; every kernel call takes it explicitly, so tests can run all paths in one process.
//!
//! **Determinism rule.** The same weights, inputs, seed, thread count and kernel path give bit-identical
//! results. Paths differ in vector width and in fused multiply-add, so two paths round differently; dense GEMM
//! calls go to matrixmultiply, which picks its own micro-kernel from the CPU's features ([`gemm_isa`]), so the
//! recorded identity of a run is the pair `(path, gemm_isa)` ([`KernelIdentity`]).

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// The instruction set of sculpt's own kernels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum KernelPath {
    /// Plain Rust, no FMA: runs on any CPU.
    Portable,
    /// 256-bit AVX2 with FMA.
    Avx2,
    /// 512-bit AVX-512 F (with FMA).
    Avx512,
}

/// Environment variable that lowers the default kernel path (`avx512`, `avx2` or `portable`).
pub const PATH_ENV: &str = "SCULPT_KERNEL_PATH";

impl KernelPath {
    /// Every path, widest first.
    pub const ALL: [KernelPath; 3] = [KernelPath::Avx512, KernelPath::Avx2, KernelPath::Portable];

    /// The path's name as written in checkpoints and accepted by [`PATH_ENV`].
    pub fn name(self) -> &'static str {
        match self {
            KernelPath::Portable => "portable",
            KernelPath::Avx2 => "avx2",
            KernelPath::Avx512 => "avx512",
        }
    }

    /// Parses [`KernelPath::name`].
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|p| p.name() == name)
    }

    /// Whether this CPU (and OS) runs the path.
    pub fn supported(self) -> bool {
        match self {
            KernelPath::Portable => true,
            KernelPath::Avx2 => features().avx2_fma,
            KernelPath::Avx512 => features().avx512f,
        }
    }

    /// The widest path this CPU runs.
    pub fn best() -> Self {
        Self::ALL
            .into_iter()
            .find(|p| p.supported())
            .unwrap_or(KernelPath::Portable)
    }

    /// The paths this CPU runs, widest first.
    pub fn available() -> Vec<Self> {
        Self::ALL.into_iter().filter(|p| p.supported()).collect()
    }

    /// [`KernelPath::best`], or the path named by [`PATH_ENV`]; an error when the variable names an unknown
    /// path or one this CPU lacks.
    pub fn from_env() -> Result<Self> {
        match std::env::var(PATH_ENV) {
            Ok(v) if !v.trim().is_empty() => {
                let p = KernelPath::from_name(v.trim()).ok_or_else(|| {
                    Error::Invalid(format!(
                        "{PATH_ENV}={v}: expected one of avx512, avx2, portable"
                    ))
                })?;
                p.check()?;
                Ok(p)
            }
            _ => Ok(Self::best()),
        }
    }

    /// An error naming the path when this CPU cannot run it.
    pub fn check(self) -> Result<()> {
        if self.supported() {
            Ok(())
        } else {
            Err(Error::Invalid(format!(
                "kernel path {} is not supported by this CPU (it runs: {})",
                self.name(),
                Self::available()
                    .iter()
                    .map(|p| p.name())
                    .collect::<Vec<_>>()
                    .join(", ")
            )))
        }
    }

    /// `f32` lanes of one vector register on this path (the portable path works in blocks of 8).
    pub fn lanes(self) -> usize {
        match self {
            KernelPath::Avx512 => 16,
            KernelPath::Avx2 | KernelPath::Portable => 8,
        }
    }
}

impl fmt::Display for KernelPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The micro-kernel family matrixmultiply picks on this CPU (it detects features itself): `avx512`, `fma`,
/// `avx`, `sse2` or `generic`.
pub fn gemm_isa() -> &'static str {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx512f") {
            "avx512"
        } else if std::arch::is_x86_feature_detected!("fma") {
            "fma"
        } else if std::arch::is_x86_feature_detected!("avx") {
            "avx"
        } else {
            "sse2"
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        "generic"
    }
}

/// What decides the bits of a training run besides seed and thread count: recorded in checkpoints.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KernelIdentity {
    pub path: KernelPath,
    pub gemm: String,
}

impl KernelIdentity {
    /// The identity of kernels run on `path` on this CPU.
    pub fn on(path: KernelPath) -> Self {
        KernelIdentity {
            path,
            gemm: gemm_isa().to_string(),
        }
    }
}

impl fmt::Display for KernelIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (gemm {})", self.path, self.gemm)
    }
}

#[derive(Debug, Clone, Copy)]
struct Features {
    avx2_fma: bool,
    avx512f: bool,
}

fn features() -> Features {
    static CACHE: std::sync::OnceLock<Features> = std::sync::OnceLock::new();
    *CACHE.get_or_init(|| {
        #[cfg(target_arch = "x86_64")]
        {
            let avx2_fma = std::arch::is_x86_feature_detected!("avx2")
                && std::arch::is_x86_feature_detected!("fma");
            Features {
                avx2_fma,
                avx512f: avx2_fma && std::arch::is_x86_feature_detected!("avx512f"),
            }
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            Features {
                avx2_fma: false,
                avx512f: false,
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_portable_is_always_there() {
        for p in KernelPath::ALL {
            assert_eq!(KernelPath::from_name(p.name()), Some(p));
        }
        assert_eq!(KernelPath::from_name("sse"), None);
        assert!(KernelPath::Portable.supported());
        let avail = KernelPath::available();
        assert_eq!(avail[0], KernelPath::best());
        assert_eq!(*avail.last().unwrap(), KernelPath::Portable);
        if KernelPath::Avx512.supported() {
            assert!(KernelPath::Avx2.supported());
        }
    }
}
