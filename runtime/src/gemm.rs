//! Matrix-vector products (GEMM ops at batch 1): `y[r] = bias[r] + Σ_c W[r, c] · x[c]`.
//!
//! - Dense float rows: four rows at a time, each summed lane-wise over the columns (fused multiply-add on the
//!   vector paths), then the lanes in a fixed tree, then the bias.
//! - Sparse float rows: four partial sums per row over the entries in storage order (entry `k` into sum
//!   `k mod 4`), then `(s0 + s1) + (s2 + s3)`, then the bias; plain products and sums on every path, so the
//!   result does not depend on the path.
//! - Int8: exact i32 dot products (VNNI on AVX-512), then the row's requantisation.

use crate::bytes::{f32_at, u32_at};
use crate::conv::{ColCodes, ConvWeights, Gap8Codes, U16Codes, U32Codes};
use crate::format::{dtype, encoding};
use crate::lanes::Lanes;
use crate::rows::Rows;

/// Rows of a dense float product computed together.
const ROWS: usize = 4;

/// A float matrix-vector product on path `S`.
#[inline(always)]
pub(crate) unsafe fn gemm_f32<S: Lanes>(
    x: &[f32],
    y: &mut [f32],
    w: &ConvWeights<'_>,
    bias: &dyn Fn(usize) -> f32,
    relu: bool,
) {
    let (t, data) = (&w.desc, w.data);
    let (rows, cols) = (t.rows(), t.cols());
    let n_out = rows.min(y.len());
    let y = &mut y[..n_out];
    if t.encoding == encoding::DENSE && t.dtype == dtype::F32 && x.len() >= cols {
        let vals = crate::weights::values_bytes(data, t);
        if vals.len() < 4 * rows * cols {
            return;
        }
        let w0 = vals.as_ptr() as *const f32;
        let mut r0 = 0;
        while r0 < rows {
            let n = (rows - r0).min(ROWS);
            // SAFETY: a register splat.
            let mut acc = [unsafe { S::splat(0.0) }; ROWS];
            let mut c = 0;
            while c < cols {
                let hi = (cols - c).min(S::L);
                // SAFETY: lanes 0..hi of columns c.. exist in x and in rows r0..r0+n of W (checked above).
                unsafe {
                    let xv = S::load_part(x.as_ptr().add(c), 0, hi);
                    for (b, a) in acc.iter_mut().enumerate().take(n) {
                        let wv = S::load_part(w0.add((r0 + b) * cols + c), 0, hi);
                        *a = S::fma(wv, xv, *a);
                    }
                }
                c += S::L;
            }
            for (b, a) in acc.iter().enumerate().take(n) {
                // SAFETY: reduction of a vector.
                y[r0 + b] = bias(r0 + b) + unsafe { S::sum(*a) };
            }
            r0 += n;
        }
    } else if t.dtype == dtype::F32 && x.len() >= cols {
        let vals = crate::weights::values_bytes(data, t);
        let codes = data.get(t.index_off as usize..).unwrap_or(&[]);
        let indptr = data.get(t.indptr_off as usize..).unwrap_or(&[]);
        let x = &x[..cols];
        match t.encoding {
            encoding::CSR_GAP8 => csr_f32(&Gap8Codes(codes), indptr, vals, x, y, bias),
            encoding::CSR_IDX16 => csr_f32(&U16Codes(codes), indptr, vals, x, y, bias),
            encoding::CSR_IDX32 => csr_f32(&U32Codes(codes), indptr, vals, x, y, bias),
            _ => decoded_f32(data, t, x, y, bias),
        }
    } else {
        decoded_f32(data, t, x, y, bias);
    }
    if relu {
        for v in y.iter_mut() {
            if *v < 0.0 {
                *v = 0.0;
            }
        }
    }
}

/// Sparse rows of any encoding and value type through the generic row and value readers.
#[inline(always)]
fn decoded_f32(
    data: &[u8],
    t: &crate::model::TensorDesc,
    x: &[f32],
    y: &mut [f32],
    bias: &dyn Fn(usize) -> f32,
) {
    let value = |k: usize| crate::weights::value_f32(data, t, k);
    crate::rows::with_rows!(data, t, |rows_of| sparse_f32(rows_of, x, y, &value, bias));
}

/// Sparse f32 rows with their column codes and values read in place: the sums of [`sparse_f32`], entry `i`
/// of a row into the partial sum `i mod 4` (kept rotating so that the sum of the next entry is always the
/// first).
#[inline(always)]
fn csr_f32<C: ColCodes>(
    codes: &C,
    indptr: &[u8],
    vals: &[u8],
    x: &[f32],
    y: &mut [f32],
    bias: &dyn Fn(usize) -> f32,
) {
    for (r, out) in y.iter_mut().enumerate() {
        let (a, b) = (
            u32_at(indptr, 4 * r) as usize,
            u32_at(indptr, 4 * r + 4) as usize,
        );
        let (mut s0, mut s1, mut s2, mut s3) = (0.0f32, 0.0f32, 0.0f32, 0.0f32);
        codes.for_each(
            a,
            b,
            #[inline(always)]
            |k, c| {
                let p = f32_at(vals, 4 * k) * x.get(c).copied().unwrap_or(0.0);
                (s0, s1, s2, s3) = (s1, s2, s3, s0 + p);
            },
        );
        let s = match b.saturating_sub(a) % 4 {
            0 => [s0, s1, s2, s3],
            1 => [s3, s0, s1, s2],
            2 => [s2, s3, s0, s1],
            _ => [s1, s2, s3, s0],
        };
        *out = bias(r) + ((s[0] + s[1]) + (s[2] + s[3]));
    }
}

#[inline(always)]
fn sparse_f32(
    rows: &mut impl Rows,
    x: &[f32],
    y: &mut [f32],
    value: &dyn Fn(usize) -> f32,
    bias: &dyn Fn(usize) -> f32,
) {
    for (r, out) in y.iter_mut().enumerate() {
        let mut s = [0.0f32; 4];
        let mut i = 0usize;
        rows.row(r, |c, k| {
            s[i % 4] += value(k) * x.get(c).copied().unwrap_or(0.0);
            i += 1;
        });
        *out = bias(r) + ((s[0] + s[1]) + (s[2] + s[3]));
    }
}

/// An int8 matrix-vector product on path `S`: i32 accumulation from the bias, then `requant(r, acc)`.
#[inline(always)]
pub(crate) unsafe fn gemm_i8<S: Lanes>(
    x: &[i8],
    y: &mut [i8],
    w: &ConvWeights<'_>,
    bias: &dyn Fn(usize) -> i32,
    requant: &dyn Fn(usize, i32) -> i8,
) {
    let (t, data) = (&w.desc, w.data);
    let (rows, cols) = (t.rows(), t.cols());
    let n_out = rows.min(y.len());
    let y = &mut y[..n_out];
    let vals = crate::weights::values_bytes(data, t);
    if t.encoding == encoding::DENSE && x.len() >= cols && vals.len() >= rows * cols {
        for (r, out) in y.iter_mut().enumerate() {
            // SAFETY: row r holds cols bytes, x at least cols.
            let d =
                unsafe { S::dot_i8(vals.as_ptr().add(r * cols) as *const i8, x.as_ptr(), cols) };
            *out = requant(r, bias(r).wrapping_add(d));
        }
    } else {
        crate::rows::with_rows!(data, t, |rows_of| {
            for (r, out) in y.iter_mut().enumerate() {
                let mut acc = bias(r);
                rows_of.row(r, |c, k| {
                    let wv = vals.get(k).copied().unwrap_or(0) as i8;
                    let xv = x.get(c).copied().unwrap_or(0);
                    acc = acc.wrapping_add(i32::from(i16::from(wv) * i16::from(xv)));
                });
                *out = requant(r, acc);
            }
        });
    }
}
