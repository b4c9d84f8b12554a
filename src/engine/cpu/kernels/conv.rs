//! 2-D convolution as im2col + GEMM, the batch split into contiguous chunks across rayon threads.
//!
//! Per sample: forward `y[Cout, HW] = W[Cout, K] · col[K, HW]`; weight gradient `dW += dy · colᵀ`; data gradient
//! `dcol = Wᵀ · dy`, then col2im. A 1×1 stride-1 unpadded convolution uses the input as `col` directly. Where
//! [`direct`] supports the geometry (stride 1 or 2, output width a multiple of 8, AVX2/FMA), the forward pass
//! and weight gradient instead read shifted windows of a zero-padded sample, and for stride 1 the data
//! gradient is the forward pass of `dy` with flipped, transposed weights.

use rayon::prelude::*;

use super::nt::{gemm_nt, Rows};
use super::{bn, direct};
use super::{chunk_size, reduce_in_order, sgemm, FlushDenormals};
use crate::engine::cpu::simd::KernelPath;

/// Geometry of one convolution (square kernel, equal stride and padding on both axes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConvGeom {
    pub cin: usize,
    pub cout: usize,
    pub h: usize,
    pub w: usize,
    pub k: usize,
    pub stride: usize,
    pub pad: usize,
    pub oh: usize,
    pub ow: usize,
}

impl ConvGeom {
    /// Geometry for an input of `h × w`; `None` if the window does not fit.
    pub fn new(
        cin: usize,
        cout: usize,
        h: usize,
        w: usize,
        k: usize,
        stride: usize,
        pad: usize,
    ) -> Option<Self> {
        if k == 0 || stride == 0 || h + 2 * pad < k || w + 2 * pad < k {
            return None;
        }
        Some(ConvGeom {
            cin,
            cout,
            h,
            w,
            k,
            stride,
            pad,
            oh: (h + 2 * pad - k) / stride + 1,
            ow: (w + 2 * pad - k) / stride + 1,
        })
    }
    /// Fan-in: rows of the im2col matrix.
    pub fn kdim(&self) -> usize {
        self.cin * self.k * self.k
    }
    pub fn out_hw(&self) -> usize {
        self.oh * self.ow
    }
    pub fn in_len(&self) -> usize {
        self.cin * self.h * self.w
    }
    pub fn out_len(&self) -> usize {
        self.cout * self.out_hw()
    }
    /// 1×1, stride 1, no padding: the input already is the im2col matrix.
    pub fn pointwise(&self) -> bool {
        self.k == 1 && self.stride == 1 && self.pad == 0
    }
    /// Stride 1 with a padding small next to the output width: the weight gradient reads shifted windows of
    /// the padded input instead of an im2col matrix (the padded row width adds at most 20 % work).
    pub fn shifted_weight_grad(&self) -> bool {
        self.stride == 1 && self.k > 1 && 10 * self.pad <= self.ow
    }
    /// Valid output columns `[lo, hi)` for kernel offset `kx` along an axis of input size `n`.
    fn valid(&self, kx: usize, n: usize, on: usize) -> (usize, usize) {
        let (s, p) = (self.stride as isize, self.pad as isize);
        let off = kx as isize - p;
        // ix = o*s + off must satisfy 0 <= ix < n
        let lo = if off >= 0 { 0 } else { (-off + s - 1) / s };
        let hi = if n as isize - off <= 0 {
            0
        } else {
            (n as isize - off - 1) / s + 1
        };
        let lo = (lo as usize).min(on);
        (lo, (hi as usize).clamp(lo, on))
    }
}

/// Per-chunk scratch memory, reused across layers and steps.
#[derive(Debug, Default)]
pub struct ConvScratch {
    col: Vec<f32>,
    dcol: Vec<f32>,
    dw: Vec<f32>,
    db: Vec<f32>,
    /// Zero-padded input and output gradient for the shifted-window weight gradient.
    xp: Vec<f32>,
    dyp: Vec<f32>,
    starts: Vec<usize>,
    /// Output gradient of one sample transposed to `[OH·OW, Cout]`.
    dyt: Vec<f32>,
    /// Window offsets of the input-gradient geometry.
    dstarts: Vec<usize>,
    /// The chunk's per-channel output sums of [`forward_with_sums`].
    sums: Vec<[f64; 2]>,
}

fn grow(v: &mut Vec<f32>, len: usize) -> &mut [f32] {
    if v.len() < len {
        v.resize(len, 0.0);
    }
    &mut v[..len]
}

/// Unfolds one sample `x[Cin, H, W]` into `col[K, OH·OW]`, row `(c·k + ky)·k + kx`.
pub fn im2col(g: &ConvGeom, x: &[f32], col: &mut [f32]) {
    let (k, s, ohw) = (g.k, g.stride, g.out_hw());
    for c in 0..g.cin {
        let xc = &x[c * g.h * g.w..(c + 1) * g.h * g.w];
        for ky in 0..k {
            let (ylo, yhi) = g.valid(ky, g.h, g.oh);
            for kx in 0..k {
                let (xlo, xhi) = g.valid(kx, g.w, g.ow);
                let row = &mut col[((c * k + ky) * k + kx) * ohw..][..ohw];
                row[..ylo * g.ow].fill(0.0);
                row[yhi * g.ow..].fill(0.0);
                for oy in ylo..yhi {
                    let iy = oy * s + ky - g.pad;
                    let src = &xc[iy * g.w..(iy + 1) * g.w];
                    let dst = &mut row[oy * g.ow..(oy + 1) * g.ow];
                    dst[..xlo].fill(0.0);
                    dst[xhi..].fill(0.0);
                    if s == 1 {
                        let ix0 = xlo + kx - g.pad;
                        dst[xlo..xhi].copy_from_slice(&src[ix0..ix0 + xhi - xlo]);
                    } else {
                        for (ox, d) in dst.iter_mut().enumerate().take(xhi).skip(xlo) {
                            *d = src[ox * s + kx - g.pad];
                        }
                    }
                }
            }
        }
    }
}

/// Folds `col[K, OH·OW]` back onto `dx[Cin, H, W]`, adding (the adjoint of [`im2col`]).
pub fn col2im_add(g: &ConvGeom, col: &[f32], dx: &mut [f32]) {
    let (k, s, ohw) = (g.k, g.stride, g.out_hw());
    for c in 0..g.cin {
        let dxc = &mut dx[c * g.h * g.w..(c + 1) * g.h * g.w];
        for ky in 0..k {
            let (ylo, yhi) = g.valid(ky, g.h, g.oh);
            for kx in 0..k {
                let (xlo, xhi) = g.valid(kx, g.w, g.ow);
                let row = &col[((c * k + ky) * k + kx) * ohw..][..ohw];
                for oy in ylo..yhi {
                    let iy = oy * s + ky - g.pad;
                    let dst = &mut dxc[iy * g.w..(iy + 1) * g.w];
                    let src = &row[oy * g.ow..(oy + 1) * g.ow];
                    if s == 1 {
                        let ix0 = xlo + kx - g.pad;
                        for (d, v) in dst[ix0..ix0 + xhi - xlo].iter_mut().zip(&src[xlo..xhi]) {
                            *d += v;
                        }
                    } else {
                        for (ox, v) in src.iter().enumerate().take(xhi).skip(xlo) {
                            dst[ox * s + kx - g.pad] += v;
                        }
                    }
                }
            }
        }
    }
}

/// Forward over a batch: `y[N, Cout, OH, OW]` from `x[N, Cin, H, W]`, weight `[Cout, Cin, k, k]`, optional
/// bias, optionally followed by ReLU, with the kernels of `path`. `scratch` needs one entry per chunk (see
/// [`super::chunk_count`]); `wt` holds the transposed weight (so that the GEMM packs it with unit stride).
#[allow(clippy::too_many_arguments)]
pub fn forward(
    path: KernelPath,
    g: &ConvGeom,
    x: &[f32],
    weight: &[f32],
    bias: Option<&[f32]>,
    relu: bool,
    y: &mut [f32],
    scratch: &mut [ConvScratch],
    wt: &mut Vec<f32>,
) {
    forward_with_sums(path, g, x, weight, bias, relu, y, scratch, wt, None);
}

/// [`forward`] that also writes into `sums` (when given) the per-channel (sum, sum of squares) of the output,
/// collected while each sample's output is still in cache, bit for bit [`bn::batch_stats`]' sums of `y` (so
/// a batch norm that reads `y` need not pass over it again).
#[allow(clippy::too_many_arguments)]
pub fn forward_with_sums(
    path: KernelPath,
    g: &ConvGeom,
    x: &[f32],
    weight: &[f32],
    bias: Option<&[f32]>,
    relu: bool,
    y: &mut [f32],
    scratch: &mut [ConvScratch],
    wt: &mut Vec<f32>,
    sums: Option<&mut Vec<[f64; 2]>>,
) {
    let batch = x.len() / g.in_len();
    let cs = chunk_size(batch);
    let (kdim, ohw) = (g.kdim(), g.out_hw());
    let want_sums = sums.is_some();
    for s in scratch.iter_mut().take(batch.div_ceil(cs)) {
        s.sums.clear();
        s.sums.resize(if want_sums { g.cout } else { 0 }, [0.0; 2]);
    }
    if direct::forward_supported(path, g) {
        direct::pack_weight(g, weight, wt);
        let packed = &*wt;
        y.par_chunks_mut(cs * g.out_len())
            .zip(x.par_chunks(cs * g.in_len()))
            .zip(scratch.par_iter_mut())
            .for_each(|((yc, xc), s)| {
                let _ftz = FlushDenormals::new();
                direct::tap_offsets(g, &mut s.starts);
                let xp = grow(&mut s.xp, direct::padded_len(g));
                for (yn, xn) in yc.chunks_mut(g.out_len()).zip(xc.chunks(g.in_len())) {
                    direct::pad_sample(path, g, xn, xp);
                    direct::forward_sample(path, g, xp, packed, &s.starts, yn, false);
                    bias_relu(g, bias, relu, yn);
                    if want_sums {
                        bn::add_sample_sums(ohw, yn, &mut s.sums);
                    }
                }
            });
        collect_sums(scratch, batch.div_ceil(cs), sums);
        return;
    }
    let wt = grow(wt, kdim * g.cout);
    for (o, row) in weight.chunks(kdim).enumerate() {
        for (kk, &v) in row.iter().enumerate() {
            wt[kk * g.cout + o] = v;
        }
    }
    let wt = &*wt;
    y.par_chunks_mut(cs * g.out_len())
        .zip(x.par_chunks(cs * g.in_len()))
        .zip(scratch.par_iter_mut())
        .for_each(|((yc, xc), s)| {
            let _ftz = FlushDenormals::new();
            for (yn, xn) in yc.chunks_mut(g.out_len()).zip(xc.chunks(g.in_len())) {
                let col: &[f32] = if g.pointwise() {
                    xn
                } else {
                    let col = grow(&mut s.col, kdim * ohw);
                    im2col(g, xn, col);
                    col
                };
                sgemm(
                    g.cout,
                    kdim,
                    ohw,
                    1.0,
                    wt,
                    (1, g.cout),
                    col,
                    (ohw, 1),
                    0.0,
                    yn,
                    (ohw, 1),
                );
                bias_relu(g, bias, relu, yn);
                if want_sums {
                    bn::add_sample_sums(ohw, yn, &mut s.sums);
                }
            }
        });
    collect_sums(scratch, batch.div_ceil(cs), sums);
}

/// Reduces the chunk sums of [`forward_with_sums`] in chunk order into `sums`.
fn collect_sums(scratch: &[ConvScratch], chunks: usize, sums: Option<&mut Vec<[f64; 2]>>) {
    if let Some(total) = sums {
        total.clear();
        total.resize(scratch.first().map_or(0, |s| s.sums.len()), [0.0; 2]);
        for s in &scratch[..chunks] {
            bn::add_chunk_sums(total, &s.sums);
        }
    }
}

/// Adds the bias and applies ReLU to one output sample `y[Cout, OH·OW]`, as requested.
fn bias_relu(g: &ConvGeom, bias: Option<&[f32]>, relu: bool, y: &mut [f32]) {
    if bias.is_none() && !relu {
        return;
    }
    for (o, row) in y.chunks_mut(g.out_hw()).enumerate() {
        let b = bias.map_or(0.0, |b| b[o]);
        if relu {
            row.iter_mut().for_each(|v| *v = (*v + b).max(0.0));
        } else {
            row.iter_mut().for_each(|v| *v += b);
        }
    }
}

/// Backward over a batch. Writes the weight gradient (and bias gradient) over `dweight` (`dbias`); when `dx`
/// is given, writes (`accumulate == false`) or adds the input gradient to it. Partial weight gradients are
/// kept per chunk and summed in chunk order, so the result is deterministic for a given thread count.
/// `wt` holds the repacked weight of the input-gradient pass, shared by the chunks.
#[allow(clippy::too_many_arguments)]
pub fn backward(
    path: KernelPath,
    g: &ConvGeom,
    x: &[f32],
    weight: &[f32],
    dy: &[f32],
    dx: Option<(&mut [f32], bool)>,
    dweight: &mut [f32],
    dbias: Option<&mut [f32]>,
    scratch: &mut [ConvScratch],
    wt: &mut Vec<f32>,
) {
    let batch = x.len() / g.in_len();
    let cs = chunk_size(batch);
    let with_bias = dbias.is_some();
    let tg = direct::input_grad_geom(g).filter(|t| direct::forward_supported(path, t));
    if tg.is_some() && dx.is_some() {
        direct::pack_flipped(g, weight, wt);
    }
    let flipped = tg.map(|t| (t, wt.as_slice()));
    let chunks = x
        .par_chunks(cs * g.in_len())
        .zip(dy.par_chunks(cs * g.out_len()));
    match dx {
        Some((dx, acc)) => chunks
            .zip(dx.par_chunks_mut(cs * g.in_len()))
            .zip(scratch.par_iter_mut())
            .for_each(|(((xc, dyc), dxc), s)| {
                backward_chunk(
                    path,
                    g,
                    xc,
                    weight,
                    flipped,
                    dyc,
                    Some((dxc, acc)),
                    with_bias,
                    s,
                )
            }),
        None => chunks
            .zip(scratch.par_iter_mut())
            .for_each(|((xc, dyc), s)| {
                backward_chunk(path, g, xc, weight, flipped, dyc, None, with_bias, s)
            }),
    }
    let used = batch.div_ceil(cs);
    let wlen = g.cout * g.kdim();
    reduce_in_order(dweight, scratch[..used].iter().map(|s| &s.dw[..wlen]));
    if let Some(db) = dbias {
        reduce_in_order(db, scratch[..used].iter().map(|s| &s.db[..g.cout]));
    }
}

/// One chunk of [`backward`]; `flipped` is the input-gradient geometry and packed weight when [`direct`]
/// computes the input gradient.
#[allow(clippy::too_many_arguments)]
fn backward_chunk(
    path: KernelPath,
    g: &ConvGeom,
    xc: &[f32],
    weight: &[f32],
    flipped: Option<(ConvGeom, &[f32])>,
    dyc: &[f32],
    mut dxc: Option<(&mut [f32], bool)>,
    with_bias: bool,
    s: &mut ConvScratch,
) {
    let _ftz = FlushDenormals::new();
    let (kdim, ohw) = (g.kdim(), g.out_hw());
    grow(&mut s.dw, g.cout * kdim);
    grow(&mut s.db, g.cout).fill(0.0);
    let ConvScratch {
        col,
        dcol,
        dw,
        db,
        xp,
        dyp,
        starts,
        dyt,
        dstarts,
        ..
    } = s;
    let direct_wgrad = direct::weight_grad_supported(path, g);
    if direct_wgrad {
        dw[..g.cout * kdim].fill(0.0);
        direct::tap_offsets(g, starts);
        grow(xp, direct::padded_len(g));
        grow(dyt, g.out_len());
    }
    if let Some((t, _)) = flipped {
        direct::tap_offsets(&t, dstarts);
        grow(dyp, direct::padded_len(&t));
    }
    let shifted = !direct_wgrad && g.shifted_weight_grad();
    // Padded geometry: rows of width wp; dW[o, (c, ky, kx)] = Σ_q dyp[o, q] · xp[c·plane + ky·wp + kx + q].
    let (wp, hp) = (g.w + 2 * g.pad, g.h + 2 * g.pad);
    let plane = hp * wp;
    if shifted {
        grow(xp, g.cin * plane + g.k).fill(0.0);
        grow(dyp, g.cout * g.oh * wp).fill(0.0);
        starts.clear();
        for c in 0..g.cin {
            for ky in 0..g.k {
                for kx in 0..g.k {
                    starts.push(c * plane + ky * wp + kx);
                }
            }
        }
    }
    for (n, (xn, dyn_)) in xc
        .chunks(g.in_len())
        .zip(dyc.chunks(g.out_len()))
        .enumerate()
    {
        if direct_wgrad {
            direct::pad_sample(path, g, xn, xp);
            direct::transpose(path, g.cout, ohw, dyn_, dyt);
            direct::weight_grad_sample(path, g, xp, dyt, starts, dw);
        } else if shifted {
            for c in 0..g.cin {
                for y in 0..g.h {
                    let dst = c * plane + (y + g.pad) * wp + g.pad;
                    xp[dst..dst + g.w].copy_from_slice(&xn[(c * g.h + y) * g.w..][..g.w]);
                }
            }
            for o in 0..g.cout {
                for y in 0..g.oh {
                    let dst = (o * g.oh + y) * wp;
                    dyp[dst..dst + g.ow].copy_from_slice(&dyn_[(o * g.oh + y) * g.ow..][..g.ow]);
                }
            }
            let kq = g.oh * wp;
            let a = Rows::strided(&dyp[..g.cout * kq], g.cout, kq);
            let b = Rows::at(&xp[..g.cin * plane + g.k], starts);
            gemm_nt(path, kq, a, b, &mut dw[..], kdim, n > 0);
        } else {
            let colv: &[f32] = if g.pointwise() {
                xn
            } else {
                let c = grow(col, kdim * ohw);
                im2col(g, xn, c);
                c
            };
            let a = Rows::strided(dyn_, g.cout, ohw);
            let b = Rows::strided(colv, kdim, ohw);
            gemm_nt(path, ohw, a, b, &mut dw[..], kdim, n > 0);
        }
        if with_bias {
            for (o, row) in dyn_.chunks(ohw).enumerate() {
                db[o] += row.iter().sum::<f32>();
            }
        }
        if let Some((dx, acc)) = dxc.as_mut() {
            let dxn = &mut dx[n * g.in_len()..(n + 1) * g.in_len()];
            if let Some((t, packed)) = flipped {
                direct::pad_sample(path, &t, dyn_, dyp);
                direct::forward_sample(path, &t, dyp, packed, dstarts, dxn, *acc);
            } else if g.pointwise() {
                let beta = if *acc { 1.0 } else { 0.0 };
                sgemm(
                    kdim,
                    g.cout,
                    ohw,
                    1.0,
                    weight,
                    (1, kdim),
                    dyn_,
                    (ohw, 1),
                    beta,
                    dxn,
                    (ohw, 1),
                );
            } else {
                let dc = grow(dcol, kdim * ohw);
                sgemm(
                    kdim,
                    g.cout,
                    ohw,
                    1.0,
                    weight,
                    (1, kdim),
                    dyn_,
                    (ohw, 1),
                    0.0,
                    dc,
                    (ohw, 1),
                );
                if !*acc {
                    dxn.fill(0.0);
                }
                col2im_add(g, dc, dxn);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const P: KernelPath = KernelPath::Portable;

    fn direct(g: &ConvGeom, x: &[f32], w: &[f32]) -> Vec<f32> {
        let mut y = vec![0.0; g.out_len()];
        for o in 0..g.cout {
            for oy in 0..g.oh {
                for ox in 0..g.ow {
                    let mut acc = 0.0;
                    for c in 0..g.cin {
                        for ky in 0..g.k {
                            for kx in 0..g.k {
                                let iy = (oy * g.stride + ky) as isize - g.pad as isize;
                                let ix = (ox * g.stride + kx) as isize - g.pad as isize;
                                if iy >= 0 && ix >= 0 && (iy as usize) < g.h && (ix as usize) < g.w
                                {
                                    acc += x[(c * g.h + iy as usize) * g.w + ix as usize]
                                        * w[((o * g.cin + c) * g.k + ky) * g.k + kx];
                                }
                            }
                        }
                    }
                    y[(o * g.oh + oy) * g.ow + ox] = acc;
                }
            }
        }
        y
    }

    #[test]
    fn im2col_gemm_matches_direct_convolution() {
        for &(k, s, p, h, w) in &[
            (3, 1, 1, 5, 6),
            (3, 2, 1, 7, 5),
            (5, 1, 2, 6, 6),
            (1, 2, 0, 5, 5),
            (1, 1, 0, 4, 3),
            (3, 1, 1, 5, 16),
            (3, 1, 0, 6, 10),
        ] {
            let g = ConvGeom::new(2, 3, h, w, k, s, p).unwrap();
            let x: Vec<f32> = (0..g.in_len())
                .map(|i| ((i * 7 % 11) as f32 - 5.0) * 0.1)
                .collect();
            let wt: Vec<f32> = (0..g.cout * g.kdim())
                .map(|i| ((i * 5 % 13) as f32 - 6.0) * 0.1)
                .collect();
            let mut y = vec![0.0; g.out_len()];
            let mut scratch: Vec<ConvScratch> = (0..4).map(|_| ConvScratch::default()).collect();
            forward(
                P,
                &g,
                &x,
                &wt,
                None,
                false,
                &mut y,
                &mut scratch,
                &mut Vec::new(),
            );
            let want = direct(&g, &x, &wt);
            for (a, b) in y.iter().zip(&want) {
                assert!((a - b).abs() < 1e-5, "{a} vs {b} for k{k} s{s} p{p}");
            }
        }
    }

    /// Deterministic input, weights and output gradient of `n` samples for `g`.
    fn patterned(g: &ConvGeom, n: usize) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
        let x = (0..n * g.in_len())
            .map(|i| ((i * 7 % 11) as f32 - 5.0) * 0.1)
            .collect();
        let wt = (0..g.cout * g.kdim())
            .map(|i| ((i * 5 % 13) as f32 - 6.0) * 0.1)
            .collect();
        let dy = (0..n * g.out_len())
            .map(|i| ((i * 3 % 7) as f32 - 3.0) * 0.2)
            .collect();
        (x, wt, dy)
    }

    #[test]
    fn weight_gradient_matches_the_definition() {
        for &(k, s, p, h, w, cout) in &[
            (3, 1, 1, 10, 12, 4),
            (3, 2, 1, 7, 6, 4),
            (5, 1, 2, 20, 20, 4),
            (3, 1, 1, 4, 4, 4),
            (3, 1, 1, 6, 8, 24),
            (3, 2, 1, 8, 16, 8),
        ] {
            let g = ConvGeom::new(3, cout, h, w, k, s, p).unwrap();
            let n = 3;
            let (x, wt, dy) = patterned(&g, n);
            let mut dw = vec![0.0; wt.len()];
            let mut scratch: Vec<ConvScratch> = (0..4).map(|_| ConvScratch::default()).collect();
            backward(
                P,
                &g,
                &x,
                &wt,
                &dy,
                None,
                &mut dw,
                None,
                &mut scratch,
                &mut Vec::new(),
            );
            let mut col = vec![0.0; g.kdim() * g.out_hw()];
            let mut want = vec![0.0f64; wt.len()];
            for b in 0..n {
                im2col(&g, &x[b * g.in_len()..(b + 1) * g.in_len()], &mut col);
                for o in 0..g.cout {
                    for kk in 0..g.kdim() {
                        for q in 0..g.out_hw() {
                            want[o * g.kdim() + kk] += (dy[b * g.out_len() + o * g.out_hw() + q]
                                * col[kk * g.out_hw() + q])
                                as f64;
                        }
                    }
                }
            }
            for (a, b) in dw.iter().zip(&want) {
                assert!(
                    (*a as f64 - b).abs() < 1e-3,
                    "{a} vs {b} for k{k} s{s} p{p} {h}x{w} cout {cout}"
                );
            }
        }
    }

    #[test]
    fn input_gradient_is_the_adjoint_of_forward() {
        for &(k, s, p, h, w, cout) in &[
            (3, 1, 1, 6, 8, 8),
            (3, 1, 1, 5, 16, 3),
            (3, 2, 1, 7, 6, 4),
            (3, 1, 1, 5, 5, 4),
            (1, 1, 0, 4, 8, 8),
            (3, 2, 1, 8, 16, 8),
        ] {
            let g = ConvGeom::new(3, cout, h, w, k, s, p).unwrap();
            let n = 3;
            let (x, wt, dy) = patterned(&g, n);
            let mut scratch: Vec<ConvScratch> = (0..4).map(|_| ConvScratch::default()).collect();
            let mut y = vec![0.0; n * g.out_len()];
            let mut packed = Vec::new();
            forward(
                P,
                &g,
                &x,
                &wt,
                None,
                false,
                &mut y,
                &mut scratch,
                &mut packed,
            );
            let mut dx = vec![1.0; x.len()];
            let mut dw = vec![0.0; wt.len()];
            backward(
                P,
                &g,
                &x,
                &wt,
                &dy,
                Some((&mut dx, true)),
                &mut dw,
                None,
                &mut scratch,
                &mut packed,
            );
            let lhs: f64 = y.iter().zip(&dy).map(|(a, b)| (a * b) as f64).sum();
            let rhs: f64 = x.iter().zip(&dx).map(|(a, b)| (a * (b - 1.0)) as f64).sum();
            assert!(
                (lhs - rhs).abs() < 1e-3 * lhs.abs().max(1.0),
                "{lhs} vs {rhs} for k{k} s{s} p{p} {h}x{w} cout {cout}"
            );
        }
    }

    #[test]
    fn col2im_is_the_adjoint_of_im2col() {
        let g = ConvGeom::new(2, 1, 5, 4, 3, 2, 1).unwrap();
        let x: Vec<f32> = (0..g.in_len()).map(|i| (i as f32 * 0.37).sin()).collect();
        let c: Vec<f32> = (0..g.kdim() * g.out_hw())
            .map(|i| (i as f32 * 0.11).cos())
            .collect();
        let mut col = vec![0.0; c.len()];
        im2col(&g, &x, &mut col);
        let mut back = vec![0.0; x.len()];
        col2im_add(&g, &c, &mut back);
        let lhs: f64 = col.iter().zip(&c).map(|(a, b)| (a * b) as f64).sum();
        let rhs: f64 = x.iter().zip(&back).map(|(a, b)| (a * b) as f64).sum();
        assert!((lhs - rhs).abs() < 1e-4, "{lhs} vs {rhs}");
    }

    #[test]
    fn forward_sums_are_the_batch_statistics_of_the_output() {
        // (cin, cout, h, w, k, s, p, batch, bias, relu): shifted-window and GEMM shapes.
        let cases = [
            (3, 8, 9, 9, 3, 1, 1, 5, true, false),
            (4, 16, 8, 8, 3, 2, 1, 7, false, false),
            (5, 6, 7, 6, 1, 1, 0, 3, true, true),
            (2, 3, 6, 10, 5, 1, 2, 1, false, false),
        ];
        for (ci, &(cin, cout, h, w, k, s, p, n, bias, relu)) in cases.iter().enumerate() {
            let g = ConvGeom::new(cin, cout, h, w, k, s, p).unwrap();
            let x: Vec<f32> = (0..n * g.in_len())
                .map(|i| ((i * 7 + ci) as f32 * 0.37).sin())
                .collect();
            let wt: Vec<f32> = (0..cout * g.kdim())
                .map(|i| ((i + 3 * ci) as f32 * 0.21).cos())
                .collect();
            let b: Vec<f32> = (0..cout).map(|o| o as f32 * 0.1 - 0.2).collect();
            let b = bias.then_some(b.as_slice());
            for path in KernelPath::available() {
                let mut scratch: Vec<ConvScratch> = (0..8).map(|_| Default::default()).collect();
                let (mut y, mut y2) = (vec![0.0; n * g.out_len()], vec![0.0; n * g.out_len()]);
                let mut sums = vec![[f64::NAN; 2]; 1];
                forward_with_sums(
                    path,
                    &g,
                    &x,
                    &wt,
                    b,
                    relu,
                    &mut y,
                    &mut scratch,
                    &mut Vec::new(),
                    Some(&mut sums),
                );
                forward(
                    path,
                    &g,
                    &x,
                    &wt,
                    b,
                    relu,
                    &mut y2,
                    &mut scratch,
                    &mut Vec::new(),
                );
                assert_eq!(y, y2, "case {ci} {path}: the sums leave the output alone");
                let sh = bn::BnShape {
                    n,
                    c: cout,
                    hw: g.out_hw(),
                };
                let (mean, var, _) = bn::stats_from_sums(sums, sh.count(), None);
                assert_eq!((mean, var), bn::batch_stats(sh, &y), "case {ci} {path}");
            }
        }
    }
}
