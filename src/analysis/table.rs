//! Per-layer sparsity tables.

use serde::Serialize;

use super::State;
use crate::nn::TensorInfo;

/// One prunable layer.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SparsityRow {
    pub layer: String,
    pub shape: Vec<usize>,
    pub params: usize,
    /// Entries kept by the mask (all, without a mask).
    pub kept: usize,
    /// Entries that are non-zero.
    pub nonzero: usize,
    /// 1 − kept / params.
    pub sparsity: f64,
}

/// The rows of every prunable layer in `tensors` (graph order) plus a total row named `total`.
pub fn sparsity_table(state: &State, tensors: &[TensorInfo]) -> Vec<SparsityRow> {
    let mut rows: Vec<SparsityRow> = tensors
        .iter()
        .filter(|t| t.is_prunable())
        .filter_map(|t| {
            let w = state.masked(&t.path)?;
            let params = w.len();
            let kept = state.masks.get(&t.path).map_or(params, |m| m.nnz());
            let nonzero = w.iter().filter(|&&v| v != 0.0).count();
            Some(SparsityRow {
                layer: t.path.clone(),
                shape: t.shape.clone(),
                params,
                kept,
                nonzero,
                sparsity: 1.0 - kept as f64 / params.max(1) as f64,
            })
        })
        .collect();
    let params: usize = rows.iter().map(|r| r.params).sum();
    let kept: usize = rows.iter().map(|r| r.kept).sum();
    let nonzero: usize = rows.iter().map(|r| r.nonzero).sum();
    rows.push(SparsityRow {
        layer: "total".into(),
        shape: vec![],
        params,
        kept,
        nonzero,
        sparsity: 1.0 - kept as f64 / params.max(1) as f64,
    });
    rows
}

/// A fixed-width text rendering of a sparsity table.
pub fn render(rows: &[SparsityRow]) -> String {
    let w = rows.iter().map(|r| r.layer.len()).max().unwrap_or(5).max(5);
    let mut s = format!(
        "{:<w$}  {:>18}  {:>10}  {:>10}  {:>10}  {:>8}\n",
        "layer", "shape", "params", "kept", "nonzero", "sparsity"
    );
    for r in rows {
        let shape = r
            .shape
            .iter()
            .map(|d| d.to_string())
            .collect::<Vec<_>>()
            .join("x");
        s += &format!(
            "{:<w$}  {:>18}  {:>10}  {:>10}  {:>10}  {:>7.2}%\n",
            r.layer,
            shape,
            r.params,
            r.kept,
            r.nonzero,
            100.0 * r.sparsity
        );
    }
    s
}
