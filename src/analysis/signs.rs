//! Sign flips between two states of the same model, per masked layer.

use serde::Serialize;

use super::State;
use crate::error::{Error, Result};

/// Sign agreement of one layer. Positions compared are those active in both states (masked weights count as
/// inactive); sign(0) = 0, so a weight that became exactly zero also counts as a flip.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SignRow {
    pub layer: String,
    /// Positions active in both states.
    pub active: usize,
    /// Active positions whose signs differ.
    pub flips: usize,
}

impl SignRow {
    pub fn fraction(&self) -> f64 {
        if self.active == 0 {
            0.0
        } else {
            self.flips as f64 / self.active as f64
        }
    }
}

/// Counts flips between flat weight vectors `a` and `b` with keep flags (`None` = dense).
pub fn count_flips(
    a: &[f32],
    b: &[f32],
    keep_a: Option<&[bool]>,
    keep_b: Option<&[bool]>,
) -> (usize, usize) {
    let mut active = 0;
    let mut flips = 0;
    for i in 0..a.len() {
        let on = keep_a.is_none_or(|k| k[i]) && keep_b.is_none_or(|k| k[i]);
        if on {
            active += 1;
            if sign(a[i]) != sign(b[i]) {
                flips += 1;
            }
        }
    }
    (active, flips)
}

fn sign(x: f32) -> i8 {
    if x > 0.0 {
        1
    } else if x < 0.0 {
        -1
    } else {
        0
    }
}

/// Sign flips per layer for every weight in `layers` (conv/linear weight paths), in that order.
pub fn sign_flips(a: &State, b: &State, layers: &[String]) -> Result<Vec<SignRow>> {
    layers
        .iter()
        .map(|p| {
            let (ta, tb) = match (a.masked(p), b.masked(p)) {
                (Some(x), Some(y)) => (x, y),
                _ => return Err(Error::UnknownTensor(p.clone())),
            };
            if ta.shape() != tb.shape() {
                return Err(Error::Shape {
                    name: p.clone(),
                    expected: ta.shape().to_vec(),
                    got: tb.shape().to_vec(),
                });
            }
            let ka = a.masks.get(p).map(|m| m.keep_flags());
            let kb = b.masks.get(p).map(|m| m.keep_flags());
            let va: Vec<f32> = ta.iter().copied().collect();
            let vb: Vec<f32> = tb.iter().copied().collect();
            let (active, flips) = count_flips(&va, &vb, ka.as_deref(), kb.as_deref());
            Ok(SignRow {
                layer: p.clone(),
                active,
                flips,
            })
        })
        .collect()
}
