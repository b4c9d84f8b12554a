//! Chooses, per conv/gemm weight, dense storage or CSR with one index format: whichever is smallest in the
//! binary encodings of formats/scb.md, among the formats a target allows. Costs in bytes (`e` = value size,
//! `rows + 1` u32 row pointers for CSR):
//!
//! - dense: `rows · cols · e`;
//! - `Gap8`: `(nnz + fillers) · (e + 1) + 4 (rows + 1)`, one filler per 256 columns skipped in a gap;
//! - `U16`: `nnz · (e + 2) + 4 (rows + 1)` (only when `cols ≤ 65536`); `U32`: `nnz · (e + 4) + 4 (rows + 1)`;
//! - `Rice`: `nnz · e + ⌈bits / 8⌉`, no row pointers, `bits` the length of the Rice-coded gap stream with the
//!   best parameter ([`rice::best_param`]), which the encoder then uses.
//!
//! Ties keep the earlier choice in the order dense, Gap8, U16, U32, Rice. Only exact zeros are dropped, so the
//! graph computes the same function.
//!
//! With [`Objective::Speed`] the choice is per kernel instead (the runtime's kernels, `formats/scb.md` §7): a
//! weight whose density reaches [`DENSE_CONV`] (convolutions) or [`DENSE_GEMM`] (gemms) stays dense, for the
//! blocked dense kernels; sparser weights take the smallest allowed CSR encoding that the sparse kernels read
//! in place (Gap8, U16, U32), Rice only when nothing else is allowed.

use crate::compile::emit::rice;
use crate::compile::ir::{Graph, IndexEncoding, Storage, Weight};
use crate::error::Result;

/// Stored bytes of `w` (its current values and dtype) in `format` (`None` = dense), or `None` when the format
/// cannot hold it.
pub fn cost(w: &Weight, format: Option<IndexEncoding>) -> Option<usize> {
    let (rows, cols, e) = (w.rows(), w.cols(), w.dtype.size());
    let dense = w.to_dense();
    let nnz = dense.iter().filter(|v| **v != 0.0).count();
    let ptrs = 4 * (rows + 1);
    Some(match format {
        None | Some(IndexEncoding::Dense) => rows * cols * e,
        Some(IndexEncoding::CsrGap8) => {
            let mut fillers = 0;
            for row in dense.chunks(cols.max(1)) {
                let mut next = 0;
                for (c, v) in row.iter().enumerate() {
                    if *v != 0.0 {
                        fillers += (c - next) / 256;
                        next = c + 1;
                    }
                }
            }
            (nnz + fillers) * (e + 1) + ptrs
        }
        Some(IndexEncoding::CsrIdx16) if cols > 65536 => return None,
        Some(IndexEncoding::CsrIdx16) => nnz * (e + 2) + ptrs,
        Some(IndexEncoding::CsrIdx32) => nnz * (e + 4) + ptrs,
        Some(IndexEncoding::Rice) => {
            let gaps = rice::gaps((0..dense.len()).filter(|&p| dense[p] != 0.0));
            nnz * e + rice::best_param(&gaps).1.div_ceil(8)
        }
    })
}

/// The smallest storage for `w` among dense and `allowed`.
pub fn choose(w: &Weight, allowed: &[IndexEncoding]) -> Option<IndexEncoding> {
    let mut best = (cost(w, None).unwrap_or(usize::MAX), None);
    for &f in allowed {
        if let Some(c) = cost(w, Some(f)) {
            if c < best.0 {
                best = (c, Some(f));
            }
        }
    }
    best.1
}

/// What the per-weight storage choice optimises.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Objective {
    /// The fewest bytes.
    #[default]
    Size,
    /// The fastest kernels.
    Speed,
}

/// Density from which a convolution weight stays dense under [`Objective::Speed`]: the dense kernel shares
/// each input load among four output channels and runs near the FMA peak, the sparse kernel near half of it.
pub const DENSE_CONV: f64 = 0.4;
/// Density from which a gemm weight stays dense under [`Objective::Speed`]: dense rows run as vector dot
/// products, sparse rows one entry at a time.
pub const DENSE_GEMM: f64 = 0.15;

/// The storage for `w` under [`Objective::Speed`] among dense and `allowed`.
pub fn choose_for_speed(
    w: &Weight,
    conv: bool,
    allowed: &[IndexEncoding],
) -> Option<IndexEncoding> {
    let density = 1.0 - w.sparsity();
    if density >= if conv { DENSE_CONV } else { DENSE_GEMM } {
        return None;
    }
    let in_place: Vec<IndexEncoding> = allowed
        .iter()
        .copied()
        .filter(|f| *f != IndexEncoding::Rice)
        .collect();
    let pool = if in_place.is_empty() {
        allowed
    } else {
        &in_place[..]
    };
    let mut best: Option<(usize, IndexEncoding)> = None;
    for &f in pool {
        if let Some(c) = cost(w, Some(f)) {
            if best.is_none_or(|(b, _)| c < b) {
                best = Some((c, f));
            }
        }
    }
    best.map(|(_, f)| f)
}

/// Re-stores every weight in its smallest allowed form.
pub fn layout(graph: Graph, allowed: &[IndexEncoding]) -> Result<Graph> {
    layout_for(graph, allowed, Objective::Size)
}

/// Re-stores every weight in the form `objective` prefers among dense and `allowed`.
pub fn layout_for(
    mut graph: Graph,
    allowed: &[IndexEncoding],
    objective: Objective,
) -> Result<Graph> {
    for node in &mut graph.nodes {
        let conv = matches!(node.op, crate::compile::ir::Op::Conv { .. });
        if let Some(w) = node.op.weight_mut() {
            let choice = match objective {
                Objective::Size => choose(w, allowed),
                Objective::Speed => choose_for_speed(w, conv, allowed),
            };
            w.storage = match choice {
                None => Storage::Dense(w.to_dense()),
                Some(f) => w.to_csr(f),
            };
        }
    }
    Ok(graph)
}
