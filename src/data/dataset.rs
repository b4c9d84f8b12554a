//! The in-memory dataset: u8 images in N×C×H×W order with their labels.

use super::order;
use crate::error::{Error, Result};

/// An image classification dataset held as bytes: images N×C×H×W u8, labels < classes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Dataset {
    pub name: String,
    /// Channels, height, width of one image.
    pub shape: [usize; 3],
    pub classes: usize,
    pub images: Vec<u8>,
    pub labels: Vec<u32>,
}

/// The training and test splits of a dataset.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Splits {
    pub train: Dataset,
    pub test: Dataset,
}

impl Dataset {
    /// Number of images.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// Bytes in one image (C·H·W).
    pub fn image_size(&self) -> usize {
        self.shape.iter().product()
    }

    /// The pixels of image `i` in C×H×W order. Panics if `i >= len()`.
    pub fn image(&self, i: usize) -> &[u8] {
        let s = self.image_size();
        &self.images[i * s..(i + 1) * s]
    }

    /// Number of images of each class, indexed by label.
    pub fn class_counts(&self) -> Vec<usize> {
        let mut counts = vec![0; self.classes];
        for &l in &self.labels {
            counts[l as usize] += 1;
        }
        counts
    }

    /// The images at `idx`, in that order (repeats allowed). Panics on an index out of range.
    pub fn subset(&self, idx: &[usize]) -> Dataset {
        let s = self.image_size();
        let mut images = Vec::with_capacity(idx.len() * s);
        for &i in idx {
            images.extend_from_slice(self.image(i));
        }
        Dataset {
            name: self.name.clone(),
            shape: self.shape,
            classes: self.classes,
            images,
            labels: idx.iter().map(|&i| self.labels[i]).collect(),
        }
    }

    /// Held-out validation split: returns `(train, validation)`, disjoint, together covering every image, each
    /// keeping the original order. The validation part has exactly `round(fraction · len)` images, chosen per class
    /// (class-stratified: each class gets its proportional share, the rounding remainders going to the classes with
    /// the largest fractional parts, ties to the lower label) and within a class by a shuffle seeded with `seed`.
    /// `fraction` must lie in `[0, 1)` and leave at least one training image.
    pub fn split_validation(&self, fraction: f64, seed: u64) -> Result<(Dataset, Dataset)> {
        if !(0.0..1.0).contains(&fraction) {
            return Err(Error::Invalid(format!(
                "validation fraction must be in [0, 1), got {fraction}"
            )));
        }
        let n = self.len();
        let total = (fraction * n as f64).round() as usize;
        if total >= n && n > 0 {
            return Err(Error::Invalid(format!(
                "validation fraction {fraction} of {n} images leaves no training images"
            )));
        }
        let counts = self.class_counts();
        let quotas = stratified_quotas(&counts, total);

        let mut by_class: Vec<Vec<usize>> = counts.iter().map(|&c| Vec::with_capacity(c)).collect();
        for (i, &l) in self.labels.iter().enumerate() {
            by_class[l as usize].push(i);
        }
        let mut in_val = vec![false; n];
        for (class, members) in by_class.iter_mut().enumerate() {
            let mut r = order::rng(seed, order::STREAM_VALIDATION + class as u64);
            order::shuffle(members, &mut r);
            for &i in &members[..quotas[class]] {
                in_val[i] = true;
            }
        }
        let (val, train): (Vec<usize>, Vec<usize>) = (0..n).partition(|&i| in_val[i]);
        Ok((self.subset(&train), self.subset(&val)))
    }
}

/// Splits `total` across classes in proportion to `counts` by the largest-remainder method; the result sums to
/// `total` (which must not exceed the sum of `counts`) and never exceeds a class's count.
fn stratified_quotas(counts: &[usize], total: usize) -> Vec<usize> {
    let n: usize = counts.iter().sum();
    if n == 0 {
        return vec![0; counts.len()];
    }
    let exact: Vec<u128> = counts.iter().map(|&c| c as u128 * total as u128).collect();
    let mut quotas: Vec<usize> = exact.iter().map(|&e| (e / n as u128) as usize).collect();
    let assigned: usize = quotas.iter().sum();
    let mut by_remainder: Vec<usize> = (0..counts.len()).collect();
    by_remainder.sort_by(|&a, &b| {
        (exact[b] % n as u128)
            .cmp(&(exact[a] % n as u128))
            .then(a.cmp(&b))
    });
    for &c in by_remainder.iter().take(total - assigned) {
        quotas[c] += 1;
    }
    quotas
}

#[cfg(test)]
mod tests {
    use super::*;

    fn toy(labels: &[u32], classes: usize) -> Dataset {
        Dataset {
            name: "toy".into(),
            shape: [1, 1, 2],
            classes,
            images: (0..labels.len() * 2).map(|i| i as u8).collect(),
            labels: labels.to_vec(),
        }
    }

    #[test]
    fn subset_copies_images_and_labels() {
        let d = toy(&[0, 1, 2], 3);
        let s = d.subset(&[2, 0]);
        assert_eq!(s.images, vec![4, 5, 0, 1]);
        assert_eq!(s.labels, vec![2, 0]);
        assert_eq!(s.image(1), &[0, 1]);
    }

    #[test]
    fn quotas_sum_exactly_and_are_proportional() {
        assert_eq!(stratified_quotas(&[10, 10, 10], 3), vec![1, 1, 1]);
        assert_eq!(stratified_quotas(&[10, 10, 10], 4), vec![2, 1, 1]);
        assert_eq!(stratified_quotas(&[1, 99], 10), vec![0, 10]);
        assert_eq!(stratified_quotas(&[5, 0, 5], 9), vec![5, 0, 4]);
        let q = stratified_quotas(&[7, 13, 29, 51], 37);
        assert_eq!(q.iter().sum::<usize>(), 37);
    }

    #[test]
    fn bad_fractions_are_errors() {
        let d = toy(&[0, 1, 0, 1], 2);
        assert!(d.split_validation(1.0, 0).is_err());
        assert!(d.split_validation(-0.1, 0).is_err());
        assert!(d.split_validation(f64::NAN, 0).is_err());
        assert!(d.split_validation(0.9, 0).is_err());
        let (t, v) = d.split_validation(0.0, 0).unwrap();
        assert_eq!((t.len(), v.len()), (4, 0));
    }
}
