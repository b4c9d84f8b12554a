//! [`GradientBuckets`]: the gradients of a backward pass packed into buckets in the order the pass finishes
//! them, each bucket summed over the ranks through [`PendingSums`] as soon as it is full, so that the
//! exchange overlaps the rest of the backward pass (as PyTorch's DistributedDataParallel does).

use std::collections::HashMap;

use super::PendingSums;
use crate::engine::Network;
use crate::error::{Error, Result};
use crate::nn::{TensorInfo, TensorRole};

/// Environment variable setting the bucket size in KiB; `0` sums all gradients in one blocking exchange after
/// the backward pass. The results are bit-identical for every value.
pub const BUCKET_ENV: &str = "SCULPT_BUCKET_KIB";

/// Default bucket size: small enough that the gradients of a CIFAR ResNet-20 (1.1 MB) fill several buckets.
pub const DEFAULT_BUCKET_BYTES: usize = 256 * 1024;

/// The bucket size in bytes that [`BUCKET_ENV`] sets ([`DEFAULT_BUCKET_BYTES`] when it is unset); an error
/// message when it is not a whole number of KiB.
pub fn bucket_bytes_from_env() -> std::result::Result<usize, String> {
    match std::env::var(BUCKET_ENV) {
        Err(_) => Ok(DEFAULT_BUCKET_BYTES),
        Ok(v) => v
            .trim()
            .parse::<usize>()
            .ok()
            .and_then(|kib| kib.checked_mul(1024))
            .ok_or_else(|| format!("{BUCKET_ENV}={v:?} is not a size in KiB (0 for no buckets)")),
    }
}

/// Whether data-parallel training sums the gradient of `info` over the ranks: every parameter except the
/// batch-norm scales and shifts, which synchronised batch norm already computes for the global batch.
pub fn summed_over_ranks(info: &TensorInfo) -> bool {
    info.is_param() && !matches!(info.role, TensorRole::BnWeight | TensorRole::BnBias)
}

/// Where one gradient lies: its bucket and its range there.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Placement {
    bucket: usize,
    offset: usize,
    len: usize,
}

/// Gradients packed into buckets of at least `capacity` elements (the last one may be smaller), whole
/// gradients only, in the order they are added; each full bucket is pushed to the sums at once.
pub struct GradientBuckets<'a> {
    sums: Box<dyn PendingSums + 'a>,
    capacity: usize,
    open: Vec<f32>,
    pushed: usize,
    placed: HashMap<String, Placement>,
    order: Vec<String>,
    twice: Option<String>,
}

impl<'a> GradientBuckets<'a> {
    /// Buckets of `bucket_bytes` (at least one element) summed through `sums`.
    pub fn new(sums: Box<dyn PendingSums + 'a>, bucket_bytes: usize) -> Self {
        GradientBuckets {
            sums,
            capacity: (bucket_bytes / std::mem::size_of::<f32>()).max(1),
            open: Vec::new(),
            pushed: 0,
            placed: HashMap::new(),
            order: Vec::new(),
            twice: None,
        }
    }

    /// Appends the gradient of `path` to the open bucket and starts summing the bucket when it is full; moves
    /// the sums under way on. A path added twice makes [`GradientBuckets::finish`] fail.
    pub fn add(&mut self, path: &str, grad: &[f32]) {
        let at = Placement {
            bucket: self.pushed,
            offset: self.open.len(),
            len: grad.len(),
        };
        if self.placed.insert(path.to_string(), at).is_some() {
            self.twice.get_or_insert_with(|| path.to_string());
        }
        self.order.push(path.to_string());
        self.open.extend_from_slice(grad);
        if self.open.len() >= self.capacity {
            self.push_open();
        }
        self.sums.progress();
    }

    fn push_open(&mut self) {
        if !self.open.is_empty() {
            let full = std::mem::replace(&mut self.open, Vec::with_capacity(self.capacity));
            self.sums.push(full);
            self.pushed += 1;
        }
    }

    /// Starts the last bucket, waits for every sum and returns the summed gradients.
    pub fn finish(mut self) -> Result<SummedGradients> {
        self.push_open();
        let buckets = self.sums.finish();
        if let Some(path) = self.twice.take() {
            return Err(Error::Invalid(format!(
                "the backward pass handed the gradient of {path} over twice"
            )));
        }
        debug_assert_eq!(buckets.len(), self.pushed);
        Ok(SummedGradients {
            buckets,
            placed: std::mem::take(&mut self.placed),
            order: std::mem::take(&mut self.order),
        })
    }
}

/// The gradients of one backward pass summed over the ranks, by path.
#[derive(Debug)]
pub struct SummedGradients {
    buckets: Vec<Vec<f32>>,
    placed: HashMap<String, Placement>,
    order: Vec<String>,
}

impl SummedGradients {
    /// The summed gradient of `path`, when it was added.
    pub fn get(&self, path: &str) -> Option<&[f32]> {
        let p = self.placed.get(path)?;
        Some(&self.buckets[p.bucket][p.offset..p.offset + p.len])
    }

    /// The buckets, in the order they were summed.
    pub fn buckets(&self) -> &[Vec<f32>] {
        &self.buckets
    }

    /// The paths in the order they were added.
    pub fn paths(&self) -> &[String] {
        &self.order
    }

    /// Overwrites every gradient of `net` that is [`summed_over_ranks`] with its sum; an error when one of
    /// them, or any other gradient, was not added exactly once.
    pub fn write_to(&self, net: &mut dyn Network) -> Result<()> {
        let mut missing = None;
        let mut written = 0;
        net.visit_gradients(&mut |info, g| {
            if !summed_over_ranks(info) {
                return;
            }
            match self.get(&info.path).filter(|s| s.len() == g.len()) {
                Some(s) => {
                    g.copy_from_slice(s);
                    written += 1;
                }
                None => {
                    missing.get_or_insert_with(|| info.path.clone());
                }
            }
        })?;
        if let Some(path) = missing {
            return Err(Error::Invalid(format!(
                "the backward pass did not hand over the gradient of {path}"
            )));
        }
        if written != self.placed.len() {
            return Err(Error::Invalid(format!(
                "the backward pass handed over {} gradients, of which {written} are summed parameters",
                self.placed.len()
            )));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::distributed::{Collective, Single};

    fn grads() -> Vec<(String, Vec<f32>)> {
        [700usize, 3, 1500, 1, 64, 2000, 5]
            .iter()
            .enumerate()
            .map(|(i, &n)| {
                let g = (0..n).map(|j| (i * 10_000 + j) as f32).collect();
                (format!("t{i}"), g)
            })
            .collect()
    }

    #[test]
    fn buckets_hold_every_gradient_once_whole_and_in_order() {
        let one = Single;
        for bytes in [0, 4, 1024, 4096, 8192, 1 << 20] {
            let mut b = GradientBuckets::new(one.pending_sums(), bytes);
            for (p, g) in grads() {
                b.add(&p, &g);
            }
            let s = b.finish().unwrap();
            let cap = (bytes / 4).max(1);
            let flat: Vec<f32> = s.buckets().concat();
            let want: Vec<f32> = grads().into_iter().flat_map(|(_, g)| g).collect();
            assert_eq!(
                flat, want,
                "buckets concatenated are the gradients in order"
            );
            let (last, full) = s.buckets().split_last().unwrap();
            assert!(!last.is_empty());
            for bucket in full {
                assert!(bucket.len() >= cap, "a bucket was sent before it was full");
            }
            for (p, g) in grads() {
                assert_eq!(s.get(&p).unwrap(), g.as_slice(), "{p} at {bytes} B");
            }
            assert_eq!(s.paths().len(), grads().len());
            if bytes == 4 {
                assert_eq!(s.buckets().len(), grads().len(), "one gradient per bucket");
            }
            if bytes == 1 << 20 {
                assert_eq!(s.buckets().len(), 1);
            }
        }
    }

    #[test]
    fn a_gradient_added_twice_is_an_error() {
        let one = Single;
        let mut b = GradientBuckets::new(one.pending_sums(), 64);
        b.add("w", &[1.0]);
        b.add("w", &[2.0]);
        let e = b.finish().unwrap_err().to_string();
        assert!(e.contains("twice"), "{e}");
    }
}
