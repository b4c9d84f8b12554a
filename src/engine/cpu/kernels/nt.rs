//! `C (+)= A · Bᵀ` for row-major `A` (`m × k`) and `B` (`n × k`): every output is a dot product of two
//! contiguous rows. This is the shape of convolution and linear weight gradients (the contraction runs over the
//! pixels, contiguous in both operands), where a packing GEMM would have to transpose both operands first.
//! Register-blocked 2 × 4 with AVX2/FMA on the AVX2 and AVX-512 kernel paths, a portable loop (no FMA)
//! otherwise. The summation order depends only on `k` and the path, so results are deterministic.

use crate::engine::cpu::simd::KernelPath;

/// Matrix view: `rows` rows of `k` values each, row `i` starting at `i · ld`, or at `starts[i]` when given
/// (rows may then overlap, e.g. shifted windows of one padded image).
#[derive(Clone, Copy)]
pub struct Rows<'a> {
    pub data: &'a [f32],
    pub rows: usize,
    pub ld: usize,
    pub starts: Option<&'a [usize]>,
}

impl<'a> Rows<'a> {
    /// Rows `ld` apart.
    pub fn strided(data: &'a [f32], rows: usize, ld: usize) -> Self {
        Rows {
            data,
            rows,
            ld,
            starts: None,
        }
    }
    /// Rows at explicit offsets.
    pub fn at(data: &'a [f32], starts: &'a [usize]) -> Self {
        Rows {
            data,
            rows: starts.len(),
            ld: 0,
            starts: Some(starts),
        }
    }
    #[inline(always)]
    fn start(&self, i: usize) -> usize {
        match self.starts {
            Some(s) => s[i],
            None => i * self.ld,
        }
    }
    /// Whether every row of `k` values lies inside `data`.
    fn fits(&self, k: usize) -> bool {
        match self.starts {
            Some(s) => s.iter().all(|&o| o + k <= self.data.len()),
            None => self.rows == 0 || self.data.len() >= (self.rows - 1) * self.ld + k,
        }
    }
}

/// `c[i·ldc + j] (+)= Σ_p a[i, p] · b[j, p]` for `i < a.rows`, `j < b.rows`, `p < k`.
pub fn gemm_nt(
    path: KernelPath,
    k: usize,
    a: Rows,
    b: Rows,
    c: &mut [f32],
    ldc: usize,
    accumulate: bool,
) {
    assert!(a.fits(k), "gemm_nt: A too short");
    assert!(b.fits(k), "gemm_nt: B too short");
    assert!(
        a.rows == 0 || b.rows == 0 || c.len() >= (a.rows - 1) * ldc + b.rows,
        "gemm_nt: C too short"
    );
    #[cfg(target_arch = "x86_64")]
    {
        if path >= KernelPath::Avx2 && path.supported() {
            // SAFETY: the CPU supports AVX2 and FMA (every path from AVX2 up has them, checked above); every row lies inside its slice
            // (asserted above), and `c` holds every output index.
            unsafe { avx2::gemm_nt(k, a, b, c, ldc, accumulate) };
            return;
        }
    }
    portable(k, a, b, c, ldc, accumulate);
}

fn portable(k: usize, a: Rows, b: Rows, c: &mut [f32], ldc: usize, accumulate: bool) {
    for i in 0..a.rows {
        let ar = &a.data[a.start(i)..a.start(i) + k];
        for j in 0..b.rows {
            let br = &b.data[b.start(j)..b.start(j) + k];
            let mut lanes = [0.0f32; 8];
            let mut p = 0;
            while p + 8 <= k {
                for l in 0..8 {
                    lanes[l] += ar[p + l] * br[p + l];
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
            let ar: [*const f32; 2] = [pa.add(a.start(i)), pa.add(a.start(i + ri - 1))];
            let br: [*const f32; 4] = std::array::from_fn(|d| pb.add(b.start(j + d.min(cj - 1))));
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
                KernelPath::best(),
                k,
                Rows::strided(&a, m, k),
                Rows::strided(&b, n, k),
                &mut c,
                n,
                true,
            );
            let mut p = vec![0.0f32; m * n];
            portable(
                k,
                Rows::strided(&a, m, k),
                Rows::strided(&b, n, k),
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
