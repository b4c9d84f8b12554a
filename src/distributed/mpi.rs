//! The MPI world (cargo feature `mpi`, Open MPI or any MPI through rsmpi) as a [`Collective`].
//!
//! A sum is a reduce-scatter done as an all-to-all (rank `j` receives everyone's copy of segment `j` and sums
//! it in rank order) followed by an all-gather of the summed segments: each rank sends and receives
//! `2 (N−1)/N` of the buffer, as a ring all-reduce does, but the order of every sum is fixed, which
//! `MPI_Allreduce` does not promise. Buffers shorter than [`SMALL`] elements are all-gathered whole and summed
//! on every rank (one round trip instead of two).
//!
//! [`Collective::pending_sums`] runs the same two exchanges as immediate (non-blocking) collectives, on two
//! duplicates of the world communicator of their own: the first exchange of every pushed buffer on one, the
//! second on the other, each started in push order on every rank, so that neither interleaves with the
//! blocking collectives (batch-norm statistics, totals) the caller runs on the world communicator meanwhile.

use std::collections::VecDeque;
use std::os::raw::{c_int, c_void};
use std::sync::{Arc, Mutex};

use mpi::datatype::Equivalence;
use mpi::environment::Universe;
use mpi::ffi::{MPI_Comm, MPI_Request};
use mpi::raw::AsRaw;
use mpi::topology::SimpleCommunicator;
use mpi::traits::*;
use mpi::Threading;

use super::{install, sum_in_rank_order, Collective, CommClock, PendingSums};

/// Below this many elements a sum is one all-gather of the whole buffers.
pub const SMALL: usize = 2048;

/// The communicators of this job.
struct Comms {
    /// Every blocking collective.
    world: SimpleCommunicator,
    /// The first exchange of each pending sum (the all-to-all, or the all-gather of a small buffer).
    first: SimpleCommunicator,
    /// The second exchange of each pending sum (the all-gather of the summed segments).
    second: SimpleCommunicator,
}

/// The world communicator of this job.
pub struct MpiWorld {
    comm: Mutex<Comms>,
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
    let world = universe.world();
    let (rank, size) = (world.rank() as usize, world.size() as usize);
    let (first, second) = (world.duplicate(), world.duplicate());
    install(Arc::new(MpiWorld {
        comm: Mutex::new(Comms {
            world,
            first,
            second,
        }),
        rank,
        size,
        clock: CommClock::default(),
    }))?;
    Ok(MpiGuard {
        _universe: universe,
    })
}

/// Sums `blocks`, one block of `out.len()` elements per rank in rank order, into `out` in rank order.
fn sum_rank_blocks<T: Copy + std::ops::AddAssign>(out: &mut [T], blocks: &[T]) {
    let parts: Vec<&[T]> = blocks.chunks(out.len()).collect();
    sum_in_rank_order(out, &parts);
}

impl MpiWorld {
    fn sum<T>(&self, buf: &mut [T])
    where
        T: Equivalence + Copy + Default + std::ops::AddAssign,
    {
        if self.size == 1 || buf.is_empty() {
            return;
        }
        let comms = self.comm.lock().expect("MPI lock");
        let comm = &comms.world;
        self.clock.time(|| {
            let (n, p) = (buf.len(), self.size);
            if n < SMALL {
                let mut all = vec![T::default(); n * p];
                comm.all_gather_into(&buf[..], &mut all[..]);
                sum_rank_blocks(buf, &all);
                return;
            }
            let seg = n.div_ceil(p);
            let mut send = vec![T::default(); seg * p];
            send[..n].copy_from_slice(buf);
            let mut recv = vec![T::default(); seg * p];
            comm.all_to_all_into(&send[..], &mut recv[..]);
            let mut mine = vec![T::default(); seg];
            sum_rank_blocks(&mut mine, &recv);
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
        let comms = self.comm.lock().expect("MPI lock");
        self.clock.time(|| comms.world.barrier());
    }
    fn abort(&self, code: i32) -> ! {
        // Another thread may hold the lock inside a collective that will never complete; abort regardless.
        match self.comm.try_lock() {
            Ok(c) => c.world.abort(code),
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
    fn pending_sums(&self) -> Box<dyn PendingSums + '_> {
        Box::new(MpiSums {
            world: self,
            queue: VecDeque::new(),
        })
    }
}

/// Where one pending sum stands. The buffers are heap allocations that stay in place (never resized) while
/// an exchange reads or writes them; a send buffer is held only for MPI to read it.
#[allow(
    dead_code,
    reason = "send buffers are read by MPI through pointers only"
)]
enum Stage {
    /// A small buffer: all-gathering every rank's whole copy into `all`.
    Whole { buf: Vec<f32>, all: Vec<f32> },
    /// All-to-all of the segments: `send` (the buffer, padded to `size` segments) into `recv`.
    Scatter { send: Vec<f32>, recv: Vec<f32> },
    /// All-gather of this rank's summed segment `mine` into `out`.
    Gather { mine: Vec<f32>, out: Vec<f32> },
    /// The sum.
    Done(Vec<f32>),
}

/// One pushed buffer: its length, its stage and the request of the stage's exchange (null once it is done).
struct Pending {
    n: usize,
    stage: Stage,
    request: MPI_Request,
}

/// [`PendingSums`] of the MPI world: immediate collectives, tested in push order.
struct MpiSums<'a> {
    world: &'a MpiWorld,
    queue: VecDeque<Pending>,
}

/// A null request.
fn null_request() -> MPI_Request {
    // SAFETY: reads a constant of the MPI library, valid once it is loaded.
    unsafe { mpi::ffi::RSMPI_REQUEST_NULL }
}

/// Starts `MPI_Iallgather` of `send` into `recv` (`send.len()` elements from each rank) on `comm`.
fn start_all_gather(comm: MPI_Comm, send: &[f32], recv: &mut [f32]) -> MPI_Request {
    let mut request = null_request();
    // SAFETY: `recv` holds `send.len()` elements per rank of `comm`; the caller keeps both buffers alive and
    // in place, and does not touch `recv`, until the request completes; `request` is written by MPI.
    unsafe {
        mpi::ffi::MPI_Iallgather(
            send.as_ptr() as *const c_void,
            send.len() as c_int,
            f32::equivalent_datatype().as_raw(),
            recv.as_mut_ptr() as *mut c_void,
            send.len() as c_int,
            f32::equivalent_datatype().as_raw(),
            comm,
            &mut request,
        );
    }
    request
}

/// Starts `MPI_Ialltoall` of `send` into `recv` (`send.len() / size` elements to and from each rank).
fn start_all_to_all(comm: MPI_Comm, size: usize, send: &[f32], recv: &mut [f32]) -> MPI_Request {
    let mut request = null_request();
    let seg = (send.len() / size) as c_int;
    // SAFETY: `send` and `recv` both hold `size` segments of `seg` elements; the caller keeps them alive and
    // in place, and does not touch `recv`, until the request completes; `request` is written by MPI.
    unsafe {
        mpi::ffi::MPI_Ialltoall(
            send.as_ptr() as *const c_void,
            seg,
            f32::equivalent_datatype().as_raw(),
            recv.as_mut_ptr() as *mut c_void,
            seg,
            f32::equivalent_datatype().as_raw(),
            comm,
            &mut request,
        );
    }
    request
}

/// Whether `request` has completed (then it is set to null), waiting for it when `block`.
fn complete(request: &mut MPI_Request, block: bool) -> bool {
    if *request == null_request() {
        return true;
    }
    let mut flag: c_int = 1;
    // SAFETY: `request` is an active request started by this module; MPI_STATUS_IGNORE is a valid status
    // argument.
    unsafe {
        let status = mpi::ffi::RSMPI_STATUS_IGNORE;
        if block {
            mpi::ffi::MPI_Wait(request, status);
        } else {
            mpi::ffi::MPI_Test(request, &mut flag, status);
        }
    }
    flag != 0
}

impl MpiSums<'_> {
    /// Moves every sum on as far as it goes without waiting (or, with `block`, to the end). A sum starts its
    /// second exchange only after every earlier sum has started its own, so the second communicator sees
    /// them in push order on every rank.
    fn advance(&mut self, comms: &Comms, block: bool) {
        let size = self.world.size;
        let mut in_order = true;
        for p in self.queue.iter_mut() {
            if matches!(p.stage, Stage::Done(_)) {
                continue;
            }
            let scattering = matches!(p.stage, Stage::Scatter { .. });
            if (scattering && !in_order) || !complete(&mut p.request, block) {
                in_order &= !scattering;
                continue;
            }
            p.stage = match std::mem::replace(&mut p.stage, Stage::Done(Vec::new())) {
                Stage::Whole { all, .. } => {
                    let mut sum = vec![0.0; p.n];
                    sum_rank_blocks(&mut sum, &all);
                    Stage::Done(sum)
                }
                Stage::Scatter { send, recv } => {
                    let seg = send.len() / size;
                    let mut mine = vec![0.0; seg];
                    sum_rank_blocks(&mut mine, &recv);
                    let mut out = send;
                    p.request = start_all_gather(comms.second.as_raw(), &mine, &mut out);
                    Stage::Gather { mine, out }
                }
                Stage::Gather { mut out, .. } => {
                    out.truncate(p.n);
                    Stage::Done(out)
                }
                done @ Stage::Done(_) => done,
            };
            if block && !matches!(p.stage, Stage::Done(_)) {
                complete(&mut p.request, true);
                if let Stage::Gather { out, .. } = &mut p.stage {
                    let mut out = std::mem::take(out);
                    out.truncate(p.n);
                    p.stage = Stage::Done(out);
                }
            }
        }
    }
}

impl PendingSums for MpiSums<'_> {
    fn push(&mut self, buf: Vec<f32>) {
        let (n, p) = (buf.len(), self.world.size);
        if p == 1 || n == 0 {
            self.queue.push_back(Pending {
                n,
                stage: Stage::Done(buf),
                request: null_request(),
            });
            return;
        }
        let world = self.world;
        let comms = world.comm.lock().expect("MPI lock");
        world.clock.time(|| {
            let first = comms.first.as_raw();
            let pending = if n < SMALL {
                let mut all = vec![0.0; n * p];
                let request = start_all_gather(first, &buf, &mut all);
                Pending {
                    n,
                    stage: Stage::Whole { buf, all },
                    request,
                }
            } else {
                let seg = n.div_ceil(p);
                let mut send = buf;
                send.resize(seg * p, 0.0);
                let mut recv = vec![0.0; seg * p];
                let request = start_all_to_all(first, p, &send, &mut recv);
                Pending {
                    n,
                    stage: Stage::Scatter { send, recv },
                    request,
                }
            };
            self.queue.push_back(pending);
            self.advance(&comms, false);
        })
    }

    fn progress(&mut self) {
        if self.queue.is_empty() {
            return;
        }
        let world = self.world;
        let comms = world.comm.lock().expect("MPI lock");
        world.clock.time(|| self.advance(&comms, false));
    }

    fn finish(&mut self) -> Vec<Vec<f32>> {
        if !self.queue.is_empty() {
            let world = self.world;
            let comms = world.comm.lock().expect("MPI lock");
            world.clock.time(|| self.advance(&comms, true));
        }
        self.queue
            .drain(..)
            .map(|p| match p.stage {
                Stage::Done(sum) => sum,
                _ => unreachable!("a blocking advance completes every sum"),
            })
            .collect()
    }
}

impl Drop for MpiSums<'_> {
    fn drop(&mut self) {
        if self
            .queue
            .iter()
            .any(|p| !matches!(p.stage, Stage::Done(_)))
        {
            self.finish();
        }
    }
}
