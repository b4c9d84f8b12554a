//! Elementwise ops: ReLU, sum, and the option-A shortcut (subsample + zero-pad channels).

use rayon::prelude::*;

/// Elements per parallel task for elementwise loops.
const GRAIN: usize = 1 << 15;

/// `x = max(x, 0)` in place.
pub fn relu_inplace(x: &mut [f32]) {
    x.par_chunks_mut(GRAIN)
        .for_each(|c| c.iter_mut().for_each(|v| *v = v.max(0.0)));
}

/// `y = max(x, 0)`.
pub fn relu(x: &[f32], y: &mut [f32]) {
    y.par_chunks_mut(GRAIN)
        .zip(x.par_chunks(GRAIN))
        .for_each(|(yc, xc)| yc.iter_mut().zip(xc).for_each(|(o, &v)| *o = v.max(0.0)));
}

/// Zeroes `g` where the ReLU output `y` is not positive, in place.
pub fn relu_mask_inplace(y: &[f32], g: &mut [f32]) {
    g.par_chunks_mut(GRAIN)
        .zip(y.par_chunks(GRAIN))
        .for_each(|(gc, yc)| {
            gc.iter_mut().zip(yc).for_each(|(d, &v)| {
                *d = super::keep_if(*d, v > 0.0);
            })
        });
}

/// Zeroes `g` where the ReLU output `y` is not positive, in place, and writes or adds (`accumulate`) the
/// masked `g` to `dst` in the same pass: [`relu_mask_inplace`] then [`copy_or_add`], bit for bit.
pub fn relu_mask_copy(y: &[f32], g: &mut [f32], dst: &mut [f32], accumulate: bool) {
    dst.par_chunks_mut(GRAIN)
        .zip(g.par_chunks_mut(GRAIN).zip(y.par_chunks(GRAIN)))
        .for_each(|(dc, (gc, yc))| {
            for ((d, g), &v) in dc.iter_mut().zip(gc.iter_mut()).zip(yc) {
                let m = super::keep_if(*g, v > 0.0);
                *g = m;
                *d = if accumulate { *d + m } else { m };
            }
        });
}

/// `dx (+)= dy · [y > 0]`.
pub fn relu_backward(y: &[f32], dy: &[f32], dx: &mut [f32], accumulate: bool) {
    dx.par_chunks_mut(GRAIN)
        .zip(dy.par_chunks(GRAIN).zip(y.par_chunks(GRAIN)))
        .for_each(|(o, (d, yc))| {
            let it = o.iter_mut().zip(d.iter().zip(yc));
            if accumulate {
                it.for_each(|(o, (&g, &v))| *o += super::keep_if(g, v > 0.0));
            } else {
                it.for_each(|(o, (&g, &v))| *o = super::keep_if(g, v > 0.0));
            }
        });
}

/// `y = a + b`, optionally followed by ReLU.
pub fn add(a: &[f32], b: &[f32], relu: bool, y: &mut [f32]) {
    y.par_chunks_mut(GRAIN)
        .zip(a.par_chunks(GRAIN).zip(b.par_chunks(GRAIN)))
        .for_each(|(o, (p, q))| {
            let it = o.iter_mut().zip(p.iter().zip(q));
            if relu {
                it.for_each(|(o, (&u, &v))| *o = (u + v).max(0.0));
            } else {
                it.for_each(|(o, (&u, &v))| *o = u + v);
            }
        });
}

/// `dst (+)= src`, in parallel.
pub fn copy_or_add(src: &[f32], dst: &mut [f32], accumulate: bool) {
    dst.par_chunks_mut(GRAIN)
        .zip(src.par_chunks(GRAIN))
        .for_each(|(d, s)| super::store(d, s, accumulate));
}

/// Geometry of the option-A shortcut.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SubsamplePad {
    pub c: usize,
    pub h: usize,
    pub w: usize,
    pub stride: usize,
    pub pad_before: usize,
    pub pad_after: usize,
}

impl SubsamplePad {
    pub fn oh(&self) -> usize {
        self.h.div_ceil(self.stride)
    }
    pub fn ow(&self) -> usize {
        self.w.div_ceil(self.stride)
    }
    pub fn in_len(&self) -> usize {
        self.c * self.h * self.w
    }
    pub fn out_channels(&self) -> usize {
        self.c + self.pad_before + self.pad_after
    }
    pub fn out_len(&self) -> usize {
        self.out_channels() * self.oh() * self.ow()
    }

    /// `y[c + pad_before, oy, ox] = x[c, oy·s, ox·s]`, zero in the padded channels.
    pub fn forward(&self, x: &[f32], y: &mut [f32]) {
        let (oh, ow, s) = (self.oh(), self.ow(), self.stride);
        y.par_chunks_mut(self.out_len())
            .zip(x.par_chunks(self.in_len()))
            .for_each(|(yn, xn)| {
                let plane = oh * ow;
                yn[..self.pad_before * plane].fill(0.0);
                yn[(self.pad_before + self.c) * plane..].fill(0.0);
                for c in 0..self.c {
                    let xp = &xn[c * self.h * self.w..][..self.h * self.w];
                    let yp = &mut yn[(c + self.pad_before) * plane..][..plane];
                    for oy in 0..oh {
                        for ox in 0..ow {
                            yp[oy * ow + ox] = xp[oy * s * self.w + ox * s];
                        }
                    }
                }
            });
    }

    /// The adjoint: gradients of the kept pixels, zero elsewhere (written or added).
    pub fn backward(&self, dy: &[f32], dx: &mut [f32], accumulate: bool) {
        let (oh, ow, s) = (self.oh(), self.ow(), self.stride);
        dx.par_chunks_mut(self.in_len())
            .zip(dy.par_chunks(self.out_len()))
            .for_each(|(dxn, dyn_)| {
                if !accumulate {
                    dxn.fill(0.0);
                }
                let plane = oh * ow;
                for c in 0..self.c {
                    let dxp = &mut dxn[c * self.h * self.w..][..self.h * self.w];
                    let dyp = &dyn_[(c + self.pad_before) * plane..][..plane];
                    for oy in 0..oh {
                        for ox in 0..ow {
                            dxp[oy * s * self.w + ox * s] += dyp[oy * ow + ox];
                        }
                    }
                }
            });
    }
}
