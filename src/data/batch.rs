//! Batch assembly: gathers images, applies augmentation and normalisation, and writes NCHW f32.

use ndarray::{Array4, ArrayViewMut4};
use rayon::prelude::*;

use super::augment::{self, Augment, Draw};
use super::dataset::Dataset;
use super::normalize::Normalization;

/// Assembles a normalised NCHW f32 batch of the images at `idx` and their labels. With `Some(augment)` each image
/// is transformed as [`augment::render`] defines, the randomness a pure function of `aug_seed` (derive it from
/// (seed, epoch, batch index) with [`super::batch_seed`]). Panics if an index is out of range or `norm` has the
/// wrong channel count.
pub fn make_batch(
    ds: &Dataset,
    idx: &[usize],
    norm: &Normalization,
    augment: Option<&Augment>,
    aug_seed: u64,
) -> (Array4<f32>, Vec<u32>) {
    let [c, h, w] = ds.shape;
    let mut images = Array4::zeros((idx.len(), c, h, w));
    let mut labels = Vec::with_capacity(idx.len());
    fill_batch(
        ds,
        idx,
        norm,
        augment,
        aug_seed,
        images.view_mut(),
        &mut labels,
    );
    (images, labels)
}

/// The samples `part` of the batch that [`make_batch`] assembles from `idx` (the same images, augmented with
/// the same draws, as its rows `part`): what one data-parallel replica reads of a global batch. Panics as
/// [`make_batch`] does, or if `part` is not within `idx`.
pub fn make_batch_part(
    ds: &Dataset,
    idx: &[usize],
    part: std::ops::Range<usize>,
    norm: &Normalization,
    augment: Option<&Augment>,
    aug_seed: u64,
) -> (Array4<f32>, Vec<u32>) {
    let [c, h, w] = ds.shape;
    let mine = &idx[part.clone()];
    let table = norm.table(c);
    let draws = match augment {
        Some(a) if !a.is_identity() => a.draws(idx.len(), aug_seed)[part].to_vec(),
        _ => vec![Draw::default(); mine.len()],
    };
    let mut images = Array4::zeros((mine.len(), c, h, w));
    let out = images.as_slice_mut().expect("fresh arrays are contiguous");
    let size = c * h * w;
    if size > 0 {
        out.par_chunks_mut(size)
            .zip(mine.par_iter())
            .zip(draws.par_iter())
            .for_each(|((o, &i), &d)| augment::render(ds.image(i), ds.shape, &table, d, o));
    }
    (images, mine.iter().map(|&i| ds.labels[i]).collect())
}

/// [`make_batch`] into caller-owned buffers (no allocation once `labels` has capacity): `images` must have shape
/// `[idx.len(), C, H, W]` and be in standard layout; `labels` is cleared and refilled. Results do not depend on
/// the number of threads.
pub fn fill_batch(
    ds: &Dataset,
    idx: &[usize],
    norm: &Normalization,
    augment: Option<&Augment>,
    aug_seed: u64,
    mut images: ArrayViewMut4<f32>,
    labels: &mut Vec<u32>,
) {
    let [c, h, w] = ds.shape;
    assert_eq!(
        images.shape(),
        &[idx.len(), c, h, w],
        "batch buffer shape does not match {} images of shape {:?}",
        idx.len(),
        ds.shape
    );
    let table = norm.table(c);
    let draws = match augment {
        Some(a) if !a.is_identity() => a.draws(idx.len(), aug_seed),
        _ => vec![Draw::default(); idx.len()],
    };
    let out = images
        .as_slice_mut()
        .expect("batch buffer must be in standard (C-contiguous) layout");
    let size = c * h * w;
    if size > 0 {
        out.par_chunks_mut(size)
            .zip(idx.par_iter())
            .zip(draws.par_iter())
            .for_each(|((o, &i), &d)| augment::render(ds.image(i), ds.shape, &table, d, o));
    }
    labels.clear();
    labels.extend(idx.iter().map(|&i| ds.labels[i]));
}
