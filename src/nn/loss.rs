//! Softmax cross-entropy with optional label smoothing.

use ndarray::{Array2, ArrayView2, Axis};

/// Mean softmax cross-entropy of `logits` (batch × classes) against `labels`, with label smoothing `eps`
/// (target = (1 − eps)·onehot + eps/classes). Returns the loss and its gradient with respect to the logits.
/// Computed in f64 internally for stability.
pub fn cross_entropy(logits: ArrayView2<f32>, labels: &[u32], eps: f32) -> (f64, Array2<f32>) {
    cross_entropy_part(logits, labels, eps, logits.dim().0)
}

/// [`cross_entropy`] of `logits`, one part of a batch of `total` samples split across data-parallel replicas:
/// returns the sum of this part's losses divided by `total` (the parts' values add up to the batch mean) and
/// the gradient of the batch mean with respect to these logits. With `total` the part's size it is
/// [`cross_entropy`].
pub fn cross_entropy_part(
    logits: ArrayView2<f32>,
    labels: &[u32],
    eps: f32,
    total: usize,
) -> (f64, Array2<f32>) {
    let (n, k) = logits.dim();
    assert!(total >= n, "a part of {n} samples of a batch of {total}");
    assert_eq!(
        n,
        labels.len(),
        "batch of {n} logits but {} labels",
        labels.len()
    );
    let mut grad = Array2::<f32>::zeros((n, k));
    let mut losses = 0.0f64;
    let eps = eps as f64;
    for (i, (row, mut g)) in logits.outer_iter().zip(grad.outer_iter_mut()).enumerate() {
        let max = row.iter().fold(f32::NEG_INFINITY, |a, &b| a.max(b)) as f64;
        let sum: f64 = row.iter().map(|&v| (v as f64 - max).exp()).sum();
        let log_z = max + sum.ln();
        let y = labels[i] as usize;
        assert!(y < k, "label {y} out of range for {k} classes");
        let mut loss = 0.0;
        for j in 0..k {
            let logp = row[j] as f64 - log_z;
            let target = eps / k as f64 + if j == y { 1.0 - eps } else { 0.0 };
            loss -= target * logp;
            g[j] = ((logp.exp() - target) / total as f64) as f32;
        }
        losses += loss;
    }
    (losses / total as f64, grad)
}

/// Number of rows whose arg-max equals the label (first maximum wins on ties).
pub fn count_correct(logits: ArrayView2<f32>, labels: &[u32]) -> usize {
    logits
        .axis_iter(Axis(0))
        .zip(labels)
        .filter(|(row, &y)| argmax(row.as_slice().unwrap_or(&row.to_vec())) == y as usize)
        .count()
}

/// Index of the first maximum.
pub fn argmax(v: &[f32]) -> usize {
    let mut best = 0;
    for (i, &x) in v.iter().enumerate() {
        if x > v[best] {
            best = i;
        }
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::array;

    #[test]
    fn gradient_matches_finite_differences() {
        let logits = array![[0.3f32, -1.2, 2.0], [0.0, 0.5, -0.5]];
        let labels = [2u32, 0];
        for eps in [0.0f32, 0.1] {
            let (_, g) = cross_entropy(logits.view(), &labels, eps);
            for i in 0..2 {
                for j in 0..3 {
                    let h = 1e-3f32;
                    let mut p = logits.clone();
                    p[[i, j]] += h;
                    let mut m = logits.clone();
                    m[[i, j]] -= h;
                    let fd = (cross_entropy(p.view(), &labels, eps).0
                        - cross_entropy(m.view(), &labels, eps).0)
                        / (2.0 * h as f64);
                    assert!(
                        (fd - g[[i, j]] as f64).abs() < 1e-4,
                        "{fd} vs {}",
                        g[[i, j]]
                    );
                }
            }
        }
    }

    #[test]
    fn uniform_logits_give_log_k() {
        let (l, _) = cross_entropy(Array2::zeros((4, 10)).view(), &[0, 1, 2, 3], 0.0);
        assert!((l - 10f64.ln()).abs() < 1e-9);
    }
}
