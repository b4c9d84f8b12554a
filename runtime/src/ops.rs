//! The element-wise and pooling ops over channel-major activations: max, average and global average
//! pooling, ADD, RELU and the option-A shortcut. Int8 pools requantise their i32 window sums with the op's
//! multiplier and shift.

#![allow(clippy::too_many_arguments)]

use crate::quant;

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
    if k == 2 && s == 2 {
        return max_pool_2x2(x, y, c, h, w, oh, ow);
    }
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

/// [`max_pool`] with a 2×2 window and stride 2, one output row at a time over slices the compiler can
/// vectorise (the same comparisons in the same order).
#[inline(always)]
fn max_pool_2x2<T: Copy + PartialOrd>(
    x: &[T],
    y: &mut [T],
    c: usize,
    h: usize,
    w: usize,
    oh: usize,
    ow: usize,
) {
    for (xp, yp) in x
        .chunks_exact(h * w)
        .zip(y.chunks_exact_mut(oh * ow))
        .take(c)
    {
        for (oy, yr) in yp.chunks_exact_mut(ow).enumerate() {
            let top = &xp[2 * oy * w..2 * oy * w + 2 * ow];
            let bottom = &xp[(2 * oy + 1) * w..(2 * oy + 1) * w + 2 * ow];
            for ((o, a), b) in yr
                .iter_mut()
                .zip(top.chunks_exact(2))
                .zip(bottom.chunks_exact(2))
            {
                let mut m = a[0];
                for v in [a[1], b[0], b[1]] {
                    if v > m {
                        m = v;
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

/// Int8 average pooling: i32 window sum requantised with `(m, sh)` (which include 1/k²).
pub fn avg_pool_i8(
    x: &[i8],
    y: &mut [i8],
    c: usize,
    h: usize,
    w: usize,
    k: usize,
    s: usize,
    m: i32,
    sh: u32,
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
                y[(ch * oh + oy) * ow + ox] = quant::requantize(acc, m, sh, false);
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

/// Int8 global average pooling: i32 plane sum requantised with `(m, sh)` (which include 1/(H·W)).
pub fn global_avg_pool_i8(x: &[i8], y: &mut [i8], c: usize, hw: usize, m: i32, sh: u32) {
    for ch in 0..c {
        let acc: i32 = x[ch * hw..(ch + 1) * hw].iter().map(|&v| v as i32).sum();
        y[ch] = quant::requantize(acc, m, sh, false);
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

/// Float ADD: `y = a + b`, then ReLU when asked.
pub fn add_f32(a: &[f32], b: &[f32], y: &mut [f32], relu: bool) {
    for ((v, &p), &q) in y.iter_mut().zip(a).zip(b) {
        *v = p + q;
    }
    if relu {
        relu_f32(y);
    }
}

/// Int8 ADD with the op's `(ma, mb, sh)`.
pub fn add_i8(a: &[i8], b: &[i8], y: &mut [i8], ma: i32, mb: i32, sh: u32, relu: bool) {
    for ((v, &p), &q) in y.iter_mut().zip(a).zip(b) {
        *v = quant::add(p, ma, q, mb, sh, relu);
    }
}
