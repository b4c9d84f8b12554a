//! The direct convolution kernels on the AVX-512 path: the same products and summation order per output as
//! the AVX2 kernels' contract states (taps in weight order, one fused multiply-add per tap), with wider
//! register tiles that use the 32 vector registers. Forward: up to 6 output channels × 4 vectors of pixels,
//! 16-pixel `zmm` segments when the output width is a multiple of 16 and 8-pixel `ymm` segments otherwise.
//! Weight gradient: 16-channel `zmm` vectors, tiles of 64 channels × 6 taps, 32 × 9 or 16 × 9, chosen
//! from the channel count.

use super::{row_blocks, row_step, ConvGeom, KT, LANES};
use std::arch::x86_64::*;

/// Pixels per `zmm` vector.
const ZLANES: usize = 16;
/// Most pixel vectors per forward tile.
const NV: usize = 4;
/// Taps per weight-gradient tile of 16 or 32 channels: one 3 × 3 input channel, so `k·k·Cin` splits evenly,
/// with few enough tap pointers to stay in general registers.
const GRAD_TAPS: usize = 9;

/// The vector operations of a forward tile, on `zmm` (16 pixels) or `ymm` (8 pixels; the upper 16 registers
/// are reachable through AVX-512 VL).
trait Vector: Copy {
    unsafe fn zero() -> Self;
    unsafe fn splat(v: f32) -> Self;
    unsafe fn load(p: *const f32) -> Self;
    unsafe fn store(self, p: *mut f32);
    unsafe fn add(self, b: Self) -> Self;
    /// `self · b + c`, fused.
    unsafe fn fmadd(self, b: Self, c: Self) -> Self;
}

impl Vector for __m512 {
    #[inline(always)]
    unsafe fn zero() -> Self {
        _mm512_setzero_ps()
    }
    #[inline(always)]
    unsafe fn splat(v: f32) -> Self {
        _mm512_set1_ps(v)
    }
    #[inline(always)]
    unsafe fn load(p: *const f32) -> Self {
        _mm512_loadu_ps(p)
    }
    #[inline(always)]
    unsafe fn store(self, p: *mut f32) {
        _mm512_storeu_ps(p, self)
    }
    #[inline(always)]
    unsafe fn add(self, b: Self) -> Self {
        _mm512_add_ps(self, b)
    }
    #[inline(always)]
    unsafe fn fmadd(self, b: Self, c: Self) -> Self {
        _mm512_fmadd_ps(self, b, c)
    }
}

impl Vector for __m256 {
    #[inline(always)]
    unsafe fn zero() -> Self {
        _mm256_setzero_ps()
    }
    #[inline(always)]
    unsafe fn splat(v: f32) -> Self {
        _mm256_set1_ps(v)
    }
    #[inline(always)]
    unsafe fn load(p: *const f32) -> Self {
        _mm256_loadu_ps(p)
    }
    #[inline(always)]
    unsafe fn store(self, p: *mut f32) {
        _mm256_storeu_ps(p, self)
    }
    #[inline(always)]
    unsafe fn add(self, b: Self) -> Self {
        _mm256_add_ps(self, b)
    }
    #[inline(always)]
    unsafe fn fmadd(self, b: Self, c: Self) -> Self {
        _mm256_fmadd_ps(self, b, c)
    }
}

/// One forward tile: `R` output channels × `V` pixel vectors starting at padded offsets `base` and output
/// offsets `outp`; `a` is the block's packed weight `[kdim][R]`.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
unsafe fn tile<T: Vector, const R: usize, const V: usize>(
    xp: *const f32,
    a: *const f32,
    offs: &[usize],
    base: &[usize; NV],
    outp: &[usize; NV],
    y: *mut f32,
    ohw: usize,
    accumulate: bool,
) {
    let mut acc = [[T::zero(); V]; R];
    let mut a = a;
    for &off in offs {
        let p = xp.add(off);
        let b: [T; V] = std::array::from_fn(|v| T::load(p.add(base[v])));
        for (r, row) in acc.iter_mut().enumerate() {
            let s = T::splat(*a.add(r));
            for v in 0..V {
                row[v] = s.fmadd(b[v], row[v]);
            }
        }
        a = a.add(R);
    }
    for (r, row) in acc.iter().enumerate() {
        for v in 0..V {
            let dst = y.add(r * ohw + outp[v]);
            let val = if accumulate {
                T::load(dst).add(row[v])
            } else {
                row[v]
            };
            val.store(dst);
        }
    }
}

/// A forward tile with its row and vector counts fixed.
type TileFn =
    unsafe fn(*const f32, *const f32, &[usize], &[usize; NV], &[usize; NV], *mut f32, usize, bool);

/// Instantiates one tile function per `(R, V)` pair, `R` in 1..=6 and `V` in 1..=4, inside a
/// `target_feature` function so the tile inlines into AVX-512 code.
macro_rules! tile_table {
    ($name:ident, $vector:ty) => {
        #[target_feature(enable = "avx512f,avx512vl,avx2,fma")]
        #[allow(clippy::too_many_arguments)]
        unsafe fn $name<const R: usize, const V: usize>(
            xp: *const f32,
            a: *const f32,
            offs: &[usize],
            base: &[usize; NV],
            outp: &[usize; NV],
            y: *mut f32,
            ohw: usize,
            accumulate: bool,
        ) {
            tile::<$vector, R, V>(xp, a, offs, base, outp, y, ohw, accumulate)
        }
    };
}
tile_table!(run_z, __m512);
tile_table!(run_y, __m256);

macro_rules! pick {
    ($f:ident, $r:expr, $v:expr) => {{
        let table: [[TileFn; NV]; 6] = [
            [$f::<1, 1>, $f::<1, 2>, $f::<1, 3>, $f::<1, 4>],
            [$f::<2, 1>, $f::<2, 2>, $f::<2, 3>, $f::<2, 4>],
            [$f::<3, 1>, $f::<3, 2>, $f::<3, 3>, $f::<3, 4>],
            [$f::<4, 1>, $f::<4, 2>, $f::<4, 3>, $f::<4, 4>],
            [$f::<5, 1>, $f::<5, 2>, $f::<5, 3>, $f::<5, 4>],
            [$f::<6, 1>, $f::<6, 2>, $f::<6, 3>, $f::<6, 4>],
        ];
        table[$r - 1][$v - 1]
    }};
}

/// `y[Cout, OH·OW] (+)= conv(xp)`; the contract of [`super::forward_sample`].
#[target_feature(enable = "avx512f,avx512vl,avx2,fma")]
pub(super) unsafe fn forward(
    g: &ConvGeom,
    xp: &[f32],
    packed: &[f32],
    offs: &[usize],
    y: &mut [f32],
    accumulate: bool,
) {
    let wide = g.ow % ZLANES == 0;
    let lanes = if wide { ZLANES } else { LANES };
    let (step, ohw, kdim) = (row_step(g), g.out_hw(), g.kdim());
    let nvec = ohw / lanes;
    let segs_per_row = g.ow / lanes;
    let seg_base = |v: usize| (v / segs_per_row) * step + (v % segs_per_row) * lanes;
    let (xp, y) = (xp.as_ptr(), y.as_mut_ptr());
    let mut v0 = 0;
    while v0 < nvec {
        let nv = (nvec - v0).min(NV);
        let base: [usize; NV] = std::array::from_fn(|v| seg_base(v0 + v.min(nv - 1)));
        let outp: [usize; NV] = std::array::from_fn(|v| (v0 + v.min(nv - 1)) * lanes);
        for (first, r) in row_blocks(g.cout) {
            let a = packed.as_ptr().add(first * kdim);
            let yb = y.add(first * ohw);
            let tile = if wide {
                pick!(run_z, r, nv)
            } else {
                pick!(run_y, r, nv)
            };
            tile(xp, a, offs, &base, &outp, yb, ohw, accumulate);
        }
        v0 += nv;
    }
}

/// One weight-gradient tile: `16·NO` output channels from `o0` × `T` taps `offs` (the last repeated past
/// `taps`).
#[inline(always)]
#[allow(clippy::too_many_arguments)]
unsafe fn grad_tile<const NO: usize, const T: usize>(
    g: &ConvGeom,
    xp: *const f32,
    dyt: *const f32,
    o0: usize,
    offs: &[usize; T],
    taps: usize,
    dw: *mut f32,
    kk0: usize,
) {
    let (step, cout, kdim) = (row_step(g), g.cout, g.kdim());
    let mut acc = [[_mm512_setzero_ps(); NO]; T];
    let ptr: [*const f32; T] = std::array::from_fn(|j| xp.add(offs[j]));
    let mut d = dyt.add(o0);
    for oy in 0..g.oh {
        let row = oy * step;
        for ox in 0..g.ow {
            let q = row + ox;
            let dv: [__m512; NO] = std::array::from_fn(|v| _mm512_loadu_ps(d.add(v * ZLANES)));
            for j in 0..T {
                let s = _mm512_set1_ps(*ptr[j].add(q));
                for v in 0..NO {
                    acc[j][v] = _mm512_fmadd_ps(dv[v], s, acc[j][v]);
                }
            }
            d = d.add(cout);
        }
    }
    let mut lanes = [0.0f32; ZLANES];
    for (j, accj) in acc.iter().enumerate().take(taps) {
        for (v, &a) in accj.iter().enumerate() {
            _mm512_storeu_ps(lanes.as_mut_ptr(), a);
            for (l, &s) in lanes.iter().enumerate() {
                *dw.add((o0 + v * ZLANES + l) * kdim + kk0 + j) += s;
            }
        }
    }
}

/// Runs [`grad_tile`] over every tap block of channels `o0..o0 + 16·NO`.
#[inline(always)]
unsafe fn grad_channels<const NO: usize, const T: usize>(
    g: &ConvGeom,
    xp: *const f32,
    dyt: *const f32,
    offs: &[usize],
    o0: usize,
    dw: *mut f32,
) {
    let kdim = g.kdim();
    for kk0 in (0..kdim).step_by(T) {
        let taps = (kdim - kk0).min(T);
        let tile: [usize; T] = std::array::from_fn(|j| offs[kk0 + j.min(taps - 1)]);
        grad_tile::<NO, T>(g, xp, dyt, o0, &tile, taps, dw, kk0);
    }
}

/// `dw[Cout, Cin·k·k] += Σ_q dyt[q, o] · xp[c, q + off(t)]` for `Cout` a multiple of 16; the contract of
/// [`super::weight_grad_sample`].
#[target_feature(enable = "avx512f,avx512vl,avx2,fma")]
pub(super) unsafe fn weight_grad(
    g: &ConvGeom,
    xp: &[f32],
    dyt: &[f32],
    offs: &[usize],
    dw: &mut [f32],
) {
    let (xp, dyt, dw) = (xp.as_ptr(), dyt.as_ptr(), dw.as_mut_ptr());
    let mut o0 = 0;
    while o0 < g.cout {
        match g.cout - o0 {
            left if left >= 4 * ZLANES => {
                grad_channels::<4, KT>(g, xp, dyt, offs, o0, dw);
                o0 += 4 * ZLANES;
            }
            left if left >= 2 * ZLANES => {
                grad_channels::<2, GRAD_TAPS>(g, xp, dyt, offs, o0, dw);
                o0 += 2 * ZLANES;
            }
            _ => {
                grad_channels::<1, GRAD_TAPS>(g, xp, dyt, offs, o0, dw);
                o0 += ZLANES;
            }
        }
    }
}

/// Whether [`weight_grad`] handles `g` (its channel vectors are 16 wide).
pub(super) fn weight_grad_fits(g: &ConvGeom) -> bool {
    g.cout % ZLANES == 0
}
