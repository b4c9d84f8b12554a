//! A masked convolution or linear layer run by the sparse kernels: the kernel layout built from the mask, and
//! the packed copies of its kept weights and their gradients.
//!
//! The dense weight stays the network's source of truth. The packed values are gathered from it at every
//! forward and backward pass, so they can never fall out of step with `write`, `set_mask`, an SGD step or a
//! prune/grow; the layout itself is rebuilt from the mask by [`SparseLayer::new`] on every `set_mask`.

use super::kernels::sparse::Work;
use super::kernels::sparse::{conv::Scratch as ConvScratch, conv::SparseConv};
use super::kernels::sparse::{linear::Scratch as LinearScratch, linear::SparseLinear};
use super::plan::Kernel;
use super::simd::KernelPath;

/// The kernel layout of one layer.
#[derive(Debug, Clone, PartialEq)]
enum Layout {
    Conv(SparseConv),
    Linear(SparseLinear),
}

/// Scratch memory of the sparse kernels, shared by all layers of a network.
#[derive(Debug, Default)]
pub struct SparseScratch {
    /// One entry per batch chunk.
    conv: Vec<ConvScratch>,
    linear: LinearScratch,
}

impl SparseScratch {
    /// Makes room for `chunks` batch chunks.
    pub fn reserve(&mut self, chunks: usize) {
        if self.conv.len() < chunks {
            self.conv.resize_with(chunks, Default::default);
        }
    }
}

/// A layer's sparse layout with its packed weights.
#[derive(Debug, Clone, PartialEq)]
pub struct SparseLayer {
    layout: Layout,
    /// Kept weights in the forward (taps) order.
    vals: Vec<f32>,
    /// Kept weights in the input-gradient order.
    vals_t: Vec<f32>,
    /// Weight gradient at the kept positions, forward order.
    dvals: Vec<f32>,
}

impl SparseLayer {
    /// The layout of a convolution or linear `kernel` with kept weights `keep` (row-major over the weight) on
    /// `path`; `None` for other kernels.
    pub fn new(kernel: &Kernel, keep: &[bool], path: KernelPath) -> Option<Self> {
        let layout = match *kernel {
            Kernel::Conv { ref geom, .. } => Layout::Conv(SparseConv::new(geom, keep, path)),
            Kernel::Linear { nin, nout, .. } => {
                Layout::Linear(SparseLinear::new(nin, nout, keep, path))
            }
            _ => return None,
        };
        Some(SparseLayer {
            layout,
            vals: Vec::new(),
            vals_t: Vec::new(),
            dvals: Vec::new(),
        })
    }

    /// What one sample costs this layer on the sparse kernels.
    pub fn work(&self) -> Work {
        match &self.layout {
            Layout::Conv(c) => c.work(),
            Layout::Linear(l) => l.work(),
        }
    }

    /// Kept weights.
    pub fn nnz(&self) -> usize {
        match &self.layout {
            Layout::Conv(c) => c.nnz(),
            Layout::Linear(l) => l.nnz(),
        }
    }

    /// The kernel path the layout was built for.
    pub fn path(&self) -> KernelPath {
        match &self.layout {
            Layout::Conv(c) => c.path(),
            Layout::Linear(l) => l.path(),
        }
    }

    /// Forward over a batch with the kept entries of the dense `weight`; optional bias and ReLU. A
    /// convolution also writes its output's per-channel sums into `sums` when given (see
    /// [`SparseConv::forward`]); a linear layer must not be given `sums`.
    #[allow(clippy::too_many_arguments)]
    pub fn forward(
        &mut self,
        weight: &[f32],
        bias: Option<&[f32]>,
        relu: bool,
        x: &[f32],
        y: &mut [f32],
        scratch: &mut SparseScratch,
        sums: Option<&mut Vec<[f64; 2]>>,
    ) {
        match &mut self.layout {
            Layout::Conv(c) => {
                c.taps().gather_values(weight, &mut self.vals);
                c.forward(x, &self.vals, bias, relu, y, &mut scratch.conv, sums);
            }
            Layout::Linear(l) => {
                assert!(sums.is_none(), "a linear layer collects no channel sums");
                l.taps().gather_values(weight, &mut self.vals);
                l.forward(x, &self.vals, bias, relu, y, &mut scratch.linear);
            }
        }
    }

    /// Backward over a batch: writes the weight gradient into the dense `dweight` at the kept positions and zero
    /// everywhere else (masked entries are never computed), the bias gradient into `dbias`, and writes or adds
    /// (`accumulate`) the input gradient when `dx` is given.
    #[allow(clippy::too_many_arguments)]
    pub fn backward(
        &mut self,
        weight: &[f32],
        x: &[f32],
        dy: &[f32],
        dx: Option<(&mut [f32], bool)>,
        dweight: &mut [f32],
        dbias: Option<&mut [f32]>,
        scratch: &mut SparseScratch,
    ) {
        self.dvals.resize(self.nnz(), 0.0);
        let need_dx = dx.is_some();
        match &mut self.layout {
            Layout::Conv(c) => {
                if need_dx {
                    c.transposed_values(weight, &mut self.vals_t);
                } else {
                    self.vals_t.clear();
                }
                c.backward(
                    x,
                    &self.vals_t,
                    dy,
                    dx,
                    &mut self.dvals,
                    dbias,
                    &mut scratch.conv,
                );
                dweight.fill(0.0);
                c.taps().scatter_values(&self.dvals, dweight, false);
            }
            Layout::Linear(l) => {
                if need_dx {
                    l.transposed_values(weight, &mut self.vals_t);
                } else {
                    self.vals_t.clear();
                }
                l.backward(
                    x,
                    &self.vals_t,
                    dy,
                    dx,
                    &mut self.dvals,
                    dbias,
                    &mut scratch.linear,
                );
                dweight.fill(0.0);
                l.taps().scatter_values(&self.dvals, dweight, false);
            }
        }
    }
}
