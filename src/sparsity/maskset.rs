//! A set of masks keyed by parameter path, which layers it covers, and its exchange with a [`Network`].

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::engine::Network;
use crate::error::{Error, Result};
use crate::nn::TensorInfo;
use crate::sparsity::Mask;

/// Which prunable weights (conv and linear) take part in sparsification. Layers left out stay dense and are not
/// counted in the sparsity of the [`MaskSet`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Scope {
    /// Keep the first conv/linear weight dense.
    pub keep_first_dense: bool,
    /// Keep the last conv/linear weight (the classifier) dense.
    pub keep_last_dense: bool,
    /// Keep 1x1 convolutions on ResNet shortcuts (projection / downsample) dense.
    pub keep_shortcuts_dense: bool,
}

/// A maskable layer: path and weight shape.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layer {
    pub path: String,
    pub shape: Vec<usize>,
}

impl Layer {
    /// Number of weights.
    pub fn len(&self) -> usize {
        self.shape.iter().product()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

fn is_shortcut(t: &TensorInfo) -> bool {
    let one_by_one = t.shape.len() == 4 && t.shape[2] == 1 && t.shape[3] == 1;
    one_by_one && (t.path.contains(".shortcut") || t.path.contains("downsample"))
}

impl Scope {
    /// The maskable layers among `tensors`, in graph order.
    pub fn layers(&self, tensors: &[TensorInfo]) -> Vec<Layer> {
        let prunable: Vec<&TensorInfo> = tensors.iter().filter(|t| t.is_prunable()).collect();
        let n = prunable.len();
        prunable
            .into_iter()
            .enumerate()
            .filter(|(i, t)| {
                !(self.keep_first_dense && *i == 0
                    || self.keep_last_dense && *i + 1 == n
                    || self.keep_shortcuts_dense && is_shortcut(t))
            })
            .map(|(_, t)| Layer {
                path: t.path.clone(),
                shape: t.shape.clone(),
            })
            .collect()
    }
}

/// Masks by parameter path. Iteration order is the path order of the `BTreeMap`, so results never depend on hash
/// order; algorithms that need graph order take a `&[Layer]` alongside.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MaskSet {
    pub masks: BTreeMap<String, Mask>,
}

impl MaskSet {
    /// Dense masks for every layer.
    pub fn dense(layers: &[Layer]) -> Self {
        MaskSet {
            masks: layers
                .iter()
                .map(|l| (l.path.clone(), Mask::dense(&l.shape)))
                .collect(),
        }
    }

    /// Builds masks from row-major keep flags per layer (same order as `layers`).
    pub fn from_flags(layers: &[Layer], flags: &[Vec<bool>]) -> Self {
        assert_eq!(layers.len(), flags.len(), "one flag vector per layer");
        MaskSet {
            masks: layers
                .iter()
                .zip(flags)
                .map(|(l, f)| (l.path.clone(), Mask::from_keep(&l.shape, f)))
                .collect(),
        }
    }

    /// The masks currently set on `net` for `layers` (a layer without a mask counts as dense).
    pub fn from_net(net: &dyn Network, layers: &[Layer]) -> Self {
        MaskSet {
            masks: layers
                .iter()
                .map(|l| {
                    (
                        l.path.clone(),
                        net.mask(&l.path).unwrap_or_else(|| Mask::dense(&l.shape)),
                    )
                })
                .collect(),
        }
    }

    /// Sets every mask on `net` (which zeroes the pruned weights).
    pub fn apply(&self, net: &mut dyn Network) -> Result<()> {
        for (path, m) in &self.masks {
            net.set_mask(path, Some(m))?;
        }
        Ok(())
    }

    /// Removes the masks of these layers from `net` (the weights keep their values; pruned ones stay zero).
    pub fn clear(net: &mut dyn Network, layers: &[Layer]) -> Result<()> {
        for l in layers {
            net.set_mask(&l.path, None)?;
        }
        Ok(())
    }

    pub fn get(&self, path: &str) -> Result<&Mask> {
        self.masks
            .get(path)
            .ok_or_else(|| Error::UnknownTensor(format!("no mask for {path}")))
    }

    /// Kept entries over all masks.
    pub fn nnz(&self) -> usize {
        self.masks.values().map(Mask::nnz).sum()
    }

    /// Entries over all masks.
    pub fn len(&self) -> usize {
        self.masks.values().map(Mask::len).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.masks.is_empty()
    }

    /// Fraction of masked entries over all masks (0 for an empty set).
    pub fn sparsity(&self) -> f64 {
        let n = self.len();
        if n == 0 {
            0.0
        } else {
            1.0 - self.nnz() as f64 / n as f64
        }
    }

    /// Fraction of kept entries over all masks.
    pub fn density(&self) -> f64 {
        1.0 - self.sparsity()
    }

    /// Keep flags of each layer in the order of `layers`.
    pub fn flags(&self, layers: &[Layer]) -> Result<Vec<Vec<bool>>> {
        layers
            .iter()
            .map(|l| Ok(self.get(&l.path)?.keep_flags()))
            .collect()
    }
}

/// Reads the weights of `layers` from `net` as flat row-major vectors.
pub fn read_weights(net: &dyn Network, layers: &[Layer]) -> Result<Vec<Vec<f32>>> {
    layers
        .iter()
        .map(|l| Ok(net.read(&l.path)?.iter().copied().collect()))
        .collect()
}

/// Reads the gradients of `layers` from `net` (from its last backward pass) as flat row-major vectors.
pub fn read_grads(net: &dyn Network, layers: &[Layer]) -> Result<Vec<Vec<f32>>> {
    layers
        .iter()
        .map(|l| Ok(net.grad(&l.path)?.iter().copied().collect()))
        .collect()
}

/// Number of entries a density `d` keeps in a tensor of `n` entries (rounded to nearest).
pub fn kept_count(n: usize, density: f64) -> usize {
    ((density * n as f64).round() as usize).min(n)
}

/// Checks a sparsity value from a recipe or flag: a fraction in [0, 1).
pub fn check_sparsity(name: &str, s: f64) -> Result<()> {
    if !(s.is_finite() && (0.0..1.0).contains(&s)) {
        return Err(Error::Recipe(format!(
            "{name} must be a sparsity in [0, 1), got {s}"
        )));
    }
    Ok(())
}
