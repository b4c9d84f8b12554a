//! What only the CPU engine offers beyond the `Network` contract (which `network_conformance` checks for every
//! engine): results across thread counts, `train_batch` and `from_tensors`.

use ndarray::Array4;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use sculpt::engine::cpu::CpuNetwork;
use sculpt::engine::Network;
use sculpt::nn::{Arch, ModelSpec, Shortcut};
use sculpt::optim::SgdConfig;

fn tiny_resnet() -> ModelSpec {
    ModelSpec {
        arch: Arch::ResNetCifar {
            depth: 8,
            shortcut: Shortcut::Identity,
        },
        input: [3, 8, 8],
        classes: 5,
    }
}

fn batch(spec: &ModelSpec, n: usize, seed: u64) -> (Array4<f32>, Vec<u32>) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let [c, h, w] = spec.input;
    let x = Array4::from_shape_fn((n, c, h, w), |_| rng.gen_range(-1.0f32..1.0));
    let y = (0..n)
        .map(|_| rng.gen_range(0..spec.classes as u32))
        .collect();
    (x, y)
}

fn train_few_steps(threads: usize) -> Vec<Vec<f32>> {
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .unwrap();
    pool.install(|| {
        let spec = tiny_resnet();
        let mut net = CpuNetwork::new(&spec, 5).unwrap();
        for step in 0..3 {
            let (x, y) = batch(&spec, 9, 10 + step);
            net.train_batch(x.view(), &y, 0.1).unwrap();
            net.sgd_step(&SgdConfig::default(), 0.05);
        }
        net.tensors()
            .iter()
            .map(|t| net.read(&t.path).unwrap().iter().copied().collect())
            .collect()
    })
}

#[test]
fn same_seed_and_threads_give_identical_weights() {
    let a = train_few_steps(2);
    let b = train_few_steps(2);
    assert_eq!(a, b);
    let fresh = CpuNetwork::new(&tiny_resnet(), 5).unwrap();
    let changed = fresh
        .tensors()
        .iter()
        .zip(&a)
        .filter(|(t, v)| {
            fresh
                .read(&t.path)
                .unwrap()
                .iter()
                .copied()
                .collect::<Vec<_>>()
                != **v
        })
        .count();
    assert!(changed > 10, "training changed only {changed} tensors");
    let one = train_few_steps(1);
    for (x, y) in a.iter().flatten().zip(one.iter().flatten()) {
        assert!(
            (x - y).abs() <= 1e-4 * (1.0 + y.abs()),
            "1 vs 2 threads differ beyond rounding: {x} {y}"
        );
    }
}

#[test]
fn train_batch_checks_labels_and_from_tensors_needs_every_tensor() {
    let spec = tiny_resnet();
    let mut net = CpuNetwork::new(&spec, 1).unwrap();
    let (x, y) = batch(&spec, 2, 0);
    assert!(
        net.train_batch(x.view(), &y[..1], 0.0).is_err(),
        "label count"
    );
    assert!(
        net.train_batch(x.view(), &[0, 5], 0.0).is_err(),
        "label out of range"
    );
    let stats = net.train_batch(x.view(), &y, 0.0).unwrap();
    assert_eq!(stats.count, 2);
    let (x1, y1) = batch(
        &ModelSpec {
            input: [3, 1, 1],
            ..spec.clone()
        },
        1,
        0,
    );
    let mut mlp = CpuNetwork::new(&ModelSpec::from_name("mlp", [3, 1, 1], 5).unwrap(), 0).unwrap();
    assert!(mlp.train_batch(x1.view(), &y1, 0.0).is_ok());
    let tensors: Vec<_> = net
        .tensors()
        .iter()
        .map(|t| (t.path.clone(), net.read(&t.path).unwrap()))
        .collect();
    let copy = CpuNetwork::from_tensors(&spec, &tensors).unwrap();
    for (p, v) in &tensors {
        assert_eq!(&copy.read(p).unwrap(), v);
    }
    assert!(
        CpuNetwork::from_tensors(&spec, &tensors[1..]).is_err(),
        "missing tensor"
    );
    let mut twice = tensors.clone();
    twice.push(tensors[0].clone());
    assert!(
        CpuNetwork::from_tensors(&spec, &twice).is_err(),
        "tensor given twice"
    );
}
