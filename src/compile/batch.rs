//! Batches through the runtime crate on the rayon pool: the batch is cut into one contiguous slice of
//! samples per worker thread, each slice runs on its own arena, one sample at a time. Every sample's result
//! is independent of the others and of the split, so any thread count gives bit-identical logits.

use rayon::prelude::*;
use sculpt_runtime::{Model, RunError};

/// A zeroed arena whose first byte is 16-byte aligned.
pub struct AlignedArena {
    storage: Vec<u8>,
    offset: usize,
    len: usize,
}

impl AlignedArena {
    /// An arena of `len` bytes.
    pub fn new(len: usize) -> Self {
        let storage = vec![0u8; len + 16];
        let offset = storage.as_ptr().align_offset(16).min(16);
        AlignedArena {
            storage,
            offset,
            len,
        }
    }

    /// The arena's bytes.
    pub fn bytes(&mut self) -> &mut [u8] {
        &mut self.storage[self.offset..self.offset + self.len]
    }
}

/// Runs every sample of `xs` (`model.input_len()` values each, concatenated) through `model` on up to
/// `threads` threads of the current rayon pool and writes the logits to `out` (`model.output_len()` per
/// sample). `xs` must hold a whole number of samples (`InputLength` with the length of the last, partial
/// sample otherwise) and `out` room for exactly their logits (`OutputLength` otherwise).
pub fn run_batch(
    model: &Model<'_>,
    xs: &[f32],
    out: &mut [f32],
    threads: usize,
) -> Result<(), RunError> {
    let (per, classes) = (model.input_len(), model.output_len());
    if per == 0 || !xs.len().is_multiple_of(per) {
        return Err(RunError::InputLength {
            expected: per as u32,
            got: (xs.len() % per.max(1)) as u32,
        });
    }
    let n = xs.len() / per;
    if out.len() != n * classes {
        return Err(RunError::OutputLength {
            expected: (n * classes) as u32,
            got: out.len() as u32,
        });
    }
    if n == 0 {
        return Ok(());
    }
    let share = n.div_ceil(threads.clamp(1, n));
    let run_slice = |(x, y): (&[f32], &mut [f32])| -> Result<(), RunError> {
        let mut arena = AlignedArena::new(model.arena_size());
        for (xi, yi) in x.chunks_exact(per).zip(y.chunks_exact_mut(classes)) {
            model.run(xi, arena.bytes(), yi)?;
        }
        Ok(())
    };
    if share >= n {
        return run_slice((xs, out));
    }
    xs.par_chunks(share * per)
        .zip(out.par_chunks_mut(share * classes))
        .try_for_each(run_slice)
}
