//! Data-parallel training through the `Collective` seam, with ranks as threads of this process
//! (`ThreadGroup`, the same rank-order sums as the MPI world): synchronised batch norm makes the gradients of
//! two half batches those of the whole batch; ranks take bit-identical steps, only rank 0 writes, a run
//! resumes bit-identically, and the result tracks one process within rounding.

use std::path::Path;
use std::sync::Arc;

use ndarray::{Array4, ArrayD};
use rand::{Rng, SeedableRng};
use sculpt::distributed::{Collective, Single, ThreadGroup};
use sculpt::engine::cpu::CpuNetwork;
use sculpt::engine::{Device, Network, StatsReducer};
use sculpt::nn::loss::{cross_entropy, cross_entropy_part};
use sculpt::nn::{ModelSpec, TensorRole};
use sculpt::train::{load_checkpoint, Override, Recipe, Run};

/// Runs `f` once per rank of a new group of `size`, each rank on its own thread with a rayon pool of
/// `threads`; returns the results in rank order.
fn on_ranks<T: Send>(
    size: usize,
    threads: usize,
    f: impl Fn(Arc<dyn Collective>) -> T + Sync,
) -> Vec<T> {
    let f = &f;
    std::thread::scope(|s| {
        let handles: Vec<_> = ThreadGroup::new(size)
            .into_iter()
            .map(|g| {
                s.spawn(move || {
                    let pool = rayon::ThreadPoolBuilder::new()
                        .num_threads(threads)
                        .build()
                        .unwrap();
                    pool.install(|| f(Arc::new(g)))
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    })
}

fn in_pool<T: Send>(threads: usize, f: impl FnOnce() -> T + Send) -> T {
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .unwrap()
        .install(f)
}

fn batch(n: usize, seed: u64) -> (Array4<f32>, Vec<u32>) {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let x = Array4::from_shape_fn((n, 3, 32, 32), |_| rng.gen_range(-1.0f32..1.0));
    let y = (0..n).map(|_| rng.gen_range(0..10u32)).collect();
    (x, y)
}

fn reducer(comm: &Arc<dyn Collective>) -> StatsReducer {
    let c = comm.clone();
    Arc::new(move |b: &mut [f64]| c.sum_f64(b))
}

/// Parameter gradients and BN buffers after one train-mode step of ResNet-20 on `x`, computed by `size`
/// ranks with synchronised batch norm (each the contiguous share of the batch), gradients summed over ranks.
fn resnet_step(size: usize, x: &Array4<f32>, y: &[u32]) -> Vec<Vec<(String, ArrayD<f32>)>> {
    let spec = ModelSpec::from_name("resnet20", [3, 32, 32], 10).unwrap();
    let n = x.dim().0;
    on_ranks(size, 1, |comm| {
        let mut net = CpuNetwork::new(&spec, 5).unwrap();
        let part = sculpt::distributed::shard(n, comm.rank(), comm.size());
        let xs = x.slice(ndarray::s![part.clone(), .., .., ..]);
        let ys = &y[part];
        net.set_batch_stats_reducer(Some(reducer(&comm))).unwrap();
        let obj = |l: ndarray::ArrayView2<f32>| cross_entropy_part(l, ys, 0.0, n);
        net.forward_backward(xs, true, &obj).unwrap();
        net.visit_gradients(&mut |i, g| {
            if !matches!(i.role, TensorRole::BnWeight | TensorRole::BnBias) {
                comm.sum_f32(g);
            }
        })
        .unwrap();
        let mut out = Vec::new();
        for t in net.tensors().to_vec() {
            let v = if t.is_param() {
                net.grad(&t.path).unwrap()
            } else {
                net.read(&t.path).unwrap()
            };
            out.push((t.path.clone(), v));
        }
        out
    })
}

fn max_rel_diff(a: &ArrayD<f32>, b: &ArrayD<f32>) -> f64 {
    let scale = a
        .iter()
        .fold(0.0f64, |m, v| m.max(v.abs() as f64))
        .max(1e-12);
    a.iter()
        .zip(b.iter())
        .map(|(x, y)| (*x as f64 - *y as f64).abs())
        .fold(0.0, f64::max)
        / scale
}

#[test]
fn synchronised_batch_norm_makes_two_halves_one_batch() {
    let (x, y) = batch(8, 1);
    let whole = &resnet_step(1, &x, &y)[0];
    let halves = resnet_step(2, &x, &y);
    assert_eq!(
        halves[0], halves[1],
        "the ranks' gradients and BN statistics must be bit-identical"
    );
    for ((path, a), (_, b)) in whole.iter().zip(&halves[0]) {
        let d = max_rel_diff(a, b);
        // The same sums taken in another order: f32 rounding of a 20-layer backward pass (about 1e-6 seen).
        assert!(d < 1e-4, "{path}: relative difference {d}");
    }
    // Local statistics (no reducer) on half the batch differ from the whole batch's: the test can fail.
    let spec = ModelSpec::from_name("resnet20", [3, 32, 32], 10).unwrap();
    let mut local = CpuNetwork::new(&spec, 5).unwrap();
    let half = x.slice(ndarray::s![0..4, .., .., ..]);
    let obj = |l: ndarray::ArrayView2<f32>| cross_entropy(l, &y[..4], 0.0);
    local.forward_backward(half, true, &obj).unwrap();
    let rm = whole
        .iter()
        .find(|(p, _)| p.ends_with("bn1.running_mean"))
        .unwrap();
    assert!(max_rel_diff(&rm.1, &local.read(&rm.0).unwrap()) > 1e-3);
}

#[test]
fn one_rank_with_a_reducer_is_bit_identical_to_none() {
    let spec = ModelSpec::from_name("resnet20", [3, 32, 32], 10).unwrap();
    let (x, y) = batch(4, 2);
    let obj = |l: ndarray::ArrayView2<f32>| cross_entropy(l, &y, 0.0);
    let run = |with: bool| {
        let mut net = CpuNetwork::new(&spec, 3).unwrap();
        if with {
            let one: Arc<dyn Collective> = Arc::new(Single);
            net.set_batch_stats_reducer(Some(reducer(&one))).unwrap();
        }
        net.forward_backward(x.view(), true, &obj).unwrap();
        net.tensors()
            .to_vec()
            .iter()
            .filter(|t| t.is_param())
            .map(|t| net.grad(&t.path).unwrap())
            .collect::<Vec<_>>()
    };
    assert_eq!(run(true), run(false));
}

/// A short SCULPT run of LeNet-5 on the embedded digits: one cycle, the prune, one more cycle.
fn sculpt_recipe(extra: &[&str]) -> Recipe {
    let file = Path::new(env!("CARGO_MANIFEST_DIR")).join("recipes/mnist/sculpt.toml");
    let mut o: Vec<Override> = [
        "model.name=lenet5",
        "train.epochs=1",
        "train.batch_size=64",
        "train.seed=3",
        "data.train_limit=512",
        "data.test_limit=200",
        "method.cycles=1",
    ]
    .iter()
    .map(|s| Override::parse(s).unwrap())
    .collect();
    o.extend(extra.iter().map(|s| Override::parse(s).unwrap()));
    Recipe::load(Some(&file), &o).unwrap()
}

fn weights(net: &dyn Network) -> Vec<(String, ArrayD<f32>)> {
    net.tensors()
        .iter()
        .map(|t| (t.path.clone(), net.read(&t.path).unwrap()))
        .collect()
}

/// Trains `recipe` in `out` on `size` ranks of one thread each; returns every rank's final weights.
fn train_on_ranks(recipe: &Recipe, out: &Path, size: usize) -> Vec<Vec<(String, ArrayD<f32>)>> {
    on_ranks(size, 1, |comm| {
        let dir = if comm.rank() == 0 {
            out.to_path_buf()
        } else {
            out.with_extension(format!("rank{}", comm.rank()))
        };
        let mut run = Run::start_in(recipe, Device::Cpu, &dir, recipe.method.build(), comm)
            .unwrap()
            .quiet(true);
        while run.run_epoch().unwrap().is_some() {}
        let w = weights(run.network());
        assert!(run.finish().unwrap().completed);
        w
    })
}

#[test]
fn ranks_step_identically_only_rank_0_writes_and_the_result_tracks_one_process() {
    let dir = tempfile::tempdir().unwrap();
    let recipe = sculpt_recipe(&["data.augment={ crop_padding = 2, hflip = false }"]);
    let two = dir.path().join("two");
    let ranks = train_on_ranks(&recipe, &two, 2);
    assert_eq!(ranks[0], ranks[1], "the replicas drifted apart");
    assert!(!two.with_extension("rank1").exists(), "rank 1 wrote files");
    let two_final = load_checkpoint(&two.join("final.safetensors")).unwrap();
    assert_eq!(
        two_final.tensors, ranks[0],
        "rank 0's checkpoint holds its weights"
    );
    let metrics = std::fs::read_to_string(two.join("metrics.jsonl")).unwrap();
    assert!(metrics.contains("\"ranks\":2"), "{metrics}");

    let one = dir.path().join("one");
    in_pool(2, || {
        Run::start(&recipe, Device::Cpu, &one)
            .unwrap()
            .quiet(true)
            .run_to_end()
            .unwrap()
    });
    let one_final = load_checkpoint(&one.join("final.safetensors")).unwrap();
    compare_with_one_process(&one_final.tensors, &two_final.tensors);
}

/// The tolerance between a data-parallel run and one process: the same arithmetic with the batch sums taken
/// in another association (per-rank partial sums, then the rank sum), so rounding differs from the first
/// step on and grows through training (about 3e-7 of the largest weight after these 16 steps; the bound is
/// 1e-4); and a weight within rounding of the global magnitude threshold could fall on the other side of the
/// prune (none does here; at most 1 in 1000 is allowed).
fn compare_with_one_process(one: &[(String, ArrayD<f32>)], two: &[(String, ArrayD<f32>)]) {
    let (mut flipped, mut total) = (0usize, 0usize);
    for ((path, a), (p2, b)) in one.iter().zip(two) {
        assert_eq!(path, p2);
        let scale = a.iter().fold(0.0f32, |m, v| m.max(v.abs())).max(1e-6);
        let mut worst = 0.0f32;
        for (x, y) in a.iter().zip(b.iter()) {
            total += 1;
            if (*x == 0.0) != (*y == 0.0) {
                flipped += 1;
            } else {
                worst = worst.max((x - y).abs());
            }
        }
        eprintln!("{path}: max |diff| / max |w| = {:.2e}", worst / scale);
        assert!(worst / scale < 1e-4, "{path}: {worst} of {scale}");
    }
    eprintln!("pruning decisions that differ: {flipped} of {total}");
    assert!(
        flipped * 1000 <= total,
        "{flipped} of {total} weights pruned differently"
    );
}

#[test]
fn a_two_rank_run_resumes_bit_identically() {
    let dir = tempfile::tempdir().unwrap();
    let recipe = sculpt_recipe(&[]);
    let whole = dir.path().join("whole");
    let reference = train_on_ranks(&recipe, &whole, 2);

    let part = dir.path().join("part");
    on_ranks(2, 1, |comm| {
        let dir = if comm.rank() == 0 {
            part.clone()
        } else {
            part.with_extension("rank1")
        };
        let mut run = Run::start_in(&recipe, Device::Cpu, &dir, recipe.method.build(), comm)
            .unwrap()
            .quiet(true);
        run.run_epoch().unwrap();
    });
    let resumed = on_ranks(2, 1, |comm| {
        let mut run = Run::resume_in(&part, Device::Cpu, recipe.method.build(), comm)
            .unwrap()
            .quiet(true);
        while run.run_epoch().unwrap().is_some() {}
        let w = weights(run.network());
        run.finish().unwrap();
        w
    });
    assert_eq!(resumed[0], resumed[1]);
    assert_eq!(resumed[0], reference[0], "resume changed the result");
    let a = load_checkpoint(&whole.join("final.safetensors")).unwrap();
    let b = load_checkpoint(&part.join("final.safetensors")).unwrap();
    assert_eq!(a.tensors, b.tensors);
}

#[test]
fn a_batch_smaller_than_the_ranks_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let recipe = sculpt_recipe(&["train.batch_size=1"]);
    let errs = on_ranks(2, 1, |comm| {
        Run::start_in(
            &recipe,
            Device::Cpu,
            dir.path(),
            recipe.method.build(),
            comm,
        )
        .err()
        .map(|e| e.to_string())
    });
    for e in errs {
        assert!(e.unwrap().contains("smaller than the 2 ranks"));
    }
}

/// Trains `recipe` in `out` on `size` ranks of one thread each with gradient buckets of `bytes`; returns
/// rank 0's final weights.
fn train_with_buckets(recipe: &Recipe, out: &Path, bytes: usize) -> Vec<(String, ArrayD<f32>)> {
    on_ranks(2, 1, |comm| {
        let dir = match comm.rank() {
            0 => out.to_path_buf(),
            r => out.with_extension(format!("rank{r}")),
        };
        let run = Run::start_in(recipe, Device::Cpu, &dir, recipe.method.build(), comm)
            .unwrap()
            .quiet(true)
            .gradient_buckets(bytes);
        let mut run = run;
        while run.run_epoch().unwrap().is_some() {}
        let w = weights(run.network());
        run.finish().unwrap();
        w
    })
    .swap_remove(0)
}

#[test]
fn bucketed_gradient_sums_are_bit_identical_to_one_blocking_sum() {
    let dir = tempfile::tempdir().unwrap();
    let recipe = sculpt_recipe(&[]);
    let blocking = train_with_buckets(&recipe, &dir.path().join("blocking"), 0);
    for bytes in [4, 16 * 1024, 1 << 30] {
        let got = train_with_buckets(&recipe, &dir.path().join(format!("b{bytes}")), bytes);
        assert!(got == blocking, "buckets of {bytes} B changed the result");
    }
}

#[test]
fn the_streamed_gradients_are_those_of_the_backward_pass_once_each() {
    let spec = ModelSpec::from_name("resnet20", [3, 32, 32], 10).unwrap();
    let (x, y) = batch(4, 7);
    let obj = |l: ndarray::ArrayView2<f32>| cross_entropy(l, &y, 0.0);
    let mut net = CpuNetwork::new(&spec, 3).unwrap();
    let mut seen: Vec<(String, Vec<f32>)> = Vec::new();
    net.forward_backward_streaming(x.view(), true, &obj, &mut |i, g| {
        seen.push((i.path.clone(), g.to_vec()))
    })
    .unwrap();
    let params: Vec<String> = net
        .tensors()
        .iter()
        .filter(|t| t.is_param())
        .map(|t| t.path.clone())
        .collect();
    let mut paths: Vec<String> = seen.iter().map(|(p, _)| p.clone()).collect();
    let layer = |p: &str| p.rsplit_once('.').map(|(l, _)| l.to_string());
    assert_eq!(
        layer(&paths[0]),
        layer(params.last().unwrap()),
        "the output layer comes first"
    );
    paths.sort();
    let mut want = params.clone();
    want.sort();
    assert_eq!(paths, want, "every parameter exactly once");
    for (p, g) in &seen {
        assert_eq!(
            net.grad(p).unwrap().as_slice().unwrap(),
            g.as_slice(),
            "{p}"
        );
    }
    let mut plain = CpuNetwork::new(&spec, 3).unwrap();
    plain.forward_backward(x.view(), true, &obj).unwrap();
    for p in &params {
        assert_eq!(plain.grad(p).unwrap(), net.grad(p).unwrap(), "{p}");
    }
}

/// Two ranks of one thread against one process of two threads on the same batch of 8 (the chunks of 2
/// samples coincide): the per-chunk partial sums are the same, but one process adds its four chunks in a
/// row, `((c0 + c1) + c2) + c3`, while the ranks add `(c0 + c1) + (c2 + c3)` (convolution weight and bias
/// gradients, batch-norm sums), and a linear layer's weight gradient is one GEMM over all 8 samples against
/// two GEMMs over 4 added; so the gradients agree to f32 rounding, not bit for bit.
#[test]
fn two_ranks_of_one_thread_match_one_process_of_two_threads_to_rounding() {
    let (x, y) = batch(8, 11);
    let spec = ModelSpec::from_name("resnet20", [3, 32, 32], 10).unwrap();
    let one = in_pool(2, || {
        let mut net = CpuNetwork::new(&spec, 5).unwrap();
        let obj = |l: ndarray::ArrayView2<f32>| cross_entropy(l, &y, 0.0);
        net.forward_backward(x.view(), true, &obj).unwrap();
        net.tensors()
            .to_vec()
            .iter()
            .filter(|t| t.is_param())
            .map(|t| (t.path.clone(), net.grad(&t.path).unwrap()))
            .collect::<Vec<_>>()
    });
    let ranks = resnet_step(2, &x, &y);
    let mut worst = 0.0f64;
    for (path, a) in &one {
        let b = &ranks[0].iter().find(|(p, _)| p == path).unwrap().1;
        worst = worst.max(max_rel_diff(a, b));
    }
    eprintln!("largest relative gradient difference: {worst:.2e}");
    assert!(worst < 1e-4, "{worst}");
}
