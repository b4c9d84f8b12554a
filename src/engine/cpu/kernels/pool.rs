//! Pooling over `x[N·C, H, W]` planes (no padding): max, average and global average.

use rayon::prelude::*;

use super::FlushDenormals;

/// Geometry of a pooling window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolGeom {
    pub h: usize,
    pub w: usize,
    pub k: usize,
    pub stride: usize,
    pub oh: usize,
    pub ow: usize,
}

impl PoolGeom {
    /// `None` if the window does not fit or the stride is zero.
    pub fn new(h: usize, w: usize, k: usize, stride: usize) -> Option<Self> {
        if k == 0 || stride == 0 || h < k || w < k {
            return None;
        }
        Some(PoolGeom {
            h,
            w,
            k,
            stride,
            oh: (h - k) / stride + 1,
            ow: (w - k) / stride + 1,
        })
    }
    fn in_plane(&self) -> usize {
        self.h * self.w
    }
    fn out_plane(&self) -> usize {
        self.oh * self.ow
    }
    /// Index (within the plane) of the first maximum of window `(oy, ox)`.
    fn argmax(&self, p: &[f32], oy: usize, ox: usize) -> usize {
        let mut best = (oy * self.stride) * self.w + ox * self.stride;
        for ky in 0..self.k {
            for kx in 0..self.k {
                let i = (oy * self.stride + ky) * self.w + ox * self.stride + kx;
                if p[i] > p[best] {
                    best = i;
                }
            }
        }
        best
    }
}

/// Planes per parallel task.
fn planes_per_task(planes: usize) -> usize {
    super::chunk_size(planes)
}

pub fn max_forward(g: &PoolGeom, x: &[f32], y: &mut [f32]) {
    let pp = planes_per_task(x.len() / g.in_plane());
    y.par_chunks_mut(pp * g.out_plane())
        .zip(x.par_chunks(pp * g.in_plane()))
        .for_each(|(yc, xc)| {
            let _ftz = FlushDenormals::new();
            for (yp, xp) in yc.chunks_mut(g.out_plane()).zip(xc.chunks(g.in_plane())) {
                for oy in 0..g.oh {
                    for ox in 0..g.ow {
                        yp[oy * g.ow + ox] = xp[g.argmax(xp, oy, ox)];
                    }
                }
            }
        });
}

/// Routes each output gradient to the first maximum of its window.
pub fn max_backward(g: &PoolGeom, x: &[f32], dy: &[f32], dx: &mut [f32], accumulate: bool) {
    let pp = planes_per_task(x.len() / g.in_plane());
    dx.par_chunks_mut(pp * g.in_plane())
        .zip(
            x.par_chunks(pp * g.in_plane())
                .zip(dy.par_chunks(pp * g.out_plane())),
        )
        .for_each(|(dxc, (xc, dyc))| {
            let _ftz = FlushDenormals::new();
            if !accumulate {
                dxc.fill(0.0);
            }
            for (dxp, (xp, dyp)) in dxc
                .chunks_mut(g.in_plane())
                .zip(xc.chunks(g.in_plane()).zip(dyc.chunks(g.out_plane())))
            {
                for oy in 0..g.oh {
                    for ox in 0..g.ow {
                        dxp[g.argmax(xp, oy, ox)] += dyp[oy * g.ow + ox];
                    }
                }
            }
        });
}

pub fn avg_forward(g: &PoolGeom, x: &[f32], y: &mut [f32]) {
    let pp = planes_per_task(x.len() / g.in_plane());
    let inv = 1.0 / (g.k * g.k) as f32;
    y.par_chunks_mut(pp * g.out_plane())
        .zip(x.par_chunks(pp * g.in_plane()))
        .for_each(|(yc, xc)| {
            let _ftz = FlushDenormals::new();
            for (yp, xp) in yc.chunks_mut(g.out_plane()).zip(xc.chunks(g.in_plane())) {
                for oy in 0..g.oh {
                    for ox in 0..g.ow {
                        let mut s = 0.0;
                        for ky in 0..g.k {
                            let r = (oy * g.stride + ky) * g.w + ox * g.stride;
                            s += xp[r..r + g.k].iter().sum::<f32>();
                        }
                        yp[oy * g.ow + ox] = s * inv;
                    }
                }
            }
        });
}

pub fn avg_backward(g: &PoolGeom, dy: &[f32], dx: &mut [f32], accumulate: bool) {
    let pp = planes_per_task(dx.len() / g.in_plane());
    let inv = 1.0 / (g.k * g.k) as f32;
    dx.par_chunks_mut(pp * g.in_plane())
        .zip(dy.par_chunks(pp * g.out_plane()))
        .for_each(|(dxc, dyc)| {
            let _ftz = FlushDenormals::new();
            if !accumulate {
                dxc.fill(0.0);
            }
            for (dxp, dyp) in dxc.chunks_mut(g.in_plane()).zip(dyc.chunks(g.out_plane())) {
                for oy in 0..g.oh {
                    for ox in 0..g.ow {
                        let v = dyp[oy * g.ow + ox] * inv;
                        for ky in 0..g.k {
                            let r = (oy * g.stride + ky) * g.w + ox * g.stride;
                            dxp[r..r + g.k].iter_mut().for_each(|d| *d += v);
                        }
                    }
                }
            }
        });
}

/// `y[p] = mean(x[p, :])` for planes of `hw` values.
pub fn global_avg_forward(hw: usize, x: &[f32], y: &mut [f32]) {
    let inv = 1.0 / hw as f32;
    for (o, p) in y.iter_mut().zip(x.chunks(hw)) {
        *o = p.iter().sum::<f32>() * inv;
    }
}

pub fn global_avg_backward(hw: usize, dy: &[f32], dx: &mut [f32], accumulate: bool) {
    let inv = 1.0 / hw as f32;
    for (g, p) in dy.iter().zip(dx.chunks_mut(hw)) {
        let v = g * inv;
        if accumulate {
            p.iter_mut().for_each(|d| *d += v);
        } else {
            p.fill(v);
        }
    }
}
