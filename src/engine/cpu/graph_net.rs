//! [`GraphNetwork`]: the CPU engine over any layer [`Graph`] — tensors, masks, forward, backward, SGD.

use std::collections::BTreeMap;

use ndarray::{Array2, ArrayD, ArrayView2, ArrayView4, ArrayViewD, IxDyn};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use super::cost::SparsePolicy;
use super::kernels::{self, bn, conv, elementwise as ew, linear, pool, FlushDenormals};
use super::plan::{Kernel, Plan};
use super::simd::KernelPath;
use super::sparse_layer::{SparseLayer, SparseScratch};
use crate::engine::{GradientMode, GradientSink, Objective, StatsReducer};
use crate::error::{Error, Result};
use crate::nn::{init::kaiming_init, Graph, TensorInfo, TensorRole};
use crate::optim::{sgd::sgd_update, SgdConfig};
use crate::sparsity::Mask;

/// Batch-norm epsilon (PyTorch's default).
pub const BN_EPS: f32 = 1e-5;

/// The batch [`GraphNetwork::sparse_layers`] reports for.
pub const NOMINAL_BATCH: usize = 128;

/// Largest batch evaluated at once by [`GraphNetwork::predict`]; larger batches are split (eval mode has no
/// batch dependence, so the result is the same) to bound activation memory.
pub const PREDICT_CHUNK: usize = 256;

/// How a forward pass treats batch norm.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Running statistics.
    Eval,
    /// Batch statistics; running statistics are updated.
    Train,
}

/// Activation and gradient memory, reused across steps.
#[derive(Debug, Default)]
struct Workspace {
    batch: usize,
    acts: Vec<Vec<f32>>,
    grads: Vec<Vec<f32>>,
    written: Vec<bool>,
    /// Per node: the mean and inverse standard deviation the last forward normalised with.
    bn_mean: Vec<Vec<f32>>,
    bn_invstd: Vec<Vec<f32>>,
    /// Per node: the scale and shift of the last forward's batch-norm affine (for its fused ReLU's mask).
    bn_scale: Vec<Vec<f32>>,
    bn_shift: Vec<Vec<f32>>,
    /// Per node with [`crate::engine::cpu::plan::NodePlan::sums_for_bn`]: the output's per-channel sums of
    /// this train-mode forward, until its batch norm takes them.
    sums: Vec<Option<Vec<[f64; 2]>>>,
    conv: Vec<conv::ConvScratch>,
    /// Transposed convolution weight, shared by the chunks of one layer.
    wt: Vec<f32>,
    sparse: SparseScratch,
    /// Per tensor: the weight runs on its sparse kernels for the batch of the last forward pass.
    active: Vec<bool>,
    /// Mode of the last forward pass.
    mode: Option<Mode>,
}

/// The CPU engine over a layer graph. Implements every part of the [`crate::engine::Network`] contract except
/// `spec` (see [`super::CpuNetwork`]); also usable directly on hand-built graphs.
#[derive(Debug)]
pub struct GraphNetwork {
    graph: Graph,
    plan: Plan,
    infos: Vec<TensorInfo>,
    index: BTreeMap<String, usize>,
    values: Vec<Vec<f32>>,
    grads: Vec<Vec<f32>>,
    masks: Vec<Option<Vec<f32>>>,
    momentum: Vec<Option<Vec<f32>>>,
    has_grads: bool,
    bn_momentum: Option<f32>,
    bn_batches: u64,
    ws: Workspace,
    path: KernelPath,
    policy: SparsePolicy,
    gradients: GradientMode,
    /// Per tensor: the sparse kernels of a masked convolution or linear weight that runs sparse.
    sparse: Vec<Option<SparseLayer>>,
    /// Sums train-mode batch-norm statistics over data-parallel replicas (synchronised batch norm).
    bn_reducer: Option<BnSync>,
}

/// The reducer of synchronised batch norm.
struct BnSync(StatsReducer);

impl std::fmt::Debug for BnSync {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("BnSync")
    }
}

impl GraphNetwork {
    /// A network over `graph` with Kaiming-initialised weights drawn from a ChaCha8 generator seeded by `seed`,
    /// on the kernel path of [`KernelPath::from_env`], sparse kernels as [`SparsePolicy::process_default`] says
    /// (by default where the cost model predicts a gain), and dense gradients.
    pub fn new(graph: Graph, seed: u64) -> Result<Self> {
        let path = KernelPath::from_env()?;
        let plan = Plan::new(&graph)?;
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let init = kaiming_init(&graph, &mut rng);
        let infos: Vec<TensorInfo> = init.iter().map(|(t, _)| t.clone()).collect();
        let values: Vec<Vec<f32>> = init
            .into_iter()
            .map(|(_, v)| v.iter().copied().collect())
            .collect();
        let index = infos
            .iter()
            .enumerate()
            .map(|(i, t)| (t.path.clone(), i))
            .collect();
        let n = infos.len();
        Ok(GraphNetwork {
            grads: values.iter().map(|v| vec![0.0; v.len()]).collect(),
            masks: vec![None; n],
            momentum: vec![None; n],
            graph,
            plan,
            infos,
            index,
            values,
            has_grads: false,
            bn_momentum: Some(0.1),
            bn_batches: 0,
            ws: Workspace::default(),
            path,
            policy: SparsePolicy::process_default(),
            gradients: GradientMode::Dense,
            sparse: (0..n).map(|_| None).collect(),
            bn_reducer: None,
        })
    }

    /// The kernel path every kernel call runs on.
    pub fn kernel_path(&self) -> KernelPath {
        self.path
    }

    /// Runs every kernel on `path` from now on; an error when this CPU lacks it.
    pub fn set_kernel_path(&mut self, path: KernelPath) -> Result<()> {
        path.check()?;
        self.path = path;
        self.refresh_all_sparse();
        Ok(())
    }

    /// Which masked layers run on the sparse kernels.
    pub fn sparse_policy(&self) -> SparsePolicy {
        self.policy
    }

    /// Which masked layers run on the sparse kernels from now on.
    pub fn set_sparse_policy(&mut self, policy: SparsePolicy) {
        self.policy = policy;
        self.refresh_all_sparse();
    }

    /// Paths of the weights that run on the sparse kernels at batch [`NOMINAL_BATCH`], in graph order.
    pub fn sparse_layers(&self) -> Vec<&str> {
        self.sparse_layers_at(NOMINAL_BATCH)
    }

    /// Paths of the weights that run on the sparse kernels for a batch of `batch` samples, in graph order.
    pub fn sparse_layers_at(&self, batch: usize) -> Vec<&str> {
        (0..self.infos.len())
            .filter(|&t| self.runs_sparse(t, batch))
            .map(|t| self.infos[t].path.as_str())
            .collect()
    }

    /// Whether weight `t` runs on its sparse kernels for a batch of `batch` samples.
    fn runs_sparse(&self, t: usize, batch: usize) -> bool {
        let Some(layer) = &self.sparse[t] else {
            return false;
        };
        self.plan.nodes.iter().any(|n| {
            n.first_tensor == Some(t)
                && self
                    .policy
                    .runs_sparse(&n.kernel, &layer.work(), self.path, batch)
        })
    }

    /// Which gradients the following backward passes compute (see [`GradientMode`]).
    pub fn set_gradient_mode(&mut self, mode: GradientMode) {
        self.gradients = mode;
    }

    fn refresh_all_sparse(&mut self) {
        for t in 0..self.infos.len() {
            self.refresh_sparse(t);
        }
    }

    /// Rebuilds the sparse layout of weight `t` from its mask, or drops it when the layer is unmasked or the
    /// policy keeps it dense.
    fn refresh_sparse(&mut self, t: usize) {
        self.sparse[t] = None;
        let Some(mask) = &self.masks[t] else {
            return;
        };
        let Some(node) = self.plan.nodes.iter().find(|n| {
            n.first_tensor == Some(t)
                && matches!(n.kernel, Kernel::Conv { .. } | Kernel::Linear { .. })
        }) else {
            return;
        };
        let keep: Vec<bool> = mask.iter().map(|&v| v != 0.0).collect();
        if let Some(layer) = SparseLayer::new(&node.kernel, &keep, self.path) {
            if self
                .policy
                .may_run_sparse(&node.kernel, &layer.work(), self.path)
            {
                self.sparse[t] = Some(layer);
            }
        }
    }

    pub fn graph(&self) -> &Graph {
        &self.graph
    }

    pub fn tensors(&self) -> &[TensorInfo] {
        &self.infos
    }

    fn lookup(&self, path: &str) -> Result<usize> {
        self.index
            .get(path)
            .copied()
            .ok_or_else(|| Error::UnknownTensor(path.to_string()))
    }

    fn to_array(&self, t: usize, data: &[f32]) -> ArrayD<f32> {
        ArrayD::from_shape_vec(IxDyn(&self.infos[t].shape), data.to_vec())
            .expect("stored tensors keep their shape")
    }

    pub fn read(&self, path: &str) -> Result<ArrayD<f32>> {
        let t = self.lookup(path)?;
        Ok(self.to_array(t, &self.values[t]))
    }

    pub fn write(&mut self, path: &str, value: ArrayViewD<f32>) -> Result<()> {
        let t = self.lookup(path)?;
        self.infos[t].check_shape(value.shape())?;
        if let Some(bad) = value.iter().find(|v| !v.is_finite()) {
            return Err(Error::Invalid(format!("{path}: non-finite value {bad}")));
        }
        for (d, s) in self.values[t].iter_mut().zip(value.iter()) {
            *d = *s;
        }
        self.apply_mask(t);
        Ok(())
    }

    fn apply_mask(&mut self, t: usize) {
        if let Some(m) = &self.masks[t] {
            for (w, &k) in self.values[t].iter_mut().zip(m) {
                if k == 0.0 {
                    *w = 0.0;
                }
            }
            if let Some(buf) = &mut self.momentum[t] {
                for (b, &k) in buf.iter_mut().zip(m) {
                    if k == 0.0 {
                        *b = 0.0;
                    }
                }
            }
        }
    }

    pub fn set_mask(&mut self, path: &str, mask: Option<&Mask>) -> Result<()> {
        let t = self.lookup(path)?;
        if !self.infos[t].is_prunable() {
            return Err(Error::Invalid(format!("{path} is not a prunable weight")));
        }
        match mask {
            None => self.masks[t] = None,
            Some(m) => {
                self.infos[t].check_shape(m.shape())?;
                self.masks[t] = Some(m.multiplier());
                self.apply_mask(t);
            }
        }
        self.refresh_sparse(t);
        Ok(())
    }

    pub fn mask(&self, path: &str) -> Option<Mask> {
        let t = *self.index.get(path)?;
        let m = self.masks[t].as_ref()?;
        let keep: Vec<bool> = m.iter().map(|&v| v != 0.0).collect();
        Some(Mask::from_keep(&self.infos[t].shape, &keep))
    }

    pub fn grad(&self, path: &str) -> Result<ArrayD<f32>> {
        let t = self.lookup(path)?;
        if !self.infos[t].is_param() {
            return Err(Error::Invalid(format!(
                "{path} is a buffer, not a parameter: it has no gradient"
            )));
        }
        if !self.has_grads {
            return Err(Error::Invalid(format!(
                "no gradient for {path}: run forward_backward first"
            )));
        }
        Ok(self.to_array(t, &self.grads[t]))
    }

    /// Visits the gradient of every parameter from the last backward pass, in graph order, mutably.
    pub fn visit_gradients(
        &mut self,
        visit: &mut dyn FnMut(&TensorInfo, &mut [f32]),
    ) -> Result<()> {
        if !self.has_grads {
            return Err(Error::Invalid(
                "no gradients to visit: run forward_backward first".into(),
            ));
        }
        for (info, g) in self.infos.iter().zip(self.grads.iter_mut()) {
            if info.is_param() {
                visit(info, g);
            }
        }
        Ok(())
    }

    /// Synchronised batch norm from now on (`Some`), or local statistics (`None`); see
    /// [`crate::engine::Network::set_batch_stats_reducer`].
    pub fn set_batch_stats_reducer(&mut self, reducer: Option<StatsReducer>) {
        self.bn_reducer = reducer.map(BnSync);
    }

    /// One SGD step over every parameter ([`sgd_update`], which also keeps masked weights at zero).
    pub fn sgd_step(&mut self, cfg: &SgdConfig, lr: f32) {
        let _ftz = FlushDenormals::new();
        let tensors = self
            .infos
            .iter()
            .zip(self.values.iter_mut())
            .zip(&self.grads)
            .zip(self.momentum.iter_mut().zip(&self.masks));
        for (((info, weight), grad), (momentum, mask)) in tensors {
            if !info.is_param() {
                continue;
            }
            let decay = info.role == TensorRole::Weight || cfg.decay_bn_and_bias;
            let len = weight.len();
            let buf: &mut [f32] = if cfg.momentum != 0.0 {
                momentum.get_or_insert_with(|| vec![0.0; len])
            } else {
                &mut []
            };
            sgd_update(cfg, lr, decay, weight, grad, buf, mask.as_deref());
        }
    }

    pub fn optimizer_state(&self) -> Vec<(String, ArrayD<f32>)> {
        (0..self.infos.len())
            .filter_map(|t| {
                Some((
                    self.infos[t].path.clone(),
                    self.to_array(t, self.momentum[t].as_ref()?),
                ))
            })
            .collect()
    }

    pub fn set_optimizer_state(&mut self, state: &[(String, ArrayD<f32>)]) -> Result<()> {
        let mut fresh: Vec<Option<Vec<f32>>> = vec![None; self.infos.len()];
        for (path, buf) in state {
            let t = self.lookup(path)?;
            if !self.infos[t].is_param() {
                return Err(Error::Invalid(format!(
                    "{path} is a buffer and has no optimiser state"
                )));
            }
            self.infos[t].check_shape(buf.shape())?;
            fresh[t] = Some(buf.iter().copied().collect());
        }
        self.momentum = fresh;
        for t in 0..self.infos.len() {
            self.apply_mask(t);
        }
        Ok(())
    }

    pub fn reset_optimizer(&mut self) {
        self.momentum.iter_mut().for_each(|m| *m = None);
    }

    /// Sets the running-statistics momentum (`None` = cumulative average) and restarts the batch count.
    pub fn set_bn_momentum(&mut self, momentum: Option<f32>) {
        self.bn_momentum = momentum;
        self.bn_batches = 0;
    }

    fn check_images(&self, images: &ArrayView4<f32>) -> Result<()> {
        let want = &self.graph.shapes[0];
        let got = images.shape();
        if got.len() != 4 || got[1..] != want[..] || got[0] == 0 {
            let mut expected = vec![0];
            expected.extend(want);
            return Err(Error::Shape {
                name: "input images (N, C, H, W), N > 0".into(),
                expected,
                got: got.to_vec(),
            });
        }
        Ok(())
    }

    /// The logits of the last forward pass.
    fn logits(&self) -> ArrayView2<'_, f32> {
        let last = self.plan.nodes.last().expect("non-empty graph");
        let n = self.ws.batch;
        ArrayView2::from_shape((n, last.numel), &self.ws.acts[last.act][..n * last.numel])
            .expect("logit buffer")
    }

    fn prepare(&mut self, batch: usize) {
        let ws = &mut self.ws;
        ws.batch = batch;
        let nb = self.plan.buffers.len();
        ws.acts.resize_with(nb, Vec::new);
        ws.grads.resize_with(nb, Vec::new);
        ws.written.resize(nb, false);
        let nn = self.plan.nodes.len();
        ws.bn_mean.resize_with(nn, Vec::new);
        ws.bn_invstd.resize_with(nn, Vec::new);
        ws.bn_scale.resize_with(nn, Vec::new);
        ws.bn_shift.resize_with(nn, Vec::new);
        ws.sums.resize_with(nn, || None);
        for node in &self.plan.nodes {
            ws.acts[node.act].resize(batch * node.numel, 0.0);
        }
        let chunks = kernels::chunk_count(batch);
        if ws.conv.len() < chunks {
            ws.conv.resize_with(chunks, Default::default);
        }
        ws.sparse.reserve(chunks);
    }

    /// Runs the forward pass over a batch; activations stay in the workspace.
    pub fn forward(&mut self, images: ArrayView4<f32>, mode: Mode) -> Result<()> {
        self.check_images(&images)?;
        let batch = images.shape()[0];
        if mode == Mode::Train {
            for node in &self.plan.nodes {
                if let Kernel::BatchNorm { hw, .. } = node.kernel {
                    if batch * hw < 2 {
                        return Err(Error::Invalid(
                            "batch norm in train mode needs more than one value per channel".into(),
                        ));
                    }
                }
            }
            self.bn_batches += 1;
        }
        self.prepare(batch);
        let active = (0..self.infos.len())
            .map(|t| self.runs_sparse(t, batch))
            .collect();
        self.ws.active = active;
        let _ftz = FlushDenormals::new();
        let input = &mut self.ws.acts[self.plan.nodes[0].act];
        match images.as_slice() {
            Some(s) => input.copy_from_slice(s),
            None => input
                .iter_mut()
                .zip(images.iter())
                .for_each(|(d, s)| *d = *s),
        }
        for i in 1..self.plan.nodes.len() {
            self.forward_node(i, mode);
        }
        self.ws.mode = Some(mode);
        Ok(())
    }

    fn forward_node(&mut self, i: usize, mode: Mode) {
        let node = &self.plan.nodes[i];
        let ws = &mut self.ws;
        let mut out = std::mem::take(&mut ws.acts[node.act]);
        let x = node
            .inputs
            .first()
            .map(|&j| ws.acts[self.plan.nodes[j].act].as_slice())
            .unwrap_or(&[]);
        let relu = node.relu_after;
        match &node.kernel {
            Kernel::Input | Kernel::Flatten | Kernel::FusedRelu => {}
            Kernel::Conv { geom, bias } => {
                let t = node.first_tensor.expect("conv has a weight");
                let b = bias.then(|| self.values[t + 1].as_slice());
                let mut sums = (mode == Mode::Train && node.sums_for_bn)
                    .then(|| ws.sums[i].take().unwrap_or_default());
                if let Some(layer) = self.sparse[t].as_mut().filter(|_| ws.active[t]) {
                    let w = &self.values[t];
                    layer.forward(w, b, relu, x, &mut out, &mut ws.sparse, sums.as_mut());
                } else {
                    conv::forward_with_sums(
                        self.path,
                        geom,
                        x,
                        &self.values[t],
                        b,
                        relu,
                        &mut out,
                        &mut ws.conv,
                        &mut ws.wt,
                        sums.as_mut(),
                    );
                }
                ws.sums[i] = sums;
            }
            &Kernel::Linear { nin, nout, bias } => {
                let t = node.first_tensor.expect("linear has a weight");
                let b = bias.then(|| self.values[t + 1].as_slice());
                if let Some(layer) = self.sparse[t].as_mut().filter(|_| ws.active[t]) {
                    layer.forward(&self.values[t], b, relu, x, &mut out, &mut ws.sparse, None);
                    ws.acts[node.act] = out;
                    return;
                }
                linear::forward(self.path, nin, nout, x, &self.values[t], b, relu, &mut out);
            }
            &Kernel::BatchNorm { c, hw } => {
                let t = node.first_tensor.expect("batch norm has parameters");
                let sh = bn::BnShape { n: ws.batch, c, hw };
                let (mean, invstd): (Vec<f32>, Vec<f32>) = match mode {
                    Mode::Train => {
                        let reduce = self
                            .bn_reducer
                            .as_ref()
                            .map(|r| r.0.as_ref() as &bn::SumOverReplicas);
                        let (mean, var, count) = match (ws.sums[node.inputs[0]].take(), reduce) {
                            (Some(sums), reduce) => bn::stats_from_sums(sums, sh.count(), reduce),
                            (None, Some(r)) => bn::reduced_batch_stats(sh, x, r),
                            (None, None) => {
                                let (mean, var) = bn::batch_stats(sh, x);
                                (mean, var, sh.count() as f64)
                            }
                        };
                        let factor = match self.bn_momentum {
                            Some(m) => m as f64,
                            None => 1.0 / self.bn_batches.max(1) as f64,
                        };
                        let unbias = count / (count - 1.0);
                        let (rm, rest) = self.values[t + 2..].split_at_mut(1);
                        for ch in 0..c {
                            rm[0][ch] =
                                ((1.0 - factor) * rm[0][ch] as f64 + factor * mean[ch]) as f32;
                            rest[0][ch] = ((1.0 - factor) * rest[0][ch] as f64
                                + factor * var[ch] * unbias)
                                as f32;
                        }
                        let inv = var
                            .iter()
                            .map(|v| (1.0 / (v + BN_EPS as f64).sqrt()) as f32)
                            .collect();
                        (mean.iter().map(|&m| m as f32).collect(), inv)
                    }
                    Mode::Eval => (
                        self.values[t + 2].clone(),
                        self.values[t + 3]
                            .iter()
                            .map(|v| 1.0 / (v + BN_EPS).sqrt())
                            .collect(),
                    ),
                };
                let gamma = &self.values[t];
                let beta = &self.values[t + 1];
                let scale: Vec<f32> = (0..c).map(|ch| gamma[ch] * invstd[ch]).collect();
                let shift: Vec<f32> = (0..c).map(|ch| beta[ch] - mean[ch] * scale[ch]).collect();
                bn::affine(sh, x, &scale, &shift, relu, &mut out);
                ws.bn_mean[i] = mean;
                ws.bn_invstd[i] = invstd;
                ws.bn_scale[i] = scale;
                ws.bn_shift[i] = shift;
            }
            Kernel::Relu => ew::relu(x, &mut out),
            Kernel::MaxPool { geom } => pool::max_forward(geom, x, &mut out),
            Kernel::AvgPool { geom } => pool::avg_forward(geom, x, &mut out),
            &Kernel::GlobalAvgPool { hw } => pool::global_avg_forward(hw, x, &mut out),
            Kernel::Add => {
                let b = &ws.acts[self.plan.nodes[node.inputs[1]].act];
                ew::add(x, b, relu, &mut out);
            }
            Kernel::SubsamplePad(sp) => sp.forward(x, &mut out),
        }
        ws.acts[node.act] = out;
    }

    /// Backward from the gradient of the logits of the last forward pass; fills the parameter gradients.
    pub fn backward(&mut self, dlogits: ArrayView2<f32>) -> Result<()> {
        self.backward_streaming(dlogits, &mut |_, _| {})
    }

    /// [`GraphNetwork::backward`] that hands each layer's parameter gradients to `sink` when the layer is
    /// done (see [`crate::engine::Network::forward_backward_streaming`]).
    pub fn backward_streaming(
        &mut self,
        dlogits: ArrayView2<f32>,
        sink: &mut GradientSink,
    ) -> Result<()> {
        let mode = self
            .ws
            .mode
            .ok_or_else(|| Error::Invalid("backward needs a forward pass first".into()))?;
        let last = self.plan.nodes.len() - 1;
        let (n, k) = (self.ws.batch, self.plan.nodes[last].numel);
        if dlogits.shape() != [n, k] {
            return Err(Error::Shape {
                name: "gradient of the logits".into(),
                expected: vec![n, k],
                got: dlogits.shape().to_vec(),
            });
        }
        let _ftz = FlushDenormals::new();
        for node in &self.plan.nodes {
            if node.requires_grad {
                self.ws.grads[node.grad].resize(n * node.numel, 0.0);
            }
        }
        self.ws.written.fill(false);
        let gl = self.plan.nodes[last].grad;
        for (d, s) in self.ws.grads[gl].iter_mut().zip(dlogits.iter()) {
            *d = *s;
        }
        self.ws.written[gl] = true;
        for i in (1..=last).rev() {
            self.backward_node(i, mode);
            self.hand_gradients(i, sink);
        }
        self.has_grads = true;
        Ok(())
    }

    /// Hands the parameter gradients of node `i` to `sink`.
    fn hand_gradients(&self, i: usize, sink: &mut GradientSink) {
        let node = &self.plan.nodes[i];
        if let Some(t) = node.first_tensor {
            for t in t..t + trainable_tensors(&node.kernel) {
                sink(&self.infos[t], &self.grads[t]);
            }
        }
    }

    fn backward_node(&mut self, i: usize, mode: Mode) {
        let nodes = &self.plan.nodes;
        let node = &nodes[i];
        if !node.requires_grad {
            return;
        }
        let ws = &mut self.ws;
        if !ws.written[node.grad] {
            if let Some(t) = node.first_tensor {
                for g in &mut self.grads[t..t + trainable_tensors(&node.kernel)] {
                    g.fill(0.0);
                }
            }
            return;
        }
        let dy = std::mem::take(&mut ws.grads[node.grad]);
        let x = node
            .inputs
            .first()
            .map(|&j| ws.acts[nodes[j].act].as_slice())
            .unwrap_or(&[]);
        // The input gradient target of input `slot`: (buffer, accumulate), or None when not needed.
        let target = |slot: usize, written: &mut Vec<bool>| -> Option<(usize, bool)> {
            let j = nodes[i].inputs[slot];
            if !nodes[j].requires_grad {
                return None;
            }
            let b = nodes[j].grad;
            let acc = written[b];
            written[b] = true;
            Some((b, acc))
        };
        match &node.kernel {
            Kernel::Input | Kernel::Flatten => {}
            Kernel::FusedRelu => {
                let mut dy = dy;
                // A batch norm or a sum masks the gradient of its ReLU inside its own backward.
                if !matches!(
                    nodes[node.inputs[0]].kernel,
                    Kernel::BatchNorm { .. } | Kernel::Add
                ) {
                    ew::relu_mask_inplace(&ws.acts[node.act], &mut dy);
                }
                ws.grads[node.grad] = dy;
                return;
            }
            Kernel::Conv { geom, bias } => {
                let t = node.first_tensor.expect("conv has a weight");
                let tgt = target(0, &mut ws.written);
                let mut dxbuf = tgt.map(|(b, _)| std::mem::take(&mut ws.grads[b]));
                let (gw, gb) = self.grads[t..].split_at_mut(1);
                let dbias = bias.then(|| gb[0].as_mut_slice());
                let dx = dxbuf
                    .as_mut()
                    .map(|v| (v.as_mut_slice(), tgt.expect("target").1));
                if let Some(layer) = self.sparse[t].as_mut().filter(|_| ws.active[t]) {
                    let w = &self.values[t];
                    layer.backward(w, x, &dy, dx, &mut gw[0], dbias, &mut ws.sparse);
                    if self.gradients == GradientMode::Dense {
                        let mut full = vec![0.0; gw[0].len()];
                        let (path, conv_s, wt) = (self.path, &mut ws.conv, &mut ws.wt);
                        conv::backward(path, geom, x, w, &dy, None, &mut full, None, conv_s, wt);
                        fill_masked(&mut gw[0], &full, self.masks[t].as_deref());
                    }
                } else {
                    conv::backward(
                        self.path,
                        geom,
                        x,
                        &self.values[t],
                        &dy,
                        dx,
                        &mut gw[0],
                        dbias,
                        &mut ws.conv,
                        &mut ws.wt,
                    );
                }
                if let (Some((b, _)), Some(v)) = (tgt, dxbuf) {
                    ws.grads[b] = v;
                }
            }
            &Kernel::Linear { nin, nout, bias } => {
                let t = node.first_tensor.expect("linear has a weight");
                let tgt = target(0, &mut ws.written);
                let mut dxbuf = tgt.map(|(b, _)| std::mem::take(&mut ws.grads[b]));
                let (gw, gb) = self.grads[t..].split_at_mut(1);
                let dbias = bias.then(|| gb[0].as_mut_slice());
                let dx = dxbuf
                    .as_mut()
                    .map(|v| (v.as_mut_slice(), tgt.expect("target").1));
                if let Some(layer) = self.sparse[t].as_mut().filter(|_| ws.active[t]) {
                    let w = &self.values[t];
                    layer.backward(w, x, &dy, dx, &mut gw[0], dbias, &mut ws.sparse);
                    if self.gradients == GradientMode::Dense {
                        let mut full = vec![0.0; gw[0].len()];
                        linear::backward(nin, nout, x, w, &dy, None, &mut full, None);
                        fill_masked(&mut gw[0], &full, self.masks[t].as_deref());
                    }
                } else {
                    linear::backward(nin, nout, x, &self.values[t], &dy, dx, &mut gw[0], dbias);
                }
                if let (Some((b, _)), Some(v)) = (tgt, dxbuf) {
                    ws.grads[b] = v;
                }
            }
            &Kernel::BatchNorm { c, hw } => {
                let t = node.first_tensor.expect("batch norm has parameters");
                let sh = bn::BnShape { n: ws.batch, c, hw };
                let tgt = target(0, &mut ws.written);
                let mut dxbuf = tgt.map(|(b, _)| std::mem::take(&mut ws.grads[b]));
                let (gw, gb) = self.grads[t..].split_at_mut(1);
                let dx = dxbuf
                    .as_mut()
                    .map(|v| (v.as_mut_slice(), tgt.expect("target").1));
                let reduce = match (&self.bn_reducer, mode) {
                    (Some(r), Mode::Train) => Some(r.0.as_ref() as &dyn Fn(&mut [f64])),
                    _ => None,
                };
                bn::backward_reduced(
                    sh,
                    x,
                    &dy,
                    &ws.bn_mean[i],
                    &ws.bn_invstd[i],
                    &self.values[t],
                    mode == Mode::Train,
                    dx,
                    &mut gw[0],
                    &mut gb[0],
                    reduce,
                    node.relu_after
                        .then(|| (ws.bn_scale[i].as_slice(), ws.bn_shift[i].as_slice())),
                );
                if let (Some((b, _)), Some(v)) = (tgt, dxbuf) {
                    ws.grads[b] = v;
                }
            }
            Kernel::Relu => {
                if let Some((b, acc)) = target(0, &mut ws.written) {
                    ew::relu_backward(&ws.acts[node.act], &dy, &mut ws.grads[b], acc);
                }
            }
            Kernel::MaxPool { geom } => {
                if let Some((b, acc)) = target(0, &mut ws.written) {
                    pool::max_backward(geom, x, &dy, &mut ws.grads[b], acc);
                }
            }
            Kernel::AvgPool { geom } => {
                if let Some((b, acc)) = target(0, &mut ws.written) {
                    pool::avg_backward(geom, &dy, &mut ws.grads[b], acc);
                }
            }
            &Kernel::GlobalAvgPool { hw } => {
                if let Some((b, acc)) = target(0, &mut ws.written) {
                    pool::global_avg_backward(hw, &dy, &mut ws.grads[b], acc);
                }
            }
            Kernel::Add => {
                let mut dy = dy;
                let t1 = target(1, &mut ws.written);
                let relu_y = node.relu_after.then(|| ws.acts[node.act].as_slice());
                match (t1, relu_y) {
                    (Some((b, acc)), Some(y)) => {
                        ew::relu_mask_copy(y, &mut dy, &mut ws.grads[b], acc)
                    }
                    (Some((b, acc)), None) => ew::copy_or_add(&dy, &mut ws.grads[b], acc),
                    (None, Some(y)) => ew::relu_mask_inplace(y, &mut dy),
                    (None, None) => {}
                }
                match target(0, &mut ws.written) {
                    // The gradient passes through unchanged: hand the buffer over instead of copying it.
                    Some((b, false)) if t1.is_none_or(|(b1, _)| b1 != b) => {
                        std::mem::swap(&mut dy, &mut ws.grads[b]);
                        ws.grads[node.grad] = dy;
                        return;
                    }
                    Some((b, acc)) => ew::copy_or_add(&dy, &mut ws.grads[b], acc),
                    None => {}
                }
                ws.grads[node.grad] = dy;
                return;
            }
            Kernel::SubsamplePad(sp) => {
                if let Some((b, acc)) = target(0, &mut ws.written) {
                    sp.backward(&dy, &mut ws.grads[b], acc);
                }
            }
        }
        ws.grads[node.grad] = dy;
    }

    /// Forward (train or eval mode), objective on the logits, backward. Returns the objective's value and the
    /// logits.
    pub fn forward_backward(
        &mut self,
        images: ArrayView4<f32>,
        train_mode: bool,
        objective: &Objective,
    ) -> Result<(f64, Array2<f32>)> {
        self.forward_backward_streaming(images, train_mode, objective, &mut |_, _| {})
    }

    /// [`GraphNetwork::forward_backward`] with [`GraphNetwork::backward_streaming`].
    pub fn forward_backward_streaming(
        &mut self,
        images: ArrayView4<f32>,
        train_mode: bool,
        objective: &Objective,
        sink: &mut GradientSink,
    ) -> Result<(f64, Array2<f32>)> {
        self.forward(images, if train_mode { Mode::Train } else { Mode::Eval })?;
        let logits = self.logits().to_owned();
        let (value, dlogits) = objective(logits.view());
        self.backward_streaming(dlogits.view(), sink)?;
        Ok((value, logits))
    }

    /// Eval-mode logits; large batches are evaluated in pieces of [`PREDICT_CHUNK`].
    pub fn predict(&mut self, images: ArrayView4<f32>) -> Result<Array2<f32>> {
        self.check_images(&images)?;
        let n = images.shape()[0];
        let classes = self.plan.nodes.last().expect("non-empty graph").numel;
        let mut out = Array2::zeros((n, classes));
        let mut start = 0;
        while start < n {
            let end = (start + PREDICT_CHUNK).min(n);
            self.forward(
                images.slice(ndarray::s![start..end, .., .., ..]),
                Mode::Eval,
            )?;
            out.slice_mut(ndarray::s![start..end, ..])
                .assign(&self.logits());
            start = end;
        }
        Ok(out)
    }

    /// Train-mode forward only: updates the BN running statistics.
    pub fn forward_train(&mut self, images: ArrayView4<f32>) -> Result<()> {
        self.forward(images, Mode::Train)
    }
}

/// Number of trainable tensors a node owns (weight and bias, or BN scale and shift).
fn trainable_tensors(k: &Kernel) -> usize {
    match *k {
        Kernel::Conv { bias, .. } | Kernel::Linear { bias, .. } => 1 + bias as usize,
        Kernel::BatchNorm { .. } => 2,
        _ => 0,
    }
}

/// Copies `full` into `grad` at the masked positions of `mask`, leaving the kept positions (computed by the
/// sparse kernels) as they are.
fn fill_masked(grad: &mut [f32], full: &[f32], mask: Option<&[f32]>) {
    let Some(mask) = mask else {
        return;
    };
    for ((g, &f), &k) in grad.iter_mut().zip(full).zip(mask) {
        if k == 0.0 {
            *g = f;
        }
    }
}
