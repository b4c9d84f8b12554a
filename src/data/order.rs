//! Seeded orders: epoch shuffles and the deterministic random streams the data pipeline derives from a seed.
//!
//! Every random choice here comes from a ChaCha8 stream and an own Fisher–Yates shuffle with unbiased bounded
//! draws, so results depend only on the seed, never on the `rand` crate's shuffle implementation.

use rand::RngCore;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

/// Stream numbers that keep the data pipeline's random uses apart for one seed.
pub(crate) const STREAM_VALIDATION: u64 = 1 << 62;

/// SplitMix64 finaliser: a bijective mix of a 64-bit value.
pub(crate) fn mix64(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// A ChaCha8 generator for `seed` on stream `stream`.
pub(crate) fn rng(seed: u64, stream: u64) -> ChaCha8Rng {
    let mut r = ChaCha8Rng::seed_from_u64(seed);
    r.set_stream(stream);
    r
}

/// A uniform draw from `0..bound` (`bound > 0`) by widening multiplication with rejection (Lemire's method).
pub(crate) fn below(rng: &mut impl RngCore, bound: u64) -> u64 {
    debug_assert!(bound > 0);
    let threshold = bound.wrapping_neg() % bound;
    loop {
        let m = u128::from(rng.next_u64()) * u128::from(bound);
        if (m as u64) >= threshold {
            return (m >> 64) as u64;
        }
    }
}

/// Shuffles `v` in place (Fisher–Yates).
pub(crate) fn shuffle<T>(v: &mut [T], rng: &mut impl RngCore) {
    for i in (1..v.len()).rev() {
        let j = below(rng, i as u64 + 1) as usize;
        v.swap(i, j);
    }
}

/// The order in which epoch `epoch` visits `n` samples: a permutation of `0..n` that is a pure function of
/// `(n, seed, epoch)`, so a resumed run sees the same order.
pub fn epoch_order(n: usize, seed: u64, epoch: u64) -> Vec<usize> {
    let mut order: Vec<usize> = (0..n).collect();
    let mut r = rng(seed, epoch & (STREAM_VALIDATION - 1));
    shuffle(&mut order, &mut r);
    order
}

/// The augmentation seed of batch `batch` in epoch `epoch` of a run seeded with `seed`, for [`super::make_batch`].
pub fn batch_seed(seed: u64, epoch: u64, batch: u64) -> u64 {
    mix64(mix64(mix64(seed) ^ epoch) ^ batch)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounded_draws_are_uniform_enough() {
        let mut r = rng(7, 0);
        let mut counts = [0usize; 6];
        for _ in 0..60_000 {
            counts[below(&mut r, 6) as usize] += 1;
        }
        for c in counts {
            assert!((9_500..10_500).contains(&c), "{counts:?}");
        }
    }

    #[test]
    fn shuffle_visits_every_permutation_of_three() {
        let mut r = rng(3, 0);
        let mut seen = std::collections::BTreeMap::new();
        for _ in 0..6000 {
            let mut v = [0, 1, 2];
            shuffle(&mut v, &mut r);
            *seen.entry(v).or_insert(0usize) += 1;
        }
        assert_eq!(seen.len(), 6);
        assert!(seen.values().all(|&c| (850..1150).contains(&c)), "{seen:?}");
    }

    #[test]
    fn batch_seeds_differ_by_each_argument() {
        let s = batch_seed(1, 2, 3);
        assert_ne!(s, batch_seed(0, 2, 3));
        assert_ne!(s, batch_seed(1, 3, 3));
        assert_ne!(s, batch_seed(1, 2, 4));
        assert_eq!(s, batch_seed(1, 2, 3));
    }
}
