//! The MPI world (cargo feature `mpi`, Open MPI or any MPI through rsmpi) as a [`Collective`].
//!
//! A sum is a reduce-scatter done as an all-to-all (rank `j` receives everyone's copy of segment `j` and sums
//! it in rank order) followed by an all-gather of the summed segments: each rank sends and receives
//! `2 (N−1)/N` of the buffer, as a ring all-reduce does, but the order of every sum is fixed, which
//! `MPI_Allreduce` does not promise. Buffers shorter than [`SMALL`] elements are all-gathered whole and summed
//! on every rank (one round trip instead of two).

use std::sync::{Arc, Mutex};

use mpi::datatype::Equivalence;
use mpi::environment::Universe;
use mpi::topology::SimpleCommunicator;
use mpi::traits::*;
use mpi::Threading;

use super::{install, sum_in_rank_order, Collective, CommClock};

/// Below this many elements a sum is one all-gather of the whole buffers.
pub const SMALL: usize = 2048;

/// The world communicator of this job.
pub struct MpiWorld {
    comm: Mutex<SimpleCommunicator>,
    rank: usize,
    size: usize,
    clock: CommClock,
}

// SAFETY: MPI is initialised with at least `Threading::Serialized` (checked in `init`), and every call on the
// communicator is made under the mutex, so no two threads ever call MPI at once.
unsafe impl Send for MpiWorld {}
// SAFETY: as for Send: all access to the communicator goes through the mutex.
unsafe impl Sync for MpiWorld {}

/// Keeps MPI initialised; dropping it finalises MPI (after which no collective may run).
pub struct MpiGuard {
    _universe: Universe,
}

/// Initialises MPI, installs the world as this process's [`super::world`] and returns the guard to keep
/// until the end of `main`.
pub fn init() -> Result<MpiGuard, String> {
    let (universe, level) = mpi::initialize_with_threading(Threading::Serialized)
        .ok_or("MPI was already initialised in this process")?;
    if matches!(level, Threading::Single | Threading::Funneled) {
        return Err(format!(
            "the MPI library offers thread level {level:?}; sculpt needs at least Serialized"
        ));
    }
    let comm = universe.world();
    let (rank, size) = (comm.rank() as usize, comm.size() as usize);
    install(Arc::new(MpiWorld {
        comm: Mutex::new(comm),
        rank,
        size,
        clock: CommClock::default(),
    }))?;
    Ok(MpiGuard {
        _universe: universe,
    })
}

impl MpiWorld {
    fn sum<T>(&self, buf: &mut [T])
    where
        T: Equivalence + Copy + Default + std::ops::AddAssign,
    {
        if self.size == 1 || buf.is_empty() {
            return;
        }
        let comm = self.comm.lock().expect("MPI lock");
        self.clock.time(|| {
            let (n, p) = (buf.len(), self.size);
            if n < SMALL {
                let mut all = vec![T::default(); n * p];
                comm.all_gather_into(&buf[..], &mut all[..]);
                let parts: Vec<&[T]> = all.chunks(n).collect();
                sum_in_rank_order(buf, &parts);
                return;
            }
            let seg = n.div_ceil(p);
            let mut send = vec![T::default(); seg * p];
            send[..n].copy_from_slice(buf);
            let mut recv = vec![T::default(); seg * p];
            comm.all_to_all_into(&send[..], &mut recv[..]);
            let mut mine = vec![T::default(); seg];
            let parts: Vec<&[T]> = recv.chunks(seg).collect();
            sum_in_rank_order(&mut mine, &parts);
            comm.all_gather_into(&mine[..], &mut send[..]);
            buf.copy_from_slice(&send[..n]);
        })
    }
}

impl Collective for MpiWorld {
    fn rank(&self) -> usize {
        self.rank
    }
    fn size(&self) -> usize {
        self.size
    }
    fn sum_f32(&self, buf: &mut [f32]) {
        self.sum(buf)
    }
    fn sum_f64(&self, buf: &mut [f64]) {
        self.sum(buf)
    }
    fn barrier(&self) {
        let comm = self.comm.lock().expect("MPI lock");
        self.clock.time(|| comm.barrier());
    }
    fn abort(&self, code: i32) -> ! {
        // Another thread may hold the lock inside a collective that will never complete; abort regardless.
        match self.comm.try_lock() {
            Ok(c) => c.abort(code),
            Err(_) => {
                // SAFETY: MPI_COMM_WORLD is valid while MPI is initialised; MPI_Abort may be called from any
                // thread and does not return.
                unsafe {
                    mpi::ffi::MPI_Abort(mpi::ffi::RSMPI_COMM_WORLD, code);
                }
                std::process::abort()
            }
        }
    }
    fn comm_seconds(&self) -> f64 {
        self.clock.seconds()
    }
}
