//! The CPU engine against the `Network` contract: masks, determinism, tensor I/O, BN statistics, optimiser
//! state and bad input.

use ndarray::{Array4, ArrayD, ArrayView2, Axis, IxDyn};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use sculpt::engine::cpu::CpuNetwork;
use sculpt::engine::Network;
use sculpt::nn::{loss::cross_entropy, Arch, ModelSpec, Shortcut, TensorRole};
use sculpt::optim::SgdConfig;
use sculpt::sparsity::Mask;

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

fn ce(labels: &[u32]) -> impl Fn(ArrayView2<f32>) -> (f64, ndarray::Array2<f32>) + '_ {
    move |l| cross_entropy(l, labels, 0.0)
}

fn random_mask(shape: &[usize], density: f64, seed: u64) -> Mask {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let keep: Vec<bool> = (0..shape.iter().product())
        .map(|_| rng.gen_bool(density))
        .collect();
    Mask::from_keep(shape, &keep)
}

#[test]
fn masked_weights_stay_zero_and_have_gradients() {
    let spec = tiny_resnet();
    let mut net = CpuNetwork::new(&spec, 3).unwrap();
    let weights: Vec<_> = net
        .tensors()
        .iter()
        .filter(|t| t.is_prunable())
        .cloned()
        .collect();
    for (i, t) in weights.iter().enumerate() {
        net.set_mask(&t.path, Some(&random_mask(&t.shape, 0.5, i as u64)))
            .unwrap();
    }
    let cfg = SgdConfig {
        weight_decay: 5e-4,
        ..SgdConfig::default()
    };
    for step in 0..4 {
        let (x, y) = batch(&spec, 6, step);
        net.forward_backward(x.view(), true, &ce(&y)).unwrap();
        net.sgd_step(&cfg, 0.1);
        for t in &weights {
            let m = net.mask(&t.path).unwrap();
            let w = net.read(&t.path).unwrap();
            let g = net.grad(&t.path).unwrap();
            let mut masked_grad = 0.0f32;
            for ((k, wv), gv) in m.keep_flags().iter().zip(w.iter()).zip(g.iter()) {
                if !k {
                    assert_eq!(*wv, 0.0, "{} has a non-zero masked weight", t.path);
                    masked_grad = masked_grad.max(gv.abs());
                }
            }
            assert!(
                masked_grad > 0.0,
                "{}: gradient at masked positions is zero",
                t.path
            );
        }
    }
    let state = net.optimizer_state();
    for t in &weights {
        let m = net.mask(&t.path).unwrap();
        let buf = &state.iter().find(|(p, _)| p == &t.path).unwrap().1;
        assert!(m
            .keep_flags()
            .iter()
            .zip(buf.iter())
            .all(|(k, b)| *k || *b == 0.0));
    }
    // Writing a dense tensor into a masked weight re-masks it.
    let t = &weights[1];
    net.write(&t.path, ArrayD::from_elem(IxDyn(&t.shape), 1.0).view())
        .unwrap();
    let w = net.read(&t.path).unwrap();
    let m = net.mask(&t.path).unwrap();
    assert!(m.keep_flags().iter().zip(w.iter()).all(|(k, v)| if *k {
        *v == 1.0
    } else {
        *v == 0.0
    }));
    // Removing the mask lets the weight train again.
    net.set_mask(&t.path, None).unwrap();
    assert!(net.mask(&t.path).is_none());
    let (x, y) = batch(&spec, 6, 99);
    net.forward_backward(x.view(), true, &ce(&y)).unwrap();
    net.sgd_step(&cfg, 0.1);
    assert!(
        net.read(&t.path)
            .unwrap()
            .iter()
            .filter(|v| **v != 0.0 && **v != 1.0)
            .count()
            > m.len() / 2
    );
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
fn write_read_round_trip_and_errors() {
    let spec = tiny_resnet();
    let mut net = CpuNetwork::new(&spec, 1).unwrap();
    let infos = net.tensors().to_vec();
    for (i, t) in infos.iter().enumerate() {
        let len: usize = t.shape.iter().product();
        let data = (0..len)
            .map(|j| ((j * 7 + i) % 23) as f32 * 0.25 + 0.5)
            .collect();
        let v = ArrayD::from_shape_vec(IxDyn(&t.shape), data).unwrap();
        net.write(&t.path, v.view()).unwrap();
        assert_eq!(net.read(&t.path).unwrap(), v);
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
        net.grad("conv1.weight").is_err(),
        "no gradient before a backward pass"
    );
    assert!(
        net.set_mask("bn1.weight", Some(&Mask::dense(&[16])))
            .is_err(),
        "BN is not prunable"
    );
    assert!(net
        .set_mask("conv1.weight", Some(&Mask::dense(&[16, 3, 3, 2])))
        .is_err());
    let (x, _) = batch(
        &ModelSpec {
            input: [3, 9, 8],
            ..spec.clone()
        },
        2,
        0,
    );
    assert!(net.predict(x.view()).is_err(), "wrong image size");
    let (x, y) = batch(&spec, 2, 0);
    assert!(
        net.train_batch(x.view(), &y[..1], 0.0).is_err(),
        "label count"
    );
    let bad = |_: ArrayView2<f32>| (0.0, ndarray::Array2::<f32>::zeros((1, 1)));
    assert!(
        net.forward_backward(x.view(), true, &bad).is_err(),
        "wrong objective gradient shape"
    );
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
    let tensors: Vec<_> = infos
        .iter()
        .map(|t| (t.path.clone(), net.read(&t.path).unwrap()))
        .collect();
    let copy = CpuNetwork::from_tensors(&spec, &tensors).unwrap();
    assert_eq!(copy.read("fc.bias").unwrap(), net.read("fc.bias").unwrap());
    assert!(
        CpuNetwork::from_tensors(&spec, &tensors[1..]).is_err(),
        "missing tensor"
    );
}

#[test]
fn batchnorm_running_statistics_follow_pytorch() {
    let spec = tiny_resnet();
    let mut net = CpuNetwork::new(&spec, 2).unwrap();
    let (x, _) = batch(&spec, 4, 7);
    // conv1 output, computed from the definition, gives the batch statistics bn1 must track.
    let w = net.read("conv1.weight").unwrap();
    let (n, h, wd) = (4, 8, 8);
    let mut stats = vec![(0.0f64, 0.0f64); 16];
    for (o, st) in stats.iter_mut().enumerate() {
        let mut vals = Vec::new();
        for b in 0..n {
            for oy in 0..h {
                for ox in 0..wd {
                    let mut acc = 0.0f64;
                    for c in 0..3 {
                        for ky in 0..3 {
                            for kx in 0..3 {
                                let (iy, ix) =
                                    (oy as isize + ky as isize - 1, ox as isize + kx as isize - 1);
                                if iy >= 0 && ix >= 0 && iy < h as isize && ix < wd as isize {
                                    acc += (x[[b, c, iy as usize, ix as usize]] * w[[o, c, ky, kx]])
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
        *st = (m, var);
    }
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
            "running var uses the unbiased variance"
        );
    }
    // Cumulative average: after set_bn_momentum(None), k identical batches give exactly the batch statistics.
    net.set_bn_momentum(None);
    net.forward_train(x.view()).unwrap();
    net.forward_train(x.view()).unwrap();
    let rm = net.read("bn1.running_mean").unwrap();
    let rv = net.read("bn1.running_var").unwrap();
    for (ch, &(m, v)) in stats.iter().enumerate() {
        assert!((rm[ch] as f64 - m).abs() < 1e-4 * (1.0 + m.abs()));
        assert!((rv[ch] as f64 - v).abs() < 1e-4 * (1.0 + v));
    }
    // Eval mode leaves the statistics alone and does not depend on the batch composition.
    let before = net.read("layer3.0.bn2.running_var").unwrap();
    let all = net.predict(x.view()).unwrap();
    let one = net.predict(x.slice(ndarray::s![1..2, .., .., ..])).unwrap();
    assert_eq!(net.read("layer3.0.bn2.running_var").unwrap(), before);
    for (a, b) in all
        .index_axis(Axis(0), 1)
        .iter()
        .zip(one.index_axis(Axis(0), 0))
    {
        assert!((a - b).abs() < 1e-5);
    }
    // Eval-mode forward_backward gives the predict logits.
    let (_, y) = batch(&spec, 4, 7);
    let (_, logits) = net.forward_backward(x.view(), false, &ce(&y)).unwrap();
    assert_eq!(logits, all);
}

#[test]
fn predict_splits_large_batches_exactly() {
    let spec = ModelSpec::from_name("lenet5", [1, 28, 28], 10).unwrap();
    let mut net = CpuNetwork::new(&spec, 0).unwrap();
    let n = sculpt::engine::cpu::PREDICT_CHUNK + 3;
    let (x, _) = batch(&spec, n, 1);
    let all = net.predict(x.view()).unwrap();
    let tail = net
        .predict(x.slice(ndarray::s![n - 3.., .., .., ..]))
        .unwrap();
    for (a, b) in all.slice(ndarray::s![n - 3.., ..]).iter().zip(tail.iter()) {
        assert!((a - b).abs() < 1e-5);
    }
}

#[test]
fn optimizer_state_round_trip_and_weight_decay_roles() {
    let spec = tiny_resnet();
    let mut net = CpuNetwork::new(&spec, 4).unwrap();
    assert!(net.optimizer_state().is_empty());
    let (x, y) = batch(&spec, 4, 3);
    net.train_batch(x.view(), &y, 0.0).unwrap();
    let cfg = SgdConfig {
        momentum: 0.9,
        nesterov: false,
        weight_decay: 0.1,
        decay_bn_and_bias: false,
    };
    net.sgd_step(&cfg, 0.1);
    let state = net.optimizer_state();
    let params = net.tensors().iter().filter(|t| t.is_param()).count();
    assert_eq!(state.len(), params);
    // First step: buffer = grad (+ wd·w for conv/linear weights only).
    let mut other = CpuNetwork::new(&spec, 4).unwrap();
    other.train_batch(x.view(), &y, 0.0).unwrap();
    for (path, buf) in &state {
        let t = net.tensors().iter().find(|t| &t.path == path).unwrap();
        let g = other.grad(path).unwrap();
        let w0 = other.read(path).unwrap();
        let wd = if t.role == TensorRole::Weight {
            0.1
        } else {
            0.0
        };
        for ((b, g), w) in buf.iter().zip(g.iter()).zip(w0.iter()) {
            assert!((b - (g + wd * w)).abs() < 1e-6, "{path}");
        }
    }
    other.set_optimizer_state(&state).unwrap();
    assert_eq!(other.optimizer_state(), state);
    assert!(other
        .set_optimizer_state(&[("bn1.running_mean".into(), ArrayD::zeros(IxDyn(&[16])))])
        .is_err());
    assert!(other
        .set_optimizer_state(&[("fc.bias".into(), ArrayD::zeros(IxDyn(&[3])))])
        .is_err());
    net.reset_optimizer();
    assert!(net.optimizer_state().is_empty());
}
