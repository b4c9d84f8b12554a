//! Which kernels a masked layer runs: a per-layer cost model of the dense and the sparse kernels, derived from
//! the layer's shape and its mask (never one density threshold for all layers), and the policy that applies
//! it.
//!
//! The dense cost is the layer's multiply-adds (forward, weight gradient, input gradient) at the throughput of
//! the dense kernel that runs that shape; the sparse cost is the lane multiply-adds the sparse kernels actually
//! execute for the mask (whole vectors over the output rows, see [`Work`]) plus the values their packing
//! steps move; both add a fixed cost per parallel pass over the batch, so a small layer whose sparse kernels
//! need more passes than the dense GEMM stays dense at small batches. The throughputs are per kernel path,
//! measured on ResNet-20 and LeNet shapes on an Intel Xeon with AVX-512 (`benches/conv.rs`, `sculpt bench
//! train --sparsity`); only their ratios matter. The choice is a pure function of shape, mask, path and batch
//! size, so it never depends on timing and keeps runs deterministic.

use std::fmt;
use std::str::FromStr;
use std::sync::atomic::{AtomicU8, Ordering};

use serde::{Deserialize, Serialize};

use super::kernels::conv::ConvGeom;
use super::kernels::direct;
use super::kernels::sparse::Work;
use super::plan::Kernel;
use super::simd::KernelPath;

/// When the engine runs a masked layer on the sparse kernels.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SparsePolicy {
    /// Where the cost model predicts a gain.
    #[default]
    Auto,
    /// Every masked convolution and linear layer (for tests of the sparse kernels).
    Always,
    /// Never: dense kernels on masked weights.
    Never,
}

/// Relative throughputs of one kernel path, in multiply-adds per unit time.
#[derive(Debug, Clone, Copy)]
struct Rates {
    /// Dense convolution on the shifted-window kernels.
    conv_direct: f64,
    /// Dense convolution as im2col + GEMM.
    conv_gemm: f64,
    /// Dense linear layer (GEMM).
    linear: f64,
    /// Lane multiply-adds of the sparse gathers and sampled products.
    sparse_lane: f64,
    /// Values moved by the sparse kernels' packing.
    moved: f64,
}

fn rates(path: KernelPath) -> Rates {
    match path {
        KernelPath::Avx512 => Rates {
            conv_direct: 1.0,
            conv_gemm: 0.55,
            linear: 0.6,
            sparse_lane: 0.75,
            moved: 0.12,
        },
        KernelPath::Avx2 => Rates {
            conv_direct: 1.0,
            conv_gemm: 0.55,
            linear: 0.6,
            sparse_lane: 0.4,
            moved: 0.1,
        },
        KernelPath::Portable => Rates {
            conv_direct: 1.0,
            conv_gemm: 0.5,
            linear: 0.5,
            sparse_lane: 0.06,
            moved: 0.05,
        },
    }
}

/// Fixed cost of one parallel pass over a batch (dispatch, synchronisation and the per-call set-up of the
/// packing), in the model's units: fitted so that LeNet-300-100's 300×100 layer at 90% sparsity, whose
/// sparse kernels lose to the dense GEMM at batch 128 on the Intel Xeon (AVX-512) measured, runs dense.
const PASS: f64 = 2.5e6;

/// Parallel passes over the batch of one forward and backward on the dense kernels.
const DENSE_PASSES: f64 = 3.0;

/// The sparse kernels must be predicted at least this much faster than the dense ones.
const MARGIN: f64 = 0.85;

/// Predicted per-sample time of the dense kernels on `kernel` (forward and backward), in the model's units.
pub fn dense_cost(kernel: &Kernel, path: KernelPath) -> f64 {
    let r = rates(path);
    match kernel {
        Kernel::Conv { geom, .. } => {
            let macs = (geom.cout * geom.kdim() * geom.out_hw()) as f64;
            3.0 * macs / conv_rate(geom, path, &r)
        }
        &Kernel::Linear { nin, nout, .. } => 3.0 * (nin * nout) as f64 / r.linear,
        _ => 0.0,
    }
}

fn conv_rate(g: &ConvGeom, path: KernelPath, r: &Rates) -> f64 {
    if direct::forward_supported(path, g) {
        r.conv_direct
    } else {
        r.conv_gemm
    }
}

/// Predicted per-sample time of the sparse kernels doing `work`, in the model's units.
pub fn sparse_cost(work: &Work, path: KernelPath) -> f64 {
    let r = rates(path);
    let lanes = (work.forward + work.weight_grad + work.input_grad) as f64;
    lanes / r.sparse_lane + work.moved as f64 / r.moved
}

/// The policy of networks built from now on, as a [`SparsePolicy::ALL`] index.
static PROCESS_DEFAULT: AtomicU8 = AtomicU8::new(0);

impl SparsePolicy {
    /// Every policy, in the order of [`SparsePolicy::name`]'s list.
    pub const ALL: [SparsePolicy; 3] = [
        SparsePolicy::Auto,
        SparsePolicy::Always,
        SparsePolicy::Never,
    ];

    /// The policy's name as written on the command line: `auto`, `always` or `never`.
    pub fn name(self) -> &'static str {
        match self {
            SparsePolicy::Auto => "auto",
            SparsePolicy::Always => "always",
            SparsePolicy::Never => "never",
        }
    }

    /// The policy every CPU network of this process starts with ([`SparsePolicy::Auto`] unless
    /// [`SparsePolicy::set_process_default`] chose another); a network's own policy is changed with
    /// [`crate::engine::cpu::GraphNetwork::set_sparse_policy`].
    pub fn process_default() -> SparsePolicy {
        Self::ALL[PROCESS_DEFAULT.load(Ordering::Relaxed) as usize]
    }

    /// Sets the policy of the CPU networks this process builds from now on (the command line's
    /// `--sparse-kernels`, like `--threads` for the thread pool); networks already built keep theirs.
    pub fn set_process_default(policy: SparsePolicy) {
        let index = Self::ALL
            .iter()
            .position(|&p| p == policy)
            .expect("ALL lists every policy");
        PROCESS_DEFAULT.store(index as u8, Ordering::Relaxed);
    }

    /// Whether a masked layer whose sparse kernels do `work` runs sparse on a batch of `batch` samples under
    /// this policy: under [`SparsePolicy::Auto`] where the predicted time of the batch, `batch` times the
    /// per-sample cost plus [`Work::passes`] fixed pass costs, is below the dense kernels'.
    pub fn runs_sparse(self, kernel: &Kernel, work: &Work, path: KernelPath, batch: usize) -> bool {
        match self {
            SparsePolicy::Always => true,
            SparsePolicy::Never => false,
            SparsePolicy::Auto => {
                let b = batch.max(1) as f64;
                let sparse = b * sparse_cost(work, path) + work.passes as f64 * PASS;
                let dense = b * dense_cost(kernel, path) + DENSE_PASSES * PASS;
                sparse < MARGIN * dense
            }
        }
    }

    /// Whether the policy may run the layer sparse at some batch size (a layout is worth building).
    pub fn may_run_sparse(self, kernel: &Kernel, work: &Work, path: KernelPath) -> bool {
        self.runs_sparse(kernel, work, path, usize::MAX >> 12)
    }
}

impl fmt::Display for SparsePolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for SparsePolicy {
    type Err = crate::error::Error;

    /// Parses [`SparsePolicy::name`].
    fn from_str(text: &str) -> crate::error::Result<Self> {
        Self::ALL
            .into_iter()
            .find(|p| p.name() == text.trim())
            .ok_or_else(|| {
                crate::error::Error::Invalid(format!(
                    "unknown sparse-kernel policy '{text}' (known: auto, always, never)"
                ))
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keep(n: usize, density: f64) -> Vec<bool> {
        (0..n)
            .map(|i| ((i as u64).wrapping_mul(2654435761) % 1000) as f64 / 1000.0 < density)
            .collect()
    }

    #[test]
    fn auto_weighs_the_fixed_costs_of_a_batch() {
        use crate::engine::cpu::sparse_layer::SparseLayer;
        let path = KernelPath::best();
        let fc = Kernel::Linear {
            nin: 300,
            nout: 100,
            bias: true,
        };
        let layer = SparseLayer::new(&fc, &keep(30_000, 0.1), path).unwrap();
        let auto = SparsePolicy::Auto;
        assert!(
            !auto.runs_sparse(&fc, &layer.work(), path, 128),
            "small fc at batch 128"
        );
        assert!(
            auto.runs_sparse(&fc, &layer.work(), path, 1 << 16),
            "same fc, huge batch"
        );
        assert!(auto.may_run_sparse(&fc, &layer.work(), path));
        let geom = ConvGeom::new(16, 16, 32, 32, 3, 1, 1).unwrap();
        let conv = Kernel::Conv { geom, bias: false };
        for (density, sparse) in [(0.1, true), (0.05, true), (1.0, false)] {
            let layer = SparseLayer::new(&conv, &keep(16 * 144, density), path).unwrap();
            let w = layer.work();
            assert_eq!(
                auto.runs_sparse(&conv, &w, path, 128),
                sparse,
                "density {density}"
            );
            assert!(SparsePolicy::Always.runs_sparse(&conv, &w, path, 1));
            assert!(!SparsePolicy::Never.may_run_sparse(&conv, &w, path));
        }
    }

    #[test]
    fn policies_parse_and_print_back() {
        for p in SparsePolicy::ALL {
            assert_eq!(p.name().parse::<SparsePolicy>().unwrap(), p);
            assert_eq!(p.to_string(), p.name());
        }
        for bad in ["", "sparse", "AUTO", "dense"] {
            let e = bad.parse::<SparsePolicy>().unwrap_err().to_string();
            assert!(e.contains("auto, always, never"), "{e}");
        }
    }
}
