//! Test support shared by the method, sparsity and analysis tests (included with `#[path]`): a small reference
//! MLP implementing `Network` with plain loops, a synthetic dataset, and a driver that calls a `Method` exactly
//! as the trainer does (next_phase, optimiser reset, after_backward, sgd_step, after_step, after_epoch).
#![allow(dead_code)]

use std::collections::BTreeMap;

use ndarray::{Array2, Array4, ArrayD, ArrayView4, ArrayViewD, IxDyn};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use sculpt::engine::{Network, Objective};
use sculpt::error::{Error, Result};
use sculpt::method::{Method, MethodCtx, Phase};
use sculpt::nn::{Arch, ModelSpec, TensorInfo, TensorRole};
use sculpt::optim::sgd::sgd_update;
use sculpt::optim::{Schedule, SgdConfig};
use sculpt::sparsity::Mask;

/// A ReLU MLP: `fcK.weight` [out, in], `fcK.bias` [out]; no BN.
pub struct RefMlp {
    spec: ModelSpec,
    infos: Vec<TensorInfo>,
    values: BTreeMap<String, Vec<f32>>,
    grads: BTreeMap<String, Vec<f32>>,
    masks: BTreeMap<String, Mask>,
    momentum: BTreeMap<String, Vec<f32>>,
}

impl RefMlp {
    pub fn new(input: [usize; 3], hidden: Vec<usize>, classes: usize, seed: u64) -> Self {
        let spec = ModelSpec {
            arch: Arch::Mlp { hidden },
            input,
            classes,
        };
        let graph = spec.graph().unwrap();
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let init = sculpt::nn::init::kaiming_init(&graph, &mut rng);
        let mut values = BTreeMap::new();
        let mut infos = Vec::new();
        for (t, v) in init {
            let mut v: Vec<f32> = v.iter().copied().collect();
            if t.role == TensorRole::Bias {
                v.iter_mut().for_each(|b| *b = rng.gen_range(-0.1..0.1));
            }
            values.insert(t.path.clone(), v);
            infos.push(t);
        }
        RefMlp {
            spec,
            infos,
            values,
            grads: BTreeMap::new(),
            masks: BTreeMap::new(),
            momentum: BTreeMap::new(),
        }
    }

    fn layers(&self) -> Vec<(String, String, usize, usize)> {
        self.infos
            .iter()
            .filter(|t| t.role == TensorRole::Weight)
            .map(|t| {
                let base = t.path.trim_end_matches(".weight").to_string();
                (
                    t.path.clone(),
                    format!("{base}.bias"),
                    t.shape[0],
                    t.shape[1],
                )
            })
            .collect()
    }

    fn forward_all(&self, images: ArrayView4<f32>) -> Vec<Vec<f32>> {
        let n = images.dim().0;
        let x: Vec<f32> = images.iter().copied().collect();
        let mut acts = vec![x];
        let layers = self.layers();
        for (li, (wp, bp, out, inp)) in layers.iter().enumerate() {
            let w = &self.values[wp];
            let b = &self.values[bp];
            let a = acts.last().unwrap();
            let mut z = vec![0.0f32; n * out];
            for s in 0..n {
                for o in 0..*out {
                    let mut acc = b[o];
                    for i in 0..*inp {
                        acc += w[o * inp + i] * a[s * inp + i];
                    }
                    z[s * out + o] = if li + 1 < layers.len() {
                        acc.max(0.0)
                    } else {
                        acc
                    };
                }
            }
            acts.push(z);
        }
        acts
    }

    fn info(&self, path: &str) -> Result<&TensorInfo> {
        self.infos
            .iter()
            .find(|t| t.path == path)
            .ok_or_else(|| Error::UnknownTensor(path.into()))
    }

    fn check_shape(t: &TensorInfo, got: &[usize]) -> Result<()> {
        if got != t.shape.as_slice() {
            return Err(Error::Shape {
                name: t.path.clone(),
                expected: t.shape.clone(),
                got: got.to_vec(),
            });
        }
        Ok(())
    }

    fn check_images(&self, images: &ArrayView4<f32>) -> Result<()> {
        let s = images.shape();
        if s[0] == 0 || s[1..] != self.spec.input[..] {
            return Err(Error::Shape {
                name: "input images (N, C, H, W), N > 0".into(),
                expected: [0].into_iter().chain(self.spec.input).collect(),
                got: s.to_vec(),
            });
        }
        Ok(())
    }

    fn remask(&mut self, path: &str) {
        if let Some(m) = self.masks.get(path) {
            let mul = m.multiplier();
            self.values
                .get_mut(path)
                .unwrap()
                .iter_mut()
                .zip(mul)
                .for_each(|(v, k)| *v *= k);
        }
    }
}

impl Network for RefMlp {
    fn spec(&self) -> &ModelSpec {
        &self.spec
    }
    fn tensors(&self) -> &[TensorInfo] {
        &self.infos
    }
    fn read(&self, path: &str) -> Result<ArrayD<f32>> {
        let t = self
            .infos
            .iter()
            .find(|t| t.path == path)
            .ok_or_else(|| Error::UnknownTensor(path.into()))?;
        Ok(ArrayD::from_shape_vec(IxDyn(&t.shape), self.values[path].clone()).unwrap())
    }
    fn write(&mut self, path: &str, value: ArrayViewD<f32>) -> Result<()> {
        let t = self
            .infos
            .iter()
            .find(|t| t.path == path)
            .ok_or_else(|| Error::UnknownTensor(path.into()))?;
        if value.shape() != t.shape.as_slice() {
            return Err(Error::Shape {
                name: path.into(),
                expected: t.shape.clone(),
                got: value.shape().to_vec(),
            });
        }
        self.values
            .insert(path.into(), value.iter().copied().collect());
        self.remask(path);
        Ok(())
    }
    fn set_mask(&mut self, path: &str, mask: Option<&Mask>) -> Result<()> {
        let t = self.info(path)?;
        if t.role != TensorRole::Weight {
            return Err(Error::Invalid(format!("{path} is not a prunable weight")));
        }
        if let Some(m) = mask {
            Self::check_shape(t, m.shape())?;
        }
        match mask {
            Some(m) => {
                self.masks.insert(path.into(), m.clone());
                self.remask(path);
            }
            None => {
                self.masks.remove(path);
            }
        }
        Ok(())
    }
    fn mask(&self, path: &str) -> Option<Mask> {
        self.masks.get(path).cloned()
    }
    fn forward_backward(
        &mut self,
        images: ArrayView4<f32>,
        _train: bool,
        objective: &Objective,
    ) -> Result<(f64, Array2<f32>)> {
        self.check_images(&images)?;
        let n = images.dim().0;
        let acts = self.forward_all(images);
        let layers = self.layers();
        let classes = layers.last().unwrap().2;
        let logits = Array2::from_shape_vec((n, classes), acts.last().unwrap().clone()).unwrap();
        let (value, g) = objective(logits.view());
        if g.dim() != logits.dim() {
            return Err(Error::Shape {
                name: "gradient of the logits".into(),
                expected: vec![n, classes],
                got: g.shape().to_vec(),
            });
        }
        let mut g: Vec<f32> = g.iter().copied().collect();
        for (li, (wp, bp, out, inp)) in layers.iter().enumerate().rev() {
            let a = &acts[li];
            let mut gw = vec![0.0f32; out * inp];
            let mut gb = vec![0.0f32; *out];
            for s in 0..n {
                for o in 0..*out {
                    let d = g[s * out + o];
                    gb[o] += d;
                    for i in 0..*inp {
                        gw[o * inp + i] += d * a[s * inp + i];
                    }
                }
            }
            let w = &self.values[wp];
            let mut gin = vec![0.0f32; n * inp];
            for s in 0..n {
                for o in 0..*out {
                    let d = g[s * out + o];
                    for i in 0..*inp {
                        gin[s * inp + i] += d * w[o * inp + i];
                    }
                }
            }
            if li > 0 {
                for (gi, &ai) in gin.iter_mut().zip(a) {
                    if ai <= 0.0 {
                        *gi = 0.0;
                    }
                }
            }
            self.grads.insert(wp.clone(), gw);
            self.grads.insert(bp.clone(), gb);
            g = gin;
        }
        Ok((value, logits))
    }
    fn grad(&self, path: &str) -> Result<ArrayD<f32>> {
        let t = self
            .infos
            .iter()
            .find(|t| t.path == path)
            .ok_or_else(|| Error::UnknownTensor(path.into()))?;
        let g = self
            .grads
            .get(path)
            .ok_or_else(|| Error::Invalid(format!("no gradient for {path}")))?;
        Ok(ArrayD::from_shape_vec(IxDyn(&t.shape), g.clone()).unwrap())
    }
    fn sgd_step(&mut self, cfg: &SgdConfig, lr: f32) {
        for t in &self.infos {
            let Some(g) = self.grads.get(&t.path) else {
                continue;
            };
            let w = self.values.get_mut(&t.path).unwrap();
            let buf = self
                .momentum
                .entry(t.path.clone())
                .or_insert_with(|| vec![0.0; g.len()]);
            let mul = self.masks.get(&t.path).map(|m| m.multiplier());
            let decay = t.role == TensorRole::Weight || cfg.decay_bn_and_bias;
            sgd_update(cfg, lr, decay, w, g, buf, mul.as_deref());
        }
    }
    fn optimizer_state(&self) -> Vec<(String, ArrayD<f32>)> {
        self.momentum
            .iter()
            .map(|(p, v)| {
                let t = self.infos.iter().find(|t| &t.path == p).unwrap();
                (
                    p.clone(),
                    ArrayD::from_shape_vec(IxDyn(&t.shape), v.clone()).unwrap(),
                )
            })
            .collect()
    }
    fn set_optimizer_state(&mut self, state: &[(String, ArrayD<f32>)]) -> Result<()> {
        for (p, v) in state {
            Self::check_shape(self.info(p)?, v.shape())?;
        }
        self.momentum = state
            .iter()
            .map(|(p, v)| {
                let mut buf: Vec<f32> = v.iter().copied().collect();
                if let Some(m) = self.masks.get(p) {
                    buf.iter_mut()
                        .zip(m.multiplier())
                        .for_each(|(b, k)| *b *= k);
                }
                (p.clone(), buf)
            })
            .collect();
        Ok(())
    }
    fn reset_optimizer(&mut self) {
        self.momentum.clear();
    }
    fn predict(&mut self, images: ArrayView4<f32>) -> Result<Array2<f32>> {
        self.check_images(&images)?;
        let n = images.dim().0;
        let acts = self.forward_all(images);
        let classes = self.spec.classes;
        Ok(Array2::from_shape_vec((n, classes), acts.last().unwrap().clone()).unwrap())
    }
    fn forward_train(&mut self, images: ArrayView4<f32>) -> Result<()> {
        self.check_images(&images)
    }
    fn set_bn_momentum(&mut self, _momentum: Option<f32>) {}
}

/// A synthetic separable problem: `n` images of shape [1, 4, 4], 3 classes (class-dependent means + noise).
pub fn blobs(n: usize, seed: u64) -> (Array4<f32>, Vec<u32>) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut x = Array4::<f32>::zeros((n, 1, 4, 4));
    let mut y = Vec::with_capacity(n);
    for s in 0..n {
        let c = (s % 3) as u32;
        y.push(c);
        for p in 0..16 {
            let mean = if p % 3 == c as usize { 1.0 } else { -0.3 };
            x[[s, 0, p / 4, p % 4]] = mean + rng.gen_range(-0.5..0.5);
        }
    }
    (x, y)
}

/// What happened in one phase of a driven run.
#[derive(Debug, Clone)]
pub struct PhaseLog {
    pub phase: Phase,
    /// Optimiser state right after the phase started (after the method and the reset).
    pub opt_at_start: Vec<(String, ArrayD<f32>)>,
    /// All tensors right after the phase started.
    pub weights_at_start: BTreeMap<String, ArrayD<f32>>,
    pub masks_at_start: BTreeMap<String, Mask>,
    /// All tensors at the end of the phase.
    pub weights_at_end: BTreeMap<String, ArrayD<f32>>,
    pub final_loss: f64,
}

/// Batches of `batch` samples of (x, y) in a fixed order.
pub fn batches(x: &Array4<f32>, y: &[u32], batch: usize) -> Vec<(Array4<f32>, Vec<u32>)> {
    (0..x.dim().0 / batch)
        .map(|b| {
            let xb = x
                .slice(ndarray::s![b * batch..(b + 1) * batch, .., .., ..])
                .to_owned();
            (xb, y[b * batch..(b + 1) * batch].to_vec())
        })
        .collect()
}

/// Checks a network invariant after every step.
pub type StepCheck<'a> = dyn FnMut(&dyn Network, &str) + 'a;

/// Drives `method` over `net` exactly as the trainer does, calling `check` after every step and every phase
/// start, and returns a log per phase.
#[allow(clippy::too_many_arguments)]
pub fn drive(
    method: &mut dyn Method,
    net: &mut dyn Network,
    data: &[(Array4<f32>, Vec<u32>)],
    epochs: usize,
    schedule: &Schedule,
    sgd: &SgdConfig,
    seed: u64,
    check: &mut StepCheck,
) -> Vec<PhaseLog> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let sample_src = data[0].clone();
    let mut sampler = move |n: usize| {
        let n = n.min(sample_src.1.len());
        (
            sample_src.0.slice(ndarray::s![..n, .., .., ..]).to_owned(),
            sample_src.1[..n].to_vec(),
        )
    };
    let spe = data.len();
    let mut logs = Vec::new();
    macro_rules! ctx {
        () => {
            &mut MethodCtx {
                steps_per_epoch: spe,
                schedule,
                epochs,
                label_smoothing: 0.0,
                sample_batch: &mut sampler,
                rng: &mut rng,
            }
        };
    }
    while let Some(p) = method.next_phase(net, ctx!()).unwrap() {
        if p.reset_optimizer {
            net.reset_optimizer();
        }
        check(net, "phase start");
        let weights_at_start = net
            .tensors()
            .iter()
            .map(|t| (t.path.clone(), net.read(&t.path).unwrap()))
            .collect();
        let masks_at_start = net
            .tensors()
            .iter()
            .filter_map(|t| net.mask(&t.path).map(|m| (t.path.clone(), m)))
            .collect();
        let mut log = PhaseLog {
            phase: p.clone(),
            opt_at_start: net.optimizer_state(),
            weights_at_start,
            masks_at_start,
            weights_at_end: BTreeMap::new(),
            final_loss: f64::NAN,
        };
        let total = p.epochs * spe;
        for e in 0..p.epochs {
            let mut loss_sum = 0.0;
            for (b, (x, y)) in data.iter().enumerate() {
                let obj = |z: ndarray::ArrayView2<f32>| sculpt::nn::loss::cross_entropy(z, y, 0.0);
                let step = e * spe + b;
                net.set_gradient_mode(method.gradient_mode(step));
                let (loss, _) = net.forward_backward(x.view(), true, &obj).unwrap();
                loss_sum += loss;
                method.after_backward(net, step, ctx!()).unwrap();
                net.sgd_step(sgd, p.schedule.lr(step, total) as f32);
                method.after_step(net, step, ctx!()).unwrap();
                check(net, "step");
            }
            method.after_epoch(net, e, ctx!()).unwrap();
            check(net, "epoch end");
            log.final_loss = loss_sum / spe as f64;
        }
        log.weights_at_end = net
            .tensors()
            .iter()
            .map(|t| (t.path.clone(), net.read(&t.path).unwrap()))
            .collect();
        logs.push(log);
    }
    logs
}

/// Asserts that every masked weight of `net` is exactly zero.
pub fn assert_masked_zero(net: &dyn Network, when: &str) {
    for t in net.tensors() {
        if let Some(m) = net.mask(&t.path) {
            let w = net.read(&t.path).unwrap();
            for (v, k) in w.iter().zip(m.keep_flags()) {
                assert!(
                    k || *v == 0.0,
                    "{}: masked weight {v} is not zero ({when})",
                    t.path
                );
            }
        }
    }
}

/// A small MLP on the blobs: 16 → 24 → 12 → 3.
pub fn small_net(seed: u64) -> RefMlp {
    RefMlp::new([1, 4, 4], vec![24, 12], 3, seed)
}

pub fn sgd() -> SgdConfig {
    SgdConfig {
        momentum: 0.9,
        nesterov: false,
        weight_decay: 5e-4,
        decay_bn_and_bias: true,
    }
}
