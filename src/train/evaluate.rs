//! Evaluation of a network on a dataset, and the density of its masks.

use crate::data::{self, Dataset, Normalization};
use crate::engine::Network;
use crate::error::Result;
use crate::nn::loss::{count_correct, cross_entropy};

/// Mean loss (no label smoothing) and accuracy of the network's eval-mode predictions on `ds`, in batches of
/// `batch`; `(0, 0)` for an empty dataset.
pub fn evaluate(
    net: &mut dyn Network,
    ds: &Dataset,
    norm: &Normalization,
    batch: usize,
) -> Result<(f64, f64)> {
    if ds.is_empty() {
        return Ok((0.0, 0.0));
    }
    let mut loss = 0.0;
    let mut correct = 0usize;
    let idx: Vec<usize> = (0..ds.len()).collect();
    for chunk in idx.chunks(batch.max(1)) {
        let (x, y) = data::make_batch(ds, chunk, norm, None, 0);
        let logits = net.predict(x.view())?;
        loss += cross_entropy(logits.view(), &y, 0.0).0 * chunk.len() as f64;
        correct += count_correct(logits.view(), &y);
    }
    Ok((loss / ds.len() as f64, correct as f64 / ds.len() as f64))
}

/// Fraction of prunable weights kept by the masks (1 when there are none).
pub fn density(net: &dyn Network) -> f64 {
    let (mut kept, mut total) = (0usize, 0usize);
    for t in net.tensors().iter().filter(|t| t.is_prunable()) {
        let n: usize = t.shape.iter().product();
        total += n;
        kept += net.mask(&t.path).map_or(n, |m| m.nnz());
    }
    if total == 0 {
        1.0
    } else {
        kept as f64 / total as f64
    }
}
