//! Every method driven exactly as the trainer drives it, on a small MLP, against its definition.

#[path = "method_common.rs"]
mod common;

use std::collections::BTreeMap;

use common::*;
use ndarray::ArrayD;
use sculpt::engine::Network;
use sculpt::method::acdc::AcdcConfig;
use sculpt::method::cyclic::{CyclicConfig, Split};
use sculpt::method::dst::{DstConfig, Growth};
use sculpt::method::gmp::GmpConfig;
use sculpt::method::imp::ImpConfig;
use sculpt::method::sculpt::SculptConfig;
use sculpt::method::static_sparse::StaticConfig;
use sculpt::method::wr::WrConfig;
use sculpt::method::MethodConfig;
use sculpt::optim::schedule::Shape;
use sculpt::optim::Schedule;
use sculpt::sparsity::criteria::Criterion;
use sculpt::sparsity::maskset::kept_count;
use sculpt::sparsity::pai::PaiConfig;
use sculpt::sparsity::{Allocation, Mask, Scope};

fn schedule() -> Schedule {
    Schedule {
        lr: 0.05,
        shape: Shape::Cosine { min_lr: 0.0 },
        warmup: 0.1,
    }
}

fn data() -> Vec<(ndarray::Array4<f32>, Vec<u32>)> {
    let (x, y) = blobs(96, 7);
    batches(&x, &y, 16)
}

fn run(cfg: &MethodConfig, epochs: usize, check: &mut StepCheck) -> (RefMlp, Vec<PhaseLog>) {
    cfg.validate().unwrap();
    let mut net = small_net(3);
    let mut method = cfg.build();
    let logs = drive(
        method.as_mut(),
        &mut net,
        &data(),
        epochs,
        &schedule(),
        &sgd(),
        11,
        check,
    );
    (net, logs)
}

fn weight_paths(net: &dyn Network) -> Vec<String> {
    net.tensors()
        .iter()
        .filter(|t| t.is_prunable())
        .map(|t| t.path.clone())
        .collect()
}

fn masked(t: &ArrayD<f32>, m: &Mask) -> ArrayD<f32> {
    let mut out = t.clone();
    out.iter_mut()
        .zip(m.multiplier())
        .for_each(|(v, k)| *v *= k);
    out
}

fn total_nnz(masks: &BTreeMap<String, Mask>) -> (usize, usize) {
    (
        masks.values().map(Mask::nnz).sum(),
        masks.values().map(Mask::len).sum(),
    )
}

fn is_reset(opt: &[(String, ArrayD<f32>)]) -> bool {
    opt.iter().all(|(_, v)| v.iter().all(|&x| x == 0.0))
}

#[test]
fn static_erk_mask_has_exact_layer_counts_and_stays_zero() {
    let cfg = MethodConfig::Static(StaticConfig {
        sparsity: 0.8,
        pai: PaiConfig::default(),
        scope: Scope::default(),
        epochs_scale: 1,
    });
    let (net, logs) = run(&cfg, 2, &mut |n, w| assert_masked_zero(n, w));
    assert_eq!(logs.len(), 1);
    let layers = Scope::default().layers(net.tensors());
    let counts = Allocation::Erk.counts(&layers, 0.2).unwrap();
    for (l, k) in layers.iter().zip(counts) {
        assert_eq!(net.mask(&l.path).unwrap().nnz(), k, "{}", l.path);
    }
    assert_eq!(logs[0].masks_at_start, {
        let mut m = BTreeMap::new();
        for l in &layers {
            m.insert(l.path.clone(), net.mask(&l.path).unwrap());
        }
        m
    });
}

#[test]
fn cyclic_resets_the_optimizer_every_cycle_and_keeps_mask_and_weights() {
    for split in [Split::Constant, Split::Increasing, Split::Decreasing] {
        let cfg = MethodConfig::Cyclic(CyclicConfig {
            sparsity: 0.7,
            cycles: 3,
            split,
            pai: PaiConfig::default(),
            scope: Scope::default(),
        });
        let (_net, logs) = run(&cfg, 2, &mut |n, w| assert_masked_zero(n, w));
        assert_eq!(logs.len(), 3);
        assert_eq!(logs.iter().map(|l| l.phase.epochs).sum::<usize>(), 6);
        for (i, l) in logs.iter().enumerate() {
            assert!(l.phase.reset_optimizer);
            assert!(is_reset(&l.opt_at_start), "cycle {i} starts with momentum");
            assert_eq!(l.phase.schedule, schedule());
            assert_eq!(
                l.masks_at_start, logs[0].masks_at_start,
                "mask changed in cycle {i}"
            );
            if i > 0 {
                assert_eq!(
                    l.weights_at_start,
                    logs[i - 1].weights_at_end,
                    "weights not carried over"
                );
            }
        }
    }
}

fn imp_cfg() -> ImpConfig {
    ImpConfig {
        sparsity: 0.5,
        prune_rate: 0.2,
        scope: Scope::default(),
    }
}

fn check_levels(logs: &[PhaseLog], densities: &[f64]) {
    assert_eq!(logs.len(), densities.len() + 1);
    let (nnz0, n) = total_nnz(&logs[0].masks_at_start);
    assert_eq!(nnz0, n);
    for (i, d) in densities.iter().enumerate() {
        let (nnz, n) = total_nnz(&logs[i + 1].masks_at_start);
        assert_eq!(nnz, kept_count(n, *d), "level {}", i + 1);
    }
}

#[test]
fn imp_rewinds_exactly_to_theta0() {
    let cfg = MethodConfig::Imp(imp_cfg());
    let (_net, logs) = run(&cfg, 1, &mut |n, w| assert_masked_zero(n, w));
    check_levels(&logs, &imp_cfg().level_densities());
    let theta0 = &logs[0].weights_at_start;
    for l in &logs[1..] {
        assert!(is_reset(&l.opt_at_start));
        for (p, v) in &l.weights_at_start {
            let want = match l.masks_at_start.get(p) {
                Some(m) => masked(&theta0[p], m),
                None => theta0[p].clone(),
            };
            assert_eq!(v, &want, "{p} not rewound to θ0 in {}", l.phase.label);
        }
    }
}

#[test]
fn wr_rewinds_to_epoch_k_weights_and_optimizer_state() {
    let cfg = MethodConfig::Wr(WrConfig {
        sparsity: 0.488,
        prune_rate: 0.2,
        rewind_epoch: 1,
        scope: Scope::default(),
    });
    type Snapshot = (BTreeMap<String, ArrayD<f32>>, Vec<(String, ArrayD<f32>)>);
    let mut snap: Option<Snapshot> = None;
    let mut epoch_ends = 0;
    let (_net, logs) = run(&cfg, 2, &mut |n, w| {
        assert_masked_zero(n, w);
        if w == "epoch end" {
            epoch_ends += 1;
            if epoch_ends == 1 {
                let t = n
                    .tensors()
                    .iter()
                    .map(|t| (t.path.clone(), n.read(&t.path).unwrap()))
                    .collect();
                snap = Some((t, n.optimizer_state()));
            }
        }
    });
    check_levels(&logs, &[0.8, 0.64, 0.512]);
    let (wk, ok) = snap.unwrap();
    assert!(!is_reset(&ok));
    for l in &logs[1..] {
        assert!(!l.phase.reset_optimizer);
        for (p, v) in &l.weights_at_start {
            let want = l
                .masks_at_start
                .get(p)
                .map_or(wk[p].clone(), |m| masked(&wk[p], m));
            assert_eq!(v, &want, "{p} not rewound to epoch 1 in {}", l.phase.label);
        }
        let want: Vec<_> = ok
            .iter()
            .map(|(p, v)| {
                let v = l.masks_at_start.get(p).map_or(v.clone(), |m| masked(v, m));
                (p.clone(), v)
            })
            .collect();
        assert_eq!(
            l.opt_at_start, want,
            "optimizer state not restored (zero where pruned) in {}",
            l.phase.label
        );
    }
}

#[test]
fn lrr_keeps_trained_weights_and_restarts_the_schedule() {
    let cfg = MethodConfig::Lrr(imp_cfg());
    let (_net, logs) = run(&cfg, 1, &mut |n, w| assert_masked_zero(n, w));
    check_levels(&logs, &imp_cfg().level_densities());
    for i in 1..logs.len() {
        let l = &logs[i];
        assert!(l.phase.reset_optimizer && is_reset(&l.opt_at_start));
        assert_eq!(l.phase.schedule, schedule());
        assert_eq!(l.phase.epochs, 1);
        for (p, v) in &l.weights_at_start {
            let prev = &logs[i - 1].weights_at_end[p];
            let want = l
                .masks_at_start
                .get(p)
                .map_or(prev.clone(), |m| masked(prev, m));
            assert_eq!(v, &want, "{p} changed at the start of {}", l.phase.label);
        }
        // Pruning only ever removes weights.
        for (p, m) in &l.masks_at_start {
            let before = &logs[i - 1].masks_at_start[p];
            for (k, was) in m.keep_flags().into_iter().zip(before.keep_flags()) {
                assert!(was || !k, "a pruned weight came back in {p}");
            }
        }
    }
}

#[test]
fn sculpt_prunes_once_by_global_magnitude() {
    let cfg = MethodConfig::Sculpt(SculptConfig {
        sparsity: 0.9,
        initial_sparsity: 0.5,
        cycles: 2,
        pai: PaiConfig::default(),
        scope: Scope::default(),
    });
    let (net, logs) = run(&cfg, 1, &mut |n, w| assert_masked_zero(n, w));
    assert_eq!(logs.len(), 3);
    assert_eq!(logs[0].masks_at_start, logs[1].masks_at_start);
    let (nnz, n) = total_nnz(&logs[0].masks_at_start);
    assert!(
        nnz >= kept_count(n, 0.5) - 3 && nnz <= kept_count(n, 0.5) + 3,
        "PaI at s0: {nnz}/{n}"
    );
    let (nnz, n) = total_nnz(&logs[2].masks_at_start);
    assert_eq!(nnz, kept_count(n, 0.1));
    // Independent global magnitude prune of the end-of-cycle-2 weights.
    let prev = &logs[1].weights_at_end;
    let mut mags: Vec<(f32, String, usize)> = Vec::new();
    for p in weight_paths(&net) {
        let keep = logs[1].masks_at_start[&p].keep_flags();
        for (i, (v, k)) in prev[&p].iter().zip(keep).enumerate() {
            if k {
                mags.push((v.abs(), p.clone(), i));
            }
        }
    }
    mags.sort_by(|a, b| b.0.total_cmp(&a.0));
    let threshold = mags[nnz - 1].0;
    assert!(mags[nnz].0 < threshold, "ties at the threshold");
    for p in weight_paths(&net) {
        let m = logs[2].masks_at_start[&p].keep_flags();
        for (i, v) in prev[&p].iter().enumerate() {
            let want = logs[1].masks_at_start[&p].keep_flags()[i] && v.abs() >= threshold;
            assert_eq!(m[i], want, "{p}[{i}]");
        }
        assert_eq!(
            logs[2].weights_at_start[&p],
            masked(&prev[&p], &logs[2].masks_at_start[&p])
        );
    }
    assert!(logs.iter().all(|l| is_reset(&l.opt_at_start)));
}

#[test]
fn gmp_reaches_the_target_and_never_revives() {
    let cfg = MethodConfig::Gmp(GmpConfig {
        sparsity: 0.85,
        initial_sparsity: 0.1,
        start: 0.1,
        end: 0.6,
        frequency: 2,
        exponent: 3.0,
        scope: Scope::default(),
    });
    let mut prev: BTreeMap<String, Vec<bool>> = BTreeMap::new();
    let mut prunes = 0;
    let (net, _logs) = run(&cfg, 3, &mut |n, w| {
        assert_masked_zero(n, w);
        for p in weight_paths(n) {
            let k = n.mask(&p).unwrap().keep_flags();
            if let Some(old) = prev.get(&p) {
                assert!(
                    old.iter().zip(&k).all(|(a, b)| *a || !*b),
                    "revived weight in {p}"
                );
                if old != &k {
                    prunes += 1;
                }
            }
            prev.insert(p, k);
        }
    });
    let masks: BTreeMap<String, Mask> = weight_paths(&net)
        .into_iter()
        .map(|p| (p.clone(), net.mask(&p).unwrap()))
        .collect();
    let (nnz, n) = total_nnz(&masks);
    assert_eq!(nnz, kept_count(n, 0.15));
    assert!(prunes >= 3);
}

#[test]
fn acdc_alternates_compressed_and_dense_phases() {
    let acdc = AcdcConfig {
        sparsity: 0.8,
        warmup: 0.2,
        phase: 0.2,
        final_sparse: 0.2,
        scope: Scope::default(),
    };
    let epochs = 10;
    let plan: Vec<bool> = (0..epochs).map(|e| acdc.is_sparse(e, epochs)).collect();
    assert_eq!(
        plan,
        [false, false, true, true, false, false, false, false, true, true]
    );
    let mut epoch = 0;
    let mut densities = Vec::new();
    let mut opt_after_epoch = Vec::new();
    let (_net, _logs) = run(&MethodConfig::Acdc(acdc), epochs, &mut |n, w| {
        assert_masked_zero(n, w);
        if w == "epoch end" {
            epoch += 1;
            let (mut kept, mut total) = (0, 0);
            for p in weight_paths(n) {
                let m = n.mask(&p).unwrap();
                kept += m.nnz();
                total += m.len();
            }
            densities.push(kept as f64 / total as f64);
            opt_after_epoch.push(is_reset(&n.optimizer_state()));
        }
    });
    // After epoch e the network is set up for epoch e + 1.
    for e in 0..epochs - 1 {
        let sparse = plan[e + 1];
        assert_eq!(
            densities[e] < 0.5,
            sparse,
            "epoch {} density {}",
            e + 1,
            densities[e]
        );
        if sparse {
            assert!((densities[e] - 0.2).abs() < 0.01);
        }
        let decompress = plan[e] && !plan[e + 1];
        assert_eq!(
            opt_after_epoch[e],
            decompress,
            "momentum reset at epoch {}",
            e + 1
        );
    }
}

fn dst_cfg(criterion: Criterion, growth: Growth) -> DstConfig {
    DstConfig {
        sparsity: 0.8,
        criterion,
        growth,
        gamma: 1.0,
        prune_fraction: 0.5,
        min_prune_fraction: 0.005,
        update_period: 2,
        allocation: Allocation::Erk,
        scope: Scope::default(),
        opt_order: None,
    }
}

#[test]
fn dst_keeps_layer_counts_and_changes_masks() {
    for criterion in [
        Criterion::Magnitude,
        Criterion::Set,
        Criterion::Mest,
        Criterion::Snip,
        Criterion::ReciprocalSensitivity,
        Criterion::Sensitivity,
        Criterion::Random,
    ] {
        for growth in [Growth::Random, Growth::Gradient] {
            let mut counts: BTreeMap<String, usize> = BTreeMap::new();
            let mut first: BTreeMap<String, Mask> = BTreeMap::new();
            let (net, _) = run(
                &MethodConfig::Dst(dst_cfg(criterion, growth)),
                2,
                &mut |n, w| {
                    assert_masked_zero(n, w);
                    for p in weight_paths(n) {
                        let m = n.mask(&p).unwrap();
                        let c = *counts.entry(p.clone()).or_insert(m.nnz());
                        assert_eq!(m.nnz(), c, "{criterion:?}/{growth:?}: count of {p} changed");
                        first.entry(p).or_insert(m);
                    }
                },
            );
            let changed = weight_paths(&net)
                .iter()
                .any(|p| net.mask(p).unwrap() != first[p]);
            assert!(changed, "{criterion:?}/{growth:?}: the mask never changed");
        }
    }
}

#[test]
fn dst_grows_at_zero() {
    use sculpt::method::dst::Dst;
    use sculpt::method::MethodCtx;
    let mut net = small_net(5);
    let d = data();
    let mut dst = Dst::new(dst_cfg(Criterion::Magnitude, Growth::Gradient));
    let mut rng = rand::SeedableRng::seed_from_u64(2);
    let sched = schedule();
    let sample = d[0].clone();
    let mut sampler = move |_n: usize| sample.clone();
    let mut ctx = MethodCtx {
        steps_per_epoch: d.len(),
        schedule: &sched,
        epochs: 1,
        label_smoothing: 0.0,
        sample_batch: &mut sampler,
        rng: &mut rng,
    };
    use sculpt::method::Method;
    dst.next_phase(&mut net, &mut ctx).unwrap();
    let obj = |z: ndarray::ArrayView2<f32>| sculpt::nn::loss::cross_entropy(z, &d[0].1, 0.0);
    net.forward_backward(d[0].0.view(), true, &obj).unwrap();
    net.sgd_step(&sgd(), 0.05);
    let layers = Scope::default().layers(net.tensors());
    let before: Vec<(Vec<bool>, ArrayD<f32>)> = layers
        .iter()
        .map(|l| {
            (
                net.mask(&l.path).unwrap().keep_flags(),
                net.read(&l.path).unwrap(),
            )
        })
        .collect();
    dst.update(&mut net, &layers, 0.3, &mut ctx).unwrap();
    let mut grown = 0;
    for (l, (keep, w)) in layers.iter().zip(&before) {
        let now = net.mask(&l.path).unwrap().keep_flags();
        let v = net.read(&l.path).unwrap();
        let active = keep.iter().filter(|&&b| b).count();
        assert_eq!(now.iter().filter(|&&b| b).count(), active);
        let k = (0.3 * active as f64).ceil() as usize;
        let survivors = keep.iter().zip(&now).filter(|(a, b)| **a && **b).count();
        assert!(survivors >= active - k);
        for i in 0..keep.len() {
            if now[i] && !keep[i] {
                grown += 1;
                assert_eq!(
                    v.as_slice().unwrap()[i],
                    0.0,
                    "grown weight not zero in {}",
                    l.path
                );
            }
            if now[i] && keep[i] {
                let (a, b) = (v.as_slice().unwrap()[i], w.as_slice().unwrap()[i]);
                assert!(
                    a == b || a == 0.0,
                    "a surviving weight changed in {}",
                    l.path
                );
            }
        }
    }
    assert!(grown > 0);
    assert_eq!(dst.updates(), 1);
}
