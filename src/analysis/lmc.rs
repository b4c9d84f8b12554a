//! Linear mode connectivity between two states of one model: evaluate α·A + (1 − α)·B along the segment, each
//! endpoint masked by its own mask, with the BN running statistics re-estimated at every α by train-mode
//! forward passes (cumulative average), and report the error barrier.

use serde::Serialize;

use super::State;
use crate::engine::Network;
use crate::error::{Error, Result};
use crate::nn::TensorRole;

/// The 11 points α = 0, 0.1, …, 1.0.
pub fn default_alphas() -> Vec<f64> {
    (0..=10).map(|i| i as f64 / 10.0).collect()
}

/// One evaluated point (α = 0 is B, α = 1 is A).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LmcPoint {
    pub alpha: f64,
    pub loss: f64,
    /// Test error in [0, 1].
    pub error: f64,
}

/// The curve and its error barrier.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LmcResult {
    pub points: Vec<LmcPoint>,
    pub barrier: f64,
}

/// max over α of err(α) − ((1 − α)·err(α=0) + α·err(α=1)); needs points at α = 0 and α = 1.
pub fn error_barrier(points: &[LmcPoint]) -> Result<f64> {
    let at = |a: f64| {
        points
            .iter()
            .find(|p| (p.alpha - a).abs() < 1e-9)
            .map(|p| p.error)
    };
    let (eb, ea) = match (at(0.0), at(1.0)) {
        (Some(b), Some(a)) => (b, a),
        _ => {
            return Err(Error::Invalid(
                "the error barrier needs the endpoints α = 0 and α = 1".into(),
            ))
        }
    };
    Ok(points
        .iter()
        .map(|p| p.error - ((1.0 - p.alpha) * eb + p.alpha * ea))
        .fold(f64::NEG_INFINITY, f64::max))
}

/// α·A + (1 − α)·B for every tensor of `a` (masked by each state's own masks); `b` must hold the same tensors.
pub fn interpolate(
    a: &State,
    b: &State,
    alpha: f64,
) -> Result<Vec<(String, ndarray::ArrayD<f32>)>> {
    a.tensors
        .keys()
        .map(|p| {
            let ta = a.masked(p).ok_or_else(|| Error::UnknownTensor(p.clone()))?;
            let tb = b
                .masked(p)
                .ok_or_else(|| Error::UnknownTensor(format!("{p} (second state)")))?;
            if ta.shape() != tb.shape() {
                return Err(Error::Shape {
                    name: p.clone(),
                    expected: ta.shape().to_vec(),
                    got: tb.shape().to_vec(),
                });
            }
            let (wa, wb) = (alpha as f32, (1.0 - alpha) as f32);
            Ok((p.clone(), &ta * wa + &tb * wb))
        })
        .collect()
}

/// Evaluates a network, returning (loss, accuracy).
pub type Evaluate<'a> = dyn FnMut(&mut dyn Network) -> Result<(f64, f64)> + 'a;

/// Evaluates the segment from `b` (α = 0) to `a` (α = 1). For each α: masks are removed (the interpolated
/// support is the union of both), the interpolated tensors are written, BN statistics are reset and re-estimated
/// by `bn_pass` (train-mode forwards; the momentum is set to a cumulative average meanwhile), and `eval` returns
/// (loss, accuracy). The network's masks are left removed.
pub fn linear_mode_connectivity(
    net: &mut dyn Network,
    a: &State,
    b: &State,
    alphas: &[f64],
    bn_pass: &mut dyn FnMut(&mut dyn Network) -> Result<()>,
    eval: &mut Evaluate<'_>,
) -> Result<LmcResult> {
    let infos = net.tensors().to_vec();
    let has_bn = infos.iter().any(|t| t.role == TensorRole::RunningMean);
    for t in infos.iter().filter(|t| t.is_prunable()) {
        net.set_mask(&t.path, None)?;
    }
    let mut points = Vec::with_capacity(alphas.len());
    for &alpha in alphas {
        for (p, v) in interpolate(a, b, alpha)? {
            net.write(&p, v.view())?;
        }
        if has_bn {
            for t in &infos {
                let fill = match t.role {
                    TensorRole::RunningMean => 0.0,
                    TensorRole::RunningVar => 1.0,
                    _ => continue,
                };
                net.write(
                    &t.path,
                    ndarray::ArrayD::from_elem(t.shape.clone(), fill).view(),
                )?;
            }
            net.set_bn_momentum(None);
            bn_pass(net)?;
            net.set_bn_momentum(Some(0.1));
        }
        let (loss, acc) = eval(net)?;
        points.push(LmcPoint {
            alpha,
            loss,
            error: 1.0 - acc,
        });
    }
    let barrier = error_barrier(&points)?;
    Ok(LmcResult { points, barrier })
}
