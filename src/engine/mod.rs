//! The `Network` seam: what methods and the trainer see of a model, whatever runs it.

pub mod bench;
pub mod cpu;
pub mod device;
pub mod tch;

pub use device::{Device, TchDevice};

use ndarray::{Array2, ArrayD, ArrayView2, ArrayView4, ArrayViewD};

use crate::error::Result;
use crate::nn::{ModelSpec, TensorInfo};
use crate::optim::SgdConfig;
use crate::sparsity::Mask;

/// Loss and accuracy of one forward pass over a batch.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct StepStats {
    /// Mean loss over the batch.
    pub loss: f64,
    /// Number of samples whose top-1 prediction equals the label.
    pub correct: usize,
    pub count: usize,
}

/// Which weight gradients a backward pass computes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum GradientMode {
    /// The gradient at every position, masked ones included (RigL growth, SNIP, GraSP, SynFlow).
    #[default]
    Dense,
    /// The gradient at the kept positions only; at masked positions `grad` is unspecified (the CPU engine's
    /// sparse kernels never compute it and report zero there). Every other use of the gradient (the SGD step,
    /// criteria on kept weights) is unaffected.
    Kept,
}

/// An objective on the logits: returns the scalar value and its gradient with respect to the logits.
pub type Objective<'a> = dyn Fn(ArrayView2<f32>) -> (f64, Array2<f32>) + 'a;

/// Receives a parameter's finished gradient during a backward pass (see
/// [`Network::forward_backward_streaming`]).
pub type GradientSink<'a> = dyn FnMut(&TensorInfo, &[f32]) + 'a;

/// Replaces a buffer by its sum over the replicas of a data-parallel run, identically on every replica
/// (see [`crate::distributed::Collective`]).
pub type StatsReducer = std::sync::Arc<dyn Fn(&mut [f64]) + Send + Sync>;

/// A trainable model with named tensors (parameters and BN buffers) and per-weight masks.
///
/// Contracts every implementation keeps:
/// - tensors are named by [`TensorInfo::path`] and keep the shapes of the spec's graph;
/// - a masked weight is exactly zero after `set_mask`, `write` and every `sgd_step`;
/// - after a backward pass, `grad` returns the gradient with respect to the *effective* weight (`w ⊙ m`); in
///   [`GradientMode::Dense`] (the default) it is dense, defined at masked positions too (RigL growth, SNIP and
///   the PaI scores need it); in [`GradientMode::Kept`] only its kept positions are defined, which lets an
///   engine skip the masked weights. Callers that read gradients at masked positions set `Dense` first;
///   the trainer asks each method per step ([`crate::method::Method::gradient_mode`]);
/// - the same weights, inputs and thread count give bit-identical results.
pub trait Network: Send {
    fn spec(&self) -> &ModelSpec;

    /// Every named tensor, parameters and buffers, in graph order.
    fn tensors(&self) -> &[TensorInfo];

    /// A copy of a parameter or buffer.
    fn read(&self, path: &str) -> Result<ArrayD<f32>>;

    /// Overwrites a parameter or buffer (shape-checked); a masked weight is re-masked.
    fn write(&mut self, path: &str, value: ArrayViewD<f32>) -> Result<()>;

    /// Sets (or with `None` removes) the mask of a prunable weight and zeroes the pruned entries.
    fn set_mask(&mut self, path: &str, mask: Option<&Mask>) -> Result<()>;

    /// The mask of a weight, if any.
    fn mask(&self, path: &str) -> Option<Mask>;

    /// Forward in train or eval mode (BN batch statistics in train mode, which also updates the running
    /// statistics), then backward from `objective`; gradients are kept for `grad` and `sgd_step`.
    /// Returns the objective's value and the logits.
    fn forward_backward(
        &mut self,
        images: ArrayView4<f32>,
        train_mode: bool,
        objective: &Objective,
    ) -> Result<(f64, Array2<f32>)>;

    /// [`Network::forward_backward`] that hands each parameter's gradient to `sink` as soon as the backward
    /// pass has finished it, so that a data-parallel run can start summing it over the replicas while the
    /// backward pass goes on. Contract:
    /// - `sink` is called exactly once per parameter (every tensor of [`Network::tensors`] that
    ///   [`TensorInfo::is_param`]), with the gradient [`Network::grad`] returns afterwards; the engine does
    ///   not change that gradient again in this pass;
    /// - the order of the calls depends on the graph only (the same on every call and every replica);
    /// - the results are bit-identical to [`Network::forward_backward`].
    ///
    /// Engines that stream call `sink` at each layer boundary of the backward pass (output layer first). The
    /// default calls it after the whole backward pass, in reverse graph order, through
    /// [`Network::visit_gradients`] (an error where that is unsupported).
    fn forward_backward_streaming(
        &mut self,
        images: ArrayView4<f32>,
        train_mode: bool,
        objective: &Objective,
        sink: &mut GradientSink,
    ) -> Result<(f64, Array2<f32>)> {
        let out = self.forward_backward(images, train_mode, objective)?;
        let mut finished = Vec::new();
        self.visit_gradients(&mut |info, g| finished.push((info.clone(), g.to_vec())))?;
        for (info, g) in finished.iter().rev() {
            sink(info, g);
        }
        Ok(out)
    }

    /// The gradient of a parameter from the last backward pass.
    fn grad(&self, path: &str) -> Result<ArrayD<f32>>;

    /// One SGD step with the stored gradients.
    fn sgd_step(&mut self, cfg: &SgdConfig, lr: f32);

    /// Momentum buffers by parameter path (empty before the first step or after a reset).
    fn optimizer_state(&self) -> Vec<(String, ArrayD<f32>)>;

    /// Restores momentum buffers saved by `optimizer_state`.
    fn set_optimizer_state(&mut self, state: &[(String, ArrayD<f32>)]) -> Result<()>;

    /// Drops all optimiser state (a fresh optimiser).
    fn reset_optimizer(&mut self);

    /// Eval-mode logits.
    fn predict(&mut self, images: ArrayView4<f32>) -> Result<Array2<f32>>;

    /// Train-mode forward without backward: updates BN running statistics only.
    fn forward_train(&mut self, images: ArrayView4<f32>) -> Result<()>;

    /// Sets the BN running-statistics momentum (PyTorch semantics, default 0.1; `None` = cumulative average).
    fn set_bn_momentum(&mut self, momentum: Option<f32>);

    /// Which gradients the following backward passes compute (default [`GradientMode::Dense`]). An engine that
    /// always computes dense gradients keeps this default implementation, which satisfies both modes.
    fn set_gradient_mode(&mut self, _mode: GradientMode) {}

    /// The name of the kernel path the engine's own kernels run on, for engines that choose one at run time
    /// (`None` otherwise). Results are bit-identical for the same seed, thread count and kernel path only, so
    /// checkpoints record it and a resume on another path is warned about.
    fn kernel_path_name(&self) -> Option<&'static str> {
        None
    }

    /// The name of the policy that decides which masked layers run on the engine's sparse kernels, for engines
    /// that have one (`None` otherwise). Sparse and dense kernels sum in different orders, so checkpoints
    /// record it beside the kernel path and a resume under another policy is warned about.
    fn sparse_policy_name(&self) -> Option<&'static str> {
        None
    }

    /// Visits the gradient of every parameter from the last backward pass, in graph order, for changing it
    /// in place (data-parallel training sums them over the replicas before the step). Engines that do not
    /// support this return an error.
    fn visit_gradients(&mut self, _visit: &mut dyn FnMut(&TensorInfo, &mut [f32])) -> Result<()> {
        Err(crate::error::Error::Invalid(
            "this engine cannot train data-parallel (it does not expose its gradients)".into(),
        ))
    }

    /// With `Some(reducer)`, every following train-mode forward and backward pass sums each batch-norm
    /// layer's per-channel sums (and the value count, the last element) with `reducer` before using them,
    /// so the statistics, the input gradients and the scale and shift gradients are those of the global
    /// batch over all replicas (synchronised batch norm; the scale and shift gradients are then already
    /// global). `None` restores local statistics. Engines that do not support this return an error.
    fn set_batch_stats_reducer(&mut self, reducer: Option<StatsReducer>) -> Result<()> {
        match reducer {
            None => Ok(()),
            Some(_) => Err(crate::error::Error::Invalid(
                "this engine cannot synchronise batch-norm statistics across processes".into(),
            )),
        }
    }
}
