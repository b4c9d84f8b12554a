//! Evaluation of a network on a dataset, and the density of its masks.

use crate::data::{self, Dataset, Normalization};
use crate::distributed::{shard, Collective, Single};
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
    evaluate_split(net, ds, norm, batch, &Single)
}

/// [`evaluate`] with the batches shared among the ranks of `comm`: rank `r` of `N` evaluates the contiguous
/// block of batches [`shard`]`(batches, r, N)`, and the per-batch loss sums and correct counts are summed over
/// the ranks. Every batch is non-zero on one rank only and the totals are then added in batch order, so the
/// result is bit-identical to one process's [`evaluate`] for every `N`, and the same on every rank. Every rank
/// must call it with the same `ds` and `batch`.
pub fn evaluate_split(
    net: &mut dyn Network,
    ds: &Dataset,
    norm: &Normalization,
    batch: usize,
    comm: &dyn Collective,
) -> Result<(f64, f64)> {
    if ds.is_empty() {
        return Ok((0.0, 0.0));
    }
    let idx: Vec<usize> = (0..ds.len()).collect();
    let chunks: Vec<&[usize]> = idx.chunks(batch.max(1)).collect();
    let mine = shard(chunks.len(), comm.rank(), comm.size());
    let mut parts = vec![0.0f64; 2 * chunks.len()];
    for b in mine {
        let chunk = chunks[b];
        let (x, y) = data::make_batch(ds, chunk, norm, None, 0);
        let logits = net.predict(x.view())?;
        parts[2 * b] = cross_entropy(logits.view(), &y, 0.0).0 * chunk.len() as f64;
        parts[2 * b + 1] = count_correct(logits.view(), &y) as f64;
    }
    comm.sum_f64(&mut parts);
    let mut loss = 0.0;
    let mut correct = 0.0;
    for p in parts.chunks_exact(2) {
        loss += p[0];
        correct += p[1];
    }
    Ok((loss / ds.len() as f64, correct / ds.len() as f64))
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
