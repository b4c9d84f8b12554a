//! Analyses of trained models: linear mode connectivity, sign flips, per-layer sparsity, plots.

pub mod checkpoints;
pub mod claims;
pub mod lease;
pub mod lmc;
pub mod plot;
pub mod report;
pub mod signs;
pub mod sweep;
pub mod table;

use std::collections::BTreeMap;

use ndarray::ArrayD;

use crate::sparsity::Mask;

/// A model state: tensors and masks by path (e.g. read from a checkpoint).
#[derive(Debug, Clone, Default)]
pub struct State {
    pub tensors: BTreeMap<String, ArrayD<f32>>,
    pub masks: BTreeMap<String, Mask>,
}

impl State {
    pub fn new(tensors: Vec<(String, ArrayD<f32>)>, masks: Vec<(String, Mask)>) -> Self {
        State {
            tensors: tensors.into_iter().collect(),
            masks: masks.into_iter().collect(),
        }
    }

    /// The tensor with its mask applied (pruned entries zero).
    pub fn masked(&self, path: &str) -> Option<ArrayD<f32>> {
        let t = self.tensors.get(path)?;
        Some(match self.masks.get(path) {
            Some(m) => {
                let mul = m.multiplier();
                let mut out = t.clone();
                out.iter_mut().zip(&mul).for_each(|(v, k)| *v *= k);
                out
            }
            None => t.clone(),
        })
    }
}
