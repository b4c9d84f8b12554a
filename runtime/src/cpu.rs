//! The kernel paths and the detection of the CPU features they need, at run time.
//!
//! Determinism rule: a given model, input and kernel path give bit-identical results on every machine that has
//! the path. Int8 results are bit-identical across paths (integer arithmetic); float results differ between
//! paths only by rounding (the vector paths use fused multiply-add, the portable path does not), within the
//! bound stated in `formats/scb.md` §7.

/// A family of compute kernels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum KernelPath {
    /// Plain Rust over fixed-size arrays, which the compiler vectorises for the target's baseline (SSE2 on
    /// x86-64, NEON on AArch64). No fused multiply-add. Available everywhere.
    Portable,
    /// x86-64 AVX2 with FMA: 8 float or int32 lanes.
    Avx2,
    /// x86-64 AVX-512 (F, BW, VL, DQ and VNNI): 16 float or int32 lanes, masked loads and stores, int8 dot
    /// products.
    Avx512,
}

impl KernelPath {
    /// Every path, most portable first.
    pub const ALL: [KernelPath; 3] = [KernelPath::Portable, KernelPath::Avx2, KernelPath::Avx512];

    /// The fastest path this CPU supports.
    pub fn detect() -> KernelPath {
        if KernelPath::Avx512.available() {
            KernelPath::Avx512
        } else if KernelPath::Avx2.available() {
            KernelPath::Avx2
        } else {
            KernelPath::Portable
        }
    }

    /// Whether this CPU (and its operating system) supports the path.
    pub fn available(self) -> bool {
        match self {
            KernelPath::Portable => true,
            #[cfg(target_arch = "x86_64")]
            KernelPath::Avx2 => x86::features() & x86::AVX2_FMA != 0,
            #[cfg(target_arch = "x86_64")]
            KernelPath::Avx512 => x86::features() & x86::AVX512 != 0,
            #[cfg(not(target_arch = "x86_64"))]
            _ => false,
        }
    }

    /// Short name for reports: `portable`, `avx2`, `avx512`.
    pub fn name(self) -> &'static str {
        match self {
            KernelPath::Portable => "portable",
            KernelPath::Avx2 => "avx2",
            KernelPath::Avx512 => "avx512",
        }
    }

    /// The path named `name` (as [`KernelPath::name`] spells it).
    pub fn from_name(name: &str) -> Option<KernelPath> {
        KernelPath::ALL.into_iter().find(|p| p.name() == name)
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use core::arch::x86_64::{__cpuid, __cpuid_count, _xgetbv};
    use core::sync::atomic::{AtomicU8, Ordering};

    pub const AVX2_FMA: u8 = 1;
    pub const AVX512: u8 = 2;
    const CHECKED: u8 = 0x80;

    static FEATURES: AtomicU8 = AtomicU8::new(0);

    /// The supported path bits, detected once.
    pub fn features() -> u8 {
        let f = FEATURES.load(Ordering::Relaxed);
        if f & CHECKED != 0 {
            return f;
        }
        let f = detect() | CHECKED;
        FEATURES.store(f, Ordering::Relaxed);
        f
    }

    #[allow(unused_unsafe)]
    fn detect() -> u8 {
        // SAFETY: CPUID exists on every x86-64 CPU.
        let (l0, l1) = unsafe { (__cpuid(0), __cpuid(1)) };
        let osxsave_avx = (1 << 27) | (1 << 28);
        let fma = 1 << 12;
        if l0.eax < 7 || l1.ecx & osxsave_avx != osxsave_avx {
            return 0;
        }
        // SAFETY: OSXSAVE is set, so XGETBV is available.
        let xcr0 = unsafe { xcr0() };
        // SAFETY: leaf 7 exists (checked against leaf 0).
        let l7 = unsafe { __cpuid_count(7, 0) };
        let mut out = 0;
        let avx2 = l7.ebx & (1 << 5) != 0 && l1.ecx & fma != 0;
        if xcr0 & 6 == 6 && avx2 {
            out |= AVX2_FMA;
            let zmm_state = 0xE0;
            let f_dq_bw_vl = (1 << 16) | (1 << 17) | (1 << 30) | (1 << 31);
            let vnni = 1 << 11;
            if xcr0 & zmm_state == zmm_state
                && l7.ebx & f_dq_bw_vl == f_dq_bw_vl
                && l7.ecx & vnni != 0
            {
                out |= AVX512;
            }
        }
        out
    }

    /// # Safety
    /// The CPU must support XGETBV (CPUID.1:ECX.OSXSAVE).
    #[target_feature(enable = "xsave")]
    unsafe fn xcr0() -> u64 {
        // SAFETY: per this function's contract.
        unsafe { _xgetbv(0) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detection_is_consistent() {
        let best = KernelPath::detect();
        assert!(best.available());
        assert!(KernelPath::Portable.available());
        if KernelPath::Avx512.available() {
            assert!(KernelPath::Avx2.available(), "AVX-512 machines have AVX2");
        }
        for p in KernelPath::ALL {
            assert_eq!(KernelPath::from_name(p.name()), Some(p));
        }
    }
}
