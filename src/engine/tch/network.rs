//! [`TchNetwork`]: a [`ModelSpec`] run by libtorch on the CPU or a CUDA GPU.

use std::collections::BTreeMap;

use ndarray::{Array2, ArrayD, ArrayView4, ArrayViewD};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use tch::{Kind, TchError, Tensor};

use super::convert::{engine_error, to_array, to_array2, to_tensor, torch_device};
use super::forward::{forward, BnMode};
use super::{cuda, sgd};
use crate::engine::cpu::PREDICT_CHUNK;
use crate::engine::device::{Device, TchDevice};
use crate::engine::{Network, Objective};
use crate::error::{Error, Result};
use crate::nn::{init::kaiming_init, Graph, ModelSpec, Op, TensorInfo, TensorRole};
use crate::optim::SgdConfig;
use crate::sparsity::Mask;

/// A model on a libtorch device. Parameters are autograd leaves; BN running statistics are plain tensors that
/// libtorch's batch norm updates in place.
#[derive(Debug)]
pub struct TchNetwork {
    spec: ModelSpec,
    graph: Graph,
    /// The device's name, for errors.
    name: String,
    device: tch::Device,
    infos: Vec<TensorInfo>,
    index: BTreeMap<String, usize>,
    values: Vec<Tensor>,
    /// Per node, the index of its first tensor.
    first_tensor: Vec<Option<usize>>,
    /// Per tensor: the mask as given, and where it prunes (a bool tensor on the device).
    masks: Vec<Option<(Mask, Tensor)>>,
    momentum: Vec<Option<Tensor>>,
    has_grads: bool,
    bn_momentum: Option<f32>,
    bn_batches: u64,
}

impl TchNetwork {
    /// The model of `spec` on `device` with the initial weights of [`crate::nn::init::kaiming_init`] drawn from a
    /// ChaCha8 generator seeded by `seed` (the CPU engine's, value for value). On the CPU, libtorch is set to as
    /// many threads as the calling rayon pool has. A GPU that cannot be used is an [`Error::Engine`].
    pub fn new(spec: &ModelSpec, seed: u64, device: TchDevice) -> Result<Self> {
        let name = Device::Tch(device).to_string();
        match device {
            TchDevice::Cpu => tch::set_num_threads(rayon::current_num_threads() as i32),
            TchDevice::Cuda(i) => cuda::require_gpu(i)?,
        }
        let graph = spec.graph()?;
        if let Some(n) = graph.nodes.iter().skip(1).find(|n| n.op == Op::Input) {
            return Err(Error::Model(format!("{}: a second input node", n.name)));
        }
        let torch = torch_device(device);
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut infos = Vec::new();
        let mut values = Vec::new();
        for (info, value) in kaiming_init(&graph, &mut rng) {
            let t = to_tensor(value.view(), torch)
                .map_err(|e| engine_error(&name, &format!("cannot create {}", info.path), e))?;
            values.push(if info.is_param() {
                t.set_requires_grad(true)
            } else {
                t
            });
            infos.push(info);
        }
        let mut first_tensor = vec![None; graph.nodes.len()];
        for (i, t) in infos.iter().enumerate() {
            first_tensor[t.node].get_or_insert(i);
        }
        let index = infos
            .iter()
            .enumerate()
            .map(|(i, t)| (t.path.clone(), i))
            .collect();
        let n = infos.len();
        Ok(TchNetwork {
            spec: spec.clone(),
            graph,
            name,
            device: torch,
            infos,
            index,
            values,
            first_tensor,
            masks: (0..n).map(|_| None).collect(),
            momentum: (0..n).map(|_| None).collect(),
            has_grads: false,
            bn_momentum: Some(0.1),
            bn_batches: 0,
        })
    }

    fn fail(&self, what: &str) -> impl Fn(TchError) -> Error {
        let (device, what) = (self.name.clone(), what.to_string());
        move |e| engine_error(&device, &what, e)
    }

    fn lookup(&self, path: &str) -> Result<usize> {
        self.index
            .get(path)
            .copied()
            .ok_or_else(|| Error::UnknownTensor(path.to_string()))
    }

    fn check_images(&self, images: &ArrayView4<f32>) -> Result<()> {
        let want = &self.graph.shapes[0];
        let got = images.shape();
        if got[1..] != want[..] || got[0] == 0 {
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

    /// Zeroes weight `t` and its momentum where its mask prunes.
    fn apply_mask(&mut self, t: usize) -> std::result::Result<(), TchError> {
        let Some((_, pruned)) = &self.masks[t] else {
            return Ok(());
        };
        let _guard = tch::no_grad_guard();
        let _ = self.values[t].f_masked_fill_(pruned, 0.0)?;
        if let Some(b) = &mut self.momentum[t] {
            let _ = b.f_masked_fill_(pruned, 0.0)?;
        }
        Ok(())
    }

    /// The BN mode of a forward pass, counting train-mode passes for the cumulative average.
    fn bn_mode(&mut self, train: bool, batch: usize) -> Result<BnMode> {
        if !train {
            return Ok(BnMode::Eval);
        }
        for (i, n) in self.graph.nodes.iter().enumerate() {
            if matches!(n.op, Op::BatchNorm2d { .. }) {
                let hw: usize = self.graph.shapes[i][1..].iter().product();
                if batch * hw < 2 {
                    return Err(Error::Invalid(
                        "batch norm in train mode needs more than one value per channel".into(),
                    ));
                }
            }
        }
        self.bn_batches += 1;
        Ok(BnMode::Train {
            factor: match self.bn_momentum {
                Some(m) => m as f64,
                None => 1.0 / self.bn_batches as f64,
            },
        })
    }

    fn run_forward(&self, images: ArrayView4<f32>, bn: BnMode) -> Result<Tensor> {
        let x = to_tensor(images.into_dyn(), self.device).map_err(self.fail("input batch"))?;
        forward(&self.graph, &self.values, &self.first_tensor, &x, bn).map_err(self.fail("forward"))
    }

    fn zero_grads(&mut self) {
        for (v, info) in self.values.iter_mut().zip(&self.infos) {
            if info.is_param() {
                v.zero_grad();
            }
        }
    }

    fn step(&mut self, cfg: &SgdConfig, lr: f32) -> std::result::Result<(), TchError> {
        let _guard = tch::no_grad_guard();
        for t in 0..self.infos.len() {
            let info = &self.infos[t];
            if !info.is_param() {
                continue;
            }
            let decay = info.role == TensorRole::Weight || cfg.decay_bn_and_bias;
            let g = self.values[t].grad();
            let g = if g.defined() {
                g
            } else {
                self.values[t].f_zeros_like()?
            };
            let pruned = self.masks[t].as_ref().map(|(_, p)| p);
            sgd::update(
                cfg,
                lr,
                decay,
                &mut self.values[t],
                &g,
                &mut self.momentum[t],
                pruned,
            )?;
        }
        Ok(())
    }
}

impl Network for TchNetwork {
    fn spec(&self) -> &ModelSpec {
        &self.spec
    }

    fn tensors(&self) -> &[TensorInfo] {
        &self.infos
    }

    fn read(&self, path: &str) -> Result<ArrayD<f32>> {
        let t = self.lookup(path)?;
        to_array(&self.values[t], &self.infos[t].shape).map_err(self.fail(path))
    }

    fn write(&mut self, path: &str, value: ArrayViewD<f32>) -> Result<()> {
        let t = self.lookup(path)?;
        self.infos[t].check_shape(value.shape())?;
        if let Some(bad) = value.iter().find(|v| !v.is_finite()) {
            return Err(Error::Invalid(format!("{path}: non-finite value {bad}")));
        }
        let src = to_tensor(value, self.device).map_err(self.fail(path))?;
        {
            let _guard = tch::no_grad_guard();
            self.values[t].f_copy_(&src).map_err(self.fail(path))?;
        }
        self.apply_mask(t).map_err(self.fail(path))
    }

    fn set_mask(&mut self, path: &str, mask: Option<&Mask>) -> Result<()> {
        let t = self.lookup(path)?;
        if !self.infos[t].is_prunable() {
            return Err(Error::Invalid(format!("{path} is not a prunable weight")));
        }
        match mask {
            None => self.masks[t] = None,
            Some(m) => {
                self.infos[t].check_shape(m.shape())?;
                let keep = to_tensor(
                    ArrayViewD::from_shape(m.shape(), &m.multiplier())
                        .map_err(|e| Error::Invalid(format!("mask of {path}: {e}")))?,
                    self.device,
                )
                .map_err(self.fail(path))?;
                let pruned = keep.f_eq(0.0).map_err(self.fail(path))?;
                self.masks[t] = Some((m.clone(), pruned));
                self.apply_mask(t).map_err(self.fail(path))?;
            }
        }
        Ok(())
    }

    fn mask(&self, path: &str) -> Option<Mask> {
        let t = *self.index.get(path)?;
        self.masks[t].as_ref().map(|(m, _)| m.clone())
    }

    fn forward_backward(
        &mut self,
        images: ArrayView4<f32>,
        train_mode: bool,
        objective: &Objective,
    ) -> Result<(f64, Array2<f32>)> {
        self.check_images(&images)?;
        let bn = self.bn_mode(train_mode, images.shape()[0])?;
        self.zero_grads();
        let logits = self.run_forward(images, bn)?;
        let host = to_array2(&logits).map_err(self.fail("logits"))?;
        let (value, dlogits) = objective(host.view());
        if dlogits.shape() != host.shape() {
            return Err(Error::Shape {
                name: "gradient of the logits".into(),
                expected: host.shape().to_vec(),
                got: dlogits.shape().to_vec(),
            });
        }
        let d = to_tensor(dlogits.view().into_dyn(), self.device).map_err(self.fail("backward"))?;
        logits
            .f_mul(&d)
            .and_then(|p| p.f_sum(Kind::Float))
            .and_then(|s| s.f_backward())
            .map_err(self.fail("backward"))?;
        self.has_grads = true;
        Ok((value, host))
    }

    fn grad(&self, path: &str) -> Result<ArrayD<f32>> {
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
        let g = self.values[t].grad();
        if !g.defined() {
            return Ok(ArrayD::zeros(self.infos[t].shape.as_slice()));
        }
        to_array(&g, &self.infos[t].shape).map_err(self.fail(path))
    }

    fn sgd_step(&mut self, cfg: &SgdConfig, lr: f32) {
        if let Err(e) = self.step(cfg, lr) {
            panic!("{}: libtorch failed in an SGD step: {e}", self.name);
        }
    }

    fn optimizer_state(&self) -> Vec<(String, ArrayD<f32>)> {
        (0..self.infos.len())
            .filter_map(|t| {
                let buf = self.momentum[t].as_ref()?;
                let a = to_array(buf, &self.infos[t].shape).unwrap_or_else(|e| {
                    panic!(
                        "{}: cannot read the momentum of {}: {e}",
                        self.name, self.infos[t].path
                    )
                });
                Some((self.infos[t].path.clone(), a))
            })
            .collect()
    }

    fn set_optimizer_state(&mut self, state: &[(String, ArrayD<f32>)]) -> Result<()> {
        let mut fresh: Vec<Option<Tensor>> = (0..self.infos.len()).map(|_| None).collect();
        for (path, buf) in state {
            let t = self.lookup(path)?;
            if !self.infos[t].is_param() {
                return Err(Error::Invalid(format!(
                    "{path} is a buffer and has no optimiser state"
                )));
            }
            self.infos[t].check_shape(buf.shape())?;
            fresh[t] = Some(to_tensor(buf.view(), self.device).map_err(self.fail(path))?);
        }
        self.momentum = fresh;
        for t in 0..self.infos.len() {
            self.apply_mask(t).map_err(self.fail("optimiser state"))?;
        }
        Ok(())
    }

    fn reset_optimizer(&mut self) {
        self.momentum.iter_mut().for_each(|m| *m = None);
    }

    fn predict(&mut self, images: ArrayView4<f32>) -> Result<Array2<f32>> {
        self.check_images(&images)?;
        let n = images.shape()[0];
        let mut out = Array2::zeros((n, self.spec.classes));
        let _guard = tch::no_grad_guard();
        let mut start = 0;
        while start < n {
            let end = (start + PREDICT_CHUNK).min(n);
            let logits = self.run_forward(
                images.slice(ndarray::s![start..end, .., .., ..]),
                BnMode::Eval,
            )?;
            let host = to_array2(&logits).map_err(self.fail("logits"))?;
            out.slice_mut(ndarray::s![start..end, ..]).assign(&host);
            start = end;
        }
        Ok(out)
    }

    fn forward_train(&mut self, images: ArrayView4<f32>) -> Result<()> {
        self.check_images(&images)?;
        let bn = self.bn_mode(true, images.shape()[0])?;
        let _guard = tch::no_grad_guard();
        self.run_forward(images, bn).map(drop)
    }

    fn set_bn_momentum(&mut self, momentum: Option<f32>) {
        self.bn_momentum = momentum;
        self.bn_batches = 0;
    }
}
