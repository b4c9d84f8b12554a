//! The CPU engine with masked layers on the sparse kernels: the same results as the dense kernels on masked
//! weights, gradients at masked positions only on request, RigL under that contract, and determinism.

#[path = "method_common.rs"]
mod common;

use common::{batches, blobs, drive, sgd};
use ndarray::{Array4, ArrayD, ArrayView2};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use sculpt::engine::cpu::cost::SparsePolicy;
use sculpt::engine::cpu::simd::KernelPath;
use sculpt::engine::cpu::CpuNetwork;
use sculpt::engine::{GradientMode, Network};
use sculpt::method::dst::{Dst, DstConfig, Growth};
use sculpt::method::{Method, MethodCtx, Phase};
use sculpt::nn::loss::cross_entropy;
use sculpt::nn::ModelSpec;
use sculpt::optim::schedule::Shape;
use sculpt::optim::Schedule;
use sculpt::sparsity::criteria::Criterion;
use sculpt::sparsity::{Allocation, Mask, Scope};

fn net_on(spec: &ModelSpec, seed: u64, path: KernelPath, policy: SparsePolicy) -> CpuNetwork {
    let mut net = CpuNetwork::new(spec, seed).unwrap();
    net.set_kernel_path(path).unwrap();
    net.graph_network().set_sparse_policy(policy);
    net
}

/// Random masks of density `density` on every prunable weight.
fn random_masks(net: &dyn Network, density: f64, seed: u64) -> Vec<(String, Mask)> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    net.tensors()
        .iter()
        .filter(|t| t.is_prunable())
        .map(|t| {
            let n: usize = t.shape.iter().product();
            let keep: Vec<bool> = (0..n).map(|_| rng.gen_bool(density)).collect();
            (t.path.clone(), Mask::from_keep(&t.shape, &keep))
        })
        .collect()
}

fn images(spec: &ModelSpec, n: usize, seed: u64) -> (Array4<f32>, Vec<u32>) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let [c, h, w] = spec.input;
    let x = Array4::from_shape_fn((n, c, h, w), |_| rng.gen_range(-1.0f32..1.0));
    let y = (0..n)
        .map(|_| rng.gen_range(0..spec.classes as u32))
        .collect();
    (x, y)
}

fn close(a: f32, b: f32, scale: f32) -> bool {
    (a - b).abs() <= 2e-4 * (scale + a.abs().max(b.abs()))
}

fn rms(v: &ArrayD<f32>) -> f32 {
    (v.iter().map(|x| x * x).sum::<f32>() / v.len().max(1) as f32).sqrt()
}

fn specs() -> Vec<ModelSpec> {
    vec![
        ModelSpec::from_name("resnet20", [3, 8, 8], 10).unwrap(),
        ModelSpec::from_name("resnet20b", [3, 8, 8], 10).unwrap(),
        ModelSpec::from_name("lenet5", [1, 28, 28], 10).unwrap(),
        ModelSpec::from_name("mlp", [1, 4, 4], 3).unwrap(),
    ]
}

/// Logits, the input gradients that flow through the network (seen in every upstream weight gradient) and the
/// weight gradients at kept positions agree with the dense kernels on the masked weights; masked positions get
/// zero in `Kept` mode and the dense gradient in `Dense` mode.
#[test]
fn sparse_kernels_match_dense_masked_network() {
    for spec in specs() {
        for path in KernelPath::available() {
            for (batch, density) in [(2, 0.05), (5, 0.3), (17, 0.6)] {
                let mut sparse = net_on(&spec, 3, path, SparsePolicy::Always);
                let mut dense = net_on(&spec, 3, path, SparsePolicy::Never);
                for (p, m) in random_masks(&sparse, density, 4) {
                    sparse.set_mask(&p, Some(&m)).unwrap();
                    dense.set_mask(&p, Some(&m)).unwrap();
                }
                assert!(!sparse.graph_network().sparse_layers().is_empty());
                assert!(dense.graph_network().sparse_layers().is_empty());
                let (x, y) = images(&spec, batch, 5);
                let obj = |z: ArrayView2<f32>| cross_entropy(z, &y, 0.0);
                let (_, want) = dense.forward_backward(x.view(), true, &obj).unwrap();
                for mode in [GradientMode::Kept, GradientMode::Dense] {
                    sparse.set_gradient_mode(mode);
                    let (_, got) = sparse.forward_backward(x.view(), true, &obj).unwrap();
                    let scale = want.iter().fold(0.0f32, |a, v| a.max(v.abs()));
                    for (a, b) in got.iter().zip(&want) {
                        assert!(close(*a, *b, scale), "{spec:?} {path:?}: logit {a} vs {b}");
                    }
                    for t in sparse.tensors().iter().filter(|t| t.is_param()) {
                        let g = sparse.grad(&t.path).unwrap();
                        let w = dense.grad(&t.path).unwrap();
                        let keep = sparse.mask(&t.path).map(|m| m.keep_flags());
                        let s = rms(&w);
                        for (q, (a, b)) in g.iter().zip(w.iter()).enumerate() {
                            let kept = keep.as_ref().is_none_or(|k| k[q]);
                            if !kept && mode == GradientMode::Kept {
                                assert_eq!(*a, 0.0, "{}[{q}] masked, computed", t.path);
                            } else {
                                assert!(
                                    close(*a, *b, s),
                                    "{spec:?} {path:?} {mode:?} b={batch}: {}[{q}] {a} vs {b}",
                                    t.path
                                );
                            }
                        }
                    }
                }
            }
        }
    }
}

/// Every `set_mask` rebuilds the sparse layout: after a prune and a regrowth the sparse network still equals the
/// dense masked one.
#[test]
fn sparse_layout_follows_every_set_mask() {
    let spec = ModelSpec::from_name("resnet20", [3, 8, 8], 10).unwrap();
    let path = KernelPath::best();
    let mut sparse = net_on(&spec, 8, path, SparsePolicy::Always);
    let mut dense = net_on(&spec, 8, path, SparsePolicy::Never);
    let (x, y) = images(&spec, 4, 9);
    let obj = |z: ArrayView2<f32>| cross_entropy(z, &y, 0.0);
    for round in 0..3 {
        for (p, m) in random_masks(&sparse, 0.1 + 0.2 * round as f64, 10 + round) {
            sparse.set_mask(&p, Some(&m)).unwrap();
            dense.set_mask(&p, Some(&m)).unwrap();
        }
        let (_, want) = dense.forward_backward(x.view(), true, &obj).unwrap();
        let (_, got) = sparse.forward_backward(x.view(), true, &obj).unwrap();
        let scale = want.iter().fold(0.0f32, |a, v| a.max(v.abs()));
        for (a, b) in got.iter().zip(&want) {
            assert!(close(*a, *b, scale), "round {round}: logit {a} vs {b}");
        }
        sparse.sgd_step(&sgd(), 0.05);
        dense.sgd_step(&sgd(), 0.05);
        for t in sparse.tensors().iter().filter(|t| t.is_prunable()) {
            let m = sparse.mask(&t.path).unwrap().keep_flags();
            let w = sparse.read(&t.path).unwrap();
            assert!(w.iter().zip(&m).all(|(v, &k)| k || *v == 0.0));
        }
    }
}

/// The cost model keeps dense layers dense and runs very sparse ones sparse.
#[test]
fn cost_model_picks_per_layer() {
    let spec = ModelSpec::from_name("resnet20", [3, 32, 32], 10).unwrap();
    let mut net = net_on(&spec, 1, KernelPath::best(), SparsePolicy::Auto);
    for (p, m) in random_masks(&net, 1.0, 2) {
        net.set_mask(&p, Some(&m)).unwrap();
    }
    assert!(
        net.graph_network().sparse_layers().is_empty(),
        "dense masks run dense"
    );
    for (p, m) in random_masks(&net, 0.02, 3) {
        net.set_mask(&p, Some(&m)).unwrap();
    }
    let n = net.graph_network().sparse_layers().len();
    assert!(n >= 18, "98% sparse: {n} layers run sparse");
    for t in net.tensors().to_vec().iter().filter(|t| t.is_prunable()) {
        net.set_mask(&t.path, None).unwrap();
    }
    assert!(
        net.graph_network().sparse_layers().is_empty(),
        "no masks, no sparse layers"
    );
}

fn schedule() -> Schedule {
    Schedule {
        lr: 0.05,
        shape: Shape::Cosine { min_lr: 0.0 },
        warmup: 0.1,
    }
}

fn rigl() -> DstConfig {
    DstConfig {
        sparsity: 0.8,
        criterion: Criterion::Magnitude,
        growth: Growth::Gradient,
        gamma: 1.0,
        prune_fraction: 0.3,
        min_prune_fraction: 0.01,
        update_period: 3,
        allocation: Allocation::Erk,
        scope: Scope::default(),
        opt_order: None,
    }
}

/// A method that asks for dense gradients at every step.
struct DenseEveryStep(Dst);

impl Method for DenseEveryStep {
    fn next_phase(
        &mut self,
        net: &mut dyn Network,
        ctx: &mut MethodCtx,
    ) -> sculpt::error::Result<Option<Phase>> {
        self.0.next_phase(net, ctx)
    }
    fn gradient_mode(&self, _step: usize) -> GradientMode {
        GradientMode::Dense
    }
    fn after_backward(
        &mut self,
        net: &mut dyn Network,
        step: usize,
        ctx: &mut MethodCtx,
    ) -> sculpt::error::Result<()> {
        self.0.after_backward(net, step, ctx)
    }
    fn after_step(
        &mut self,
        net: &mut dyn Network,
        step: usize,
        ctx: &mut MethodCtx,
    ) -> sculpt::error::Result<()> {
        self.0.after_step(net, step, ctx)
    }
    fn state(&self) -> serde_json::Value {
        self.0.state()
    }
    fn restore(
        &mut self,
        state: &serde_json::Value,
        tensors: Vec<(String, ArrayD<f32>)>,
    ) -> sculpt::error::Result<()> {
        self.0.restore(state, tensors)
    }
}

/// RigL asks for dense gradients only on its update steps, and the rest run on the sparse kernels; it grows
/// exactly the weights it grows with dense gradients at every step, and ends bit-identical.
#[test]
fn rigl_with_dense_gradients_only_at_updates_grows_the_same() {
    let spec = ModelSpec::from_name("mlp", [1, 4, 4], 3).unwrap();
    let (x, y) = blobs(96, 7);
    let data = batches(&x, &y, 16);
    let dst = Dst::new(rigl());
    for step in 0..6 {
        let want = if step % 3 == 2 {
            GradientMode::Dense
        } else {
            GradientMode::Kept
        };
        assert_eq!(dst.gradient_mode(step), want, "step {step}");
    }
    let run = |method: &mut dyn Method| {
        let mut net = net_on(&spec, 5, KernelPath::best(), SparsePolicy::Always);
        let mut masks = Vec::new();
        let mut kept_only_steps = 0;
        drive(
            method,
            &mut net,
            &data,
            2,
            &schedule(),
            &sgd(),
            11,
            &mut |n, _| {
                let layers: Vec<String> = n
                    .tensors()
                    .iter()
                    .filter(|t| t.is_prunable())
                    .map(|t| t.path.clone())
                    .collect();
                masks.push(layers.iter().map(|p| n.mask(p)).collect::<Vec<_>>());
                let masked_grad_is_zero = layers.iter().all(|p| {
                    let keep = n.mask(p).unwrap().keep_flags();
                    n.grad(p)
                        .is_ok_and(|g| g.iter().zip(&keep).all(|(v, &k)| k || *v == 0.0))
                });
                kept_only_steps += masked_grad_is_zero as usize;
            },
        );
        let weights: Vec<ArrayD<f32>> = net
            .tensors()
            .iter()
            .map(|t| net.read(&t.path).unwrap())
            .collect();
        (masks, weights, kept_only_steps)
    };
    let (masks_a, weights_a, kept_a) = run(&mut Dst::new(rigl()));
    let (masks_b, weights_b, kept_b) = run(&mut DenseEveryStep(Dst::new(rigl())));
    assert_eq!(masks_a.len(), masks_b.len());
    let changes = masks_a.windows(2).filter(|w| w[0] != w[1]).count();
    assert!(changes >= 3, "RigL changed the masks {changes} times");
    assert_eq!(masks_a, masks_b, "the same connections are grown");
    for (a, b) in weights_a.iter().zip(&weights_b) {
        assert!(a.iter().zip(b).all(|(p, q)| p.to_bits() == q.to_bits()));
    }
    assert!(
        kept_a > kept_b,
        "kept-only gradients: {kept_a} vs {kept_b} checks"
    );
}

/// The same seed, thread count and kernel path give bit-identical weights after training steps, with sparse and
/// with dense kernels.
#[test]
fn same_seed_threads_and_path_are_bit_identical() {
    let spec = ModelSpec::from_name("resnet20", [3, 8, 8], 10).unwrap();
    for path in KernelPath::available() {
        for policy in [SparsePolicy::Always, SparsePolicy::Never] {
            let train = || {
                let pool = rayon::ThreadPoolBuilder::new()
                    .num_threads(2)
                    .build()
                    .unwrap();
                pool.install(|| {
                    let mut net = net_on(&spec, 21, path, policy);
                    for (p, m) in random_masks(&net, 0.1, 22) {
                        net.set_mask(&p, Some(&m)).unwrap();
                    }
                    net.set_gradient_mode(GradientMode::Kept);
                    for s in 0..3 {
                        let (x, y) = images(&spec, 9, 30 + s);
                        let obj = |z: ArrayView2<f32>| cross_entropy(z, &y, 0.0);
                        net.forward_backward(x.view(), true, &obj).unwrap();
                        net.sgd_step(&sgd(), 0.05);
                    }
                    net.tensors()
                        .iter()
                        .map(|t| net.read(&t.path).unwrap())
                        .collect::<Vec<_>>()
                })
            };
            let (a, b) = (train(), train());
            for (p, q) in a.iter().zip(&b) {
                assert!(
                    p.iter().zip(q).all(|(u, v)| u.to_bits() == v.to_bits()),
                    "{path:?} {policy:?}: runs differ"
                );
            }
        }
    }
}

/// The SGD step updates every entry on its own, so it gives the same bits on any number of threads, for masked
/// and unmasked weights, with and without Nesterov.
#[test]
fn sgd_step_is_bit_identical_on_any_thread_count() {
    let spec = ModelSpec::from_name("mlp", [1, 28, 28], 10).unwrap();
    let (x, y) = images(&spec, 6, 41);
    let step = |threads: usize, nesterov: bool| {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap();
        let grad_pool = rayon::ThreadPoolBuilder::new()
            .num_threads(1)
            .build()
            .unwrap();
        let mut net = net_on(&spec, 5, KernelPath::best(), SparsePolicy::Never);
        let masks = random_masks(&net, 0.2, 6);
        net.set_mask(&masks[0].0, Some(&masks[0].1)).unwrap();
        let cfg = sculpt::optim::SgdConfig { nesterov, ..sgd() };
        for _ in 0..2 {
            let obj = |z: ArrayView2<f32>| cross_entropy(z, &y, 0.0);
            grad_pool.install(|| net.forward_backward(x.view(), true, &obj).unwrap());
            pool.install(|| net.sgd_step(&cfg, 0.05));
        }
        let mut state: Vec<_> = net
            .tensors()
            .iter()
            .map(|t| net.read(&t.path).unwrap())
            .collect();
        state.extend(net.optimizer_state().into_iter().map(|(_, b)| b));
        state
    };
    for nesterov in [false, true] {
        let one = step(1, nesterov);
        for threads in [2, 3] {
            let many = step(threads, nesterov);
            assert_eq!(one.len(), many.len());
            for (p, q) in one.iter().zip(&many) {
                assert!(
                    p.iter().zip(q).all(|(u, v)| u.to_bits() == v.to_bits()),
                    "{threads} threads, nesterov {nesterov}: the step differs"
                );
            }
        }
    }
}
