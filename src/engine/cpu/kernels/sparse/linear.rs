//! Sparse fully connected layer, vectorised over the batch: activations are transposed to feature-major
//! `xᵀ[in][N']` (`N'` the batch rounded up to whole vectors, zero-padded), so output row `o` is a
//! [`micro::gather_row`] of the rows of `xᵀ` its kept weights select. The input gradient gathers rows of
//! `dyᵀ` with the transposed pattern; the weight gradient at kept positions is a [`micro::sampled_row`] of
//! `dyᵀ[o]` against `xᵀ`. Rows are split across threads; every output is computed by one thread in a fixed
//! order, so results do not depend on the thread count.

use rayon::prelude::*;

use super::micro::{fold_lanes, gather_row, sampled_row};
use super::{aligned, round_up, Taps, Work};
use crate::engine::cpu::kernels::{chunk_size, FlushDenormals};
use crate::engine::cpu::simd::KernelPath;

/// A linear layer's kept weights laid out for the sparse kernels of one kernel path.
#[derive(Debug, Clone, PartialEq)]
pub struct SparseLinear {
    nin: usize,
    nout: usize,
    path: KernelPath,
    /// Rows `o`, offsets = input feature `i` (before scaling by the row length of `xᵀ`).
    fwd: Taps,
    /// Rows `i`, offsets = output feature `o`.
    bwd: Taps,
    /// `fwd` and `bwd` scaled for the last row length used.
    scaled: Option<(usize, Taps, Taps)>,
}

/// Scratch of the sparse linear layers.
#[derive(Debug, Default)]
pub struct Scratch {
    xt: Vec<f32>,
    yt: Vec<f32>,
}

impl SparseLinear {
    /// The layout of a `nout × nin` weight with kept entries `keep` (row-major) on `path`.
    pub fn new(nin: usize, nout: usize, keep: &[bool], path: KernelPath) -> Self {
        assert_eq!(keep.len(), nin * nout, "mask does not match the weight");
        let fwd = Taps::from_rows((0..nout).map(|o| {
            (0..nin)
                .filter(|&i| keep[o * nin + i])
                .map(|i| (i, o * nin + i))
                .collect()
        }));
        let bwd = Taps::from_rows((0..nin).map(|i| {
            (0..nout)
                .filter(|&o| keep[o * nin + i])
                .map(|o| (o, o * nin + i))
                .collect()
        }));
        SparseLinear {
            nin,
            nout,
            path,
            fwd,
            bwd,
            scaled: None,
        }
    }

    pub fn path(&self) -> KernelPath {
        self.path
    }

    pub fn nnz(&self) -> usize {
        self.fwd.nnz()
    }

    /// What one sample costs the sparse kernels (see [`Work`]); the batch is taken as filling whole vectors.
    pub fn work(&self) -> Work {
        let nnz = self.nnz() as u64;
        Work {
            forward: nnz,
            weight_grad: nnz,
            input_grad: nnz,
            moved: 3 * (self.nin + self.nout) as u64,
            passes: 8,
        }
    }

    /// The forward taps (their order is the packed order of values and weight gradients).
    pub fn taps(&self) -> &Taps {
        &self.fwd
    }

    /// The packed values in the input-gradient order, from the dense weight.
    pub fn transposed_values(&self, weight: &[f32], out: &mut Vec<f32>) {
        self.bwd.gather_values(weight, out);
    }

    fn ld(&self, batch: usize) -> usize {
        round_up(batch.max(1), self.path.lanes())
    }

    fn scaled_taps(&mut self, ld: usize) -> (&Taps, &Taps) {
        if self.scaled.as_ref().is_none_or(|s| s.0 != ld) {
            self.scaled = Some((ld, self.fwd.scaled(ld), self.bwd.scaled(ld)));
        }
        let (_, f, b) = self.scaled.as_ref().expect("just set");
        (f, b)
    }

    /// `y[N, out] = x[N, in] · Wᵀ + b` with the packed kept weights `vals`, optionally followed by ReLU.
    #[allow(clippy::too_many_arguments)]
    pub fn forward(
        &mut self,
        x: &[f32],
        vals: &[f32],
        bias: Option<&[f32]>,
        relu: bool,
        y: &mut [f32],
        scratch: &mut Scratch,
    ) {
        let (nin, nout, path) = (self.nin, self.nout, self.path);
        let batch = x.len() / nin;
        assert_eq!(y.len(), batch * nout);
        assert_eq!(vals.len(), self.nnz());
        let ld = self.ld(batch);
        let (fwd, _) = self.scaled_taps(ld);
        let xt = aligned(&mut scratch.xt, nin * ld);
        transpose_into(batch, nin, x, xt, ld);
        let yt = aligned(&mut scratch.yt, nout * ld);
        let nvec = ld / path.lanes();
        let rows = chunk_size(nout);
        yt.par_chunks_mut(rows * ld)
            .enumerate()
            .for_each(|(b, block)| {
                let _ftz = FlushDenormals::new();
                for (k, out) in block.chunks_exact_mut(ld).enumerate() {
                    gather_row(path, fwd, b * rows + k, vals, xt, nvec, out, false);
                }
            });
        let yt = &*yt;
        y.par_chunks_mut(chunk_size(batch) * nout)
            .enumerate()
            .for_each(|(b, yc)| {
                let n0 = b * chunk_size(batch);
                for (dn, row) in yc.chunks_exact_mut(nout).enumerate() {
                    for (o, v) in row.iter_mut().enumerate() {
                        let t = yt[o * ld + n0 + dn] + bias.map_or(0.0, |b| b[o]);
                        *v = if relu { t.max(0.0) } else { t };
                    }
                }
            });
    }

    /// Backward: the weight gradient at kept positions into `dweight` (packed, [`SparseLinear::taps`] order),
    /// the bias gradient into `dbias`, and when asked writes or adds (`accumulate`) the input gradient.
    /// `vals_t` is [`SparseLinear::transposed_values`] of the weights.
    #[allow(clippy::too_many_arguments)]
    pub fn backward(
        &mut self,
        x: &[f32],
        vals_t: &[f32],
        dy: &[f32],
        dx: Option<(&mut [f32], bool)>,
        dweight: &mut [f32],
        dbias: Option<&mut [f32]>,
        scratch: &mut Scratch,
    ) {
        let (nin, nout, path) = (self.nin, self.nout, self.path);
        let batch = x.len() / nin;
        assert_eq!(dy.len(), batch * nout);
        assert_eq!(dweight.len(), self.nnz());
        let ld = self.ld(batch);
        let (fwd, bwd) = self.scaled_taps(ld);
        let xt = aligned(&mut scratch.xt, nin * ld);
        transpose_into(batch, nin, x, xt, ld);
        let dyt = aligned(&mut scratch.yt, nout * ld);
        transpose_into(batch, nout, dy, dyt, ld);
        let (xt, dyt) = (&*xt, &*dyt);
        let nvec = ld / path.lanes();
        let lanes = path.lanes();
        // Weight gradient: blocks of output rows, each over its own packed range.
        let rows = chunk_size(nout);
        let mut blocks: Vec<(usize, &mut [f32])> = Vec::new();
        let mut rest = dweight;
        for r0 in (0..nout).step_by(rows) {
            let r1 = (r0 + rows).min(nout);
            let n = fwd.range(r1 - 1).end - fwd.range(r0).start;
            let (head, tail) = rest.split_at_mut(n);
            blocks.push((r0, head));
            rest = tail;
        }
        blocks.into_par_iter().for_each(|(r0, dw)| {
            let _ftz = FlushDenormals::new();
            let base = fwd.range(r0).start;
            let mut acc = Vec::new();
            for o in r0..(r0 + rows).min(nout) {
                let r = fwd.range(o);
                acc.clear();
                acc.resize(r.len() * lanes, 0.0);
                sampled_row(path, fwd, o, xt, &dyt[o * ld..(o + 1) * ld], nvec, &mut acc);
                fold_lanes(path, &acc, &mut dw[r.start - base..r.end - base], false);
            }
        });
        if let Some(db) = dbias {
            db.fill(0.0);
            for row in dy.chunks(nout) {
                for (b, g) in db.iter_mut().zip(row) {
                    *b += g;
                }
            }
        }
        let Some((dx, accumulate)) = dx else { return };
        let mut dxt_buf = std::mem::take(&mut scratch.xt);
        let dxt = aligned(&mut dxt_buf, nin * ld);
        dxt.par_chunks_mut(rows_for(nin) * ld)
            .enumerate()
            .for_each(|(b, block)| {
                let _ftz = FlushDenormals::new();
                for (k, out) in block.chunks_exact_mut(ld).enumerate() {
                    gather_row(
                        path,
                        bwd,
                        b * rows_for(nin) + k,
                        vals_t,
                        dyt,
                        nvec,
                        out,
                        false,
                    );
                }
            });
        let dxt = &*dxt;
        let cs = chunk_size(batch);
        dx.par_chunks_mut(cs * nin)
            .enumerate()
            .for_each(|(b, dxc)| {
                for (dn, row) in dxc.chunks_exact_mut(nin).enumerate() {
                    let n = b * cs + dn;
                    for (i, v) in row.iter_mut().enumerate() {
                        let g = dxt[i * ld + n];
                        *v = if accumulate { *v + g } else { g };
                    }
                }
            });
        scratch.xt = dxt_buf;
    }
}

fn rows_for(n: usize) -> usize {
    chunk_size(n)
}

/// `t[c·ld + r] = a[r·cols + c]` for `r < rows`, zero for `rows ≤ r < ld`.
fn transpose_into(rows: usize, cols: usize, a: &[f32], t: &mut [f32], ld: usize) {
    const B: usize = 16;
    t.par_chunks_mut(B * ld).enumerate().for_each(|(cb, tc)| {
        let c0 = cb * B;
        let nc = tc.len() / ld;
        for r0 in (0..rows).step_by(B) {
            let nr = (rows - r0).min(B);
            for dc in 0..nc {
                let dst = &mut tc[dc * ld + r0..][..nr];
                for (dr, d) in dst.iter_mut().enumerate() {
                    *d = a[(r0 + dr) * cols + c0 + dc];
                }
            }
        }
        for dc in 0..nc {
            tc[dc * ld + rows..(dc + 1) * ld].fill(0.0);
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::cpu::kernels::linear as dense;

    fn vals(n: usize, seed: u64) -> Vec<f32> {
        let mut s = seed.wrapping_add(99);
        (0..n)
            .map(|_| {
                s = s
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                ((s >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
            })
            .collect()
    }

    #[test]
    fn matches_the_dense_masked_layer() {
        for (ci, &(nin, nout, batch, density)) in [
            (37, 11, 5, 0.3),
            (64, 40, 1, 0.6),
            (100, 17, 33, 0.05),
            (20, 3, 130, 0.005),
        ]
        .iter()
        .enumerate()
        {
            let keep: Vec<bool> = vals(nin * nout, ci as u64)
                .iter()
                .map(|&v| (((v + 1.0) / 2.0) as f64) < density)
                .collect();
            let w: Vec<f32> = vals(nin * nout, 7)
                .iter()
                .zip(&keep)
                .map(|(&v, &k)| if k { v } else { 0.0 })
                .collect();
            let x = vals(batch * nin, 8);
            let dy = vals(batch * nout, 9);
            let b = vals(nout, 10);
            let mut want = vec![0.0; batch * nout];
            dense::forward(
                KernelPath::best(),
                nin,
                nout,
                &x,
                &w,
                Some(&b),
                true,
                &mut want,
            );
            let mut wdx = vec![0.25; x.len()];
            let mut wdw = vec![0.0; w.len()];
            let mut wdb = vec![0.0; nout];
            dense::backward(
                nin,
                nout,
                &x,
                &w,
                &dy,
                Some((&mut wdx, true)),
                &mut wdw,
                Some(&mut wdb),
            );
            for path in KernelPath::available() {
                let mut sl = SparseLinear::new(nin, nout, &keep, path);
                let (mut v, mut vt) = (Vec::new(), Vec::new());
                sl.taps().gather_values(&w, &mut v);
                sl.transposed_values(&w, &mut vt);
                let mut scr = Scratch::default();
                let mut y = vec![f32::NAN; want.len()];
                sl.forward(&x, &v, Some(&b), true, &mut y, &mut scr);
                for (a, e) in y.iter().zip(&want) {
                    assert!((a - e).abs() < 1e-4, "case {ci} {path} forward");
                }
                let mut dx = vec![0.25; x.len()];
                let mut pdw = vec![f32::NAN; sl.nnz()];
                let mut db = vec![0.0; nout];
                sl.backward(
                    &x,
                    &vt,
                    &dy,
                    Some((&mut dx, true)),
                    &mut pdw,
                    Some(&mut db),
                    &mut scr,
                );
                for (a, e) in dx.iter().zip(&wdx) {
                    assert!((a - e).abs() < 1e-4, "case {ci} {path} dx");
                }
                let mut dw: Vec<f32> = keep
                    .iter()
                    .map(|&k| if k { 0.0 } else { f32::NAN })
                    .collect();
                sl.taps().scatter_values(&pdw, &mut dw, true);
                for (i, (&a, &e)) in dw.iter().zip(&wdw).enumerate() {
                    if keep[i] {
                        assert!((a - e).abs() < 1e-3, "case {ci} {path} dw {a} vs {e}");
                    } else {
                        assert!(a.is_nan(), "masked dw written");
                    }
                }
                assert_eq!(db, wdb);
            }
        }
    }
}
