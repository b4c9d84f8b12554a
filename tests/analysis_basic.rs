//! Analyses against their definitions: error barrier, interpolation, sign flips, sparsity tables, LMC endpoints.

#[path = "method_common.rs"]
mod common;

use common::*;
use ndarray::ArrayD;
use sculpt::analysis::lmc::{
    default_alphas, error_barrier, interpolate, linear_mode_connectivity, LmcPoint,
};
use sculpt::analysis::signs::{count_flips, sign_flips};
use sculpt::analysis::table::sparsity_table;
use sculpt::analysis::State;
use sculpt::engine::Network;
use sculpt::sparsity::Mask;

fn arr(v: &[f32]) -> ArrayD<f32> {
    ArrayD::from_shape_vec(vec![v.len()], v.to_vec()).unwrap()
}

#[test]
fn barrier_is_the_largest_excess_over_the_chord() {
    let pts: Vec<LmcPoint> = [
        (0.0, 0.10),
        (0.25, 0.30),
        (0.5, 0.25),
        (0.75, 0.2),
        (1.0, 0.20),
    ]
    .iter()
    .map(|&(alpha, error)| LmcPoint {
        alpha,
        loss: 0.0,
        error,
    })
    .collect();
    // chord at 0.25: 0.125 → excess 0.175; at 0.5: 0.15 → 0.10; at 0.75: 0.175 → 0.025.
    assert!((error_barrier(&pts).unwrap() - 0.175).abs() < 1e-12);
    assert!(error_barrier(&pts[1..]).is_err());
    assert_eq!(default_alphas().len(), 11);
    assert!((default_alphas()[10] - 1.0).abs() < 1e-12);
}

#[test]
fn interpolation_masks_each_endpoint() {
    let a = State::new(
        vec![("w".into(), arr(&[1.0, 2.0, 3.0]))],
        vec![("w".into(), Mask::from_keep(&[3], &[true, false, true]))],
    );
    let b = State::new(vec![("w".into(), arr(&[-1.0, 4.0, 1.0]))], vec![]);
    let mid = interpolate(&a, &b, 0.25).unwrap();
    // 0.25·[1, 0, 3] + 0.75·[−1, 4, 1]
    assert_eq!(mid[0].1, arr(&[-0.5, 3.0, 1.5]));
}

#[test]
fn sign_flips_count_active_positions_only() {
    let (active, flips) = count_flips(
        &[1.0, -2.0, 0.5, 0.0, 3.0],
        &[-1.0, -1.0, 0.5, 1.0, -2.0],
        Some(&[true, true, true, true, false]),
        None,
    );
    assert_eq!((active, flips), (4, 2));
    let a = State::new(
        vec![("w".into(), arr(&[1.0, -1.0, 2.0]))],
        vec![("w".into(), Mask::from_keep(&[3], &[true, true, false]))],
    );
    let b = State::new(vec![("w".into(), arr(&[-1.0, -1.0, -2.0]))], vec![]);
    let rows = sign_flips(&a, &b, &["w".to_string()]).unwrap();
    assert_eq!((rows[0].active, rows[0].flips), (2, 1));
    assert!(sign_flips(&a, &b, &["missing".to_string()]).is_err());
}

#[test]
fn sparsity_table_counts_masks_and_nonzeros() {
    let net = small_net(1);
    let mut tensors = Vec::new();
    let mut masks = Vec::new();
    for t in net.tensors() {
        let v = net.read(&t.path).unwrap();
        if t.is_prunable() {
            let n = v.len();
            let keep: Vec<bool> = (0..n).map(|i| i % 4 == 0).collect();
            masks.push((t.path.clone(), Mask::from_keep(&t.shape, &keep)));
        }
        tensors.push((t.path.clone(), v));
    }
    let rows = sparsity_table(&State::new(tensors, masks), net.tensors());
    let total = rows.last().unwrap();
    assert_eq!(total.layer, "total");
    let params: usize = net
        .tensors()
        .iter()
        .filter(|t| t.is_prunable())
        .map(|t| t.shape.iter().product::<usize>())
        .sum();
    assert_eq!(total.params, params);
    assert_eq!(
        total.kept,
        rows[..rows.len() - 1].iter().map(|r| r.kept).sum::<usize>()
    );
    for r in &rows[..rows.len() - 1] {
        assert_eq!(r.kept, r.params.div_ceil(4));
        assert!(r.nonzero <= r.kept);
        assert!((r.sparsity - (1.0 - r.kept as f64 / r.params as f64)).abs() < 1e-12);
    }
}

fn state_of(net: &dyn Network) -> State {
    let tensors = net
        .tensors()
        .iter()
        .map(|t| (t.path.clone(), net.read(&t.path).unwrap()))
        .collect();
    let masks = net
        .tensors()
        .iter()
        .filter_map(|t| net.mask(&t.path).map(|m| (t.path.clone(), m)))
        .collect();
    State::new(tensors, masks)
}

#[test]
fn lmc_endpoints_reproduce_each_model() {
    let (x, y) = blobs(60, 3);
    let a_net = small_net(1);
    let b_net = small_net(2);
    let (a, b) = (state_of(&a_net), state_of(&b_net));
    let acc = |n: &mut dyn Network| {
        let z = n.predict(x.view()).unwrap();
        sculpt::nn::loss::count_correct(z.view(), &y) as f64 / y.len() as f64
    };
    let (mut a2, mut b2) = (small_net(1), small_net(2));
    let (acc_a, acc_b) = (acc(&mut a2), acc(&mut b2));
    let mut net = small_net(9);
    let mut passes = 0;
    let r = linear_mode_connectivity(
        &mut net,
        &a,
        &b,
        &default_alphas(),
        &mut |_n| {
            passes += 1;
            Ok(())
        },
        &mut |n| {
            let z = n.predict(x.view())?;
            let loss = sculpt::nn::loss::cross_entropy(z.view(), &y, 0.0).0;
            Ok((
                loss,
                sculpt::nn::loss::count_correct(z.view(), &y) as f64 / y.len() as f64,
            ))
        },
    )
    .unwrap();
    assert_eq!(passes, 0, "no BN in an MLP, so no re-estimation pass");
    assert_eq!(r.points.len(), 11);
    assert!((r.points[0].error - (1.0 - acc_b)).abs() < 1e-12);
    assert!((r.points[10].error - (1.0 - acc_a)).abs() < 1e-12);
    // The same state at both ends: flat curve, zero barrier.
    let r = linear_mode_connectivity(
        &mut net,
        &a,
        &a,
        &default_alphas(),
        &mut |_| Ok(()),
        &mut |n| {
            let z = n.predict(x.view())?;
            Ok((
                0.0,
                sculpt::nn::loss::count_correct(z.view(), &y) as f64 / y.len() as f64,
            ))
        },
    )
    .unwrap();
    assert!(r.barrier.abs() < 1e-12);
}
