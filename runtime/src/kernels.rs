//! Compute kernels over channel-major activations. Sparse and dense weights share one formulation: for each
//! output channel, for each stored entry `(row, col, w)` in row-major order, add `w` times the matching input
//! (plane) to the output (plane); the inner loop runs over the spatial dimension. Summation order is part of
//! the contract (the C emitter reproduces it): bias first, then the entries in storage order.

#![allow(clippy::too_many_arguments)]

use crate::quant;
use crate::rows::Rows;
use crate::simd;

/// Geometry of a convolution: input (C, H, W), output (CO, OH, OW), square kernel, stride, padding.
#[derive(Debug, Clone, Copy)]
pub struct ConvGeom {
    pub c: usize,
    pub h: usize,
    pub w: usize,
    pub oh: usize,
    pub ow: usize,
    pub k: usize,
    pub s: usize,
    pub p: usize,
}

impl ConvGeom {
    /// The input channel and kernel offsets `(ci, ky, kx)` of weight column `col = (ci·K + ky)·K + kx`
    /// (32-bit division: columns of a valid model fit in `u32`).
    #[inline(always)]
    fn tap(&self, col: usize) -> (usize, usize, usize) {
        let (k, kk) = (self.k as u32, (self.k * self.k) as u32);
        let (ci, rem) = (col as u32 / kk, col as u32 % kk);
        (ci as usize, (rem / k) as usize, (rem % k) as usize)
    }

    /// The output range `lo..hi` whose input coordinate `o * s + d - p` lies in `0..n` (d = kernel offset).
    #[inline]
    fn span(&self, d: usize, n: usize, on: usize) -> (usize, usize) {
        let lo = if self.p > d {
            (self.p - d).div_ceil(self.s)
        } else {
            0
        };
        let hi = if n + self.p > d {
            ((n - 1 + self.p - d) / self.s + 1).min(on)
        } else {
            0
        };
        (lo, hi.max(lo))
    }
}

/// Applies `f(y, x)` to every output element `y` of plane `y` (OH × OW) and the input element `x` of plane `x`
/// (H × W) that kernel offset (ky, kx) maps it to, skipping outputs whose input lies in the padding.
///
/// With stride 1 and OW = W the input is the output shifted by a constant, so the valid rows form one
/// contiguous run: it is processed in one loop, the out-of-row elements between rows saved before and restored
/// after (at most [`SAVED`] of them; more fall back to one loop per row).
#[inline(always)]
fn shifted<Y: Copy, X: Copy>(
    y: &mut [Y],
    x: &[X],
    g: &ConvGeom,
    ky: usize,
    kx: usize,
    f: impl Fn(&mut Y, X),
) {
    let (oy0, oy1) = g.span(ky, g.h, g.oh);
    let (ox0, ox1) = g.span(kx, g.w, g.ow);
    if ox1 <= ox0 || oy1 <= oy0 {
        return;
    }
    let gap = g.w - (ox1 - ox0);
    if g.s == 1 && g.ow == g.w && (oy1 - oy0 - 1) * gap <= SAVED {
        let start = oy0 * g.w + ox0;
        let end = (oy1 - 1) * g.w + ox1;
        let xs = start + ky * g.w + kx - g.p * g.w - g.p;
        let (Some(yr), Some(xr)) = (y.get_mut(start..end), x.get(xs..xs + (end - start))) else {
            return;
        };
        let mut saved = [yr[0]; SAVED];
        let mut n = 0;
        for row in 1..oy1 - oy0 {
            for v in &yr[row * g.w - gap..row * g.w] {
                saved[n] = *v;
                n += 1;
            }
        }
        for (a, &b) in yr.iter_mut().zip(xr) {
            f(a, b);
        }
        let mut n = 0;
        for row in 1..oy1 - oy0 {
            for v in &mut yr[row * g.w - gap..row * g.w] {
                *v = saved[n];
                n += 1;
            }
        }
        return;
    }
    for oy in oy0..oy1 {
        let iy = oy * g.s + ky - g.p;
        let yr = &mut y[oy * g.ow + ox0..oy * g.ow + ox1];
        let xr = &x[iy * g.w..(iy + 1) * g.w];
        if g.s == 1 {
            for (a, &b) in yr.iter_mut().zip(&xr[ox0 + kx - g.p..ox1 + kx - g.p]) {
                f(a, b);
            }
        } else {
            for (j, a) in yr.iter_mut().enumerate() {
                f(a, xr[(ox0 + j) * g.s + kx - g.p]);
            }
        }
    }
}

/// Most out-of-row elements [`shifted`] saves and restores around a contiguous run.
const SAVED: usize = 64;

/// Adds `w` times the input plane `x` (H × W), shifted by kernel offset (ky, kx), to the output plane `y`.
#[inline(always)]
fn axpy_shifted_f32(y: &mut [f32], x: &[f32], w: f32, g: &ConvGeom, ky: usize, kx: usize) {
    shifted(y, x, g, ky, kx, |a, b| *a += w * b);
}

/// [`axpy_shifted_f32`] for int8 planes into i32 accumulators (products in i16, where they always fit).
#[inline(always)]
fn axpy_shifted_i8(y: &mut [i32], x: &[i8], w: i8, g: &ConvGeom, ky: usize, kx: usize) {
    let w = i16::from(w);
    shifted(y, x, g, ky, kx, |a, b| {
        *a = a.wrapping_add(i32::from(w * i16::from(b)))
    });
}

/// Float convolution: each output plane starts at its bias, then gets every stored entry of its row in storage
/// order. `value(k)` is the weight of entry `k`, `bias(r)` the bias of output channel `r`.
pub fn conv_f32(
    x: &[f32],
    y: &mut [f32],
    g: &ConvGeom,
    co: usize,
    rows: &mut impl Rows,
    value: impl Fn(usize) -> f32,
    bias: impl Fn(usize) -> f32,
    relu: bool,
) {
    simd::vectorised(
        #[inline(always)]
        || conv_f32_impl(x, y, g, co, rows, value, bias, relu),
    )
}

#[inline(always)]
fn conv_f32_impl(
    x: &[f32],
    y: &mut [f32],
    g: &ConvGeom,
    co: usize,
    rows: &mut impl Rows,
    value: impl Fn(usize) -> f32,
    bias: impl Fn(usize) -> f32,
    relu: bool,
) {
    let plane = g.oh * g.ow;
    let xplane = g.h * g.w;
    for (r, yp) in y.chunks_exact_mut(plane).take(co).enumerate() {
        yp.fill(bias(r));
        rows.row(
            r,
            #[inline(always)]
            |col, e| {
                let (ci, ky, kx) = g.tap(col);
                if let Some(xp) = x.get(ci * xplane..(ci + 1) * xplane) {
                    axpy_shifted_f32(yp, xp, value(e), g, ky, kx);
                }
            },
        );
        if relu {
            relu_f32(yp);
        }
    }
}

/// Int8 convolution with i32 accumulation in `acc` (one output plane), requantised per output channel.
pub fn conv_i8(
    x: &[i8],
    y: &mut [i8],
    acc: &mut [i32],
    g: &ConvGeom,
    co: usize,
    rows: &mut impl Rows,
    value: impl Fn(usize) -> i8,
    bias: impl Fn(usize) -> i32,
    mult: impl Fn(usize) -> f32,
    relu: bool,
) {
    simd::vectorised(
        #[inline(always)]
        || conv_i8_impl(x, y, acc, g, co, rows, value, bias, mult, relu),
    )
}

#[inline(always)]
fn conv_i8_impl(
    x: &[i8],
    y: &mut [i8],
    acc: &mut [i32],
    g: &ConvGeom,
    co: usize,
    rows: &mut impl Rows,
    value: impl Fn(usize) -> i8,
    bias: impl Fn(usize) -> i32,
    mult: impl Fn(usize) -> f32,
    relu: bool,
) {
    let plane = g.oh * g.ow;
    let xplane = g.h * g.w;
    let acc = &mut acc[..plane];
    for (r, yp) in y.chunks_exact_mut(plane).take(co).enumerate() {
        acc.fill(bias(r));
        rows.row(
            r,
            #[inline(always)]
            |col, e| {
                let (ci, ky, kx) = g.tap(col);
                if let Some(xp) = x.get(ci * xplane..(ci + 1) * xplane) {
                    axpy_shifted_i8(acc, xp, value(e), g, ky, kx);
                }
            },
        );
        quant::requantize_slice(acc, yp, mult(r), relu);
    }
}

/// Float matrix-vector product `y = W x + b`: each output is its bias plus its row's entries in storage order.
pub fn gemm_f32(
    x: &[f32],
    y: &mut [f32],
    rows: &mut impl Rows,
    value: impl Fn(usize) -> f32,
    bias: impl Fn(usize) -> f32,
    relu: bool,
) {
    simd::vectorised(
        #[inline(always)]
        || gemm_f32_impl(x, y, rows, value, bias, relu),
    )
}

#[inline(always)]
fn gemm_f32_impl(
    x: &[f32],
    y: &mut [f32],
    rows: &mut impl Rows,
    value: impl Fn(usize) -> f32,
    bias: impl Fn(usize) -> f32,
    relu: bool,
) {
    match rows.dense_cols() {
        Some(cols) => gemv_dense_f32(x, y, cols, &value, &bias),
        None => {
            for (r, v) in y.iter_mut().enumerate() {
                let mut acc = bias(r);
                rows.row(
                    r,
                    #[inline(always)]
                    |c, k| acc += value(k) * x.get(c).copied().unwrap_or(0.0),
                );
                *v = acc;
            }
        }
    }
    if relu {
        relu_f32(y);
    }
}

#[inline(always)]
/// Dense rows, [`GEMV_BLOCK`] at a time: one accumulator per row, each summing its row in column order.
fn gemv_dense_f32(
    x: &[f32],
    y: &mut [f32],
    cols: usize,
    value: &impl Fn(usize) -> f32,
    bias: &impl Fn(usize) -> f32,
) {
    let x = &x[..cols.min(x.len())];
    let mut blocks = y.chunks_exact_mut(GEMV_BLOCK);
    let mut r0 = 0;
    for yb in &mut blocks {
        let mut acc = [0.0f32; GEMV_BLOCK];
        for (i, a) in acc.iter_mut().enumerate() {
            *a = bias(r0 + i);
        }
        for (c, &xc) in x.iter().enumerate() {
            for (i, a) in acc.iter_mut().enumerate() {
                *a += value((r0 + i) * cols + c) * xc;
            }
        }
        yb.copy_from_slice(&acc);
        r0 += GEMV_BLOCK;
    }
    for (i, v) in blocks.into_remainder().iter_mut().enumerate() {
        let r = r0 + i;
        let mut acc = bias(r);
        for (c, &xc) in x.iter().enumerate() {
            acc += value(r * cols + c) * xc;
        }
        *v = acc;
    }
}

/// Rows of a dense float matrix-vector product computed together.
const GEMV_BLOCK: usize = 8;

/// Int8 matrix-vector product with i32 accumulation, requantised per output row.
pub fn gemm_i8(
    x: &[i8],
    y: &mut [i8],
    rows: &mut impl Rows,
    values: &[i8],
    bias: impl Fn(usize) -> i32,
    mult: impl Fn(usize) -> f32,
    relu: bool,
) {
    simd::vectorised(
        #[inline(always)]
        || gemm_i8_impl(x, y, rows, values, bias, mult, relu),
    )
}

#[inline(always)]
fn gemm_i8_impl(
    x: &[i8],
    y: &mut [i8],
    rows: &mut impl Rows,
    values: &[i8],
    bias: impl Fn(usize) -> i32,
    mult: impl Fn(usize) -> f32,
    relu: bool,
) {
    match rows.dense_cols() {
        Some(cols) => {
            for (r, (q, w)) in y.iter_mut().zip(values.chunks_exact(cols)).enumerate() {
                let acc = bias(r).wrapping_add(dot_i8(w, x));
                *q = quant::requantize(acc, mult(r), relu);
            }
        }
        None => {
            for (r, q) in y.iter_mut().enumerate() {
                let mut acc = bias(r);
                rows.row(
                    r,
                    #[inline(always)]
                    |c, k| {
                        let w = values.get(k).copied().unwrap_or(0);
                        let v = x.get(c).copied().unwrap_or(0);
                        acc = acc.wrapping_add(i32::from(i16::from(w) * i16::from(v)));
                    },
                );
                *q = quant::requantize(acc, mult(r), relu);
            }
        }
    }
}

/// `Σ w[i]·x[i]` in i32 (i8 products fit i16; the sum of 65 536 of them fits i32, and wraps beyond).
#[inline(always)]
fn dot_i8(w: &[i8], x: &[i8]) -> i32 {
    let mut acc = 0i32;
    for (wc, xc) in w.chunks(1 << 16).zip(x.chunks(1 << 16)) {
        let s: i32 = wc
            .iter()
            .zip(xc)
            .map(|(&a, &b)| i32::from(i16::from(a) * i16::from(b)))
            .sum();
        acc = acc.wrapping_add(s);
    }
    acc
}

#[inline(always)]
pub fn relu_f32(y: &mut [f32]) {
    for v in y {
        if *v < 0.0 {
            *v = 0.0;
        }
    }
}

/// Max pooling without padding, any element type: the window's first element, replaced by each later one (in
/// row-major order) that is greater.
pub fn max_pool<T: Copy + PartialOrd>(
    x: &[T],
    y: &mut [T],
    c: usize,
    h: usize,
    w: usize,
    k: usize,
    s: usize,
) {
    let (oh, ow) = ((h - k) / s + 1, (w - k) / s + 1);
    let mut out = y.iter_mut();
    for xp in x.chunks_exact(h * w).take(c) {
        for oy in 0..oh {
            let rows = &xp[oy * s * w..];
            for (ox, o) in (0..ow).zip(&mut out) {
                let mut m = rows[ox * s];
                for dy in 0..k {
                    for &v in &rows[dy * w + ox * s..dy * w + ox * s + k] {
                        if v > m {
                            m = v;
                        }
                    }
                }
                *o = m;
            }
        }
    }
}

/// Average pooling without padding: window sum in row-major order, divided by k².
pub fn avg_pool_f32(x: &[f32], y: &mut [f32], c: usize, h: usize, w: usize, k: usize, s: usize) {
    let (oh, ow) = ((h - k) / s + 1, (w - k) / s + 1);
    let n = (k * k) as f32;
    for ch in 0..c {
        let xp = &x[ch * h * w..];
        for oy in 0..oh {
            for ox in 0..ow {
                let mut acc = 0.0f32;
                for dy in 0..k {
                    for dx in 0..k {
                        acc += xp[(oy * s + dy) * w + ox * s + dx];
                    }
                }
                y[(ch * oh + oy) * ow + ox] = acc / n;
            }
        }
    }
}

/// Int8 average pooling: i32 window sum requantised with multiplier `m` (which includes 1/k²).
pub fn avg_pool_i8(
    x: &[i8],
    y: &mut [i8],
    c: usize,
    h: usize,
    w: usize,
    k: usize,
    s: usize,
    m: f32,
) {
    let (oh, ow) = ((h - k) / s + 1, (w - k) / s + 1);
    for ch in 0..c {
        let xp = &x[ch * h * w..];
        for oy in 0..oh {
            for ox in 0..ow {
                let mut acc = 0i32;
                for dy in 0..k {
                    for dx in 0..k {
                        acc += xp[(oy * s + dy) * w + ox * s + dx] as i32;
                    }
                }
                y[(ch * oh + oy) * ow + ox] = quant::requantize(acc, m, false);
            }
        }
    }
}

/// Global average pooling: plane sum in order, divided by H·W.
pub fn global_avg_pool_f32(x: &[f32], y: &mut [f32], c: usize, hw: usize) {
    for ch in 0..c {
        let mut acc = 0.0f32;
        for &v in &x[ch * hw..(ch + 1) * hw] {
            acc += v;
        }
        y[ch] = acc / hw as f32;
    }
}

/// Int8 global average pooling: i32 plane sum requantised with multiplier `m` (which includes 1/(H·W)).
pub fn global_avg_pool_i8(x: &[i8], y: &mut [i8], c: usize, hw: usize, m: f32) {
    for ch in 0..c {
        let acc: i32 = x[ch * hw..(ch + 1) * hw].iter().map(|&v| v as i32).sum();
        y[ch] = quant::requantize(acc, m, false);
    }
}

/// Option-A shortcut: every `s`-th pixel of each channel, channels placed after `pad` zero channels, the rest zero.
pub fn subsample_pad<T: Copy>(
    x: &[T],
    y: &mut [T],
    zero: T,
    c: usize,
    h: usize,
    w: usize,
    s: usize,
    pad: usize,
) {
    let (oh, ow) = (h.div_ceil(s), w.div_ceil(s));
    y.fill(zero);
    for ch in 0..c {
        for oy in 0..oh {
            for ox in 0..ow {
                y[((ch + pad) * oh + oy) * ow + ox] = x[(ch * h + oy * s) * w + ox * s];
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rows::Dense;

    fn lcg(x: &mut u32) -> u32 {
        *x = x.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
        *x >> 8
    }

    fn desc(co: usize, c: usize, k: usize) -> crate::model::TensorDesc {
        crate::model::TensorDesc {
            dtype: crate::format::dtype::F32,
            encoding: crate::format::encoding::DENSE,
            param: 0,
            rank: 4,
            dims: [co as u32, c as u32, k as u32, k as u32],
            nnz: (co * c * k * k) as u32,
            values_off: 0,
            index_off: 0,
            index_len: 0,
            indptr_off: 0,
            scales_off: 0,
        }
    }

    /// Each output: bias, then every weight in storage order, in f32 (and the same in i32).
    #[test]
    fn convolutions_match_a_direct_evaluation() {
        let mut seed = 5;
        let (c, co) = (2, 3);
        for (h, w) in [(5, 5), (7, 4), (40, 40), (9, 12)] {
            for k in [1, 3, 5] {
                for s in [1, 2] {
                    for p in 0..k {
                        if h + 2 * p < k || w + 2 * p < k {
                            continue;
                        }
                        let (oh, ow) = ((h + 2 * p - k) / s + 1, (w + 2 * p - k) / s + 1);
                        let g = ConvGeom {
                            c,
                            h,
                            w,
                            oh,
                            ow,
                            k,
                            s,
                            p,
                        };
                        let x: [f32; 2 * 40 * 40] =
                            core::array::from_fn(|_| lcg(&mut seed) as f32 / 65536.0 - 128.0);
                        let xq: [i8; 2 * 40 * 40] = core::array::from_fn(|i| x[i] as i8);
                        let wt: [f32; 3 * 2 * 25] =
                            core::array::from_fn(|_| lcg(&mut seed) as f32 / 4e6 - 2.0);
                        let wq: [i8; 3 * 2 * 25] = core::array::from_fn(|i| (wt[i] * 60.0) as i8);
                        let mut y = [0.0f32; 3 * 48 * 48];
                        let t = desc(co, c, k);
                        conv_f32(
                            &x,
                            &mut y,
                            &g,
                            co,
                            &mut Dense::new(&t),
                            |e| wt[e],
                            |r| r as f32,
                            false,
                        );
                        let mut yq = [0i8; 3 * 48 * 48];
                        let mut acc = [0i32; 48 * 48];
                        let m = 1.0 / 512.0;
                        let (wv, xv) = (|e: usize| wq[e], |r: usize| r as i32 * 7);
                        conv_i8(
                            &xq,
                            &mut yq,
                            &mut acc,
                            &g,
                            co,
                            &mut Dense::new(&t),
                            wv,
                            xv,
                            |_| m,
                            false,
                        );
                        for r in 0..co {
                            for oy in 0..oh {
                                for ox in 0..ow {
                                    let mut v = r as f32;
                                    let mut a = r as i32 * 7;
                                    for e in 0..c * k * k {
                                        let (ci, ky, kx) = (e / (k * k), e / k % k, e % k);
                                        let (iy, ix) = (oy * s + ky, ox * s + kx);
                                        if iy < p || ix < p || iy - p >= h || ix - p >= w {
                                            continue;
                                        }
                                        let xi = (ci * h + iy - p) * w + ix - p;
                                        v += wt[r * c * k * k + e] * x[xi];
                                        a += wq[r * c * k * k + e] as i32 * xq[xi] as i32;
                                    }
                                    let o = (r * oh + oy) * ow + ox;
                                    assert_eq!(
                                        y[o].to_bits(),
                                        v.to_bits(),
                                        "{h}x{w} k{k} s{s} p{p}"
                                    );
                                    assert_eq!(yq[o], quant::requantize(a, m, false));
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}
