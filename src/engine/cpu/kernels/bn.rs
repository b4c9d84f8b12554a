//! 2-D batch normalisation over `x[N, C, HW]`: statistics per channel over `N·HW` values, accumulated in f64
//! per chunk of samples and reduced in chunk order (deterministic for a given thread count).

use rayon::prelude::*;

use super::{chunk_size, FlushDenormals};

/// Shape of a batch-norm input: samples, channels, spatial size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BnShape {
    pub n: usize,
    pub c: usize,
    pub hw: usize,
}

impl BnShape {
    fn sample(&self) -> usize {
        self.c * self.hw
    }
    /// Values per channel.
    pub fn count(&self) -> usize {
        self.n * self.hw
    }
}

/// Per-channel sums of `f(a, b)` over the batch, in f64. `b` is read alongside `a` when given.
fn channel_sums(
    sh: BnShape,
    a: &[f32],
    b: Option<&[f32]>,
    f: impl Fn(usize, &[f32], Option<&[f32]>, &mut [f64; 2]) + Sync,
) -> Vec<[f64; 2]> {
    let cs = chunk_size(sh.n);
    let len = cs * sh.sample();
    let parts: Vec<Vec<[f64; 2]>> = a
        .par_chunks(len)
        .enumerate()
        .map(|(i, ac)| {
            let _ftz = FlushDenormals::new();
            let bc = b.map(|b| &b[i * len..(i * len + ac.len())]);
            let mut acc = vec![[0.0f64; 2]; sh.c];
            for s in 0..ac.len() / sh.sample() {
                for (ch, slot) in acc.iter_mut().enumerate() {
                    let off = s * sh.sample() + ch * sh.hw;
                    f(
                        ch,
                        &ac[off..off + sh.hw],
                        bc.map(|b| &b[off..off + sh.hw]),
                        slot,
                    );
                }
            }
            acc
        })
        .collect();
    let mut total = vec![[0.0f64; 2]; sh.c];
    for p in &parts {
        for (t, v) in total.iter_mut().zip(p) {
            t[0] += v[0];
            t[1] += v[1];
        }
    }
    total
}

/// Lanes of the f64 accumulators of the per-channel sums: independent lanes let the loops vectorise while the
/// summation order stays fixed.
const LANES: usize = 8;

/// `(Σ f(a), Σ g(a, b))` over a row in f64, [`LANES`] independent accumulators folded in lane order.
#[inline(always)]
fn lane_sums(
    a: &[f32],
    b: &[f32],
    f: impl Fn(f64) -> f64,
    g: impl Fn(f64, f64) -> f64,
) -> (f64, f64) {
    let (mut s, mut q) = ([0.0f64; LANES], [0.0f64; LANES]);
    let (ca, cb) = (a.chunks_exact(LANES), b.chunks_exact(LANES));
    let (ra, rb) = (ca.remainder(), cb.remainder());
    for (u, v) in ca.zip(cb) {
        for j in 0..LANES {
            s[j] += f(u[j] as f64);
            q[j] += g(u[j] as f64, v[j] as f64);
        }
    }
    for (j, (&u, &v)) in ra.iter().zip(rb).enumerate() {
        s[j] += f(u as f64);
        q[j] += g(u as f64, v as f64);
    }
    (s.iter().sum(), q.iter().sum())
}

/// Sum and sum of squares of a row, in f64.
fn sum_sumsq(_: usize, row: &[f32], _: Option<&[f32]>, acc: &mut [f64; 2]) {
    let (s, q) = lane_sums(row, row, |u| u, |u, _| u * u);
    acc[0] += s;
    acc[1] += q;
}

/// Sums a buffer in place over the replicas of a data-parallel run (see [`reduce_sums`]).
pub type SumOverReplicas = dyn Fn(&mut [f64]);

/// Batch mean and biased variance per channel.
pub fn batch_stats(sh: BnShape, x: &[f32]) -> (Vec<f64>, Vec<f64>) {
    let sums = channel_sums(sh, x, None, sum_sumsq);
    moments(&sums, sh.count() as f64)
}

/// [`batch_stats`] of a global batch of which `x` is one replica's part: the per-channel sums and the value
/// count are summed over the replicas by `reduce` (see [`reduce_sums`]). Returns the mean, the biased variance
/// and the global number of values per channel.
pub fn reduced_batch_stats(
    sh: BnShape,
    x: &[f32],
    reduce: &SumOverReplicas,
) -> (Vec<f64>, Vec<f64>, f64) {
    let (sums, m) = reduce_sums(channel_sums(sh, x, None, sum_sumsq), sh.count(), reduce);
    let (mean, var) = moments(&sums, m);
    (mean, var, m)
}

/// Mean and biased variance from per-channel (sum, sum of squares) over `m` values.
fn moments(sums: &[[f64; 2]], m: f64) -> (Vec<f64>, Vec<f64>) {
    sums.iter()
        .map(|&[s, q]| {
            let mean = s / m;
            (mean, (q / m - mean * mean).max(0.0))
        })
        .unzip()
}

/// Per-channel sum pairs and a value count, summed by `reduce` over one flat buffer `[s0, q0, s1, q1, …,
/// count]`; returns the reduced pairs and count.
pub fn reduce_sums(
    sums: Vec<[f64; 2]>,
    count: usize,
    reduce: &SumOverReplicas,
) -> (Vec<[f64; 2]>, f64) {
    let mut flat: Vec<f64> = sums.iter().flatten().copied().collect();
    flat.push(count as f64);
    reduce(&mut flat);
    let m = flat.pop().expect("count");
    (flat.chunks_exact(2).map(|p| [p[0], p[1]]).collect(), m)
}

/// `y = x · scale[c] + shift[c]`, optionally followed by ReLU.
pub fn affine(sh: BnShape, x: &[f32], scale: &[f32], shift: &[f32], relu: bool, y: &mut [f32]) {
    let cs = chunk_size(sh.n);
    y.par_chunks_mut(cs * sh.sample())
        .zip(x.par_chunks(cs * sh.sample()))
        .for_each(|(yc, xc)| {
            let _ftz = FlushDenormals::new();
            for (yr, (xr, ch)) in yc
                .chunks_mut(sh.hw)
                .zip(xc.chunks(sh.hw).zip((0..sh.c).cycle()))
            {
                let (a, b) = (scale[ch], shift[ch]);
                if relu {
                    yr.iter_mut()
                        .zip(xr)
                        .for_each(|(o, &v)| *o = (v * a + b).max(0.0));
                } else {
                    yr.iter_mut().zip(xr).for_each(|(o, &v)| *o = v * a + b);
                }
            }
        });
}

/// Backward of `y = gamma · (x − mean) · invstd + beta`.
///
/// `batch_stats == true` is the train-mode backward (mean and invstd are functions of the batch);
/// `false` treats them as constants (eval mode). Writes `dgamma` and `dbeta`; writes or adds (`accumulate`) the
/// input gradient to `dx`.
#[allow(clippy::too_many_arguments)]
pub fn backward(
    sh: BnShape,
    x: &[f32],
    dy: &[f32],
    mean: &[f32],
    invstd: &[f32],
    gamma: &[f32],
    batch_stats: bool,
    dx: Option<(&mut [f32], bool)>,
    dgamma: &mut [f32],
    dbeta: &mut [f32],
) {
    backward_reduced(
        sh,
        x,
        dy,
        mean,
        invstd,
        gamma,
        batch_stats,
        dx,
        dgamma,
        dbeta,
        None,
    );
}

/// [`backward`] of synchronised batch norm: with `Some(reduce)` the per-channel sums `(Σ dy, Σ dy·(x − mean))`
/// and the value count are summed over the replicas (see [`reduce_sums`]) before use, so the input gradient
/// is that of the global batch and `dgamma`, `dbeta` are the global batch's gradients, equal on every replica.
#[allow(clippy::too_many_arguments)]
pub fn backward_reduced(
    sh: BnShape,
    x: &[f32],
    dy: &[f32],
    mean: &[f32],
    invstd: &[f32],
    gamma: &[f32],
    batch_stats: bool,
    dx: Option<(&mut [f32], bool)>,
    dgamma: &mut [f32],
    dbeta: &mut [f32],
    reduce: Option<&SumOverReplicas>,
) {
    // sums[c] = (Σ dy, Σ dy·(x − mean))
    let sums = channel_sums(sh, dy, Some(x), |ch, d, xr, acc| {
        let xr = xr.expect("x given");
        let c = mean[ch] as f64;
        let (s, p) = lane_sums(d, xr, |g| g, |g, v| g * (v - c));
        acc[0] += s;
        acc[1] += p;
    });
    let (sums, m) = match reduce {
        Some(r) => reduce_sums(sums, sh.count(), r),
        None => (sums, sh.count() as f64),
    };
    let mut k1 = vec![0.0f32; sh.c];
    let mut k2 = vec![0.0f32; sh.c];
    let mut k0 = vec![0.0f32; sh.c];
    for ch in 0..sh.c {
        let [sdy, sdyx] = sums[ch];
        dbeta[ch] = sdy as f32;
        dgamma[ch] = (sdyx * invstd[ch] as f64) as f32;
        let gi = gamma[ch] as f64 * invstd[ch] as f64;
        // dx = gi · (dy − Σdy/M − (x − mean) · invstd² · Σdy(x−mean)/M)
        k0[ch] = gi as f32;
        if batch_stats {
            k1[ch] = (gi * sdy / m) as f32;
            k2[ch] = (gi * invstd[ch] as f64 * invstd[ch] as f64 * sdyx / m) as f32;
        }
    }
    let Some((dx, acc)) = dx else { return };
    let cs = chunk_size(sh.n);
    dx.par_chunks_mut(cs * sh.sample())
        .zip(
            dy.par_chunks(cs * sh.sample())
                .zip(x.par_chunks(cs * sh.sample())),
        )
        .for_each(|(dxc, (dyc, xc))| {
            let _ftz = FlushDenormals::new();
            let rows = dxc
                .chunks_mut(sh.hw)
                .zip(dyc.chunks(sh.hw).zip(xc.chunks(sh.hw)));
            for (ch, (o, (d, xr))) in (0..sh.c).cycle().zip(rows) {
                let (a, b, c2, mu) = (k0[ch], k1[ch], k2[ch], mean[ch]);
                let it = o.iter_mut().zip(d.iter().zip(xr));
                if acc {
                    it.for_each(|(o, (&g, &v))| *o += a * g - b - c2 * (v - mu));
                } else {
                    it.for_each(|(o, (&g, &v))| *o = a * g - b - c2 * (v - mu));
                }
            }
        });
}
