//! Compute kernels over channel-major activations. Sparse and dense weights share one formulation: for each
//! output channel, for each stored entry `(row, col, w)` in row-major order, add `w` times the matching input
//! (plane) to the output (plane); the inner loop runs over the spatial dimension. Summation order is part of
//! the contract (the C emitter reproduces it): bias first, then the entries in storage order.

#![allow(clippy::too_many_arguments)]

use crate::quant;
use crate::weights::Entry;

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

/// Adds `w` times the input plane `x` (H × W), shifted by kernel offset (ky, kx), to the output plane `y`.
#[inline]
fn axpy_shifted_f32(y: &mut [f32], x: &[f32], w: f32, g: &ConvGeom, ky: usize, kx: usize) {
    let (oy0, oy1) = g.span(ky, g.h, g.oh);
    let (ox0, ox1) = g.span(kx, g.w, g.ow);
    if ox1 <= ox0 {
        return;
    }
    for oy in oy0..oy1 {
        let iy = oy * g.s + ky - g.p;
        let yr = &mut y[oy * g.ow + ox0..oy * g.ow + ox1];
        let xr = &x[iy * g.w..(iy + 1) * g.w];
        if g.s == 1 {
            let xs = &xr[ox0 + kx - g.p..ox1 + kx - g.p];
            for (a, &b) in yr.iter_mut().zip(xs) {
                *a += w * b;
            }
        } else {
            for (j, a) in yr.iter_mut().enumerate() {
                *a += w * xr[(ox0 + j) * g.s + kx - g.p];
            }
        }
    }
}

#[inline]
fn axpy_shifted_i32(y: &mut [i32], x: &[i8], w: i32, g: &ConvGeom, ky: usize, kx: usize) {
    let (oy0, oy1) = g.span(ky, g.h, g.oh);
    let (ox0, ox1) = g.span(kx, g.w, g.ow);
    if ox1 <= ox0 {
        return;
    }
    for oy in oy0..oy1 {
        let iy = oy * g.s + ky - g.p;
        let yr = &mut y[oy * g.ow + ox0..oy * g.ow + ox1];
        let xr = &x[iy * g.w..(iy + 1) * g.w];
        if g.s == 1 {
            let xs = &xr[ox0 + kx - g.p..ox1 + kx - g.p];
            for (a, &b) in yr.iter_mut().zip(xs) {
                *a = a.wrapping_add(w * b as i32);
            }
        } else {
            for (j, a) in yr.iter_mut().enumerate() {
                *a = a.wrapping_add(w * xr[(ox0 + j) * g.s + kx - g.p] as i32);
            }
        }
    }
}

/// Float convolution. `value(k)` is the weight of entry `k`, `bias(r)` the bias of output channel `r`.
pub fn conv_f32(
    x: &[f32],
    y: &mut [f32],
    g: &ConvGeom,
    co: usize,
    entries: impl Iterator<Item = Entry>,
    value: impl Fn(usize) -> f32,
    bias: impl Fn(usize) -> f32,
    relu: bool,
) {
    let plane = g.oh * g.ow;
    let kk = g.k * g.k;
    for r in 0..co {
        y[r * plane..(r + 1) * plane].fill(bias(r));
    }
    for e in entries {
        let ci = e.col / kk;
        let rem = e.col % kk;
        let xp = &x[ci * g.h * g.w..(ci + 1) * g.h * g.w];
        let yp = &mut y[e.row * plane..(e.row + 1) * plane];
        axpy_shifted_f32(yp, xp, value(e.k), g, rem / g.k, rem % g.k);
    }
    if relu {
        relu_f32(&mut y[..co * plane]);
    }
}

/// Int8 convolution with i32 accumulation in `acc` (one output plane), requantised per output channel.
pub fn conv_i8(
    x: &[i8],
    y: &mut [i8],
    acc: &mut [i32],
    g: &ConvGeom,
    co: usize,
    entries: impl Iterator<Item = Entry>,
    value: impl Fn(usize) -> i32,
    bias: impl Fn(usize) -> i32,
    mult: impl Fn(usize) -> f32,
    relu: bool,
) {
    let plane = g.oh * g.ow;
    let kk = g.k * g.k;
    let acc = &mut acc[..plane];
    let mut entries = entries.peekable();
    for r in 0..co {
        acc.fill(bias(r));
        while let Some(e) = entries.next_if(|e| e.row == r) {
            let ci = e.col / kk;
            let rem = e.col % kk;
            let xp = &x[ci * g.h * g.w..(ci + 1) * g.h * g.w];
            axpy_shifted_i32(acc, xp, value(e.k), g, rem / g.k, rem % g.k);
        }
        let m = mult(r);
        for (q, &a) in y[r * plane..(r + 1) * plane].iter_mut().zip(acc.iter()) {
            *q = quant::requantize(a, m, relu);
        }
    }
}

/// Float matrix-vector product `y = W x + b`.
pub fn gemm_f32(
    x: &[f32],
    y: &mut [f32],
    entries: impl Iterator<Item = Entry>,
    value: impl Fn(usize) -> f32,
    bias: impl Fn(usize) -> f32,
    relu: bool,
) {
    for (r, v) in y.iter_mut().enumerate() {
        *v = bias(r);
    }
    for e in entries {
        y[e.row] += value(e.k) * x[e.col];
    }
    if relu {
        relu_f32(y);
    }
}

/// Int8 matrix-vector product with i32 accumulation, requantised per output row.
pub fn gemm_i8(
    x: &[i8],
    y: &mut [i8],
    entries: impl Iterator<Item = Entry>,
    value: impl Fn(usize) -> i32,
    bias: impl Fn(usize) -> i32,
    mult: impl Fn(usize) -> f32,
    relu: bool,
) {
    let mut entries = entries.peekable();
    for (r, q) in y.iter_mut().enumerate() {
        let mut acc = bias(r);
        while let Some(e) = entries.next_if(|e| e.row == r) {
            acc = acc.wrapping_add(value(e.k) * x[e.col] as i32);
        }
        *q = quant::requantize(acc, mult(r), relu);
    }
}

pub fn relu_f32(y: &mut [f32]) {
    for v in y {
        if *v < 0.0 {
            *v = 0.0;
        }
    }
}

/// Max pooling without padding, any element type.
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
    for ch in 0..c {
        let xp = &x[ch * h * w..];
        for oy in 0..oh {
            for ox in 0..ow {
                let mut m = xp[oy * s * w + ox * s];
                for dy in 0..k {
                    for dx in 0..k {
                        let v = xp[(oy * s + dy) * w + ox * s + dx];
                        if v > m {
                            m = v;
                        }
                    }
                }
                y[(ch * oh + oy) * ow + ox] = m;
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
