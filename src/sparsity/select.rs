//! Choosing entries by score: per-layer and global top-k, and the one update primitive (prune k by score, grow k
//! by score). Higher score = more worth keeping. Ties go to the lower index (then the earlier layer), and NaN
//! scores rank lowest, so every selection is deterministic.

use std::cmp::Ordering;

fn key(s: f32) -> f32 {
    if s.is_nan() {
        f32::NEG_INFINITY
    } else {
        s
    }
}

/// Descending by score, ascending by position on ties.
fn by_score_desc(a: (f32, usize), b: (f32, usize)) -> Ordering {
    key(b.0).total_cmp(&key(a.0)).then(a.1.cmp(&b.1))
}

/// Keep flags selecting the `k` highest scores (`k` is clamped to the length).
pub fn top_k(scores: &[f32], k: usize) -> Vec<bool> {
    let k = k.min(scores.len());
    let mut idx: Vec<usize> = (0..scores.len()).collect();
    if k < scores.len() && k > 0 {
        idx.select_nth_unstable_by(k - 1, |&a, &b| {
            by_score_desc((scores[a], a), (scores[b], b))
        });
    }
    let mut keep = vec![false; scores.len()];
    for &i in &idx[..k] {
        keep[i] = true;
    }
    keep
}

/// Keep flags selecting the `k` highest scores over all layers together (one global threshold).
pub fn global_top_k(scores: &[Vec<f32>], k: usize) -> Vec<Vec<bool>> {
    let mut all: Vec<(f32, usize, usize)> = Vec::with_capacity(scores.iter().map(Vec::len).sum());
    for (l, s) in scores.iter().enumerate() {
        all.extend(s.iter().enumerate().map(|(i, &v)| (v, l, i)));
    }
    let k = k.min(all.len());
    let cmp = |a: &(f32, usize, usize), b: &(f32, usize, usize)| {
        key(b.0)
            .total_cmp(&key(a.0))
            .then((a.1, a.2).cmp(&(b.1, b.2)))
    };
    if k < all.len() && k > 0 {
        all.select_nth_unstable_by(k - 1, cmp);
    }
    let mut keep: Vec<Vec<bool>> = scores.iter().map(|s| vec![false; s.len()]).collect();
    for &(_, l, i) in &all[..k] {
        keep[l][i] = true;
    }
    keep
}

/// Scores with every inactive position (`keep[i] == false`) set to −∞, so a selection of at most the active
/// count never revives a pruned entry.
pub fn restrict(scores: &[f32], keep: &[bool]) -> Vec<f32> {
    scores
        .iter()
        .zip(keep)
        .map(|(&s, &k)| if k { s } else { f32::NEG_INFINITY })
        .collect()
}

/// Removes the `k` active entries with the lowest scores. Returns the new flags.
pub fn prune_lowest(keep: &[bool], scores: &[f32], k: usize) -> Vec<bool> {
    let active = keep.iter().filter(|&&b| b).count();
    let k = k.min(active);
    top_k(&restrict(scores, keep), active - k)
}

/// Turns on the `k` inactive entries with the highest scores. Returns the new flags.
pub fn grow_highest(keep: &[bool], scores: &[f32], k: usize) -> Vec<bool> {
    let inactive: Vec<usize> = (0..keep.len()).filter(|&i| !keep[i]).collect();
    let cand: Vec<f32> = inactive.iter().map(|&i| scores[i]).collect();
    let chosen = top_k(&cand, k);
    let mut out = keep.to_vec();
    for (j, &i) in inactive.iter().enumerate() {
        if chosen[j] {
            out[i] = true;
        }
    }
    out
}

/// The update primitive: prune the `k` active entries with the lowest `prune_scores`, then grow `k` entries with
/// the highest `grow_scores` among all inactive ones (including those just pruned). The active count is unchanged
/// when there are enough candidates. Returns the new flags and the positions turned on that were off before
/// the prune or were pruned by it (the caller starts them at zero).
pub fn prune_and_grow(
    keep: &[bool],
    prune_scores: &[f32],
    grow_scores: &[f32],
    k: usize,
) -> (Vec<bool>, Vec<usize>) {
    let pruned = prune_lowest(keep, prune_scores, k);
    let removed = keep.iter().zip(&pruned).filter(|(&a, &b)| a && !b).count();
    let grown = grow_highest(&pruned, grow_scores, removed);
    let new: Vec<usize> = (0..keep.len())
        .filter(|&i| grown[i] && !pruned[i])
        .collect();
    (grown, new)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn top_k_breaks_ties_by_index_and_ranks_nan_lowest() {
        assert_eq!(
            top_k(&[1.0, 3.0, 3.0, 2.0], 2),
            vec![false, true, true, false]
        );
        assert_eq!(top_k(&[5.0, 5.0, 5.0], 2), vec![true, true, false]);
        assert_eq!(top_k(&[f32::NAN, -1.0], 1), vec![false, true]);
        assert_eq!(top_k(&[1.0], 4), vec![true]);
    }

    #[test]
    fn global_top_k_uses_one_threshold() {
        let keep = global_top_k(&[vec![0.1, 0.9, 0.5], vec![0.8, 0.2]], 3);
        assert_eq!(keep, vec![vec![false, true, true], vec![true, false]]);
    }

    #[test]
    fn prune_then_grow_keeps_the_count() {
        let keep = [true, true, true, false, false];
        let prune = [0.3, 0.1, 0.5, 9.0, 9.0];
        let grow = [0.0, 0.0, 0.0, 0.2, 0.7];
        let (new, grown) = prune_and_grow(&keep, &prune, &grow, 1);
        assert_eq!(new, vec![true, false, true, false, true]);
        assert_eq!(grown, vec![4]);
        let (again, grown) = prune_and_grow(&keep, &prune, &[0.0, 5.0, 0.0, 0.0, 0.0], 1);
        assert_eq!(again, keep.to_vec());
        assert_eq!(grown, vec![1]);
    }
}
