//! `C (+)= A · Bᵀ` for row-major `A` (`m × k`) and `B` (`n × k`): every output is a dot product of two
//! contiguous rows. This is the shape of convolution and linear weight gradients (the contraction runs over the
//! pixels, contiguous in both operands), where a packing GEMM would have to transpose both operands first.
//! Register-blocked 4 × 4 with AVX2/FMA when the CPU has it, a portable loop otherwise. The summation order
//! depends only on `k`, so results are deterministic.

/// Row-major matrix view: `rows` rows of `k` used values, `ld` apart.
#[derive(Clone, Copy)]
pub struct Rows<'a> {
    pub data: &'a [f32],
    pub rows: usize,
    pub ld: usize,
}

impl<'a> Rows<'a> {
    fn row(&self, i: usize, k: usize) -> &'a [f32] {
        &self.data[i * self.ld..i * self.ld + k]
    }
}

/// `c[i·ldc + j] (+)= Σ_p a[i, p] · b[j, p]` for `i < a.rows`, `j < b.rows`, `p < k`.
pub fn gemm_nt(k: usize, a: Rows, b: Rows, c: &mut [f32], ldc: usize, accumulate: bool) {
    assert!(
        a.rows == 0 || a.data.len() >= (a.rows - 1) * a.ld + k,
        "gemm_nt: A too short"
    );
    assert!(
        b.rows == 0 || b.data.len() >= (b.rows - 1) * b.ld + k,
        "gemm_nt: B too short"
    );
    assert!(
        a.rows == 0 || b.rows == 0 || c.len() >= (a.rows - 1) * ldc + b.rows,
        "gemm_nt: C too short"
    );
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
        {
            let wide = std::arch::is_x86_feature_detected!("avx512f")
                && std::arch::is_x86_feature_detected!("avx512vl");
            // SAFETY: the CPU supports the enabled features (checked above); rows are bounds-checked slices, and
            // the vector loads stay inside them.
            unsafe {
                if wide {
                    avx2::gemm_nt_wide(k, a, b, c, ldc, accumulate)
                } else {
                    avx2::gemm_nt(k, a, b, c, ldc, accumulate)
                }
            };
            return;
        }
    }
    portable(k, a, b, c, ldc, accumulate);
}

fn portable(k: usize, a: Rows, b: Rows, c: &mut [f32], ldc: usize, accumulate: bool) {
    for i in 0..a.rows {
        let ar = a.row(i, k);
        for j in 0..b.rows {
            let br = b.row(j, k);
            let mut lanes = [0.0f32; 8];
            let mut p = 0;
            while p + 8 <= k {
                for l in 0..8 {
                    lanes[l] = ar[p + l].mul_add(br[p + l], lanes[l]);
                }
                p += 8;
            }
            let mut s = lanes.iter().sum::<f32>();
            for q in p..k {
                s += ar[q] * br[q];
            }
            let o = &mut c[i * ldc + j];
            *o = if accumulate { *o + s } else { s };
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use super::Rows;
    use std::arch::x86_64::*;

    /// Walks the output in `R × C` tiles; `tile(i, j, ri, cj)` computes one (edges may be smaller).
    #[inline(always)]
    fn tiles(
        m: usize,
        n: usize,
        r: usize,
        c: usize,
        mut tile: impl FnMut(usize, usize, usize, usize),
    ) {
        let mut i = 0;
        while i < m {
            let ri = (m - i).min(r);
            let mut j = 0;
            while j < n {
                let cj = (n - j).min(c);
                tile(i, j, ri, cj);
                j += cj;
            }
            i += ri;
        }
    }

    #[inline(always)]
    unsafe fn put(c: &mut [f32], at: usize, v: f32, accumulate: bool) {
        let o = c.get_unchecked_mut(at);
        *o = if accumulate { *o + v } else { v };
    }

    /// AVX-512: 4 × 4 tiles of 16-lane accumulators, masked loads for the tail of `k`.
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn gemm_nt_wide(
        k: usize,
        a: Rows,
        b: Rows,
        c: &mut [f32],
        ldc: usize,
        accumulate: bool,
    ) {
        let k16 = k / 16 * 16;
        let tail: __mmask16 = ((1u32 << (k - k16)) - 1) as __mmask16;
        let (pa, pb) = (a.data.as_ptr(), b.data.as_ptr());
        tiles(a.rows, b.rows, 4, 4, |i, j, ri, cj| {
            if ri == 4 && cj == 4 {
                let a0 = pa.add(i * a.ld);
                let a1 = a0.add(a.ld);
                let a2 = a1.add(a.ld);
                let a3 = a2.add(a.ld);
                let b0 = pb.add(j * b.ld);
                let b1 = b0.add(b.ld);
                let b2 = b1.add(b.ld);
                let b3 = b2.add(b.ld);
                let z = _mm512_setzero_ps();
                let (mut c00, mut c01, mut c02, mut c03) = (z, z, z, z);
                let (mut c10, mut c11, mut c12, mut c13) = (z, z, z, z);
                let (mut c20, mut c21, mut c22, mut c23) = (z, z, z, z);
                let (mut c30, mut c31, mut c32, mut c33) = (z, z, z, z);
                let mut p = 0;
                macro_rules! step {
                    ($load:expr) => {{
                        let (v0, v1, v2, v3) = ($load(b0), $load(b1), $load(b2), $load(b3));
                        let u = $load(a0);
                        c00 = _mm512_fmadd_ps(u, v0, c00);
                        c01 = _mm512_fmadd_ps(u, v1, c01);
                        c02 = _mm512_fmadd_ps(u, v2, c02);
                        c03 = _mm512_fmadd_ps(u, v3, c03);
                        let u = $load(a1);
                        c10 = _mm512_fmadd_ps(u, v0, c10);
                        c11 = _mm512_fmadd_ps(u, v1, c11);
                        c12 = _mm512_fmadd_ps(u, v2, c12);
                        c13 = _mm512_fmadd_ps(u, v3, c13);
                        let u = $load(a2);
                        c20 = _mm512_fmadd_ps(u, v0, c20);
                        c21 = _mm512_fmadd_ps(u, v1, c21);
                        c22 = _mm512_fmadd_ps(u, v2, c22);
                        c23 = _mm512_fmadd_ps(u, v3, c23);
                        let u = $load(a3);
                        c30 = _mm512_fmadd_ps(u, v0, c30);
                        c31 = _mm512_fmadd_ps(u, v1, c31);
                        c32 = _mm512_fmadd_ps(u, v2, c32);
                        c33 = _mm512_fmadd_ps(u, v3, c33);
                    }};
                }
                while p < k16 {
                    step!(|r: *const f32| _mm512_loadu_ps(r.add(p)));
                    p += 16;
                }
                if tail != 0 {
                    step!(|r: *const f32| _mm512_maskz_loadu_ps(tail, r.add(p)));
                }
                let rows = [
                    [c00, c01, c02, c03],
                    [c10, c11, c12, c13],
                    [c20, c21, c22, c23],
                    [c30, c31, c32, c33],
                ];
                for (di, row) in rows.iter().enumerate() {
                    for (dj, v) in row.iter().enumerate() {
                        put(
                            c,
                            (i + di) * ldc + j + dj,
                            _mm512_reduce_add_ps(*v),
                            accumulate,
                        );
                    }
                }
            } else {
                for di in 0..ri {
                    for dj in 0..cj {
                        let ar = pa.add((i + di) * a.ld);
                        let br = pb.add((j + dj) * b.ld);
                        let mut acc = _mm512_setzero_ps();
                        let mut p = 0;
                        while p < k16 {
                            acc = _mm512_fmadd_ps(
                                _mm512_loadu_ps(ar.add(p)),
                                _mm512_loadu_ps(br.add(p)),
                                acc,
                            );
                            p += 16;
                        }
                        if tail != 0 {
                            let u = _mm512_maskz_loadu_ps(tail, ar.add(p));
                            acc = _mm512_fmadd_ps(u, _mm512_maskz_loadu_ps(tail, br.add(p)), acc);
                        }
                        put(
                            c,
                            (i + di) * ldc + j + dj,
                            _mm512_reduce_add_ps(acc),
                            accumulate,
                        );
                    }
                }
            }
        });
    }

    #[inline(always)]
    unsafe fn hsum(v: __m256) -> f32 {
        let s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
        let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
        _mm_cvtss_f32(_mm_add_ss(s, _mm_shuffle_ps(s, s, 1)))
    }

    /// AVX2: 2 × 4 tiles of 8-lane accumulators (13 of the 16 registers), scalar tail of `k`.
    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn gemm_nt(
        k: usize,
        a: Rows,
        b: Rows,
        c: &mut [f32],
        ldc: usize,
        accumulate: bool,
    ) {
        let k8 = k / 8 * 8;
        let (pa, pb) = (a.data.as_ptr(), b.data.as_ptr());
        tiles(a.rows, b.rows, 2, 4, |i, j, ri, cj| {
            let z = _mm256_setzero_ps();
            let mut acc = [[z; 4]; 2];
            let ar: [*const f32; 2] = [pa.add(i * a.ld), pa.add((i + ri - 1) * a.ld)];
            let br: [*const f32; 4] = std::array::from_fn(|d| pb.add((j + d.min(cj - 1)) * b.ld));
            let mut p = 0;
            while p < k8 {
                let v0 = _mm256_loadu_ps(br[0].add(p));
                let v1 = _mm256_loadu_ps(br[1].add(p));
                let v2 = _mm256_loadu_ps(br[2].add(p));
                let v3 = _mm256_loadu_ps(br[3].add(p));
                let u = _mm256_loadu_ps(ar[0].add(p));
                acc[0][0] = _mm256_fmadd_ps(u, v0, acc[0][0]);
                acc[0][1] = _mm256_fmadd_ps(u, v1, acc[0][1]);
                acc[0][2] = _mm256_fmadd_ps(u, v2, acc[0][2]);
                acc[0][3] = _mm256_fmadd_ps(u, v3, acc[0][3]);
                let u = _mm256_loadu_ps(ar[1].add(p));
                acc[1][0] = _mm256_fmadd_ps(u, v0, acc[1][0]);
                acc[1][1] = _mm256_fmadd_ps(u, v1, acc[1][1]);
                acc[1][2] = _mm256_fmadd_ps(u, v2, acc[1][2]);
                acc[1][3] = _mm256_fmadd_ps(u, v3, acc[1][3]);
                p += 8;
            }
            for di in 0..ri {
                for dj in 0..cj {
                    let mut s = hsum(acc[di][dj]);
                    for q in k8..k {
                        s += *ar[di].add(q) * *br[dj].add(q);
                    }
                    put(c, (i + di) * ldc + j + dj, s, accumulate);
                }
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_naive_products_on_ragged_shapes() {
        for &(m, n, k) in &[
            (4, 4, 16),
            (6, 27, 1024),
            (5, 3, 13),
            (1, 1, 7),
            (16, 144, 64),
        ] {
            let a: Vec<f32> = (0..m * k)
                .map(|i| ((i * 37 % 101) as f32 - 50.0) / 50.0)
                .collect();
            let b: Vec<f32> = (0..n * k)
                .map(|i| ((i * 53 % 97) as f32 - 48.0) / 48.0)
                .collect();
            let mut c = vec![1.0f32; m * n];
            gemm_nt(
                k,
                Rows {
                    data: &a,
                    rows: m,
                    ld: k,
                },
                Rows {
                    data: &b,
                    rows: n,
                    ld: k,
                },
                &mut c,
                n,
                true,
            );
            let mut p = vec![0.0f32; m * n];
            portable(
                k,
                Rows {
                    data: &a,
                    rows: m,
                    ld: k,
                },
                Rows {
                    data: &b,
                    rows: n,
                    ld: k,
                },
                &mut p,
                n,
                false,
            );
            for i in 0..m {
                for j in 0..n {
                    let want: f64 = (0..k)
                        .map(|q| a[i * k + q] as f64 * b[j * k + q] as f64)
                        .sum::<f64>()
                        + 1.0;
                    assert!(
                        (c[i * n + j] as f64 - want).abs() < 1e-3,
                        "{m}x{n}x{k} at ({i},{j})"
                    );
                    assert!((p[i * n + j] as f64 + 1.0 - want).abs() < 1e-3);
                }
            }
        }
    }
}
