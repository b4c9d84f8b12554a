//! The CPU engine: ndarray + rayon + matrixmultiply, hand-written forward and backward.
//!
//! [`CpuNetwork`] implements [`Network`] for a [`ModelSpec`]; the work is done by [`GraphNetwork`], which runs
//! any layer graph (also usable directly, e.g. on hand-built graphs in tests). Activations are NCHW; the batch is
//! split into contiguous chunks across the rayon global pool (or the pool the call runs in), convolutions run as
//! im2col + single-threaded GEMM per sample, and every reduction over the batch is summed in chunk order, so
//! the same seed, inputs and thread count give bit-identical results.

pub mod cost;
pub mod graph_net;
pub mod kernels;
pub mod plan;
pub mod simd;
pub mod sparse_layer;

use ndarray::{Array2, ArrayD, ArrayView4, ArrayViewD};

pub use graph_net::{GraphNetwork, Mode, BN_EPS, NOMINAL_BATCH, PREDICT_CHUNK};

use crate::engine::{GradientMode, GradientSink, Network, Objective, StatsReducer, StepStats};
use crate::error::{Error, Result};
use crate::nn::{loss, ModelSpec, TensorInfo};
use crate::optim::SgdConfig;
use crate::sparsity::Mask;

/// How a [`CpuNetwork`] is built, beyond its model and seed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CpuOptions {
    /// Which masked layers run on the sparse kernels.
    pub sparse_policy: cost::SparsePolicy,
}

impl Default for CpuOptions {
    /// [`cost::SparsePolicy::process_default`].
    fn default() -> Self {
        CpuOptions {
            sparse_policy: cost::SparsePolicy::process_default(),
        }
    }
}

/// A [`ModelSpec`] run by the CPU engine.
#[derive(Debug)]
pub struct CpuNetwork {
    spec: ModelSpec,
    net: GraphNetwork,
}

impl CpuNetwork {
    /// The model of `spec` with Kaiming-initialised weights (ChaCha8 generator seeded by `seed`), BN scales one,
    /// shifts and biases zero, running statistics (0, 1).
    /// Sparse kernels as [`cost::SparsePolicy::process_default`] says.
    pub fn new(spec: &ModelSpec, seed: u64) -> Result<Self> {
        Self::with_options(spec, seed, CpuOptions::default())
    }

    /// [`CpuNetwork::new`] with `options`.
    pub fn with_options(spec: &ModelSpec, seed: u64, options: CpuOptions) -> Result<Self> {
        let mut net = GraphNetwork::new(spec.graph()?, seed)?;
        net.set_sparse_policy(options.sparse_policy);
        Ok(CpuNetwork {
            spec: spec.clone(),
            net,
        })
    }

    /// The model of `spec` with the given tensors; every tensor of the graph must be given exactly once.
    pub fn from_tensors(spec: &ModelSpec, tensors: &[(String, ArrayD<f32>)]) -> Result<Self> {
        let mut net = Self::new(spec, 0)?;
        let mut seen = std::collections::BTreeSet::new();
        for (path, value) in tensors {
            net.write(path, value.view())?;
            if !seen.insert(path.as_str()) {
                return Err(Error::Invalid(format!("tensor {path} given twice")));
            }
        }
        if let Some(missing) = net
            .tensors()
            .iter()
            .find(|t| !seen.contains(t.path.as_str()))
        {
            return Err(Error::Invalid(format!("tensor {} missing", missing.path)));
        }
        Ok(net)
    }

    /// The kernel path every kernel call runs on.
    pub fn kernel_path(&self) -> simd::KernelPath {
        self.net.kernel_path()
    }

    /// Runs every kernel on `path` from now on; an error when this CPU lacks it.
    pub fn set_kernel_path(&mut self, path: simd::KernelPath) -> Result<()> {
        self.net.set_kernel_path(path)
    }

    /// The engine underneath.
    pub fn graph_network(&mut self) -> &mut GraphNetwork {
        &mut self.net
    }

    /// One train-mode forward and backward with softmax cross-entropy (label smoothing `label_smoothing`);
    /// gradients are kept for [`Network::sgd_step`]. Returns the mean loss and the number of correct top-1
    /// predictions.
    pub fn train_batch(
        &mut self,
        images: ArrayView4<f32>,
        labels: &[u32],
        label_smoothing: f32,
    ) -> Result<StepStats> {
        let classes = self.spec.classes;
        if labels.len() != images.shape()[0] {
            return Err(Error::Invalid(format!(
                "{} labels for a batch of {} images",
                labels.len(),
                images.shape()[0]
            )));
        }
        if let Some(bad) = labels.iter().find(|&&y| y as usize >= classes) {
            return Err(Error::Invalid(format!(
                "label {bad} out of range for {classes} classes"
            )));
        }
        let objective =
            |logits: ndarray::ArrayView2<f32>| loss::cross_entropy(logits, labels, label_smoothing);
        let (value, logits) = self.net.forward_backward(images, true, &objective)?;
        Ok(StepStats {
            loss: value,
            correct: loss::count_correct(logits.view(), labels),
            count: labels.len(),
        })
    }
}

impl Network for CpuNetwork {
    fn spec(&self) -> &ModelSpec {
        &self.spec
    }
    fn tensors(&self) -> &[TensorInfo] {
        self.net.tensors()
    }
    fn read(&self, path: &str) -> Result<ArrayD<f32>> {
        self.net.read(path)
    }
    fn write(&mut self, path: &str, value: ArrayViewD<f32>) -> Result<()> {
        self.net.write(path, value)
    }
    fn set_mask(&mut self, path: &str, mask: Option<&Mask>) -> Result<()> {
        self.net.set_mask(path, mask)
    }
    fn mask(&self, path: &str) -> Option<Mask> {
        self.net.mask(path)
    }
    fn forward_backward(
        &mut self,
        images: ArrayView4<f32>,
        train_mode: bool,
        objective: &Objective,
    ) -> Result<(f64, Array2<f32>)> {
        self.net.forward_backward(images, train_mode, objective)
    }
    fn forward_backward_streaming(
        &mut self,
        images: ArrayView4<f32>,
        train_mode: bool,
        objective: &Objective,
        sink: &mut GradientSink,
    ) -> Result<(f64, Array2<f32>)> {
        self.net
            .forward_backward_streaming(images, train_mode, objective, sink)
    }
    fn grad(&self, path: &str) -> Result<ArrayD<f32>> {
        self.net.grad(path)
    }
    fn sgd_step(&mut self, cfg: &SgdConfig, lr: f32) {
        self.net.sgd_step(cfg, lr)
    }
    fn optimizer_state(&self) -> Vec<(String, ArrayD<f32>)> {
        self.net.optimizer_state()
    }
    fn set_optimizer_state(&mut self, state: &[(String, ArrayD<f32>)]) -> Result<()> {
        self.net.set_optimizer_state(state)
    }
    fn reset_optimizer(&mut self) {
        self.net.reset_optimizer()
    }
    fn predict(&mut self, images: ArrayView4<f32>) -> Result<Array2<f32>> {
        self.net.predict(images)
    }
    fn forward_train(&mut self, images: ArrayView4<f32>) -> Result<()> {
        self.net.forward_train(images)
    }
    fn set_bn_momentum(&mut self, momentum: Option<f32>) {
        self.net.set_bn_momentum(momentum)
    }
    fn set_gradient_mode(&mut self, mode: GradientMode) {
        self.net.set_gradient_mode(mode)
    }
    fn kernel_path_name(&self) -> Option<&'static str> {
        Some(self.kernel_path().name())
    }
    fn sparse_policy_name(&self) -> Option<&'static str> {
        Some(self.net.sparse_policy().name())
    }
    fn visit_gradients(&mut self, visit: &mut dyn FnMut(&TensorInfo, &mut [f32])) -> Result<()> {
        self.net.visit_gradients(visit)
    }
    fn set_batch_stats_reducer(&mut self, reducer: Option<StatsReducer>) -> Result<()> {
        self.net.set_batch_stats_reducer(reducer);
        Ok(())
    }
}
