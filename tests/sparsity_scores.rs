//! PaI scores against independent computations, on the reference MLP.

#![allow(clippy::needless_range_loop)]

#[path = "method_common.rs"]
mod common;

use common::*;
use ndarray::{Array4, ArrayD};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use sculpt::engine::Network;
use sculpt::method::MethodCtx;
use sculpt::optim::Schedule;
use sculpt::sparsity::maskset::kept_count;
use sculpt::sparsity::pai::{global_magnitude_prune, PaiConfig, PaiScore};
use sculpt::sparsity::{scores, Allocation, Scope};

fn all(net: &dyn Network) -> Vec<(String, ArrayD<f32>)> {
    net.tensors()
        .iter()
        .map(|t| (t.path.clone(), net.read(&t.path).unwrap()))
        .collect()
}

#[test]
fn snip_is_grad_times_weight_and_leaves_the_net_alone() {
    let mut net = small_net(4);
    let layers = Scope::default().layers(net.tensors());
    let (x, y) = blobs(32, 1);
    let before = all(&net);
    let s = scores::snip(&mut net, &layers, &x, &y, 0.0).unwrap();
    assert_eq!(all(&net), before);
    let obj = |z: ndarray::ArrayView2<f32>| sculpt::nn::loss::cross_entropy(z, &y, 0.0);
    net.forward_backward(x.view(), true, &obj).unwrap();
    for (l, sc) in layers.iter().zip(&s) {
        let g = net.grad(&l.path).unwrap();
        let w = net.read(&l.path).unwrap();
        for ((a, b), c) in g.iter().zip(w.iter()).zip(sc) {
            assert_eq!((a * b).abs(), *c);
        }
    }
}

#[test]
fn synflow_matches_finite_differences_of_r() {
    let mut net = RefMlp::new([1, 2, 2], vec![5], 3, 8);
    let layers = Scope::default().layers(net.tensors());
    let before = all(&net);
    let s = scores::synflow(&mut net, &layers).unwrap();
    assert_eq!(all(&net), before);
    // R(θ) = Σ logits on an all-ones input with |θ| everywhere, in f64 by hand.
    let abs: Vec<(String, Vec<f64>)> = before
        .iter()
        .map(|(p, v)| (p.clone(), v.iter().map(|x| x.abs() as f64).collect()))
        .collect();
    let get = |t: &[(String, Vec<f64>)], p: &str| t.iter().find(|(q, _)| q == p).unwrap().1.clone();
    let r_of = |t: &[(String, Vec<f64>)]| {
        let (w1, b1, w2, b2) = (
            get(t, "fc1.weight"),
            get(t, "fc1.bias"),
            get(t, "fc2.weight"),
            get(t, "fc2.bias"),
        );
        let h: Vec<f64> = (0..5)
            .map(|o| (b1[o] + (0..4).map(|i| w1[o * 4 + i]).sum::<f64>()).max(0.0))
            .collect();
        (0..3)
            .map(|o| b2[o] + (0..5).map(|i| w2[o * 5 + i] * h[i]).sum::<f64>())
            .sum::<f64>()
    };
    let base = r_of(&abs);
    for (li, l) in layers.iter().enumerate() {
        for i in 0..l.len() {
            let mut t = abs.clone();
            let idx = t.iter().position(|(p, _)| p == &l.path).unwrap();
            let h = 1e-4;
            t[idx].1[i] += h;
            let d = (r_of(&t) - base) / h;
            let want = (d * abs[idx].1[i]).abs();
            assert!(
                (s[li][i] as f64 - want).abs() <= 1e-3 * want.max(1e-2),
                "{}[{i}]: {} vs {want}",
                l.path,
                s[li][i]
            );
        }
    }
}

#[test]
fn grasp_hessian_gradient_product_matches_the_analytic_one() {
    // A linear softmax model z = W x + b: H_WW g has a closed form.
    let mut net = RefMlp::new([1, 2, 2], vec![], 3, 5);
    let layers = Scope::default().layers(net.tensors());
    let (x, y) = blobs(8, 2);
    let x = Array4::from_shape_vec((8, 1, 2, 2), x.iter().take(32).copied().collect()).unwrap();
    let t = 200.0f32;
    let before = all(&net);
    let s = scores::grasp(&mut net, &layers, &x, &y, t).unwrap();
    assert_eq!(all(&net), before);
    let w: Vec<f64> = net
        .read("fc1.weight")
        .unwrap()
        .iter()
        .map(|&v| v as f64)
        .collect();
    let b: Vec<f64> = net
        .read("fc1.bias")
        .unwrap()
        .iter()
        .map(|&v| v as f64)
        .collect();
    let xs: Vec<Vec<f64>> = (0..8)
        .map(|s| {
            x.slice(ndarray::s![s, .., .., ..])
                .iter()
                .map(|&v| v as f64)
                .collect()
        })
        .collect();
    let n = 8.0;
    let t = t as f64;
    let probs: Vec<Vec<f64>> = xs
        .iter()
        .map(|xv| {
            let z: Vec<f64> = (0..3)
                .map(|o| (b[o] + (0..4).map(|i| w[o * 4 + i] * xv[i]).sum::<f64>()) / t)
                .collect();
            let m = z.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
            let e: Vec<f64> = z.iter().map(|v| (v - m).exp()).collect();
            let sum: f64 = e.iter().sum();
            e.iter().map(|v| v / sum).collect()
        })
        .collect();
    let mut g = [0.0; 12];
    for (s, xv) in xs.iter().enumerate() {
        for o in 0..3 {
            let d = (probs[s][o] - if y[s] as usize == o { 1.0 } else { 0.0 }) / t / n;
            for i in 0..4 {
                g[o * 4 + i] += d * xv[i];
            }
        }
    }
    let mut hg = [0.0; 12];
    for (s, xv) in xs.iter().enumerate() {
        let dz: Vec<f64> = (0..3)
            .map(|o| (0..4).map(|i| g[o * 4 + i] * xv[i]).sum::<f64>() / t)
            .collect();
        let p = &probs[s];
        let pdz: f64 = (0..3).map(|o| p[o] * dz[o]).sum();
        for o in 0..3 {
            let dp = p[o] * (dz[o] - pdz);
            for i in 0..4 {
                hg[o * 4 + i] += dp / t / n * xv[i];
            }
        }
    }
    let scale = hg
        .iter()
        .zip(&w)
        .map(|(h, w)| (h * w).abs())
        .fold(0.0, f64::max);
    for i in 0..12 {
        let want = w[i] * hg[i];
        assert!(
            (s[0][i] as f64 - want).abs() <= 0.02 * scale,
            "entry {i}: {} vs {want}",
            s[0][i]
        );
    }
}

fn ctx_parts() -> (Schedule, ChaCha8Rng) {
    (Schedule::constant(0.1), ChaCha8Rng::seed_from_u64(4))
}

#[test]
fn pai_gives_exact_sparsity_for_every_score() {
    let (x, y) = blobs(32, 1);
    for score in [
        PaiScore::Random,
        PaiScore::Magnitude,
        PaiScore::Snip,
        PaiScore::Synflow,
        PaiScore::Grasp,
    ] {
        for alloc in [Allocation::Uniform, Allocation::Erk, Allocation::Global] {
            for rounds in [1usize, 4] {
                if rounds > 1 && score != PaiScore::Synflow {
                    continue;
                }
                let mut net = small_net(2);
                let layers = Scope::default().layers(net.tensors());
                let (sched, mut rng) = ctx_parts();
                let (xs, ys) = (x.clone(), y.clone());
                let mut sampler = move |_n: usize| (xs.clone(), ys.clone());
                let mut ctx = MethodCtx {
                    steps_per_epoch: 1,
                    schedule: &sched,
                    epochs: 1,
                    label_smoothing: 0.0,
                    sample_batch: &mut sampler,
                    rng: &mut rng,
                };
                let cfg = PaiConfig {
                    score,
                    allocation: Some(alloc),
                    rounds,
                    ..PaiConfig::default()
                };
                let m = cfg.prune(&mut net, &layers, 0.15, &mut ctx).unwrap();
                match alloc.counts(&layers, 0.15) {
                    Some(c) => {
                        for (l, k) in layers.iter().zip(c) {
                            assert_eq!(
                                m.get(&l.path).unwrap().nnz(),
                                k,
                                "{score:?} {alloc:?} {}",
                                l.path
                            );
                        }
                    }
                    None => assert_eq!(m.nnz(), kept_count(m.len(), 0.15), "{score:?} global"),
                }
                assert_masked_zero(&net, "after PaI");
                for l in &layers {
                    assert_eq!(net.mask(&l.path).unwrap(), m.get(&l.path).unwrap().clone());
                }
            }
        }
    }
}

#[test]
fn global_magnitude_prune_only_removes_and_hits_the_count() {
    let mut net = small_net(6);
    let layers = Scope::default().layers(net.tensors());
    let m1 = global_magnitude_prune(&mut net, &layers, 0.5).unwrap();
    assert_eq!(m1.nnz(), kept_count(m1.len(), 0.5));
    let m2 = global_magnitude_prune(&mut net, &layers, 0.2).unwrap();
    assert_eq!(m2.nnz(), kept_count(m2.len(), 0.2));
    for l in &layers {
        let (a, b) = (
            m1.get(&l.path).unwrap().keep_flags(),
            m2.get(&l.path).unwrap().keep_flags(),
        );
        assert!(a.iter().zip(&b).all(|(x, y)| *x || !*y));
    }
    // Asking for more density than is active keeps the current mask.
    let m3 = global_magnitude_prune(&mut net, &layers, 0.9).unwrap();
    assert_eq!(m3, m2);
}
