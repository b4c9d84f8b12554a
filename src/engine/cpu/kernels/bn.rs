//! 2-D batch normalisation over `x[N, C, HW]`: statistics per channel over `N·HW` values, accumulated in f64
//! per chunk of samples and reduced in chunk order (deterministic for a given thread count).

use rayon::prelude::*;

use super::{chunk_size, keep_if, FlushDenormals};

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
        add_chunk_sums(&mut total, p);
    }
    total
}

/// Lanes of the f64 accumulators of the per-channel sums: independent lanes let the loops vectorise while the
/// summation order stays fixed.
const LANES: usize = 8;

/// `(Σ f(a, b), Σ g(a, b))` over a row in f64, [`LANES`] independent accumulators folded in lane order.
#[inline(always)]
fn lane_sums(
    a: &[f32],
    b: &[f32],
    f: impl Fn(f64, f64) -> f64,
    g: impl Fn(f64, f64) -> f64,
) -> (f64, f64) {
    let (mut s, mut q) = ([0.0f64; LANES], [0.0f64; LANES]);
    let (ca, cb) = (a.chunks_exact(LANES), b.chunks_exact(LANES));
    let (ra, rb) = (ca.remainder(), cb.remainder());
    for (u, v) in ca.zip(cb) {
        for j in 0..LANES {
            s[j] += f(u[j] as f64, v[j] as f64);
            q[j] += g(u[j] as f64, v[j] as f64);
        }
    }
    for (j, (&u, &v)) in ra.iter().zip(rb).enumerate() {
        s[j] += f(u as f64, v as f64);
        q[j] += g(u as f64, v as f64);
    }
    (s.iter().sum(), q.iter().sum())
}

/// `dx (+)= a·g − b − c·(x − mean)` over one row with `[a, b, c, mean] = k` and `g` as in [`grad_row_sums`].
#[inline]
fn input_grad_row(
    dx: &mut [f32],
    dy: &[f32],
    x: &[f32],
    k: [f32; 4],
    relu: Option<(f32, f32)>,
    accumulate: bool,
) {
    let [a, b, c, mu] = k;
    let n = dx.len().min(dy.len()).min(x.len());
    let (dx, dy, x) = (&mut dx[..n], &dy[..n], &x[..n]);
    match (relu, accumulate) {
        (Some((sa, sb)), false) => {
            for i in 0..n {
                let g = keep_if(dy[i], x[i] * sa + sb > 0.0);
                dx[i] = a * g - b - c * (x[i] - mu);
            }
        }
        (Some((sa, sb)), true) => {
            for i in 0..n {
                let g = keep_if(dy[i], x[i] * sa + sb > 0.0);
                dx[i] += a * g - b - c * (x[i] - mu);
            }
        }
        (None, false) => {
            for i in 0..n {
                dx[i] = a * dy[i] - b - c * (x[i] - mu);
            }
        }
        (None, true) => {
            for i in 0..n {
                dx[i] += a * dy[i] - b - c * (x[i] - mu);
            }
        }
    }
}

/// Lanes of the f32 accumulators of [`grad_row_sums`].
const GRAD_LANES: usize = 16;

/// `(Σ g, Σ g·(x − mean))` over one row, `g = dy` or, with `relu = Some((scale, shift))`,
/// `g = dy · [x · scale + shift > 0]`. Each of [`GRAD_LANES`] lanes sums its values in f32 (the products use
/// `x − mean` formed in f32, so nothing cancels); the lanes are folded in order in f64. The arithmetic is
/// plain f32 on every kernel path, so the result does not depend on the path.
#[inline]
fn grad_row_sums(dy: &[f32], x: &[f32], mean: f32, relu: Option<(f32, f32)>) -> (f64, f64) {
    let (mut s, mut p) = ([0.0f32; GRAD_LANES], [0.0f32; GRAD_LANES]);
    let (cd, cx) = (dy.chunks_exact(GRAD_LANES), x.chunks_exact(GRAD_LANES));
    let (rd, rx) = (cd.remainder(), cx.remainder());
    match relu {
        Some((a, b)) => {
            for (u, v) in cd.zip(cx) {
                for j in 0..GRAD_LANES {
                    let g = keep_if(u[j], v[j] * a + b > 0.0);
                    s[j] += g;
                    p[j] += g * (v[j] - mean);
                }
            }
            for (j, (&u, &v)) in rd.iter().zip(rx).enumerate() {
                let g = keep_if(u, v * a + b > 0.0);
                s[j] += g;
                p[j] += g * (v - mean);
            }
        }
        None => {
            for (u, v) in cd.zip(cx) {
                for j in 0..GRAD_LANES {
                    s[j] += u[j];
                    p[j] += u[j] * (v[j] - mean);
                }
            }
            for (j, (&u, &v)) in rd.iter().zip(rx).enumerate() {
                s[j] += u;
                p[j] += u * (v - mean);
            }
        }
    }
    let fold = |l: &[f32; GRAD_LANES]| l.iter().map(|&v| v as f64).sum::<f64>();
    (fold(&s), fold(&p))
}

/// Sum and sum of squares of a row, in f64.
fn sum_sumsq(_: usize, row: &[f32], _: Option<&[f32]>, acc: &mut [f64; 2]) {
    let (s, q) = lane_sums(row, row, |u, _| u, |u, _| u * u);
    acc[0] += s;
    acc[1] += q;
}

/// Adds one sample's per-channel (sum, sum of squares) to `acc` (one pair per channel of `sample[C, hw]`), in
/// the order [`batch_stats`] uses: a producer that calls this on each sample of a [`chunk_size`] chunk, in
/// order, and reduces the chunks with [`add_chunk_sums`] in chunk order gets [`batch_stats`]' sums bit for bit.
pub fn add_sample_sums(hw: usize, sample: &[f32], acc: &mut [[f64; 2]]) {
    for (slot, row) in acc.iter_mut().zip(sample.chunks_exact(hw)) {
        sum_sumsq(0, row, None, slot);
    }
}

/// Adds one chunk's per-channel sums to the running total, the reduction step of [`add_sample_sums`].
pub fn add_chunk_sums(total: &mut [[f64; 2]], part: &[[f64; 2]]) {
    for (t, v) in total.iter_mut().zip(part) {
        t[0] += v[0];
        t[1] += v[1];
    }
}

/// Mean, biased variance and value count from per-channel (sum, sum of squares) over `count` local values,
/// summed over the replicas by `reduce` when given: [`batch_stats`] (or [`reduced_batch_stats`]) from sums
/// already collected by [`add_sample_sums`].
pub fn stats_from_sums(
    sums: Vec<[f64; 2]>,
    count: usize,
    reduce: Option<&SumOverReplicas>,
) -> (Vec<f64>, Vec<f64>, f64) {
    let (sums, m) = match reduce {
        Some(r) => reduce_sums(sums, count, r),
        None => (sums, count as f64),
    };
    let (mean, var) = moments(&sums, m);
    (mean, var, m)
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
        None,
    );
}

/// [`backward`] of synchronised batch norm: with `Some(reduce)` the per-channel sums `(Σ dy, Σ dy·(x − mean))`
/// and the value count are summed over the replicas (see [`reduce_sums`]) before use, so the input gradient
/// is that of the global batch and `dgamma`, `dbeta` are the global batch's gradients, equal on every replica.
///
/// With `relu = Some((scale, shift))` the forward pass applied ReLU to its output `x · scale + shift` and `dy`
/// is the gradient of the ReLU's output: it is masked by `x · scale + shift > 0` on the fly (the forward's own
/// arithmetic), so the result is bit for bit that of masking `dy` first and calling this with `None`.
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
    relu: Option<(&[f32], &[f32])>,
) {
    // sums[c] = (Σ dy, Σ dy·(x − mean))
    let sums = channel_sums(sh, dy, Some(x), |ch, d, xr, acc| {
        let xr = xr.expect("x given");
        let relu = relu.map(|(scale, shift)| (scale[ch], shift[ch]));
        let (s, p) = grad_row_sums(d, xr, mean[ch], relu);
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
                let k = [k0[ch], k1[ch], k2[ch], mean[ch]];
                match relu {
                    Some((scale, shift)) => {
                        input_grad_row(o, d, xr, k, Some((scale[ch], shift[ch])), acc)
                    }
                    None => input_grad_row(o, d, xr, k, None, acc),
                }
            }
        });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vals(n: usize, seed: u64) -> Vec<f32> {
        let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        (0..n)
            .map(|_| {
                s ^= s << 13;
                s ^= s >> 7;
                s ^= s << 17;
                ((s >> 40) as f32 / (1u64 << 24) as f32) * 4.0 - 2.0
            })
            .collect()
    }

    fn bits(v: &[f32]) -> Vec<u32> {
        v.iter().map(|x| x.to_bits()).collect()
    }

    #[test]
    fn the_fused_relu_mask_gives_the_bits_of_masking_first() {
        for (case, &(n, c, hw)) in [(3, 4, 25), (8, 3, 1), (5, 2, 257), (1, 6, 9)]
            .iter()
            .enumerate()
        {
            let sh = BnShape { n, c, hw };
            let x = vals(n * c * hw, case as u64);
            let dy = vals(n * c * hw, 100 + case as u64);
            let mean = vals(c, 200);
            let invstd: Vec<f32> = vals(c, 201).iter().map(|v| v.abs() + 0.1).collect();
            let gamma = vals(c, 202);
            let scale: Vec<f32> = (0..c).map(|ch| gamma[ch] * invstd[ch]).collect();
            let shift: Vec<f32> = vals(c, 203);
            let mut z = vec![0.0; x.len()];
            affine(sh, &x, &scale, &shift, true, &mut z);
            let masked: Vec<f32> = dy
                .iter()
                .zip(&z)
                .map(|(&g, &v)| if v > 0.0 { g } else { 0.0 })
                .collect();
            assert!(masked.contains(&0.0) && masked.iter().any(|&v| v != 0.0));
            for (batch_stats, acc) in [(true, false), (true, true), (false, false)] {
                let run = |d: &[f32], relu: Option<(&[f32], &[f32])>| {
                    let mut dx = vals(x.len(), 300);
                    let (mut dg, mut db) = (vec![0.0; c], vec![0.0; c]);
                    backward_reduced(
                        sh,
                        &x,
                        d,
                        &mean,
                        &invstd,
                        &gamma,
                        batch_stats,
                        Some((&mut dx, acc)),
                        &mut dg,
                        &mut db,
                        None,
                        relu,
                    );
                    (bits(&dx), bits(&dg), bits(&db))
                };
                let want = run(&masked, None);
                assert_eq!(run(&dy, Some((&scale, &shift))), want, "case {case}");
                assert_ne!(run(&dy, None), want, "case {case}: the mask matters");
            }
        }
    }

    #[test]
    fn sample_sums_reduced_in_chunk_order_are_batch_stats() {
        for &(n, c, hw) in &[(7, 3, 10), (128, 2, 17), (1, 5, 64)] {
            let sh = BnShape { n, c, hw };
            let x = vals(n * c * hw, n as u64);
            let cs = chunk_size(n);
            let mut total = vec![[0.0; 2]; c];
            for chunk in x.chunks(cs * c * hw) {
                let mut part = vec![[0.0; 2]; c];
                for sample in chunk.chunks(c * hw) {
                    add_sample_sums(hw, sample, &mut part);
                }
                add_chunk_sums(&mut total, &part);
            }
            let (mean, var, m) = stats_from_sums(total, sh.count(), None);
            assert_eq!(m, sh.count() as f64);
            assert_eq!((mean, var), batch_stats(sh, &x));
        }
    }
}
