//! Per-channel normalisation of pixels scaled to [0, 1]: `x = (v/255 − mean[c]) / std[c]`.

use serde::{Deserialize, Serialize};

use super::dataset::Dataset;

/// Per-channel mean and standard deviation of pixels scaled to [0, 1].
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct Normalization {
    pub mean: Vec<f32>,
    pub std: Vec<f32>,
}

impl Normalization {
    /// The exact per-channel mean and population standard deviation of `ds` (computed from per-channel byte
    /// histograms in f64, so independent of image order and thread count). A channel with zero spread gets
    /// std 1; an empty dataset gives [`Normalization::identity`].
    pub fn from_dataset(ds: &Dataset) -> Normalization {
        let channels = ds.shape[0];
        if ds.is_empty() {
            return Normalization::identity(channels);
        }
        let plane = ds.shape[1] * ds.shape[2];
        let mut hist = vec![[0u64; 256]; channels];
        for img in ds.images.chunks_exact(ds.image_size()) {
            for (c, h) in hist.iter_mut().enumerate() {
                for &v in &img[c * plane..(c + 1) * plane] {
                    h[v as usize] += 1;
                }
            }
        }
        let count = (ds.len() * plane) as f64;
        let mut mean = Vec::with_capacity(channels);
        let mut std = Vec::with_capacity(channels);
        for h in &hist {
            let m = h
                .iter()
                .enumerate()
                .map(|(v, &n)| v as f64 / 255.0 * n as f64)
                .sum::<f64>()
                / count;
            let var = h
                .iter()
                .enumerate()
                .map(|(v, &n)| (v as f64 / 255.0 - m).powi(2) * n as f64)
                .sum::<f64>()
                / count;
            let s = var.sqrt();
            mean.push(m as f32);
            std.push(if s > 0.0 { s as f32 } else { 1.0 });
        }
        Normalization { mean, std }
    }

    /// Mean 0 and std 1 on every channel: pixels are only scaled to [0, 1].
    pub fn identity(channels: usize) -> Self {
        Normalization {
            mean: vec![0.0; channels],
            std: vec![1.0; channels],
        }
    }

    pub fn channels(&self) -> usize {
        self.mean.len()
    }

    /// The normalised value of every byte on every channel: `table[c * 256 + v]`. Panics if the normalisation does
    /// not have `channels` channels (a contract violation of the caller).
    pub fn table(&self, channels: usize) -> Vec<f32> {
        assert!(
            self.mean.len() == channels && self.std.len() == channels,
            "normalisation has {} means and {} stds, the images {channels} channels",
            self.mean.len(),
            self.std.len()
        );
        let mut t = Vec::with_capacity(channels * 256);
        for c in 0..channels {
            let (m, s) = (f64::from(self.mean[c]), f64::from(self.std[c]));
            t.extend((0..256).map(|v| ((v as f64 / 255.0 - m) / s) as f32));
        }
        t
    }
}
