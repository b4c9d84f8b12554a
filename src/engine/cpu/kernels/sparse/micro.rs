//! The two row kernels of the sparse products, on each [`KernelPath`]. Lengths are in vectors of
//! [`KernelPath::lanes`] values; callers give buffers with room for whole vectors.
//!
//! Rounding: on AVX-512 and AVX2 every output of [`gather_row`] is one chain of fused multiply-adds over the
//! row's kept weights in packed order, so the two paths agree bit for bit; the portable path multiplies and
//! adds separately. [`sampled_row`] keeps one partial sum per lane, so its result depends on the lane count.

use super::Taps;
use crate::engine::cpu::simd::KernelPath;

/// Most vectors of outputs one gather tile keeps in registers (AVX-512, AVX2).
const TILE_512: usize = 16;
const TILE_256: usize = 12;
/// Vectors per tile of the portable kernels.
const TILE_PORTABLE: usize = 8;
/// Lanes of the portable kernels' blocks.
const PORTABLE_LANES: usize = 8;

fn check_row(path: KernelPath, taps: &Taps, r: usize, src: &[f32], nvec: usize) -> usize {
    assert!(path.supported(), "kernel path {path} not supported here");
    assert!(r < taps.rows(), "row {r} out of range");
    let len = nvec * path.lanes();
    assert!(
        taps.span() + len <= src.len() + 1,
        "sparse kernel: source too short"
    );
    len
}

/// `out[q] (+)= Σ_{j ∈ row r} vals[j] · src[off_j + q]` for `q < nvec · lanes`; `vals` is the packed value
/// array of all rows.
#[allow(clippy::too_many_arguments)]
pub fn gather_row(
    path: KernelPath,
    taps: &Taps,
    r: usize,
    vals: &[f32],
    src: &[f32],
    nvec: usize,
    out: &mut [f32],
    accumulate: bool,
) {
    let len = check_row(path, taps, r, src, nvec);
    assert!(out.len() >= len && vals.len() >= taps.nnz());
    let (offs, v) = (taps.offsets(r), &vals[taps.range(r)]);
    match path {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: AVX-512 F is present (asserted); every load `src[off + q]` has `off < span` and
        // `q < len`, inside `src` (asserted), and `out` holds `len` values.
        KernelPath::Avx512 => unsafe { x86::gather512(offs, v, src, nvec, out, accumulate) },
        #[cfg(target_arch = "x86_64")]
        // SAFETY: as above, with AVX2 and FMA.
        KernelPath::Avx2 => unsafe { x86::gather256(offs, v, src, nvec, out, accumulate) },
        _ => gather_portable(offs, v, src, len, out, accumulate),
    }
}

/// `acc[j·L + l] += Σ_{v < nvec} d[v·L + l] · src[off_j + v·L + l]` for every kept weight `j` of row `r`
/// (`L` lanes); `acc` holds the row's lane sums, `L` per kept weight.
pub fn sampled_row(
    path: KernelPath,
    taps: &Taps,
    r: usize,
    src: &[f32],
    d: &[f32],
    nvec: usize,
    acc: &mut [f32],
) {
    let len = check_row(path, taps, r, src, nvec);
    let offs = taps.offsets(r);
    assert!(d.len() >= len && acc.len() >= offs.len() * path.lanes());
    match path {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: AVX-512 F is present; loads stay inside `src` and `d`, stores inside `acc` (asserted).
        KernelPath::Avx512 => unsafe { x86::sampled512(offs, src, d, nvec, acc) },
        #[cfg(target_arch = "x86_64")]
        // SAFETY: as above, with AVX2 and FMA.
        KernelPath::Avx2 => unsafe { x86::sampled256(offs, src, d, nvec, acc) },
        _ => sampled_portable(offs, src, d, len, acc),
    }
}

/// `out[j] (+)= Σ_l acc[j·L + l]`, lanes summed in order.
pub fn fold_lanes(path: KernelPath, acc: &[f32], out: &mut [f32], accumulate: bool) {
    let lanes = path.lanes();
    for (o, a) in out.iter_mut().zip(acc.chunks_exact(lanes)) {
        let s = a.iter().fold(0.0f32, |s, &v| s + v);
        *o = if accumulate { *o + s } else { s };
    }
}

fn gather_portable(
    offs: &[u32],
    vals: &[f32],
    src: &[f32],
    len: usize,
    out: &mut [f32],
    accumulate: bool,
) {
    const BLOCK: usize = TILE_PORTABLE * PORTABLE_LANES;
    let mut q0 = 0;
    while q0 < len {
        let n = (len - q0).min(BLOCK);
        let mut acc = [0.0f32; BLOCK];
        if accumulate {
            acc[..n].copy_from_slice(&out[q0..q0 + n]);
        }
        for (&off, &v) in offs.iter().zip(vals) {
            let s = &src[off as usize + q0..][..n];
            for (a, &x) in acc[..n].iter_mut().zip(s) {
                *a += v * x;
            }
        }
        out[q0..q0 + n].copy_from_slice(&acc[..n]);
        q0 += n;
    }
}

fn sampled_portable(offs: &[u32], src: &[f32], d: &[f32], len: usize, acc: &mut [f32]) {
    for (j, &off) in offs.iter().enumerate() {
        let s = &src[off as usize..][..len];
        let mut lanes = [0.0f32; PORTABLE_LANES];
        lanes.copy_from_slice(&acc[j * PORTABLE_LANES..][..PORTABLE_LANES]);
        for (dv, sv) in d[..len]
            .chunks_exact(PORTABLE_LANES)
            .zip(s.chunks_exact(PORTABLE_LANES))
        {
            for l in 0..PORTABLE_LANES {
                lanes[l] += dv[l] * sv[l];
            }
        }
        acc[j * PORTABLE_LANES..][..PORTABLE_LANES].copy_from_slice(&lanes);
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use super::{TILE_256, TILE_512};
    use std::arch::x86_64::*;

    /// Calls `$f::<T>` for the tile size `$t` in `1..=$max`.
    macro_rules! by_tile {
        ($t:expr, $f:ident, $($arg:expr),*) => {
            match $t {
                16 => $f::<16>($($arg),*), 15 => $f::<15>($($arg),*), 14 => $f::<14>($($arg),*),
                13 => $f::<13>($($arg),*), 12 => $f::<12>($($arg),*), 11 => $f::<11>($($arg),*),
                10 => $f::<10>($($arg),*), 9 => $f::<9>($($arg),*), 8 => $f::<8>($($arg),*),
                7 => $f::<7>($($arg),*), 6 => $f::<6>($($arg),*), 5 => $f::<5>($($arg),*),
                4 => $f::<4>($($arg),*), 3 => $f::<3>($($arg),*), 2 => $f::<2>($($arg),*),
                _ => $f::<1>($($arg),*),
            }
        };
    }

    /// Splits `nvec` vectors into tiles of at most `max`, of near-equal size.
    #[inline(always)]
    fn tiles(nvec: usize, max: usize) -> impl Iterator<Item = (usize, usize)> {
        let count = nvec.div_ceil(max).max(1);
        let base = nvec / count;
        let extra = nvec % count;
        (0..count).scan(0, move |start, i| {
            let t = base + (i < extra) as usize;
            let s = *start;
            *start += t;
            (t > 0).then_some((s, t))
        })
    }

    #[inline(always)]
    unsafe fn gather_tile_512<const T: usize>(
        offs: &[u32],
        vals: &[f32],
        src: *const f32,
        out: *mut f32,
        accumulate: bool,
    ) {
        let mut a = [_mm512_setzero_ps(); T];
        if accumulate {
            for (v, r) in a.iter_mut().enumerate() {
                *r = _mm512_loadu_ps(out.add(16 * v));
            }
        }
        for (&off, &w) in offs.iter().zip(vals) {
            let b = _mm512_set1_ps(w);
            let p = src.add(off as usize);
            for (v, r) in a.iter_mut().enumerate() {
                *r = _mm512_fmadd_ps(b, _mm512_loadu_ps(p.add(16 * v)), *r);
            }
        }
        for (v, r) in a.iter().enumerate() {
            _mm512_storeu_ps(out.add(16 * v), *r);
        }
    }

    /// # Safety
    /// AVX-512 F must be present; `src[off + q]` for every offset and `q < 16·nvec`, and `out[..16·nvec]`,
    /// must be in bounds.
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn gather512(
        offs: &[u32],
        vals: &[f32],
        src: &[f32],
        nvec: usize,
        out: &mut [f32],
        accumulate: bool,
    ) {
        let (s, o) = (src.as_ptr(), out.as_mut_ptr());
        for (v0, t) in tiles(nvec, TILE_512) {
            // SAFETY: per this function's contract.
            unsafe {
                by_tile!(
                    t,
                    gather_tile_512,
                    offs,
                    vals,
                    s.add(16 * v0),
                    o.add(16 * v0),
                    accumulate
                )
            }
        }
    }

    #[inline(always)]
    unsafe fn sampled_tile_512<const T: usize>(
        offs: &[u32],
        src: *const f32,
        d: *const f32,
        acc: *mut f32,
    ) {
        let dv: [__m512; T] = std::array::from_fn(|v| _mm512_loadu_ps(d.add(16 * v)));
        for (j, &off) in offs.iter().enumerate() {
            let p = src.add(off as usize);
            let dst = acc.add(16 * j);
            let mut a = _mm512_loadu_ps(dst);
            for (v, x) in dv.iter().enumerate() {
                a = _mm512_fmadd_ps(*x, _mm512_loadu_ps(p.add(16 * v)), a);
            }
            _mm512_storeu_ps(dst, a);
        }
    }

    /// # Safety
    /// AVX-512 F must be present; `src[off + q]` and `d[q]` for `q < 16·nvec`, and `acc[..16·offs.len()]`, must
    /// be in bounds.
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn sampled512(
        offs: &[u32],
        src: &[f32],
        d: &[f32],
        nvec: usize,
        acc: &mut [f32],
    ) {
        let (s, dp, a) = (src.as_ptr(), d.as_ptr(), acc.as_mut_ptr());
        for (v0, t) in tiles(nvec, TILE_512) {
            // SAFETY: per this function's contract.
            unsafe {
                by_tile!(
                    t,
                    sampled_tile_512,
                    offs,
                    s.add(16 * v0),
                    dp.add(16 * v0),
                    a
                )
            }
        }
    }

    #[inline(always)]
    unsafe fn gather_tile_256<const T: usize>(
        offs: &[u32],
        vals: &[f32],
        src: *const f32,
        out: *mut f32,
        accumulate: bool,
    ) {
        let mut a = [_mm256_setzero_ps(); T];
        if accumulate {
            for (v, r) in a.iter_mut().enumerate() {
                *r = _mm256_loadu_ps(out.add(8 * v));
            }
        }
        for (&off, &w) in offs.iter().zip(vals) {
            let b = _mm256_set1_ps(w);
            let p = src.add(off as usize);
            for (v, r) in a.iter_mut().enumerate() {
                *r = _mm256_fmadd_ps(b, _mm256_loadu_ps(p.add(8 * v)), *r);
            }
        }
        for (v, r) in a.iter().enumerate() {
            _mm256_storeu_ps(out.add(8 * v), *r);
        }
    }

    /// # Safety
    /// AVX2 and FMA must be present; bounds as for [`gather512`] with 8 lanes.
    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn gather256(
        offs: &[u32],
        vals: &[f32],
        src: &[f32],
        nvec: usize,
        out: &mut [f32],
        accumulate: bool,
    ) {
        let (s, o) = (src.as_ptr(), out.as_mut_ptr());
        for (v0, t) in tiles(nvec, TILE_256) {
            // SAFETY: per this function's contract.
            unsafe {
                by_tile!(
                    t,
                    gather_tile_256,
                    offs,
                    vals,
                    s.add(8 * v0),
                    o.add(8 * v0),
                    accumulate
                )
            }
        }
    }

    #[inline(always)]
    unsafe fn sampled_tile_256<const T: usize>(
        offs: &[u32],
        src: *const f32,
        d: *const f32,
        acc: *mut f32,
    ) {
        let dv: [__m256; T] = std::array::from_fn(|v| _mm256_loadu_ps(d.add(8 * v)));
        for (j, &off) in offs.iter().enumerate() {
            let p = src.add(off as usize);
            let dst = acc.add(8 * j);
            let mut a = _mm256_loadu_ps(dst);
            for (v, x) in dv.iter().enumerate() {
                a = _mm256_fmadd_ps(*x, _mm256_loadu_ps(p.add(8 * v)), a);
            }
            _mm256_storeu_ps(dst, a);
        }
    }

    /// # Safety
    /// AVX2 and FMA must be present; bounds as for [`sampled512`] with 8 lanes.
    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn sampled256(
        offs: &[u32],
        src: &[f32],
        d: &[f32],
        nvec: usize,
        acc: &mut [f32],
    ) {
        let (s, dp, a) = (src.as_ptr(), d.as_ptr(), acc.as_mut_ptr());
        for (v0, t) in tiles(nvec, TILE_256) {
            // SAFETY: per this function's contract.
            unsafe { by_tile!(t, sampled_tile_256, offs, s.add(8 * v0), dp.add(8 * v0), a) }
        }
    }

    #[cfg(test)]
    mod tests {
        #[test]
        fn tiles_cover_the_vectors_evenly() {
            for max in [12, 16] {
                for n in 0..100 {
                    let t: Vec<_> = super::tiles(n, max).collect();
                    let mut next = 0;
                    for &(s, c) in &t {
                        assert!(s == next && (1..=max).contains(&c));
                        next += c;
                    }
                    assert_eq!(next, n);
                    if let (Some(a), Some(b)) =
                        (t.iter().map(|x| x.1).max(), t.iter().map(|x| x.1).min())
                    {
                        assert!(a - b <= 1);
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vals(n: usize, seed: usize) -> Vec<f32> {
        (0..n)
            .map(|i| (((i * 31 + seed * 17) % 97) as f32 - 48.0) / 32.0)
            .collect()
    }

    #[test]
    fn row_kernels_match_their_definition_on_every_path() {
        let src = vals(4000, 1);
        let taps = Taps::from_rows(vec![
            vec![(3, 0), (100, 1), (517, 2), (0, 3)],
            vec![],
            vec![(999, 4)],
        ]);
        let packed = vals(taps.nnz(), 2);
        for path in KernelPath::available() {
            let l = path.lanes();
            for nvec in [1, 5, 13, 17, 40] {
                let len = nvec * l;
                for r in 0..taps.rows() {
                    let mut out = vals(len, 3);
                    let before = out.clone();
                    gather_row(path, &taps, r, &packed, &src, nvec, &mut out, true);
                    for q in 0..len {
                        let want: f64 = before[q] as f64
                            + taps
                                .range(r)
                                .map(|j| packed[j] as f64 * src[taps.off[j] as usize + q] as f64)
                                .sum::<f64>();
                        assert!(
                            (out[q] as f64 - want).abs() < 1e-4,
                            "{path} gather r{r} q{q}"
                        );
                    }
                    let d = vals(len, 4);
                    let nz = taps.range(r).len();
                    let mut acc = vec![0.25f32; nz * l];
                    sampled_row(path, &taps, r, &src, &d, nvec, &mut acc);
                    let mut dots = vec![1.0f32; nz];
                    fold_lanes(path, &acc, &mut dots, true);
                    for (k, j) in taps.range(r).enumerate() {
                        let want: f64 = 1.0
                            + 0.25 * l as f64
                            + (0..len)
                                .map(|q| d[q] as f64 * src[taps.off[j] as usize + q] as f64)
                                .sum::<f64>();
                        assert!((dots[k] as f64 - want).abs() < 1e-3, "{path} sampled r{r}");
                    }
                }
            }
        }
    }

    #[test]
    fn avx512_and_avx2_gathers_agree_bit_for_bit() {
        if !KernelPath::Avx512.supported() {
            return;
        }
        let src = vals(3000, 5);
        let taps = Taps::from_rows(vec![(0..40).map(|j| (j * 37 % 900, j)).collect()]);
        let packed = vals(40, 6);
        let mut a = vec![0.0; 32 * 16];
        let mut b = vec![0.0; 32 * 16];
        gather_row(
            KernelPath::Avx512,
            &taps,
            0,
            &packed,
            &src,
            32,
            &mut a,
            false,
        );
        gather_row(KernelPath::Avx2, &taps, 0, &packed, &src, 64, &mut b, false);
        assert_eq!(a, b);
    }
}
