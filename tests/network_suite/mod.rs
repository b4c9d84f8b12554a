//! The `Network` conformance suite, written once and run for every engine (included with `#[path]`): each
//! function takes an [`Engine`] (a factory and the models it supports) and checks one contract of the trait, or
//! the engine's agreement with the CPU engine on the same weights, batch, masks and optimiser settings.
//!
//! Agreement tolerances are relative to the largest magnitude of the reference tensor (never below 1e-3 of
//! it): [`FORWARD_TOL`] for logits and the objective, [`GRAD_TOL`] for gradients, [`STEP_TOL`] for weights,
//! BN statistics and momentum after SGD steps. Each is about ten times the largest difference measured between
//! the CPU engine and libtorch on the CPU (f32 everywhere, different summation orders).
#![allow(dead_code)]

use ndarray::{Array2, Array4, ArrayD, ArrayView2, Axis, IxDyn};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use sculpt::engine::cpu::{CpuNetwork, PREDICT_CHUNK};
use sculpt::engine::Network;
use sculpt::error::Result;
use sculpt::nn::{loss::cross_entropy, Arch, LeNet5Variant, ModelSpec, Shortcut, TensorRole};
use sculpt::optim::SgdConfig;
use sculpt::sparsity::Mask;

/// Logits and objective values.
pub const FORWARD_TOL: f32 = 2e-5;
/// Gradients of every parameter, at masked positions too.
pub const GRAD_TOL: f32 = 2e-4;
/// Weights, BN running statistics and momentum buffers after a few SGD steps.
pub const STEP_TOL: f32 = 2e-4;

/// An engine under test.
pub struct Engine {
    pub name: &'static str,
    /// Builds the network of a spec from a seed.
    pub make: fn(&ModelSpec, u64) -> Result<Box<dyn Network>>,
    /// The models it implements.
    pub supports: fn(&ModelSpec) -> bool,
}

impl Engine {
    fn net(&self, spec: &ModelSpec, seed: u64) -> Box<dyn Network> {
        (self.make)(spec, seed).unwrap_or_else(|e| panic!("{}: {e}", self.name))
    }

    fn specs(&self) -> Vec<ModelSpec> {
        let specs: Vec<ModelSpec> = all_specs()
            .into_iter()
            .filter(|s| (self.supports)(s))
            .collect();
        assert!(
            !specs.is_empty(),
            "{} supports none of the suite's models",
            self.name
        );
        specs
    }

    fn bn_specs(&self) -> Vec<ModelSpec> {
        self.specs()
            .into_iter()
            .filter(|s| {
                s.graph()
                    .unwrap()
                    .tensors()
                    .iter()
                    .any(|t| t.role == TensorRole::RunningMean)
            })
            .collect()
    }
}

/// The CPU engine.
pub fn cpu_engine(spec: &ModelSpec, seed: u64) -> Result<Box<dyn Network>> {
    Ok(Box::new(CpuNetwork::new(spec, seed)?))
}

/// Small instances of every layer kind the specs build: linear + ReLU (MLP), conv with bias + max pool (LeNet-5),
/// conv + BN + option-A shortcuts (subsample and channel padding) + global average pool (ResNet-8), and 1x1
/// projection shortcuts (ResNet-8b).
pub fn all_specs() -> Vec<ModelSpec> {
    vec![
        ModelSpec {
            arch: Arch::Mlp { hidden: vec![7, 6] },
            input: [1, 4, 4],
            classes: 3,
        },
        ModelSpec {
            arch: Arch::LeNet5 {
                variant: LeNet5Variant::Classic,
            },
            input: [1, 20, 20],
            classes: 4,
        },
        tiny_resnet(Shortcut::Identity),
        tiny_resnet(Shortcut::Projection),
    ]
}

pub fn tiny_resnet(shortcut: Shortcut) -> ModelSpec {
    ModelSpec {
        arch: Arch::ResNetCifar { depth: 8, shortcut },
        input: [3, 8, 8],
        classes: 5,
    }
}

pub fn is_mlp(spec: &ModelSpec) -> bool {
    matches!(spec.arch, Arch::Mlp { .. })
}

pub fn batch(spec: &ModelSpec, n: usize, seed: u64) -> (Array4<f32>, Vec<u32>) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let [c, h, w] = spec.input;
    let x = Array4::from_shape_fn((n, c, h, w), |_| rng.gen_range(-1.0f32..1.0));
    let y = (0..n)
        .map(|_| rng.gen_range(0..spec.classes as u32))
        .collect();
    (x, y)
}

fn ce(labels: &[u32], smoothing: f32) -> impl Fn(ArrayView2<f32>) -> (f64, Array2<f32>) + '_ {
    move |l| cross_entropy(l, labels, smoothing)
}

pub fn random_mask(shape: &[usize], density: f64, seed: u64) -> Mask {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let keep: Vec<bool> = (0..shape.iter().product())
        .map(|_| rng.gen_bool(density))
        .collect();
    Mask::from_keep(shape, &keep)
}

fn mask_half(net: &mut dyn Network, seed: u64) {
    let weights: Vec<_> = net
        .tensors()
        .iter()
        .filter(|t| t.is_prunable())
        .cloned()
        .collect();
    for (i, t) in weights.iter().enumerate() {
        net.set_mask(&t.path, Some(&random_mask(&t.shape, 0.5, seed + i as u64)))
            .unwrap();
    }
}

/// Copies every tensor of `from` into `to` (same spec).
pub fn copy_weights(from: &dyn Network, to: &mut dyn Network) {
    for t in from.tensors() {
        to.write(&t.path, from.read(&t.path).unwrap().view())
            .unwrap();
    }
}

fn bits(net: &dyn Network) -> Vec<Vec<u32>> {
    net.tensors()
        .iter()
        .map(|t| {
            net.read(&t.path)
                .unwrap()
                .iter()
                .map(|v| v.to_bits())
                .collect()
        })
        .collect()
}

/// The largest difference between `got` and `want`, relative to the largest magnitude of `want` (at least
/// 1e-3).
pub fn rel_diff(got: &ArrayD<f32>, want: &ArrayD<f32>) -> f32 {
    assert_eq!(got.shape(), want.shape());
    let scale = want.iter().fold(1e-3f32, |m, v| m.max(v.abs()));
    got.iter()
        .zip(want)
        .fold(0.0f32, |m, (a, b)| m.max((a - b).abs()))
        / scale
}

fn assert_close(what: &str, got: &ArrayD<f32>, want: &ArrayD<f32>, tol: f32) {
    let d = rel_diff(got, want);
    assert!(
        d <= tol,
        "{what}: relative difference {d:e} exceeds {tol:e}"
    );
}

/// `tensors()` lists the spec's graph tensors in order, with their shapes, and `read` returns those shapes.
pub fn tensors_follow_the_spec(e: &Engine) {
    for spec in e.specs() {
        let net = e.net(&spec, 1);
        assert_eq!(net.spec(), &spec);
        assert_eq!(net.tensors(), spec.graph().unwrap().tensors().as_slice());
        for t in net.tensors() {
            assert_eq!(
                net.read(&t.path).unwrap().shape(),
                t.shape.as_slice(),
                "{}",
                t.path
            );
            assert!(
                net.mask(&t.path).is_none(),
                "{} is masked from the start",
                t.path
            );
        }
        assert!(net.optimizer_state().is_empty());
    }
}

/// `write` then `read` returns the values; wrong shapes, unknown paths, masks on non-prunable tensors,
/// gradients before a backward pass and of buffers are errors.
pub fn write_read_round_trip_and_errors(e: &Engine) {
    for spec in e.specs() {
        let mut net = e.net(&spec, 1);
        let infos = net.tensors().to_vec();
        for (i, t) in infos.iter().enumerate() {
            let len: usize = t.shape.iter().product();
            let data = (0..len)
                .map(|j| ((j * 7 + i) % 23) as f32 * 0.25 + 0.5)
                .collect();
            let v = ArrayD::from_shape_vec(IxDyn(&t.shape), data).unwrap();
            net.write(&t.path, v.view()).unwrap();
            assert_eq!(net.read(&t.path).unwrap(), v, "{}", t.path);
        }
        let w = &infos[0];
        let mut wrong = w.shape.clone();
        wrong[0] += 1;
        assert!(matches!(
            net.write(&w.path, ArrayD::zeros(IxDyn(&wrong)).view()),
            Err(sculpt::Error::Shape { .. })
        ));
        assert!(matches!(
            net.read("no.such.weight"),
            Err(sculpt::Error::UnknownTensor(_))
        ));
        assert!(net
            .write("no.such.weight", ArrayD::zeros(IxDyn(&[1])).view())
            .is_err());
        assert!(
            net.grad(&w.path).is_err(),
            "no gradient before a backward pass"
        );
        let mut bad_mask = w.shape.clone();
        bad_mask[0] += 1;
        assert!(net
            .set_mask(&w.path, Some(&Mask::dense(&bad_mask)))
            .is_err());
        for t in infos.iter().filter(|t| !t.is_prunable()) {
            assert!(
                net.set_mask(&t.path, Some(&Mask::dense(&t.shape))).is_err(),
                "{} is not prunable",
                t.path
            );
        }
        let (x, y) = batch(&spec, 3, 0);
        net.forward_backward(x.view(), true, &ce(&y, 0.0)).unwrap();
        assert!(net.grad(&w.path).is_ok());
        for t in infos.iter().filter(|t| !t.is_param()) {
            assert!(net.grad(&t.path).is_err(), "{} is a buffer", t.path);
        }
        assert!(net.grad("no.such.weight").is_err());
    }
}

/// A masked weight is exactly zero after `set_mask`, `write` and every `sgd_step`, its momentum is zero at
/// masked positions, its gradient is dense (non-zero at masked positions), and removing the mask lets it train.
pub fn masked_weights_stay_zero_with_dense_gradients(e: &Engine) {
    for spec in e.specs() {
        let mut net = e.net(&spec, 3);
        mask_half(net.as_mut(), 0);
        let weights: Vec<_> = net
            .tensors()
            .iter()
            .filter(|t| t.is_prunable())
            .cloned()
            .collect();
        let cfg = SgdConfig {
            weight_decay: 5e-4,
            ..SgdConfig::default()
        };
        let mut masked_grad = vec![0.0f32; weights.len()];
        for step in 0..3 {
            let (x, y) = batch(&spec, 6, step);
            net.forward_backward(x.view(), true, &ce(&y, 0.0)).unwrap();
            net.sgd_step(&cfg, 0.1);
            for (t, largest) in weights.iter().zip(&mut masked_grad) {
                let m = net.mask(&t.path).unwrap();
                let w = net.read(&t.path).unwrap();
                let g = net.grad(&t.path).unwrap();
                for ((k, wv), gv) in m.keep_flags().iter().zip(w.iter()).zip(g.iter()) {
                    if !k {
                        assert_eq!(*wv, 0.0, "{}: a masked weight is {wv}", t.path);
                        *largest = largest.max(gv.abs());
                    }
                }
            }
        }
        // Dead ReLU units zero some gradients of the small models in some steps, never all of them in all three.
        for (t, largest) in weights.iter().zip(&masked_grad) {
            assert!(
                *largest > 0.0,
                "{}: zero gradient at every masked position",
                t.path
            );
        }
        let state = net.optimizer_state();
        for t in &weights {
            let m = net.mask(&t.path).unwrap();
            let buf = &state.iter().find(|(p, _)| p == &t.path).unwrap().1;
            assert!(
                m.keep_flags()
                    .iter()
                    .zip(buf.iter())
                    .all(|(k, b)| *k || *b == 0.0),
                "{}: momentum at a masked position",
                t.path
            );
        }
        let t = &weights[weights.len() - 1];
        net.write(&t.path, ArrayD::from_elem(IxDyn(&t.shape), 1.0).view())
            .unwrap();
        let w = net.read(&t.path).unwrap();
        let m = net.mask(&t.path).unwrap();
        assert!(m.keep_flags().iter().zip(w.iter()).all(|(k, v)| if *k {
            *v == 1.0
        } else {
            *v == 0.0
        }));
        net.set_mask(&t.path, None).unwrap();
        assert!(net.mask(&t.path).is_none());
        let (x, y) = batch(&spec, 6, 99);
        net.forward_backward(x.view(), true, &ce(&y, 0.0)).unwrap();
        net.sgd_step(&cfg, 0.1);
        let moved = net
            .read(&t.path)
            .unwrap()
            .iter()
            .filter(|v| **v != 0.0 && **v != 1.0)
            .count();
        assert!(
            moved > m.len() / 2,
            "{}: only {moved} weights trained",
            t.path
        );
    }
}

fn train_three_steps(e: &Engine, spec: &ModelSpec) -> Vec<Vec<u32>> {
    let mut net = e.net(spec, 5);
    mask_half(net.as_mut(), 7);
    for step in 0..3 {
        let (x, y) = batch(spec, 6, 10 + step);
        net.forward_backward(x.view(), true, &ce(&y, 0.1)).unwrap();
        net.sgd_step(&SgdConfig::default(), 0.05);
    }
    bits(net.as_ref())
}

/// The same seed, inputs and thread count give bit-identical weights, and training changes them.
pub fn same_inputs_give_identical_bits(e: &Engine) {
    for spec in e.specs() {
        let a = train_three_steps(e, &spec);
        assert_eq!(a, train_three_steps(e, &spec), "{}", spec.name());
        assert_ne!(
            a,
            bits(e.net(&spec, 5).as_ref()),
            "training changed nothing"
        );
    }
}

/// The first step's momentum is the gradient plus weight decay (for conv and linear weights only when
/// `decay_bn_and_bias` is off); `set_optimizer_state` restores what `optimizer_state` returned; state for buffers
/// or of the wrong shape is an error; `reset_optimizer` drops it.
pub fn optimizer_state_round_trip_and_decay_roles(e: &Engine) {
    for spec in e.specs() {
        let mut net = e.net(&spec, 4);
        let (x, y) = batch(&spec, 4, 3);
        net.forward_backward(x.view(), true, &ce(&y, 0.0)).unwrap();
        let grads: Vec<_> = net
            .tensors()
            .iter()
            .filter(|t| t.is_param())
            .map(|t| {
                (
                    t.clone(),
                    net.grad(&t.path).unwrap(),
                    net.read(&t.path).unwrap(),
                )
            })
            .collect();
        let cfg = SgdConfig {
            momentum: 0.9,
            nesterov: false,
            weight_decay: 0.1,
            decay_bn_and_bias: false,
        };
        net.sgd_step(&cfg, 0.1);
        let state = net.optimizer_state();
        assert_eq!(state.len(), grads.len());
        for (t, g, w0) in &grads {
            let buf = &state.iter().find(|(p, _)| p == &t.path).unwrap().1;
            let wd = if t.role == TensorRole::Weight {
                0.1
            } else {
                0.0
            };
            for ((b, g), w) in buf.iter().zip(g.iter()).zip(w0.iter()) {
                assert!((b - (g + wd * w)).abs() < 1e-6, "{}", t.path);
            }
        }
        let mut other = e.net(&spec, 4);
        other.set_optimizer_state(&state).unwrap();
        assert_eq!(other.optimizer_state(), state);
        let (p, a) = &state[0];
        let mut wrong = a.shape().to_vec();
        wrong[0] += 1;
        assert!(other
            .set_optimizer_state(&[(p.clone(), ArrayD::zeros(IxDyn(&wrong)))])
            .is_err());
        if let Some(t) = net.tensors().iter().find(|t| !t.is_param()) {
            assert!(other
                .set_optimizer_state(&[(t.path.clone(), ArrayD::zeros(IxDyn(&t.shape)))])
                .is_err());
        }
        net.reset_optimizer();
        assert!(net.optimizer_state().is_empty());
    }
}

/// Batch statistics of `conv1`'s output, from the definition: per channel (mean, unbiased variance).
fn conv1_stats(net: &dyn Network, x: &Array4<f32>) -> Vec<(f64, f64)> {
    let w = net.read("conv1.weight").unwrap();
    let (n, c_in, h, wd) = x.dim();
    let channels = w.shape()[0];
    (0..channels)
        .map(|o| {
            let mut vals = Vec::new();
            for b in 0..n {
                for oy in 0..h {
                    for ox in 0..wd {
                        let mut acc = 0.0f64;
                        for c in 0..c_in {
                            for ky in 0..3 {
                                for kx in 0..3 {
                                    let (iy, ix) = (oy as isize + ky - 1, ox as isize + kx - 1);
                                    if iy >= 0 && ix >= 0 && iy < h as isize && ix < wd as isize {
                                        acc += (x[[b, c, iy as usize, ix as usize]]
                                            * w[[o, c, ky as usize, kx as usize]])
                                            as f64;
                                    }
                                }
                            }
                        }
                        vals.push(acc);
                    }
                }
            }
            let m = vals.iter().sum::<f64>() / vals.len() as f64;
            let var = vals.iter().map(|v| (v - m).powi(2)).sum::<f64>() / (vals.len() - 1) as f64;
            (m, var)
        })
        .collect()
}

/// Train-mode passes move the running statistics with momentum 0.1 towards the batch mean and unbiased
/// variance; with `set_bn_momentum(None)` they are the cumulative average; eval mode leaves them alone, does not
/// depend on the batch's composition, and eval-mode `forward_backward` gives the `predict` logits.
pub fn bn_statistics_follow_pytorch(e: &Engine) {
    for spec in e.bn_specs() {
        let mut net = e.net(&spec, 2);
        let (x, y) = batch(&spec, 4, 7);
        let stats = conv1_stats(net.as_ref(), &x);
        net.forward_train(x.view()).unwrap();
        let rm = net.read("bn1.running_mean").unwrap();
        let rv = net.read("bn1.running_var").unwrap();
        for (ch, &(m, v)) in stats.iter().enumerate() {
            assert!(
                (rm[ch] as f64 - 0.1 * m).abs() < 1e-4,
                "running mean {} vs {}",
                rm[ch],
                0.1 * m
            );
            assert!(
                (rv[ch] as f64 - (0.9 + 0.1 * v)).abs() < 1e-4 * (1.0 + v),
                "running variance {} vs {} (unbiased)",
                rv[ch],
                0.9 + 0.1 * v
            );
        }
        net.set_bn_momentum(None);
        net.forward_train(x.view()).unwrap();
        net.forward_train(x.view()).unwrap();
        let rm = net.read("bn1.running_mean").unwrap();
        let rv = net.read("bn1.running_var").unwrap();
        for (ch, &(m, v)) in stats.iter().enumerate() {
            assert!((rm[ch] as f64 - m).abs() < 1e-4 * (1.0 + m.abs()));
            assert!((rv[ch] as f64 - v).abs() < 1e-4 * (1.0 + v));
        }
        let last_bn = net
            .tensors()
            .iter()
            .rev()
            .find(|t| t.role == TensorRole::RunningVar)
            .unwrap()
            .path
            .clone();
        let before = net.read(&last_bn).unwrap();
        let all = net.predict(x.view()).unwrap();
        let one = net.predict(x.slice(ndarray::s![1..2, .., .., ..])).unwrap();
        assert_eq!(net.read(&last_bn).unwrap(), before);
        for (a, b) in all
            .index_axis(Axis(0), 1)
            .iter()
            .zip(one.index_axis(Axis(0), 0))
        {
            assert!((a - b).abs() < 1e-5);
        }
        let (_, logits) = net.forward_backward(x.view(), false, &ce(&y, 0.0)).unwrap();
        assert_eq!(
            net.read(&last_bn).unwrap(),
            before,
            "eval-mode backward moved BN statistics"
        );
        for (a, b) in logits.iter().zip(all.iter()) {
            assert!(
                (a - b).abs() <= 1e-6 * (1.0 + b.abs()),
                "eval forward_backward {a} vs predict {b}"
            );
        }
    }
}

/// `predict` of a batch larger than the CPU engine's evaluation chunk equals `predict` of its parts.
pub fn predict_is_independent_of_batch_splits(e: &Engine) {
    for spec in e.specs() {
        let mut net = e.net(&spec, 0);
        let n = PREDICT_CHUNK + 3;
        let (x, _) = batch(&spec, n, 1);
        let all = net.predict(x.view()).unwrap();
        assert_eq!(all.dim(), (n, spec.classes));
        let tail = net
            .predict(x.slice(ndarray::s![n - 3.., .., .., ..]))
            .unwrap();
        for (a, b) in all.slice(ndarray::s![n - 3.., ..]).iter().zip(tail.iter()) {
            assert!((a - b).abs() <= 1e-5 * (1.0 + b.abs()), "{a} vs {b}");
        }
    }
}

/// Images of the wrong shape or an empty batch, and an objective whose gradient has the wrong shape, are
/// errors, not panics.
pub fn bad_inputs_are_errors(e: &Engine) {
    for spec in e.specs() {
        let mut net = e.net(&spec, 0);
        let [c, h, w] = spec.input;
        let wrong = Array4::<f32>::zeros((2, c, h + 1, w));
        let empty = Array4::<f32>::zeros((0, c, h, w));
        let y = [0u32, 1];
        for x in [&wrong, &empty] {
            assert!(net.predict(x.view()).is_err(), "{}", spec.name());
            assert!(net.forward_train(x.view()).is_err());
            assert!(net
                .forward_backward(x.view(), true, &ce(&y[..x.dim().0], 0.0))
                .is_err());
        }
        let (x, _) = batch(&spec, 2, 0);
        let bad = |_: ArrayView2<f32>| (0.0, Array2::<f32>::zeros((1, 1)));
        assert!(
            net.forward_backward(x.view(), true, &bad).is_err(),
            "wrong objective gradient shape"
        );
    }
    for spec in e.bn_specs() {
        let tiny = ModelSpec {
            input: [3, 4, 4],
            ..spec
        };
        let mut net = e.net(&tiny, 0);
        let (x, y) = batch(&tiny, 1, 0);
        let err = net
            .forward_backward(x.view(), true, &ce(&y, 0.0))
            .unwrap_err()
            .to_string();
        assert!(err.contains("more than one value per channel"), "{err}");
        assert!(net.predict(x.view()).is_ok(), "eval mode has no such limit");
    }
}

/// On the CPU engine's weights, masks and batches, the engine gives the same loss, logits and gradients (of
/// every parameter, at masked positions too), in train and eval mode, and after SGD steps with momentum,
/// Nesterov, weight decay by role and label smoothing, the same weights, BN statistics and momentum buffers.
pub fn agrees_with_the_cpu_engine(e: &Engine) {
    let steps = [
        (SgdConfig::default(), 0.05f32, 0.0f32),
        (
            SgdConfig {
                momentum: 0.8,
                nesterov: true,
                weight_decay: 1e-3,
                decay_bn_and_bias: false,
            },
            0.1,
            0.1,
        ),
        (
            SgdConfig {
                momentum: 0.0,
                nesterov: false,
                weight_decay: 0.0,
                decay_bn_and_bias: true,
            },
            0.02,
            0.0,
        ),
    ];
    for spec in e.specs() {
        let name = spec.name();
        let mut cpu = CpuNetwork::new(&spec, 11).unwrap();
        let mut other = e.net(&spec, 12);
        copy_weights(&cpu, other.as_mut());
        mask_half(&mut cpu, 3);
        mask_half(other.as_mut(), 3);
        let (mut fwd, mut grad, mut step) = (0.0f32, 0.0f32, 0.0f32);
        for (i, (cfg, lr, smoothing)) in steps.iter().enumerate() {
            let (x, y) = batch(&spec, 8, 20 + i as u64);
            let train_mode = i != 2 || is_mlp(&spec);
            let (lc, zc) = cpu
                .forward_backward(x.view(), train_mode, &ce(&y, *smoothing))
                .unwrap();
            let (lo, zo) = other
                .forward_backward(x.view(), train_mode, &ce(&y, *smoothing))
                .unwrap();
            let loss_diff = ((lo - lc).abs() / lc.abs().max(1e-3)) as f32;
            fwd = fwd
                .max(loss_diff)
                .max(rel_diff(&zo.into_dyn(), &zc.into_dyn()));
            for t in cpu.tensors().iter().filter(|t| t.is_param()) {
                let g = rel_diff(&other.grad(&t.path).unwrap(), &cpu.grad(&t.path).unwrap());
                assert!(
                    g <= GRAD_TOL,
                    "{name} step {i}: gradient of {}: {g:e}",
                    t.path
                );
                grad = grad.max(g);
            }
            cpu.sgd_step(cfg, *lr);
            other.sgd_step(cfg, *lr);
            for t in cpu.tensors() {
                let w = rel_diff(&other.read(&t.path).unwrap(), &cpu.read(&t.path).unwrap());
                assert!(
                    w <= STEP_TOL,
                    "{name} step {i}: {} after SGD: {w:e}",
                    t.path
                );
                step = step.max(w);
                assert_eq!(other.mask(&t.path), cpu.mask(&t.path), "{}", t.path);
            }
            let by_path = |mut s: Vec<(String, ArrayD<f32>)>| {
                s.sort_by(|a, b| a.0.cmp(&b.0));
                s
            };
            let (sc, so) = (
                by_path(cpu.optimizer_state()),
                by_path(other.optimizer_state()),
            );
            assert_eq!(
                sc.iter().map(|s| &s.0).collect::<Vec<_>>(),
                so.iter().map(|s| &s.0).collect::<Vec<_>>(),
                "{name}: momentum buffers of different parameters"
            );
            for ((p, bc), (_, bo)) in sc.iter().zip(&so) {
                assert_close(&format!("{name} momentum of {p}"), bo, bc, STEP_TOL);
            }
        }
        let (x, _) = batch(&spec, 5, 40);
        let pc = cpu.predict(x.view()).unwrap().into_dyn();
        let po = other.predict(x.view()).unwrap().into_dyn();
        fwd = fwd.max(rel_diff(&po, &pc));
        assert!(
            fwd <= FORWARD_TOL,
            "{name}: logits or loss differ by {fwd:e}"
        );
        eprintln!(
            "{} vs cpu on {name}: forward {fwd:.1e}, gradients {grad:.1e}, after SGD {step:.1e}",
            e.name
        );
    }
}
