//! Data-parallel training: the [`Collective`] seam the trainer reduces through, a no-op [`Single`] process,
//! an in-process [`ThreadGroup`] (ranks as threads, for tests), and with the `mpi` cargo feature the MPI world
//! of `mpirun -np N sculpt ...` (see [`mpi`]).
//!
//! Contract of every collective: a sum over the ranks is taken in rank order `0, 1, …, N−1` for every element,
//! so the result is bit-identical on every rank and from one run to the next for the same N. That is what
//! keeps the replicas' weights equal without ever sending them, and makes every method decision taken from
//! reduced values the same on every rank.

mod buckets;
#[cfg(feature = "mpi")]
pub mod mpi;
mod thread_group;

use std::ops::Range;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Instant;

pub use buckets::{
    bucket_bytes_from_env, summed_over_ranks, GradientBuckets, SummedGradients, BUCKET_ENV,
    DEFAULT_BUCKET_BYTES,
};
pub use thread_group::ThreadGroup;

/// A group of ranks training one model together.
pub trait Collective: Send + Sync {
    /// This process's rank, `0..size()`.
    fn rank(&self) -> usize;

    /// Number of ranks.
    fn size(&self) -> usize;

    /// Replaces `buf` on every rank by the element-wise sum over the ranks, in rank order. Every rank passes a
    /// buffer of the same length.
    fn sum_f32(&self, buf: &mut [f32]);

    /// [`Collective::sum_f32`] for f64.
    fn sum_f64(&self, buf: &mut [f64]);

    /// Returns once every rank has called it.
    fn barrier(&self);

    /// Ends every rank of the job with exit status `code` (MPI_Abort); a single process exits.
    fn abort(&self, code: i32) -> !;

    /// Seconds this process has spent inside the collectives so far.
    fn comm_seconds(&self) -> f64;

    /// A queue of f32 sums that run while the caller goes on computing (see [`PendingSums`]). The default
    /// sums each buffer with [`Collective::sum_f32`] when it is pushed (nothing overlaps).
    fn pending_sums(&self) -> Box<dyn PendingSums + '_> {
        Box::new(BlockingSums {
            comm: self,
            done: Vec::new(),
        })
    }
}

/// Sums over the ranks started one after the other and completed later, so that the exchange overlaps the
/// caller's computation. Every rank pushes buffers of the same lengths in the same order; each result is
/// bit-identical to [`Collective::sum_f32`] of the same buffer (the element-wise sum in rank order), however
/// the exchange is split or scheduled. Dropping a queue waits for the sums still under way.
pub trait PendingSums {
    /// Starts summing `buf` over the ranks.
    fn push(&mut self, buf: Vec<f32>);

    /// Moves the sums under way on without blocking (a transport that progresses only inside its calls needs
    /// this now and then).
    fn progress(&mut self);

    /// Waits for every sum pushed since the last `finish` and returns them in push order.
    fn finish(&mut self) -> Vec<Vec<f32>>;
}

/// [`PendingSums`] that sums at once, blocking.
struct BlockingSums<'a, C: ?Sized> {
    comm: &'a C,
    done: Vec<Vec<f32>>,
}

impl<C: Collective + ?Sized> PendingSums for BlockingSums<'_, C> {
    fn push(&mut self, mut buf: Vec<f32>) {
        self.comm.sum_f32(&mut buf);
        self.done.push(buf);
    }
    fn progress(&mut self) {}
    fn finish(&mut self) -> Vec<Vec<f32>> {
        std::mem::take(&mut self.done)
    }
}

/// One process alone: every collective is a no-op.
#[derive(Debug, Default, Clone, Copy)]
pub struct Single;

impl Collective for Single {
    fn rank(&self) -> usize {
        0
    }
    fn size(&self) -> usize {
        1
    }
    fn sum_f32(&self, _: &mut [f32]) {}
    fn sum_f64(&self, _: &mut [f64]) {}
    fn barrier(&self) {}
    fn abort(&self, code: i32) -> ! {
        std::process::exit(code)
    }
    fn comm_seconds(&self) -> f64 {
        0.0
    }
}

/// Accumulated wall time of the collectives of one rank.
#[derive(Debug, Default)]
pub struct CommClock(AtomicU64);

impl CommClock {
    /// Runs `f`, adding its wall time to the clock.
    pub fn time<T>(&self, f: impl FnOnce() -> T) -> T {
        let t0 = Instant::now();
        let r = f();
        self.0
            .fetch_add(t0.elapsed().as_nanos() as u64, Ordering::Relaxed);
        r
    }

    pub fn seconds(&self) -> f64 {
        self.0.load(Ordering::Relaxed) as f64 * 1e-9
    }
}

static WORLD: OnceLock<Arc<dyn Collective>> = OnceLock::new();

/// The collective of this process: the one installed by [`install`] (the MPI world under `mpirun`), else
/// [`Single`].
pub fn world() -> Arc<dyn Collective> {
    WORLD.get().cloned().unwrap_or_else(|| Arc::new(Single))
}

/// Makes `c` this process's [`world`]; an error message when one is already installed.
pub fn install(c: Arc<dyn Collective>) -> std::result::Result<(), String> {
    WORLD
        .set(c)
        .map_err(|_| "the process's collective is already installed".to_string())
}

/// Environment variables set by the MPI launchers (Open MPI's `mpirun`, MPICH's Hydra, PMIx, Slurm's `srun`
/// with PMI): one of them set means this process is one rank of a parallel job.
pub const LAUNCHER_ENV: [&str; 4] = [
    "OMPI_COMM_WORLD_SIZE",
    "PMI_SIZE",
    "PMIX_RANK",
    "MPI_LOCALNRANKS",
];

/// Whether an MPI launcher started this process.
pub fn launched_by_mpi() -> bool {
    LAUNCHER_ENV.iter().any(|k| std::env::var_os(k).is_some())
}

/// What [`launch`] keeps alive until the end of `main` (MPI is finalised when it is dropped).
#[cfg(feature = "mpi")]
pub type LaunchGuard = Option<mpi::MpiGuard>;
/// What [`launch`] keeps alive until the end of `main` (nothing without the `mpi` feature).
#[cfg(not(feature = "mpi"))]
pub type LaunchGuard = Option<std::convert::Infallible>;

/// Joins the MPI world when an MPI launcher started this process (see [`launched_by_mpi`]) and installs it
/// as [`world`]. `data_parallel` says whether the command runs data-parallel (`sculpt train`); any other
/// command started as several ranks is refused, since every rank would write the same files. Without the
/// `mpi` feature, several ranks are refused with a message saying how to build with it.
pub fn launch(data_parallel: bool) -> Result<LaunchGuard, String> {
    if !launched_by_mpi() {
        return Ok(None);
    }
    #[cfg(feature = "mpi")]
    {
        let guard = mpi::init()?;
        let w = world();
        if w.size() > 1 && !data_parallel {
            if w.rank() == 0 {
                eprintln!(
                    "error: only `sculpt train` runs on several MPI ranks; start this command as one process"
                );
            }
            w.abort(2);
        }
        Ok(Some(guard))
    }
    #[cfg(not(feature = "mpi"))]
    {
        let _ = data_parallel;
        let size = ["OMPI_COMM_WORLD_SIZE", "PMI_SIZE"]
            .iter()
            .find_map(|k| std::env::var(k).ok()?.parse::<usize>().ok())
            .unwrap_or(1);
        if size > 1 {
            return Err(format!(
                "started as one of {size} MPI ranks, but this sculpt was built without the `mpi` feature: \
                 every rank would train alone and write the same files. Build with \
                 `cargo build --release --features mpi` (needs libopenmpi-dev and libclang-dev; see README)"
            ));
        }
        Ok(None)
    }
}

/// The default worker-thread count of a rank started by an MPI launcher: the cores divided among the
/// ranks on this machine (`None` outside a launcher: all cores).
pub fn default_threads() -> Option<usize> {
    if !launched_by_mpi() {
        return None;
    }
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    Some((cores / local_ranks()).max(1))
}

/// Ranks of this job on this machine, as the launcher states it (1 when it does not).
pub fn local_ranks() -> usize {
    ["OMPI_COMM_WORLD_LOCAL_SIZE", "MPI_LOCALNRANKS"]
        .iter()
        .find_map(|k| std::env::var(k).ok()?.parse::<usize>().ok())
        .filter(|&n| n > 0)
        .unwrap_or(1)
}

/// The samples `[start, end)` of a global batch of `batch` that rank `rank` of `size` computes: contiguous
/// and in rank order, the first `batch % size` ranks one sample more.
pub fn shard(batch: usize, rank: usize, size: usize) -> Range<usize> {
    assert!(size > 0 && rank < size, "rank {rank} of {size}");
    let (q, r) = (batch / size, batch % size);
    let start = rank * q + rank.min(r);
    start..start + q + usize::from(rank < r)
}

/// Sums `parts` (one buffer per rank, each as long as `out`) element-wise into `out` in rank order: the one
/// reduction every collective uses.
pub fn sum_in_rank_order<T: Copy + std::ops::AddAssign>(out: &mut [T], parts: &[&[T]]) {
    let (first, rest) = parts.split_first().expect("at least one rank");
    out.copy_from_slice(&first[..out.len()]);
    for p in rest {
        for (o, &v) in out.iter_mut().zip(p.iter()) {
            *o += v;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_cover_the_batch_in_rank_order() {
        for (batch, size) in [(128, 2), (128, 3), (7, 4), (5, 5), (64, 1)] {
            let mut next = 0;
            for r in 0..size {
                let s = shard(batch, r, size);
                assert_eq!(s.start, next);
                assert!(s.len() == batch / size || s.len() == batch / size + 1);
                next = s.end;
            }
            assert_eq!(next, batch);
        }
    }

    #[test]
    fn rank_order_sum_is_sequential() {
        let (a, b, c) = ([1e8f32, 1.0], [1.0f32, 2.0], [-1e8f32, 3.0]);
        let mut out = [0.0f32; 2];
        sum_in_rank_order(&mut out, &[&a, &b, &c]);
        assert_eq!(out, [(1e8f32 + 1.0) - 1e8, 6.0]);
        assert_eq!(out[0], 0.0, "1e8 + 1 rounds to 1e8 in f32");
    }
}
