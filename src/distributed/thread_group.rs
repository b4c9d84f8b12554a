//! [`ThreadGroup`]: N ranks as threads of one process, exchanging through shared memory. It keeps the
//! [`Collective`] contract exactly as the MPI world does (sums in rank order), so a data-parallel run can be
//! tested without a launcher, and gives the same bits as an MPI job of the same size and thread count.

use std::sync::{Arc, Barrier, Mutex};

use super::{sum_in_rank_order, Collective, CommClock};

#[derive(Debug)]
struct Shared {
    size: usize,
    barrier: Barrier,
    f32s: Mutex<Vec<Vec<f32>>>,
    f64s: Mutex<Vec<Vec<f64>>>,
}

/// One rank of an in-process group; [`ThreadGroup::new`] makes all of them, to be moved one per thread.
/// `abort` panics on the calling thread only (the others would wait forever), so it is for tests.
#[derive(Debug)]
pub struct ThreadGroup {
    rank: usize,
    shared: Arc<Shared>,
    clock: CommClock,
}

impl ThreadGroup {
    /// The `size` ranks of a new group, rank `r` at index `r`.
    pub fn new(size: usize) -> Vec<ThreadGroup> {
        assert!(size > 0, "a group has at least one rank");
        let shared = Arc::new(Shared {
            size,
            barrier: Barrier::new(size),
            f32s: Mutex::new(vec![Vec::new(); size]),
            f64s: Mutex::new(vec![Vec::new(); size]),
        });
        (0..size)
            .map(|rank| ThreadGroup {
                rank,
                shared: shared.clone(),
                clock: CommClock::default(),
            })
            .collect()
    }

    fn exchange<T: Copy + std::ops::AddAssign>(&self, slots: &Mutex<Vec<Vec<T>>>, buf: &mut [T]) {
        self.clock.time(|| {
            {
                let mut s = slots.lock().expect("group lock");
                s[self.rank].clear();
                s[self.rank].extend_from_slice(buf);
            }
            self.shared.barrier.wait();
            {
                let s = slots.lock().expect("group lock");
                assert!(
                    s.iter().all(|p| p.len() == buf.len()),
                    "ranks passed buffers of different lengths to a collective"
                );
                let parts: Vec<&[T]> = s.iter().map(|p| p.as_slice()).collect();
                sum_in_rank_order(buf, &parts);
            }
            self.shared.barrier.wait();
        })
    }
}

impl Collective for ThreadGroup {
    fn rank(&self) -> usize {
        self.rank
    }
    fn size(&self) -> usize {
        self.shared.size
    }
    fn sum_f32(&self, buf: &mut [f32]) {
        self.exchange(&self.shared.f32s, buf)
    }
    fn sum_f64(&self, buf: &mut [f64]) {
        self.exchange(&self.shared.f64s, buf)
    }
    fn barrier(&self) {
        self.clock.time(|| {
            self.shared.barrier.wait();
        });
    }
    fn abort(&self, code: i32) -> ! {
        panic!(
            "rank {} of a thread group aborted with code {code}",
            self.rank
        )
    }
    fn comm_seconds(&self) -> f64 {
        self.clock.seconds()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_rank_gets_the_rank_order_sum() {
        let ranks = ThreadGroup::new(3);
        let results: Vec<(Vec<f32>, Vec<f64>)> = std::thread::scope(|s| {
            let hs: Vec<_> = ranks
                .iter()
                .map(|g| {
                    s.spawn(move || {
                        let r = g.rank() as f32;
                        let mut a = vec![r, 10.0 * r, if r == 0.0 { 1e8 } else { 1.0 }];
                        g.sum_f32(&mut a);
                        let mut b = vec![r as f64 + 0.5];
                        g.sum_f64(&mut b);
                        g.barrier();
                        (a, b)
                    })
                })
                .collect();
            hs.into_iter().map(|h| h.join().unwrap()).collect()
        });
        for (a, b) in &results {
            assert_eq!(a, &results[0].0);
            assert_eq!(&a[..2], &[3.0, 30.0]);
            assert_eq!(a[2], (1e8f32 + 1.0) + 1.0);
            assert_eq!(b, &[4.5]);
        }
    }
}
