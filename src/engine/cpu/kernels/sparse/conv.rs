//! Sparse 2-D convolution, vectorised over the output width (any stride, kernel size and padding).
//!
//! A sample is zero-padded and split by stride phase: padded element `(c, Y, X)` goes to
//! `xq[c][Y % s][X % s][Y / s][X / s]` (planes of `hq × wq`). Then the operand of kept weight `(o, c, ky, kx)`
//! for output `(oy, ox)` sits at `tap(c, ky, kx) + oy·wq + ox`: one contiguous run per output row, so the
//! output plane of channel `o` is a [`micro::gather_row`] over the virtual index `q = oy·wq + ox`; the
//! `wq − ow` columns past each row are computed and dropped.
//!
//! The input gradient is a gather too. Padded input row `Y = s·R + py` receives `dy[o][R − ky/s]` from the
//! taps with `ky % s = py` (columns likewise), so for each input channel and phase `(py, px)` it is a
//! correlation of `dy` (placed in a zero-bordered buffer `dyq`) with the transposed, phase-selected kept
//! weights, vectorised over that phase's rows. The weight gradient at kept positions is a
//! [`micro::sampled_row`] of `dy` (in the virtual layout, zero past each row) against the same taps as the
//! forward pass.

use rayon::prelude::*;

use super::micro::{fold_lanes, gather_row, sampled_row};
use super::{aligned, Taps, Work};
use crate::engine::cpu::kernels::bn;
use crate::engine::cpu::kernels::conv::ConvGeom;
use crate::engine::cpu::kernels::{chunk_size, direct, reduce_in_order, FlushDenormals};
use crate::engine::cpu::simd::KernelPath;

/// The dx rows of one input channel's stride phase `(py, px)`: padded rows `s·R + py` for `R ∈ r0..r1`,
/// columns `s·J + px` for `J ∈ j0..j1`.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Phase {
    py: usize,
    px: usize,
    r0: usize,
    r1: usize,
    j0: usize,
    j1: usize,
    nvec: usize,
}

/// A convolution's kept weights laid out for the sparse kernels of one kernel path.
#[derive(Debug, Clone, PartialEq)]
pub struct SparseConv {
    g: ConvGeom,
    path: KernelPath,
    /// Phase plane of the padded input: `hq × wq`.
    hq: usize,
    wq: usize,
    /// Vectors of one virtual output plane.
    out_vec: usize,
    fwd: Taps,
    /// Rows `c · s² + py · s + px`.
    bwd: Taps,
    phases: Vec<Phase>,
    /// Front padding of `dy` in `dyq` (rows, columns) and the `dyq` plane.
    dy_top: isize,
    dy_left: isize,
    dyq_h: usize,
    dyq_w: usize,
    /// When `dyq` is `dy` with the same zero border on every side: the geometry whose
    /// [`direct::pad_sample`] writes it, and the offset in each `dyq` plane where the virtual layout of `dy`
    /// (rows `wq` apart, zero past each row) starts, so the weight gradient reads `dyq` in place.
    dy_border: Option<(ConvGeom, usize)>,
}

/// Per-chunk scratch of the sparse convolutions, reused across layers and steps.
#[derive(Debug, Default)]
pub struct Scratch {
    xq: Vec<f32>,
    yv: Vec<f32>,
    dyv: Vec<f32>,
    dyq: Vec<f32>,
    dxv: Vec<f32>,
    acc: Vec<f32>,
    packed: Vec<f32>,
    db: Vec<f32>,
    /// The chunk's per-channel output sums (see [`SparseConv::forward`]).
    sums: Vec<[f64; 2]>,
}

impl SparseConv {
    /// The layout of `g` with the kept weights `keep` (row-major over `[cout, cin, k, k]`) on `path`.
    pub fn new(g: &ConvGeom, keep: &[bool], path: KernelPath) -> Self {
        assert_eq!(
            keep.len(),
            g.cout * g.kdim(),
            "mask does not match the weight"
        );
        let (s, k, p) = (g.stride, g.k, g.pad);
        let (hq, wq) = ((g.h + 2 * p).div_ceil(s), (g.w + 2 * p).div_ceil(s));
        let lanes = path.lanes();
        let out_vec = ((g.oh - 1) * wq + g.ow).div_ceil(lanes);
        let tap = |c: usize, ky: usize, kx: usize| {
            (((c * s + ky % s) * s + kx % s) * hq + ky / s) * wq + kx / s
        };
        let fwd = Taps::from_rows((0..g.cout).map(|o| {
            let mut row = Vec::new();
            for c in 0..g.cin {
                for ky in 0..k {
                    for kx in 0..k {
                        let wi = ((o * g.cin + c) * k + ky) * k + kx;
                        if keep[wi] {
                            row.push((tap(c, ky, kx), wi));
                        }
                    }
                }
            }
            row
        }));
        // Valid phase rows: Y = s·R + py ∈ [p, p + h).
        let span = |ph: usize, n: usize| {
            (
                (p + s - 1 - ph.min(p + s - 1)) / s,
                (p + n + s - 1 - ph) / s,
            )
        };
        let a = (k - 1) / s;
        let mut phases = Vec::with_capacity(s * s);
        for py in 0..s {
            for px in 0..s {
                let (r0, r1) = span(py, g.h);
                let (j0, j1) = span(px, g.w);
                let nvec = if r1 > r0 && j1 > j0 { 1 } else { 0 };
                phases.push(Phase {
                    py,
                    px,
                    r0,
                    r1,
                    j0,
                    j1,
                    nvec,
                });
            }
        }
        let ra = phases.iter().map(|f| f.r0).min().unwrap_or(0);
        let ja = phases.iter().map(|f| f.j0).min().unwrap_or(0);
        let dyq_h = phases.iter().map(|f| f.r1).max().unwrap_or(0) + a - ra;
        let dyq_w = phases.iter().map(|f| f.j1).max().unwrap_or(0) + a - ja;
        for f in &mut phases {
            if f.nvec > 0 {
                f.nvec = ((f.r1 - f.r0 - 1) * dyq_w + f.j1 - f.j0).div_ceil(lanes);
            }
        }
        let plane = dyq_h * dyq_w;
        let bwd = Taps::from_rows((0..g.cin).flat_map(|c| {
            let phases = &phases;
            (0..s * s).map(move |ph| {
                let f = phases[ph];
                let mut row = Vec::new();
                for o in 0..g.cout {
                    for ky in (f.py..k).step_by(s) {
                        for kx in (f.px..k).step_by(s) {
                            let wi = ((o * g.cin + c) * k + ky) * k + kx;
                            if keep[wi] {
                                let off = o * plane
                                    + (f.r0 + a - ky / s - ra) * dyq_w
                                    + (f.j0 + a - kx / s - ja);
                                row.push((off, wi));
                            }
                        }
                    }
                }
                row
            })
        }));
        let (dy_top, dy_left) = (a as isize - ra as isize, a as isize - ja as isize);
        let border = dy_top.max(0) as usize;
        let dy_border = (dy_top == dy_left
            && dyq_h == g.oh + 2 * border
            && dyq_w == g.ow + 2 * border
            && dyq_w == wq)
            .then(|| ConvGeom::new(g.cout, g.cout, g.oh, g.ow, 2 * border + 1, 1, border))
            .flatten()
            .map(|pg| (pg, border * dyq_w + border))
            .filter(|&(_, at)| at + out_vec * lanes <= plane);
        SparseConv {
            g: *g,
            path,
            hq,
            wq,
            out_vec,
            fwd,
            bwd,
            phases,
            dy_top,
            dy_left,
            dyq_h,
            dyq_w,
            dy_border,
        }
    }

    pub fn geom(&self) -> &ConvGeom {
        &self.g
    }

    pub fn path(&self) -> KernelPath {
        self.path
    }

    /// Kept weights.
    pub fn nnz(&self) -> usize {
        self.fwd.nnz()
    }

    /// The forward taps (their order is the packed order of values and weight gradients).
    pub fn taps(&self) -> &Taps {
        &self.fwd
    }

    fn lanes(&self) -> usize {
        self.path.lanes()
    }

    /// What one sample costs the sparse kernels: multiply-adds over whole vectors (wasted lanes included) of
    /// the forward pass, the weight gradient and the input gradient, and the values the packing steps move.
    pub fn work(&self) -> Work {
        let g = &self.g;
        let plane = (self.out_vec * self.lanes()) as u64;
        let s2 = g.stride * g.stride;
        let dx: u64 = (0..self.bwd.rows())
            .map(|r| {
                self.bwd.range(r).len() as u64 * (self.phases[r % s2].nvec * self.lanes()) as u64
            })
            .sum();
        Work {
            forward: self.nnz() as u64 * plane,
            weight_grad: self.nnz() as u64 * plane,
            input_grad: dx,
            moved: (self.xq_len() + 2 * g.cout * self.out_len_v() + self.dyq_len() + 2 * g.in_len())
                as u64,
            passes: 2,
        }
    }

    fn xq_len(&self) -> usize {
        let s = self.g.stride;
        self.g.cin * s * s * self.hq * self.wq + (self.out_vec + 1) * self.lanes()
    }

    fn out_len_v(&self) -> usize {
        self.out_vec * self.lanes()
    }

    fn dyq_len(&self) -> usize {
        let max_vec = self.phases.iter().map(|f| f.nvec).max().unwrap_or(0);
        self.g.cout * self.dyq_h * self.dyq_w + (max_vec + 1) * self.lanes()
    }

    /// Pads and phase-splits one sample `x[Cin, H, W]` into `xq`.
    fn pack_input(&self, x: &[f32], xq: &mut [f32]) {
        let g = &self.g;
        if g.stride == 1 {
            direct::pad_sample(self.path, g, x, xq);
            return;
        }
        let (s, p, hq, wq) = (g.stride, g.pad, self.hq, self.wq);
        xq[..g.cin * s * s * hq * wq].fill(0.0);
        for c in 0..g.cin {
            for iy in 0..g.h {
                let yy = iy + p;
                let row = &x[(c * g.h + iy) * g.w..][..g.w];
                let phase_row = |px: usize| (((c * s + yy % s) * s + px) * hq + yy / s) * wq;
                if s == 2 {
                    // Input column ix lands in phase (ix + p) % 2 at column (ix + p) / 2.
                    let (even, odd) = (
                        phase_row(p % 2) + p / 2,
                        phase_row((p + 1) % 2) + p.div_ceil(2),
                    );
                    let (ne, no) = (g.w.div_ceil(2), g.w / 2);
                    let (lo, hi) = (even.min(odd), even.max(odd));
                    let (a, b) = xq.split_at_mut(hi);
                    let (evens, odds) = if even < odd {
                        (&mut a[lo..lo + ne], &mut b[..no])
                    } else {
                        (&mut b[..ne], &mut a[lo..lo + no])
                    };
                    deinterleave(self.path, row, evens, odds);
                    continue;
                }
                for px in 0..s {
                    let first = (px + s - p % s) % s;
                    let base = phase_row(px);
                    for ix in (first..g.w).step_by(s) {
                        xq[base + (ix + p) / s] = row[ix];
                    }
                }
            }
        }
    }

    /// Writes one sample's output gradient `dy[Cout, OH, OW]` into the virtual layout, zero past each row.
    fn pack_dy_virtual(&self, dy: &[f32], dyv: &mut [f32]) {
        let (g, wq, lv) = (&self.g, self.wq, self.out_len_v());
        for (o, row) in dyv.chunks_exact_mut(lv).take(g.cout).enumerate() {
            row.fill(0.0);
            for oy in 0..g.oh {
                row[oy * wq..oy * wq + g.ow].copy_from_slice(&dy[(o * g.oh + oy) * g.ow..][..g.ow]);
            }
        }
    }

    /// Writes one sample's `dy` into the zero-bordered `dyq`.
    fn pack_dy_padded(&self, dy: &[f32], dyq: &mut [f32]) {
        if let Some((pg, _)) = &self.dy_border {
            direct::pad_sample(self.path, pg, dy, dyq);
            return;
        }
        let g = &self.g;
        let (hh, ww) = (self.dyq_h, self.dyq_w);
        dyq[..g.cout * hh * ww].fill(0.0);
        let cols: Vec<(usize, usize)> = (0..g.ow)
            .filter_map(|ox| {
                let b = ox as isize + self.dy_left;
                (b >= 0 && (b as usize) < ww).then_some((ox, b as usize))
            })
            .collect();
        let (Some(&(ox0, b0)), Some(&(ox1, _))) = (cols.first(), cols.last()) else {
            return;
        };
        let n = ox1 + 1 - ox0;
        for o in 0..g.cout {
            for oy in 0..g.oh {
                let a = oy as isize + self.dy_top;
                if a < 0 || a as usize >= hh {
                    continue;
                }
                let dst = (o * hh + a as usize) * ww + b0;
                dyq[dst..dst + n].copy_from_slice(&dy[(o * g.oh + oy) * g.ow + ox0..][..n]);
            }
        }
    }

    /// Forward over a batch: `y[N, Cout, OH, OW]` from `x[N, Cin, H, W]` with the packed kept weights `vals`
    /// (in [`SparseConv::taps`] order), optional bias, optional ReLU. `scratch` needs one entry per chunk.
    /// When `sums` is given it receives the per-channel (sum, sum of squares) of `y`, collected while each
    /// sample's output is in cache, bit for bit [`bn::batch_stats`]' sums of `y`.
    #[allow(clippy::too_many_arguments)]
    pub fn forward(
        &self,
        x: &[f32],
        vals: &[f32],
        bias: Option<&[f32]>,
        relu: bool,
        y: &mut [f32],
        scratch: &mut [Scratch],
        sums: Option<&mut Vec<[f64; 2]>>,
    ) {
        let g = &self.g;
        assert_eq!(vals.len(), self.nnz());
        let batch = x.len() / g.in_len();
        assert_eq!(y.len(), batch * g.out_len());
        let cs = chunk_size(batch);
        let chunks = batch.div_ceil(cs);
        let want_sums = sums.is_some();
        for s in scratch.iter_mut().take(chunks) {
            s.sums.clear();
            s.sums.resize(if want_sums { g.cout } else { 0 }, [0.0; 2]);
        }
        y.par_chunks_mut(cs * g.out_len())
            .zip(x.par_chunks(cs * g.in_len()))
            .zip(scratch.par_iter_mut())
            .for_each(|((yc, xc), s)| {
                let _ftz = FlushDenormals::new();
                let xq = aligned(&mut s.xq, self.xq_len());
                let yv = aligned(&mut s.yv, self.out_len_v());
                for (yn, xn) in yc.chunks_mut(g.out_len()).zip(xc.chunks(g.in_len())) {
                    self.pack_input(xn, xq);
                    for (o, yo) in yn.chunks_exact_mut(g.out_hw()).enumerate() {
                        gather_row(self.path, &self.fwd, o, vals, xq, self.out_vec, yv, false);
                        let b = bias.map_or(0.0, |b| b[o]);
                        for (oy, row) in yo.chunks_exact_mut(g.ow).enumerate() {
                            let src = &yv[oy * self.wq..][..g.ow];
                            if relu {
                                row.iter_mut()
                                    .zip(src)
                                    .for_each(|(d, &v)| *d = (v + b).max(0.0));
                            } else {
                                row.iter_mut().zip(src).for_each(|(d, &v)| *d = v + b);
                            }
                        }
                    }
                    if want_sums {
                        bn::add_sample_sums(g.out_hw(), yn, &mut s.sums);
                    }
                }
            });
        if let Some(total) = sums {
            total.clear();
            total.resize(if chunks > 0 { g.cout } else { 0 }, [0.0; 2]);
            for s in &scratch[..chunks] {
                bn::add_chunk_sums(total, &s.sums);
            }
        }
    }

    /// Backward over a batch. Writes the weight gradient at the kept positions into `dweight` (packed, in
    /// [`SparseConv::taps`] order) and the bias gradient into `dbias`; when `dx` is given, writes
    /// (`accumulate == false`) or adds the input gradient. `vals_t` is [`SparseConv::transposed_values`] of
    /// the packed weights. Partial sums are kept per chunk and reduced in chunk order.
    #[allow(clippy::too_many_arguments)]
    pub fn backward(
        &self,
        x: &[f32],
        vals_t: &[f32],
        dy: &[f32],
        dx: Option<(&mut [f32], bool)>,
        dweight: &mut [f32],
        dbias: Option<&mut [f32]>,
        scratch: &mut [Scratch],
    ) {
        let g = &self.g;
        let batch = x.len() / g.in_len();
        assert_eq!(dy.len(), batch * g.out_len());
        assert_eq!(dweight.len(), self.nnz());
        if dx.is_some() {
            assert_eq!(vals_t.len(), self.bwd.nnz());
        }
        let cs = chunk_size(batch);
        let with_bias = dbias.is_some();
        let chunks = x
            .par_chunks(cs * g.in_len())
            .zip(dy.par_chunks(cs * g.out_len()));
        match dx {
            Some((dx, acc)) => chunks
                .zip(dx.par_chunks_mut(cs * g.in_len()))
                .zip(scratch.par_iter_mut())
                .for_each(|(((xc, dyc), dxc), s)| {
                    self.backward_chunk(xc, vals_t, dyc, Some((dxc, acc)), with_bias, s)
                }),
            None => chunks
                .zip(scratch.par_iter_mut())
                .for_each(|((xc, dyc), s)| {
                    self.backward_chunk(xc, vals_t, dyc, None, with_bias, s)
                }),
        }
        let used = batch.div_ceil(cs);
        reduce_in_order(
            dweight,
            scratch[..used].iter().map(|s| &s.packed[..self.nnz()]),
        );
        if let Some(db) = dbias {
            reduce_in_order(db, scratch[..used].iter().map(|s| &s.db[..g.cout]));
        }
    }

    fn backward_chunk(
        &self,
        xc: &[f32],
        vals_t: &[f32],
        dyc: &[f32],
        mut dxc: Option<(&mut [f32], bool)>,
        with_bias: bool,
        s: &mut Scratch,
    ) {
        let _ftz = FlushDenormals::new();
        let g = &self.g;
        let (lanes, lv) = (self.lanes(), self.out_len_v());
        let Scratch {
            xq,
            dyv,
            dyq,
            dxv,
            acc,
            packed,
            db,
            ..
        } = s;
        let xq = aligned(xq, self.xq_len());
        let dyv = if self.dy_border.is_none() {
            aligned(dyv, g.cout * lv)
        } else {
            &mut [][..]
        };
        let acc = aligned(acc, self.nnz() * lanes);
        acc.fill(0.0);
        db.clear();
        db.resize(g.cout, 0.0);
        let max_vec = self.phases.iter().map(|f| f.nvec).max().unwrap_or(0);
        let need_dx = dxc.is_some();
        let dyq = if need_dx || self.dy_border.is_some() {
            aligned(dyq, self.dyq_len())
        } else {
            &mut [][..]
        };
        let dxv = if need_dx {
            aligned(dxv, max_vec * lanes)
        } else {
            &mut [][..]
        };
        let plane = self.dyq_h * self.dyq_w;
        for (n, (xn, dyn_)) in xc
            .chunks(g.in_len())
            .zip(dyc.chunks(g.out_len()))
            .enumerate()
        {
            self.pack_input(xn, xq);
            let (d, stride, at) = match self.dy_border {
                Some((_, at)) => {
                    self.pack_dy_padded(dyn_, dyq);
                    (&dyq[..], plane, at)
                }
                None => {
                    self.pack_dy_virtual(dyn_, dyv);
                    (&dyv[..], lv, 0)
                }
            };
            for o in 0..g.cout {
                let r = self.fwd.range(o);
                sampled_row(
                    self.path,
                    &self.fwd,
                    o,
                    xq,
                    &d[o * stride + at..][..lv],
                    self.out_vec,
                    &mut acc[r.start * lanes..r.end * lanes],
                );
            }
            if with_bias {
                for (o, row) in dyn_.chunks(g.out_hw()).enumerate() {
                    db[o] += row.iter().sum::<f32>();
                }
            }
            if let Some((dx, accumulate)) = dxc.as_mut() {
                let dxn = &mut dx[n * g.in_len()..(n + 1) * g.in_len()];
                if self.dy_border.is_none() {
                    self.pack_dy_padded(dyn_, dyq);
                }
                self.input_grad_sample(vals_t, dyq, dxv, dxn, *accumulate);
            }
        }
        packed.resize(self.nnz(), 0.0);
        fold_lanes(self.path, acc, packed, false);
    }

    fn input_grad_sample(
        &self,
        vals_t: &[f32],
        dyq: &[f32],
        dxv: &mut [f32],
        dx: &mut [f32],
        acc: bool,
    ) {
        let g = &self.g;
        let (s, p) = (g.stride, g.pad);
        for c in 0..g.cin {
            let plane = &mut dx[c * g.h * g.w..(c + 1) * g.h * g.w];
            for (ph, f) in self.phases.iter().enumerate() {
                if f.nvec == 0 {
                    continue;
                }
                gather_row(
                    self.path,
                    &self.bwd,
                    c * s * s + ph,
                    vals_t,
                    dyq,
                    f.nvec,
                    dxv,
                    false,
                );
                for r in f.r0..f.r1 {
                    let iy = s * r + f.py - p;
                    let src = &dxv[(r - f.r0) * self.dyq_w..][..f.j1 - f.j0];
                    let dst = &mut plane[iy * g.w..(iy + 1) * g.w];
                    let first = s * f.j0 + f.px - p;
                    if s == 1 {
                        let d = &mut dst[first..first + src.len()];
                        if acc {
                            d.iter_mut().zip(src).for_each(|(d, v)| *d += v);
                        } else {
                            d.copy_from_slice(src);
                        }
                    } else {
                        for (d, &v) in dst[first..].iter_mut().step_by(s).zip(src) {
                            *d = if acc { *d + v } else { v };
                        }
                    }
                }
            }
        }
    }

    /// The packed values in the input-gradient order, from the dense weight.
    pub fn transposed_values(&self, weight: &[f32], out: &mut Vec<f32>) {
        self.bwd.gather_values(weight, out);
    }
}

/// Splits `row` into its even-indexed entries (`evens`, `⌈n/2⌉` of them) and its odd-indexed ones (`odds`,
/// `⌊n/2⌋`), 16 entries per step on the AVX2 and AVX-512 paths. Panics if `evens` or `odds` is too short.
fn deinterleave(path: KernelPath, row: &[f32], evens: &mut [f32], odds: &mut [f32]) {
    let (ne, no) = (row.len().div_ceil(2), row.len() / 2);
    let (evens, odds) = (&mut evens[..ne], &mut odds[..no]);
    let mut done = 0;
    #[cfg(target_arch = "x86_64")]
    if path >= KernelPath::Avx2 && path.supported() {
        // SAFETY: AVX2 is present; the kernel touches `row[..16·k]`, `evens[..8·k]` and `odds[..8·k]` for
        // `k = n / 16` blocks, inside the slices.
        done = unsafe { x86::deinterleave_blocks(row, evens, odds) };
    }
    let _ = path;
    for (e, &v) in evens[done..]
        .iter_mut()
        .zip(row[2 * done..].iter().step_by(2))
    {
        *e = v;
    }
    for (o, &v) in odds[done..]
        .iter_mut()
        .zip(row[2 * done..].iter().skip(1).step_by(2))
    {
        *o = v;
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;

    /// [`super::deinterleave`] over whole blocks of 16 entries; returns the entries written to each of `evens`
    /// and `odds` (8 per block).
    #[target_feature(enable = "avx2")]
    pub(super) unsafe fn deinterleave_blocks(
        row: &[f32],
        evens: &mut [f32],
        odds: &mut [f32],
    ) -> usize {
        let blocks = (row.len() / 16).min(evens.len() / 8).min(odds.len() / 8);
        let (r, e, o) = (row.as_ptr(), evens.as_mut_ptr(), odds.as_mut_ptr());
        for b in 0..blocks {
            let lo = _mm256_loadu_ps(r.add(16 * b));
            let hi = _mm256_loadu_ps(r.add(16 * b + 8));
            // Per 128-bit lane: [lo0 lo2 hi0 hi2 | lo4 lo6 hi4 hi6], then the 64-bit pairs in order.
            let ev = _mm256_shuffle_ps::<0x88>(lo, hi);
            let od = _mm256_shuffle_ps::<0xDD>(lo, hi);
            let ev = _mm256_castpd_ps(_mm256_permute4x64_pd::<0xD8>(_mm256_castps_pd(ev)));
            let od = _mm256_castpd_ps(_mm256_permute4x64_pd::<0xD8>(_mm256_castps_pd(od)));
            _mm256_storeu_ps(e.add(8 * b), ev);
            _mm256_storeu_ps(o.add(8 * b), od);
        }
        8 * blocks
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::cpu::kernels::conv::{self as dense, ConvScratch};

    fn vals(n: usize, seed: u64) -> Vec<f32> {
        let mut s = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (0..n)
            .map(|_| {
                s = s
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                ((s >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
            })
            .collect()
    }

    fn keep(n: usize, density: f64, seed: u64) -> Vec<bool> {
        vals(n, seed)
            .iter()
            .map(|&v| (((v + 1.0) / 2.0) as f64) < density)
            .collect()
    }

    #[test]
    fn deinterleave_splits_even_and_odd_entries_on_every_path() {
        for path in KernelPath::available() {
            for n in 0..50 {
                let row = vals(n, n as u64);
                let (mut evens, mut odds) = (vec![f32::NAN; 30], vec![f32::NAN; 30]);
                deinterleave(path, &row, &mut evens, &mut odds);
                for (i, &v) in row.iter().enumerate() {
                    let got = if i % 2 == 0 {
                        evens[i / 2]
                    } else {
                        odds[i / 2]
                    };
                    assert_eq!(got.to_bits(), v.to_bits(), "{path:?} n {n} entry {i}");
                }
                assert!(
                    evens[n.div_ceil(2)..].iter().all(|v| v.is_nan()),
                    "{path:?} n {n}"
                );
                assert!(odds[n / 2..].iter().all(|v| v.is_nan()), "{path:?} n {n}");
            }
        }
    }

    #[test]
    fn matches_the_dense_masked_convolution() {
        // (cin, cout, h, w, k, s, p, batch, density)
        let cases = [
            (3, 5, 8, 8, 3, 1, 1, 2, 0.3),
            (4, 6, 9, 7, 3, 2, 1, 3, 0.5),
            (2, 3, 6, 10, 5, 1, 2, 1, 0.6),
            (5, 4, 7, 7, 1, 2, 0, 2, 0.4),
            (3, 3, 5, 6, 1, 1, 0, 2, 0.2),
            (4, 8, 12, 12, 5, 2, 2, 2, 0.1),
            (16, 16, 8, 8, 3, 1, 1, 3, 0.005),
            (3, 4, 6, 33, 3, 2, 1, 2, 0.3),
            (2, 3, 5, 35, 5, 2, 2, 3, 0.2),
            (4, 4, 4, 32, 3, 2, 0, 2, 0.6),
        ];
        for (ci, &(cin, cout, h, w, k, s, p, batch, d)) in cases.iter().enumerate() {
            let g = ConvGeom::new(cin, cout, h, w, k, s, p).unwrap();
            let kp = keep(cout * g.kdim(), d, ci as u64);
            let wfull = vals(cout * g.kdim(), 10 + ci as u64);
            let wm: Vec<f32> = wfull
                .iter()
                .zip(&kp)
                .map(|(&v, &k)| if k { v } else { 0.0 })
                .collect();
            let x = vals(batch * g.in_len(), 20 + ci as u64);
            let dy = vals(batch * g.out_len(), 30 + ci as u64);
            let bias = vals(cout, 40);
            let mut dsc: Vec<ConvScratch> = (0..8).map(|_| ConvScratch::default()).collect();
            let mut want = vec![0.0; batch * g.out_len()];
            dense::forward(
                KernelPath::best(),
                &g,
                &x,
                &wm,
                Some(&bias),
                true,
                &mut want,
                &mut dsc,
                &mut Vec::new(),
            );
            let mut wdx = vec![0.5; x.len()];
            let mut wdw = vec![0.0; wm.len()];
            let mut wdb = vec![0.0; cout];
            dense::backward(
                KernelPath::best(),
                &g,
                &x,
                &wm,
                &dy,
                Some((&mut wdx, true)),
                &mut wdw,
                Some(&mut wdb),
                &mut dsc,
                &mut Vec::new(),
            );
            for path in KernelPath::available() {
                let sc = SparseConv::new(&g, &kp, path);
                if s == 1 && k == 2 * p + 1 && h >= 8 {
                    assert!(sc.dy_border.is_some(), "{g:?}: dy read in place");
                }
                let (mut v, mut vt) = (Vec::new(), Vec::new());
                sc.taps().gather_values(&wm, &mut v);
                sc.transposed_values(&wm, &mut vt);
                let mut sscr: Vec<Scratch> = (0..8).map(|_| Scratch::default()).collect();
                let mut y = vec![f32::NAN; want.len()];
                sc.forward(&x, &v, Some(&bias), true, &mut y, &mut sscr, None);
                for (a, b) in y.iter().zip(&want) {
                    assert!((a - b).abs() < 1e-4, "case {ci} {path} forward {a} vs {b}");
                }
                let mut sums = Vec::new();
                let mut y2 = vec![f32::NAN; want.len()];
                sc.forward(
                    &x,
                    &v,
                    Some(&bias),
                    true,
                    &mut y2,
                    &mut sscr,
                    Some(&mut sums),
                );
                assert_eq!(y2, y, "case {ci} {path}: the sums leave the output alone");
                let sh = bn::BnShape {
                    n: batch,
                    c: cout,
                    hw: g.out_hw(),
                };
                let (mean, var, _) = bn::stats_from_sums(sums, sh.count(), None);
                assert_eq!(
                    (mean, var),
                    bn::batch_stats(sh, &y),
                    "case {ci} {path} sums"
                );
                let mut dx = vec![0.5; x.len()];
                let mut pdw = vec![0.0; sc.nnz()];
                let mut db = vec![0.0; cout];
                sc.backward(
                    &x,
                    &vt,
                    &dy,
                    Some((&mut dx, true)),
                    &mut pdw,
                    Some(&mut db),
                    &mut sscr,
                );
                for (a, b) in dx.iter().zip(&wdx) {
                    assert!((a - b).abs() < 1e-4, "case {ci} {path} dx {a} vs {b}");
                }
                let mut dw: Vec<f32> = kp.iter().map(|&k| if k { 0.0 } else { f32::NAN }).collect();
                sc.taps().scatter_values(&pdw, &mut dw, true);
                for (i, (&a, &b)) in dw.iter().zip(&wdw).enumerate() {
                    if kp[i] {
                        assert!((a - b).abs() < 1e-3, "case {ci} {path} dw[{i}] {a} vs {b}");
                    } else {
                        assert!(a.is_nan(), "masked dw[{i}] written");
                    }
                }
                for (a, b) in db.iter().zip(&wdb) {
                    assert!((a - b).abs() < 1e-3);
                }
                let mut dx2 = vec![f32::NAN; x.len()];
                sc.backward(
                    &x,
                    &vt,
                    &dy,
                    Some((&mut dx2, false)),
                    &mut pdw,
                    None,
                    &mut sscr,
                );
                for (a, b) in dx2.iter().zip(&wdx) {
                    assert!((a - (b - 0.5)).abs() < 1e-4, "case {ci} {path} dx (write)");
                }
            }
        }
    }
}
