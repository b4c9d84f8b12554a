//! The DST pruning criteria of Nowak et al. ("Fantastic Weights", 2023), as pure functions of a layer's weights
//! θ, current mini-batch gradient g and keep flags. Lower score = pruned first; only active entries are ever
//! pruned.

use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use super::select::prune_lowest;

/// A DST pruning criterion.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Criterion {
    /// |θ|.
    Magnitude,
    /// SET's signed rule (the intended one): remove the ⌈k/2⌉ smallest non-negative weights and the ⌊k/2⌋
    /// negative weights closest to zero (falling back to the other sign when one side runs out).
    Set,
    /// MEST: |θ| + γ·|g|.
    Mest,
    /// |θ ⊙ g| + 1e-5.
    Snip,
    /// |θ| / (|g| + 1e-8) + 1.
    ReciprocalSensitivity,
    /// |g| / (|θ| + 1e-8) + 1.
    Sensitivity,
    /// A random order: a random permutation of 1..n, plus 1.
    Random,
}

/// Where in a training step the connectivity update happens.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OptOrder {
    /// Optimiser step, re-mask, then prune and grow.
    Before,
    /// Prune and grow with the current weights and gradient, then the optimiser step.
    After,
}

impl Criterion {
    /// The order the reference code uses: magnitude, SET and random update after the optimiser step; every
    /// gradient-based criterion before it.
    pub fn opt_order(&self) -> OptOrder {
        match self {
            Criterion::Magnitude | Criterion::Set | Criterion::Random => OptOrder::Before,
            _ => OptOrder::After,
        }
    }

    /// The score of every entry (inactive entries included; the caller restricts to active ones). `Set` has no
    /// score: its scores are |θ| and [`Criterion::prune`] applies its signed rule instead.
    pub fn scores(&self, w: &[f32], g: &[f32], gamma: f32, rng: &mut ChaCha8Rng) -> Vec<f32> {
        match self {
            Criterion::Magnitude | Criterion::Set => w.iter().map(|x| x.abs()).collect(),
            Criterion::Mest => w
                .iter()
                .zip(g)
                .map(|(x, d)| x.abs() + gamma * d.abs())
                .collect(),
            Criterion::Snip => w.iter().zip(g).map(|(x, d)| (x * d).abs() + 1e-5).collect(),
            Criterion::ReciprocalSensitivity => w
                .iter()
                .zip(g)
                .map(|(x, d)| x.abs() / (d.abs() + 1e-8) + 1.0)
                .collect(),
            Criterion::Sensitivity => w
                .iter()
                .zip(g)
                .map(|(x, d)| d.abs() / (x.abs() + 1e-8) + 1.0)
                .collect(),
            Criterion::Random => {
                let mut perm: Vec<f32> = (1..=w.len()).map(|i| i as f32 + 1.0).collect();
                perm.shuffle(rng);
                perm
            }
        }
    }

    /// Removes `k` active entries by this criterion; returns the new keep flags.
    pub fn prune(
        &self,
        w: &[f32],
        g: &[f32],
        keep: &[bool],
        k: usize,
        gamma: f32,
        rng: &mut ChaCha8Rng,
    ) -> Vec<bool> {
        match self {
            Criterion::Set => set_prune(w, keep, k),
            other => prune_lowest(keep, &other.scores(w, g, gamma, rng), k),
        }
    }
}

/// SET's rule: ⌈k/2⌉ smallest non-negative active weights and ⌊k/2⌋ negative active weights closest to zero.
fn set_prune(w: &[f32], keep: &[bool], k: usize) -> Vec<bool> {
    let mut pos: Vec<usize> = (0..w.len()).filter(|&i| keep[i] && w[i] >= 0.0).collect();
    let mut neg: Vec<usize> = (0..w.len()).filter(|&i| keep[i] && w[i] < 0.0).collect();
    pos.sort_by(|&a, &b| w[a].total_cmp(&w[b]).then(a.cmp(&b)));
    neg.sort_by(|&a, &b| w[b].total_cmp(&w[a]).then(a.cmp(&b)));
    let k = k.min(pos.len() + neg.len());
    let mut from_pos = k.div_ceil(2).min(pos.len());
    let from_neg = (k - from_pos).min(neg.len());
    from_pos = k - from_neg;
    let mut out = keep.to_vec();
    for &i in pos[..from_pos].iter().chain(&neg[..from_neg]) {
        out[i] = false;
    }
    out
}

/// The DST prune fraction at step `t` of `total`: cosine decay from `r0` to `r_min`
/// (r_t = r_min + (r0 − r_min)(1 + cos(π t/T))/2).
pub fn cosine_prune_fraction(r0: f64, r_min: f64, t: usize, total: usize) -> f64 {
    let x = (t as f64 / total.max(1) as f64).min(1.0);
    r_min + (r0 - r_min) * 0.5 * (1.0 + (std::f64::consts::PI * x).cos())
}
