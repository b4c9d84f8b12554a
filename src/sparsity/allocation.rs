//! Layer-wise density allocation: uniform, ERK (with redistribution of layers that would exceed density 1) and
//! global (one threshold over all layers).

use serde::{Deserialize, Serialize};

use super::maskset::{kept_count, Layer, MaskSet};
use super::select::{global_top_k, top_k};

/// How a target density is spread over layers.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Allocation {
    /// Every layer gets the target density.
    Uniform,
    /// Erdős–Rényi-Kernel: density ∝ (Σ shape)/(Π shape), layers that would exceed 1 are made dense and the rest
    /// re-solved so that the overall density is the target.
    #[default]
    Erk,
    /// One score threshold over all layers.
    Global,
}

/// ERK densities of `layers` for an overall `density`: solves Σ_l d_l·n_l = density·Σ_l n_l with
/// d_l = min(1, ε·r_l), r_l = Σ shape_l / Π shape_l, moving the layer with the largest ε·r_l > 1 to the dense set
/// and solving again until every density is at most 1.
pub fn erk_densities(layers: &[Layer], density: f64) -> Vec<f64> {
    let n: Vec<f64> = layers.iter().map(|l| l.len() as f64).collect();
    let raw: Vec<f64> = layers
        .iter()
        .map(|l| l.shape.iter().sum::<usize>() as f64 / l.len().max(1) as f64)
        .collect();
    let total: f64 = n.iter().sum();
    let mut dense = vec![false; layers.len()];
    loop {
        let dense_params: f64 = (0..layers.len()).filter(|&i| dense[i]).map(|i| n[i]).sum();
        let divisor: f64 = (0..layers.len())
            .filter(|&i| !dense[i])
            .map(|i| raw[i] * n[i])
            .sum();
        if divisor <= 0.0 {
            return vec![1.0; layers.len()];
        }
        let eps = (density * total - dense_params) / divisor;
        let max = (0..layers.len())
            .filter(|&i| !dense[i])
            .map(|i| eps * raw[i])
            .fold(f64::NEG_INFINITY, f64::max);
        if max > 1.0 {
            for i in 0..layers.len() {
                if !dense[i] && eps * raw[i] == max {
                    dense[i] = true;
                }
            }
        } else {
            return (0..layers.len())
                .map(|i| {
                    if dense[i] {
                        1.0
                    } else {
                        (eps * raw[i]).max(0.0)
                    }
                })
                .collect();
        }
    }
}

impl Allocation {
    /// Per-layer densities, or `None` for global allocation (decided by the scores).
    pub fn densities(&self, layers: &[Layer], density: f64) -> Option<Vec<f64>> {
        match self {
            Allocation::Uniform => Some(vec![density; layers.len()]),
            Allocation::Erk => Some(erk_densities(layers, density)),
            Allocation::Global => None,
        }
    }

    /// Exact kept counts per layer (at least one entry per non-empty layer), or `None` for global allocation.
    pub fn counts(&self, layers: &[Layer], density: f64) -> Option<Vec<usize>> {
        self.densities(layers, density).map(|d| {
            layers
                .iter()
                .zip(d)
                .map(|(l, d)| kept_count(l.len(), d).max(usize::from(!l.is_empty())))
                .collect()
        })
    }

    /// Keeps the highest `scores` of each layer (per-layer allocations: exactly the layer's count) or over all
    /// layers (global: exactly `round(density·N)` entries).
    pub fn select(&self, layers: &[Layer], scores: &[Vec<f32>], density: f64) -> MaskSet {
        assert_eq!(layers.len(), scores.len(), "one score vector per layer");
        let flags = match self.counts(layers, density) {
            Some(counts) => scores
                .iter()
                .zip(counts)
                .map(|(s, k)| top_k(s, k))
                .collect::<Vec<_>>(),
            None => {
                let total: usize = layers.iter().map(Layer::len).sum();
                global_top_k(scores, kept_count(total, density))
            }
        };
        MaskSet::from_flags(layers, &flags)
    }
}
