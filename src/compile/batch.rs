//! Batches through the runtime crate on the rayon pool: each worker thread has its own arena and claims the
//! next sample not yet taken, so a worker slowed by the rest of the machine takes fewer samples rather than
//! holding the batch up. Every sample's result is independent of the others and of which worker ran it, so
//! any thread count gives bit-identical logits.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

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
    let workers = threads.clamp(1, n);
    if workers == 1 {
        let mut arena = AlignedArena::new(model.arena_size());
        for (xi, yi) in xs.chunks_exact(per).zip(out.chunks_exact_mut(classes)) {
            model.run(xi, arena.bytes(), yi)?;
        }
        return Ok(());
    }
    let next = AtomicUsize::new(0);
    let out = Mutex::new(out);
    let failure: Mutex<Option<RunError>> = Mutex::new(None);
    rayon::scope(|scope| {
        for _ in 0..workers {
            scope.spawn(|_| {
                let mut arena = AlignedArena::new(model.arena_size());
                let mut logits = vec![0f32; classes];
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= n {
                        break;
                    }
                    if let Err(e) =
                        model.run(&xs[i * per..(i + 1) * per], arena.bytes(), &mut logits)
                    {
                        next.store(n, Ordering::Relaxed);
                        failure
                            .lock()
                            .unwrap_or_else(|p| p.into_inner())
                            .get_or_insert(e);
                        break;
                    }
                    let mut out = out.lock().unwrap_or_else(|p| p.into_inner());
                    out[i * classes..(i + 1) * classes].copy_from_slice(&logits);
                }
            });
        }
    });
    match failure.into_inner().unwrap_or_else(|p| p.into_inner()) {
        Some(e) => Err(e),
        None => Ok(()),
    }
}
