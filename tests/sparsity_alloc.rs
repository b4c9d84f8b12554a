//! Layer-wise allocation, selection and the DST criteria against their definitions.

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use sculpt::sparsity::allocation::erk_densities;
use sculpt::sparsity::criteria::{cosine_prune_fraction, Criterion, OptOrder};
use sculpt::sparsity::maskset::kept_count;
use sculpt::sparsity::{Allocation, Layer, Scope};

fn layer(path: &str, shape: &[usize]) -> Layer {
    Layer {
        path: path.into(),
        shape: shape.to_vec(),
    }
}

#[test]
fn erk_hand_example_redistributes_the_dense_layer() {
    let layers = [layer("a", &[10, 10]), layer("b", &[100, 100])];
    // ε = 0.5·10100 / (0.2·100 + 0.02·10000) = 22.95 → ε·r_a = 4.59 > 1, so a is dense;
    // then ε = (5050 − 100) / 200 = 24.75 and d_b = 24.75 · 0.02 = 0.495.
    let d = erk_densities(&layers, 0.5);
    assert_eq!(d[0], 1.0);
    assert!((d[1] - 0.495).abs() < 1e-12, "{d:?}");
}

#[test]
fn erk_densities_satisfy_the_formula() {
    let layers = [
        layer("conv1", &[16, 3, 3, 3]),
        layer("conv2", &[32, 16, 3, 3]),
        layer("conv3", &[64, 32, 3, 3]),
        layer("fc", &[10, 64]),
    ];
    let n: Vec<f64> = layers.iter().map(|l| l.len() as f64).collect();
    let total: f64 = n.iter().sum();
    for target in [0.5, 0.2, 0.1, 0.05, 0.01] {
        let d = erk_densities(&layers, target);
        let kept: f64 = d.iter().zip(&n).map(|(a, b)| a * b).sum();
        assert!(
            (kept - target * total).abs() < 1e-6 * total,
            "target {target}: {d:?}"
        );
        let raw: Vec<f64> = layers
            .iter()
            .map(|l| l.shape.iter().sum::<usize>() as f64 / l.len() as f64)
            .collect();
        let sparse: Vec<usize> = (0..4).filter(|&i| d[i] < 1.0).collect();
        let eps = d[sparse[0]] / raw[sparse[0]];
        for &i in &sparse {
            assert!(
                (d[i] / raw[i] - eps).abs() < 1e-9 * eps,
                "ε differs for layer {i}"
            );
        }
        for i in 0..4 {
            assert!(d[i] <= 1.0);
            if d[i] == 1.0 {
                assert!(eps * raw[i] >= 1.0, "layer {i} made dense without need");
            }
        }
    }
}

#[test]
fn per_layer_and_global_selection_keep_exact_counts() {
    let layers = [
        layer("a", &[8, 20]),
        layer("b", &[30, 8]),
        layer("c", &[3, 30]),
    ];
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    let scores = sculpt::sparsity::scores::random(&mut rng, &layers);
    for density in [0.9, 0.5, 0.2, 0.05] {
        for alloc in [Allocation::Uniform, Allocation::Erk] {
            let m = alloc.select(&layers, &scores, density);
            let counts = alloc.counts(&layers, density).unwrap();
            for (l, k) in layers.iter().zip(&counts) {
                assert_eq!(
                    m.get(&l.path).unwrap().nnz(),
                    *k,
                    "{alloc:?} {density} {}",
                    l.path
                );
            }
            if alloc == Allocation::Uniform {
                for (l, k) in layers.iter().zip(&counts) {
                    assert_eq!(*k, kept_count(l.len(), density).max(1));
                }
            }
        }
        let g = Allocation::Global.select(&layers, &scores, density);
        let total: usize = layers.iter().map(Layer::len).sum();
        assert_eq!(g.nnz(), kept_count(total, density));
        // Global: every kept score is at least every pruned score.
        let flags = g.flags(&layers).unwrap();
        let mut min_kept = f32::INFINITY;
        let mut max_pruned = f32::NEG_INFINITY;
        for (s, f) in scores.iter().zip(&flags) {
            for (v, k) in s.iter().zip(f) {
                if *k {
                    min_kept = min_kept.min(*v);
                } else {
                    max_pruned = max_pruned.max(*v);
                }
            }
        }
        assert!(min_kept >= max_pruned);
    }
}

#[test]
fn scope_keeps_first_last_and_shortcuts_dense() {
    let spec = sculpt::nn::ModelSpec::from_name("resnet20b", [3, 32, 32], 10).unwrap();
    let tensors = spec.graph().unwrap().tensors();
    let all = Scope::default().layers(&tensors);
    let prunable = tensors.iter().filter(|t| t.is_prunable()).count();
    assert_eq!(all.len(), prunable);
    let s = Scope {
        keep_first_dense: true,
        keep_last_dense: true,
        keep_shortcuts_dense: true,
    }
    .layers(&tensors);
    assert!(s
        .iter()
        .all(|l| l.path != all[0].path && l.path != all.last().unwrap().path));
    assert!(s.iter().all(|l| !l.path.contains("shortcut")));
    assert!(all.iter().any(|l| l.path.contains("shortcut")));
    assert_eq!(
        s.len(),
        all.len() - 2 - all.iter().filter(|l| l.path.contains("shortcut")).count()
    );
}

const W: [f32; 5] = [0.5, -0.2, 0.1, -0.9, 0.3];
const G: [f32; 5] = [0.1, 1.0, -2.0, 0.5, 0.0];

fn approx(a: &[f32], b: &[f32]) {
    for (x, y) in a.iter().zip(b) {
        assert!((x - y).abs() <= 1e-5 * y.abs().max(1.0), "{a:?} vs {b:?}");
    }
}

#[test]
fn criteria_scores_match_hand_computed_values() {
    let mut rng = ChaCha8Rng::seed_from_u64(0);
    approx(
        &Criterion::Magnitude.scores(&W, &G, 1.0, &mut rng),
        &[0.5, 0.2, 0.1, 0.9, 0.3],
    );
    approx(
        &Criterion::Mest.scores(&W, &G, 1.0, &mut rng),
        &[0.6, 1.2, 2.1, 1.4, 0.3],
    );
    approx(
        &Criterion::Mest.scores(&W, &G, 0.5, &mut rng),
        &[0.55, 0.7, 1.1, 1.15, 0.3],
    );
    approx(
        &Criterion::Snip.scores(&W, &G, 1.0, &mut rng),
        &[0.05001, 0.20001, 0.20001, 0.45001, 0.00001],
    );
    let rs = Criterion::ReciprocalSensitivity.scores(&W, &G, 1.0, &mut rng);
    approx(&rs[..4], &[6.0, 1.2, 1.05, 2.8]);
    assert!(rs[4] > 1e6);
    approx(
        &Criterion::Sensitivity.scores(&W, &G, 1.0, &mut rng),
        &[1.2, 6.0, 21.0, 1.0 + 0.5 / 0.9, 1.0],
    );
    let mut perm = Criterion::Random.scores(&W, &G, 1.0, &mut rng);
    perm.sort_by(f32::total_cmp);
    assert_eq!(perm, vec![2.0, 3.0, 4.0, 5.0, 6.0]);
}

#[test]
fn criteria_prune_the_hand_computed_entries() {
    let all = [true; 5];
    let mut rng = ChaCha8Rng::seed_from_u64(0);
    let mut p = |c: Criterion, k: usize| c.prune(&W, &G, &all, k, 1.0, &mut rng);
    assert_eq!(
        p(Criterion::Magnitude, 2),
        vec![true, false, false, true, true]
    );
    assert_eq!(p(Criterion::Mest, 2), vec![false, true, true, true, false]);
    assert_eq!(p(Criterion::Snip, 2), vec![false, true, true, true, false]);
    assert_eq!(
        p(Criterion::ReciprocalSensitivity, 2),
        vec![true, false, false, true, true]
    );
    assert_eq!(
        p(Criterion::Sensitivity, 2),
        vec![false, true, true, true, false]
    );
    // SET, k = 3: the two smallest non-negative (0.1, 0.3) and the negative closest to zero (−0.2).
    assert_eq!(p(Criterion::Set, 3), vec![true, false, false, true, false]);
    // k = 2: one of each sign.
    assert_eq!(p(Criterion::Set, 2), vec![true, false, false, true, true]);
    let r = p(Criterion::Random, 2);
    assert_eq!(r.iter().filter(|&&b| !b).count(), 2);
    // Inactive entries are never counted as pruned.
    let keep = [true, true, false, true, true];
    let out = Criterion::Magnitude.prune(&W, &G, &keep, 1, 1.0, &mut rng);
    assert_eq!(out, vec![true, false, false, true, true]);
}

#[test]
fn opt_order_and_cosine_fraction() {
    assert_eq!(Criterion::Magnitude.opt_order(), OptOrder::Before);
    assert_eq!(Criterion::Set.opt_order(), OptOrder::Before);
    assert_eq!(Criterion::Random.opt_order(), OptOrder::Before);
    assert_eq!(Criterion::Mest.opt_order(), OptOrder::After);
    assert_eq!(Criterion::Snip.opt_order(), OptOrder::After);
    assert_eq!(
        Criterion::ReciprocalSensitivity.opt_order(),
        OptOrder::After
    );
    assert!((cosine_prune_fraction(0.5, 0.005, 0, 100) - 0.5).abs() < 1e-12);
    assert!((cosine_prune_fraction(0.5, 0.005, 100, 100) - 0.005).abs() < 1e-12);
    assert!((cosine_prune_fraction(0.5, 0.005, 50, 100) - 0.2525).abs() < 1e-12);
}
