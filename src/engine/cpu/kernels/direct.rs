//! Convolution without im2col: every product reads shifted windows of one zero-padded sample in place. For
//! stride 1 the sample is `xp[C, H + 2p, W + 2p]`; for stride 2 every padded row is split into its even and
//! odd columns (`[C, 2, H + 2p, ⌈(W + 2p)/2⌉]`), so that the windows of 8 neighbouring outputs are again
//! contiguous.
//!
//! Forward (and, with flipped transposed weights, the input gradient): `y[o, q] (+)= Σ_{c,t} w[o, c, t] ·
//! xp[c, q + off(t)]`, register-blocked as up to 6 output channels × two 8-pixel row segments. Weight
//! gradient: `dw[o, c, t] += Σ_q dyᵀ[q, o] · xp[c, q + off(t)]`, blocked as up to 16 output channels × 6
//! taps with the whole pixel sum kept in registers. Both use AVX2/FMA and need stride 1 or 2 and an output
//! width that is a multiple of 8 ([`forward_supported`], [`weight_grad_supported`]); the input gradient this
//! way needs stride 1 ([`input_grad_geom`]). The summation order depends only on the shapes, so results are
//! deterministic. The AVX-512 path runs wider register tiles ([`avx512`]) with the same per-output order, so
//! it gives the same bits as the AVX2 kernels.

use super::conv::ConvGeom;
use crate::engine::cpu::simd::KernelPath;

/// Most output channels per forward register tile.
const MR: usize = 6;
/// Pixels per vector.
const LANES: usize = 8;
/// Taps per weight-gradient register tile.
const KT: usize = 6;

/// Whether `path` runs the AVX2/FMA kernels here (AVX-512 machines run them too).
fn vector(path: KernelPath) -> bool {
    cfg!(target_arch = "x86_64") && path >= KernelPath::Avx2 && path.supported()
}

/// Whether [`forward_sample`] handles `g` on `path`: the AVX2 or AVX-512 path, stride 1 or 2, an output width
/// that is a multiple of 8, and windows that stay inside their padded (phase) row.
pub fn forward_supported(path: KernelPath, g: &ConvGeom) -> bool {
    (g.stride == 1 || g.stride == 2)
        && g.ow % LANES == 0
        && g.ow + (g.k - 1) / g.stride <= phase_w(g)
        && vector(path)
}

/// Whether [`weight_grad_sample`] handles `g` on `path`: as [`forward_supported`], and a multiple of 8
/// output channels.
pub fn weight_grad_supported(path: KernelPath, g: &ConvGeom) -> bool {
    forward_supported(path, g) && g.cout % LANES == 0
}

/// The geometry whose forward pass is the input gradient of stride-1 `g`: input `dy[Cout, OH, OW]`, output
/// `dx[Cin, H, W]`, weights flipped and transposed (see [`pack_flipped`]). `None` when `g` is not stride 1 or
/// its padding exceeds `k − 1`.
pub fn input_grad_geom(g: &ConvGeom) -> Option<ConvGeom> {
    if g.stride != 1 || g.pad + 1 > g.k {
        return None;
    }
    let t = ConvGeom::new(g.cout, g.cin, g.oh, g.ow, g.k, 1, g.k - 1 - g.pad)?;
    (t.oh == g.h && t.ow == g.w).then_some(t)
}

/// Width of a padded row.
fn padded_w(g: &ConvGeom) -> usize {
    g.w + 2 * g.pad
}

/// Width of one stride phase of a padded row.
fn phase_w(g: &ConvGeom) -> usize {
    padded_w(g).div_ceil(g.stride)
}

/// Distance in a padded sample between the windows of vertically neighbouring outputs.
fn row_step(g: &ConvGeom) -> usize {
    g.stride * phase_w(g)
}

/// Values of one padded sample.
pub fn padded_len(g: &ConvGeom) -> usize {
    g.cin * g.stride * (g.h + 2 * g.pad) * phase_w(g)
}

/// Writes sample `x[Cin, H, W]` into `xp[Cin, H + 2p, W + 2p]` with zero borders.
pub fn pad_sample(path: KernelPath, g: &ConvGeom, x: &[f32], xp: &mut [f32]) {
    assert!(x.len() >= g.in_len() && xp.len() >= padded_len(g));
    if g.stride != 1 {
        return pad_phases(g, x, xp);
    }
    #[cfg(target_arch = "x86_64")]
    if vector(path) {
        // SAFETY: AVX2 is present; both slices are long enough (asserted).
        unsafe { avx2::pad_sample(g, x, xp) };
        return;
    }
    let (wp, p) = (padded_w(g), g.pad);
    let plane = (g.h + 2 * p) * wp;
    for (xc, pc) in x
        .chunks_exact(g.h * g.w)
        .zip(xp.chunks_exact_mut(plane))
        .take(g.cin)
    {
        pc[..p * wp].fill(0.0);
        pc[(p + g.h) * wp..].fill(0.0);
        for (row, prow) in xc.chunks_exact(g.w).zip(pc[p * wp..].chunks_exact_mut(wp)) {
            prow[..p].fill(0.0);
            prow[p..p + g.w].copy_from_slice(row);
            prow[p + g.w..].fill(0.0);
        }
    }
}

/// [`pad_sample`] for stride `s > 1`: column `j` of padded row `r` of channel `c` goes to `[c, j % s, r, j / s]`.
fn pad_phases(g: &ConvGeom, x: &[f32], xp: &mut [f32]) {
    let (s, wq, hp) = (g.stride, phase_w(g), g.h + 2 * g.pad);
    let len = padded_len(g);
    xp[..len].fill(0.0);
    for (xc, pc) in x
        .chunks_exact(g.h * g.w)
        .zip(xp[..len].chunks_exact_mut(s * hp * wq))
        .take(g.cin)
    {
        for (y, row) in xc.chunks_exact(g.w).enumerate() {
            let r = y + g.pad;
            for ph in 0..s {
                // Padded columns j = jj·s + ph inside [pad, pad + W).
                let first = (g.pad + s - 1 - ph) / s;
                let dst = &mut pc[(ph * hp + r) * wq..][..wq];
                let src = row.iter().skip(first * s + ph - g.pad).step_by(s);
                for (d, &v) in dst[first..].iter_mut().zip(src) {
                    *d = v;
                }
            }
        }
    }
}

/// Offsets into a padded sample of every row `(c, ky, kx)` of the weight's fan-in, in weight order.
pub fn tap_offsets(g: &ConvGeom, out: &mut Vec<usize>) {
    let (s, wq, hp) = (g.stride, phase_w(g), g.h + 2 * g.pad);
    out.clear();
    for c in 0..g.cin {
        for ky in 0..g.k {
            for kx in 0..g.k {
                out.push(((c * s + kx % s) * hp + ky) * wq + kx / s);
            }
        }
    }
}

/// Whether every window `off + oy·step + ox` (`oy < OH`, `ox < OW`, `step` = [`row_step`]) lies inside a padded
/// sample of `len` values.
fn windows_fit(g: &ConvGeom, offs: &[usize], len: usize) -> bool {
    let last = (g.oh - 1) * row_step(g) + g.ow;
    offs.iter().all(|&o| o + last <= len)
}

/// Splits `rows` output channels into register-tile blocks `(first, count)` of at most [`MR`] rows, none
/// smaller than 3 unless `rows` is.
fn row_blocks(rows: usize) -> impl Iterator<Item = (usize, usize)> {
    let mut start = 0;
    std::iter::from_fn(move || {
        let left = rows - start;
        let r = match left {
            0 => return None,
            l if l <= MR => l,
            l if l <= 2 * MR - 4 => l / 2,
            _ => MR,
        };
        start += r;
        Some((start - r, r))
    })
}

/// Packs `rows × kdim` values `at(r, kk)` block by block (see [`row_blocks`]): a block of `r` rows starting
/// at row `first` is `[kdim][r]` at offset `first · kdim`.
fn pack(rows: usize, kdim: usize, at: impl Fn(usize, usize) -> f32, out: &mut Vec<f32>) {
    out.clear();
    for (first, r) in row_blocks(rows) {
        for kk in 0..kdim {
            for row in first..first + r {
                out.push(at(row, kk));
            }
        }
    }
}

/// Packs weight `w[Cout, Cin, k, k]` for the forward pass of `g`.
pub fn pack_weight(g: &ConvGeom, w: &[f32], out: &mut Vec<f32>) {
    let kdim = g.kdim();
    pack(g.cout, kdim, |r, kk| w[r * kdim + kk], out);
}

/// Packs `w'[c, o, ky, kx] = w[o, c, k−1−ky, k−1−kx]` for the input-gradient pass (see [`input_grad_geom`]).
pub fn pack_flipped(g: &ConvGeom, w: &[f32], out: &mut Vec<f32>) {
    let kk2 = g.k * g.k;
    pack(
        g.cin,
        g.cout * kk2,
        |c, kk| {
            let (o, t) = (kk / kk2, kk % kk2);
            w[(o * g.cin + c) * kk2 + kk2 - 1 - t]
        },
        out,
    );
}

/// `y[Cout, OH·OW] (+)= conv(xp)` for one padded sample `xp` (see [`pad_sample`]), weights packed by
/// [`pack_weight`] and offsets from [`tap_offsets`]. Requires [`forward_supported`].
pub fn forward_sample(
    path: KernelPath,
    g: &ConvGeom,
    xp: &[f32],
    packed: &[f32],
    offs: &[usize],
    y: &mut [f32],
    accumulate: bool,
) {
    assert!(
        forward_supported(path, g),
        "direct forward: unsupported geometry"
    );
    assert!(xp.len() >= padded_len(g) && y.len() >= g.out_len());
    assert!(offs.len() == g.kdim() && windows_fit(g, offs, xp.len()));
    assert!(packed.len() >= g.cout * g.kdim());
    #[cfg(target_arch = "x86_64")]
    // SAFETY: the path's instructions are present (`forward_supported` checks it); the asserts above bound every read: a window
    // starts at `oy·wp + ox + off` with `ox + 8 ≤ OW` and `off` inside its channel plane, so it ends inside
    // the padded row; the packed weight holds every row block.
    unsafe {
        if path == KernelPath::Avx512 {
            avx512::forward(g, xp, packed, offs, y, accumulate)
        } else {
            avx2::forward(g, xp, packed, offs, y, accumulate)
        }
    }
}

/// `dw[Cout, Cin·k·k] += Σ_q dyt[q, o] · xp[c, q + off(t)]` for one sample: `dyt` is the output gradient
/// transposed to `[OH·OW, Cout]` (see [`transpose`]). Requires [`weight_grad_supported`].
pub fn weight_grad_sample(
    path: KernelPath,
    g: &ConvGeom,
    xp: &[f32],
    dyt: &[f32],
    offs: &[usize],
    dw: &mut [f32],
) {
    assert!(
        weight_grad_supported(path, g),
        "direct weight gradient: unsupported geometry"
    );
    assert!(xp.len() >= padded_len(g) && dyt.len() >= g.out_len());
    assert!(offs.len() == g.kdim() && windows_fit(g, offs, xp.len()));
    assert!(dw.len() >= g.cout * g.kdim());
    #[cfg(target_arch = "x86_64")]
    // SAFETY: as in `forward_sample`; `dyt` holds `OH·OW` rows of `Cout` values.
    unsafe {
        if path == KernelPath::Avx512 && avx512::weight_grad_fits(g) {
            avx512::weight_grad(g, xp, dyt, offs, dw)
        } else {
            avx2::weight_grad(g, xp, dyt, offs, dw)
        }
    }
}

/// `t[j, i] = a[i, j]` for `a` of `rows × cols`.
pub fn transpose(path: KernelPath, rows: usize, cols: usize, a: &[f32], t: &mut [f32]) {
    assert!(a.len() >= rows * cols && t.len() >= rows * cols);
    #[cfg(target_arch = "x86_64")]
    if rows % LANES == 0 && cols % LANES == 0 && vector(path) {
        // SAFETY: AVX2 is present; both slices hold `rows · cols` values (asserted).
        unsafe { avx2::transpose(rows, cols, a, t) };
        return;
    }
    for i in 0..rows {
        for j in 0..cols {
            t[j * rows + i] = a[i * cols + j];
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod avx512;

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use super::{ConvGeom, KT, LANES};
    use std::arch::x86_64::*;

    /// One tile: `R` output channels × `NV` 8-pixel segments starting at padded offsets `base` and output
    /// offsets `outp`; `a` is the block's packed weight `[kdim][R]`.
    #[inline(always)]
    #[allow(clippy::too_many_arguments)]
    unsafe fn forward_tile<const R: usize, const NV: usize>(
        xp: *const f32,
        a: *const f32,
        offs: &[usize],
        base: [usize; 2],
        outp: [usize; 2],
        y: *mut f32,
        ohw: usize,
        accumulate: bool,
    ) {
        let mut acc = [[_mm256_setzero_ps(); NV]; R];
        let mut a = a;
        for &off in offs {
            let p = xp.add(off);
            let b: [__m256; NV] = std::array::from_fn(|v| _mm256_loadu_ps(p.add(base[v])));
            for (r, row) in acc.iter_mut().enumerate() {
                let s = _mm256_broadcast_ss(&*a.add(r));
                for v in 0..NV {
                    row[v] = _mm256_fmadd_ps(s, b[v], row[v]);
                }
            }
            a = a.add(R);
        }
        for (r, row) in acc.iter().enumerate() {
            for v in 0..NV {
                let dst = y.add(r * ohw + outp[v]);
                let val = if accumulate {
                    _mm256_add_ps(_mm256_loadu_ps(dst), row[v])
                } else {
                    row[v]
                };
                _mm256_storeu_ps(dst, val);
            }
        }
    }

    /// [`forward_rows`] for some `R`.
    type RowsFn = unsafe fn(
        usize,
        *const f32,
        *const f32,
        &[usize],
        [usize; 2],
        [usize; 2],
        *mut f32,
        usize,
        bool,
    );

    /// [`forward_tile`] for `NV` one or two.
    #[target_feature(enable = "avx2,fma")]
    #[allow(clippy::too_many_arguments)]
    unsafe fn forward_rows<const R: usize>(
        nv: usize,
        xp: *const f32,
        a: *const f32,
        offs: &[usize],
        base: [usize; 2],
        outp: [usize; 2],
        y: *mut f32,
        ohw: usize,
        accumulate: bool,
    ) {
        if nv == 2 {
            forward_tile::<R, 2>(xp, a, offs, base, outp, y, ohw, accumulate);
        } else {
            forward_tile::<R, 1>(xp, a, offs, base, outp, y, ohw, accumulate);
        }
    }

    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn forward(
        g: &ConvGeom,
        xp: &[f32],
        packed: &[f32],
        offs: &[usize],
        y: &mut [f32],
        accumulate: bool,
    ) {
        let (step, ohw, kdim) = (super::row_step(g), g.out_hw(), g.kdim());
        let nvec = ohw / LANES;
        let segs_per_row = g.ow / LANES;
        let base = |v: usize| (v / segs_per_row) * step + (v % segs_per_row) * LANES;
        let (xp, y) = (xp.as_ptr(), y.as_mut_ptr());
        let mut v0 = 0;
        while v0 < nvec {
            let nv = (nvec - v0).min(2);
            let last = v0 + nv - 1;
            let bases = [base(v0), base(last)];
            let outp = [v0 * LANES, last * LANES];
            for (first, r) in super::row_blocks(g.cout) {
                let a = packed.as_ptr().add(first * kdim);
                let yb = y.add(first * ohw);
                let tile: RowsFn = match r {
                    6 => forward_rows::<6>,
                    5 => forward_rows::<5>,
                    4 => forward_rows::<4>,
                    3 => forward_rows::<3>,
                    2 => forward_rows::<2>,
                    _ => forward_rows::<1>,
                };
                tile(nv, xp, a, offs, bases, outp, yb, ohw, accumulate);
            }
            v0 += nv;
        }
    }

    /// One tile: `8·NO` output channels from `o0` × `KT` taps `offs` (the last repeated past `taps`).
    #[inline(always)]
    #[allow(clippy::too_many_arguments)]
    unsafe fn weight_grad_tile<const NO: usize>(
        g: &ConvGeom,
        xp: *const f32,
        dyt: *const f32,
        o0: usize,
        offs: [usize; KT],
        taps: usize,
        dw: *mut f32,
        kk0: usize,
    ) {
        let (step, cout, kdim) = (super::row_step(g), g.cout, g.kdim());
        let mut acc = [[_mm256_setzero_ps(); NO]; KT];
        let ptr: [*const f32; KT] = std::array::from_fn(|j| xp.add(offs[j]));
        let mut d = dyt.add(o0);
        for oy in 0..g.oh {
            let row = oy * step;
            for ox in 0..g.ow {
                let q = row + ox;
                let dv: [__m256; NO] = std::array::from_fn(|v| _mm256_loadu_ps(d.add(v * LANES)));
                for j in 0..KT {
                    let s = _mm256_broadcast_ss(&*ptr[j].add(q));
                    for v in 0..NO {
                        acc[j][v] = _mm256_fmadd_ps(dv[v], s, acc[j][v]);
                    }
                }
                d = d.add(cout);
            }
        }
        let mut lanes = [0.0f32; LANES];
        for (j, accj) in acc.iter().enumerate().take(taps) {
            for (v, &a) in accj.iter().enumerate() {
                _mm256_storeu_ps(lanes.as_mut_ptr(), a);
                for (l, &s) in lanes.iter().enumerate() {
                    *dw.add((o0 + v * LANES + l) * kdim + kk0 + j) += s;
                }
            }
        }
    }

    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn weight_grad(
        g: &ConvGeom,
        xp: &[f32],
        dyt: &[f32],
        offs: &[usize],
        dw: &mut [f32],
    ) {
        let kdim = g.kdim();
        let (xp, dyt, dw) = (xp.as_ptr(), dyt.as_ptr(), dw.as_mut_ptr());
        let mut o0 = 0;
        while o0 < g.cout {
            let no = if g.cout - o0 >= 2 * LANES { 2 } else { 1 };
            for kk0 in (0..kdim).step_by(KT) {
                let taps = (kdim - kk0).min(KT);
                let tile: [usize; KT] = std::array::from_fn(|j| offs[kk0 + j.min(taps - 1)]);
                if no == 2 {
                    weight_grad_tile::<2>(g, xp, dyt, o0, tile, taps, dw, kk0);
                } else {
                    weight_grad_tile::<1>(g, xp, dyt, o0, tile, taps, dw, kk0);
                }
            }
            o0 += no * LANES;
        }
    }

    /// Zeroes `n` values at `dst`.
    #[inline(always)]
    unsafe fn zeros(dst: *mut f32, n: usize) {
        let mut i = 0;
        while i + LANES <= n {
            _mm256_storeu_ps(dst.add(i), _mm256_setzero_ps());
            i += LANES;
        }
        while i < n {
            *dst.add(i) = 0.0;
            i += 1;
        }
    }

    /// [`super::pad_sample`] with 8-wide copies (rows are short: library copies would cost more in calls).
    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn pad_sample(g: &ConvGeom, x: &[f32], xp: &mut [f32]) {
        let (p, wp) = (g.pad, g.w + 2 * g.pad);
        let (mut src, mut dst) = (x.as_ptr(), xp.as_mut_ptr());
        let w8 = g.w / LANES * LANES;
        for _ in 0..g.cin {
            zeros(dst, p * wp + p);
            dst = dst.add(p * wp + p);
            for y in 0..g.h {
                let mut i = 0;
                while i < w8 {
                    _mm256_storeu_ps(dst.add(i), _mm256_loadu_ps(src.add(i)));
                    i += LANES;
                }
                while i < g.w {
                    *dst.add(i) = *src.add(i);
                    i += 1;
                }
                let gap = if y + 1 < g.h { 2 * p } else { p + p * wp };
                zeros(dst.add(g.w), gap);
                src = src.add(g.w);
                dst = dst.add(g.w + gap);
            }
        }
    }

    /// 8 × 8 block transposes.
    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn transpose(rows: usize, cols: usize, a: &[f32], t: &mut [f32]) {
        let (a, t) = (a.as_ptr(), t.as_mut_ptr());
        for i0 in (0..rows).step_by(LANES) {
            for j0 in (0..cols).step_by(LANES) {
                let r: [__m256; 8] =
                    std::array::from_fn(|i| _mm256_loadu_ps(a.add((i0 + i) * cols + j0)));
                let t0 = _mm256_unpacklo_ps(r[0], r[1]);
                let t1 = _mm256_unpackhi_ps(r[0], r[1]);
                let t2 = _mm256_unpacklo_ps(r[2], r[3]);
                let t3 = _mm256_unpackhi_ps(r[2], r[3]);
                let t4 = _mm256_unpacklo_ps(r[4], r[5]);
                let t5 = _mm256_unpackhi_ps(r[4], r[5]);
                let t6 = _mm256_unpacklo_ps(r[6], r[7]);
                let t7 = _mm256_unpackhi_ps(r[6], r[7]);
                let s0 = _mm256_shuffle_ps::<0x44>(t0, t2);
                let s1 = _mm256_shuffle_ps::<0xEE>(t0, t2);
                let s2 = _mm256_shuffle_ps::<0x44>(t1, t3);
                let s3 = _mm256_shuffle_ps::<0xEE>(t1, t3);
                let s4 = _mm256_shuffle_ps::<0x44>(t4, t6);
                let s5 = _mm256_shuffle_ps::<0xEE>(t4, t6);
                let s6 = _mm256_shuffle_ps::<0x44>(t5, t7);
                let s7 = _mm256_shuffle_ps::<0xEE>(t5, t7);
                let o = [
                    _mm256_permute2f128_ps::<0x20>(s0, s4),
                    _mm256_permute2f128_ps::<0x20>(s1, s5),
                    _mm256_permute2f128_ps::<0x20>(s2, s6),
                    _mm256_permute2f128_ps::<0x20>(s3, s7),
                    _mm256_permute2f128_ps::<0x31>(s0, s4),
                    _mm256_permute2f128_ps::<0x31>(s1, s5),
                    _mm256_permute2f128_ps::<0x31>(s2, s6),
                    _mm256_permute2f128_ps::<0x31>(s3, s7),
                ];
                for (j, v) in o.iter().enumerate() {
                    _mm256_storeu_ps(t.add((j0 + j) * rows + i0), *v);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::cpu::kernels::conv::im2col;

    /// The direct kernels' own paths that this CPU runs.
    fn paths() -> Vec<KernelPath> {
        [KernelPath::Avx2, KernelPath::Avx512]
            .into_iter()
            .filter(|p| p.supported())
            .collect()
    }

    fn vals(n: usize, a: usize, b: usize) -> Vec<f32> {
        (0..n)
            .map(|i| ((i * a % b) as f32 - (b / 2) as f32) / b as f32)
            .collect()
    }

    fn reference_forward(g: &ConvGeom, x: &[f32], w: &[f32]) -> Vec<f32> {
        let mut col = vec![0.0; g.kdim() * g.out_hw()];
        im2col(g, x, &mut col);
        let mut y = vec![0.0; g.out_len()];
        for o in 0..g.cout {
            for q in 0..g.out_hw() {
                y[o * g.out_hw() + q] = (0..g.kdim())
                    .map(|kk| (w[o * g.kdim() + kk] * col[kk * g.out_hw() + q]) as f64)
                    .sum::<f64>() as f32;
            }
        }
        y
    }

    fn geoms(p: KernelPath) -> Vec<ConvGeom> {
        [
            (3, 16, 8, 16, 3, 1, 1),
            (5, 12, 6, 8, 3, 1, 1),
            (4, 8, 4, 8, 3, 1, 0),
            (2, 24, 7, 8, 1, 1, 0),
            (3, 8, 9, 24, 5, 1, 2),
            (3, 16, 8, 16, 3, 2, 1),
            (4, 8, 7, 16, 3, 2, 1),
            (2, 8, 5, 17, 3, 2, 1),
            (3, 64, 5, 32, 3, 1, 1),
            (2, 48, 3, 16, 3, 1, 1),
            (2, 80, 6, 16, 3, 2, 1),
            (5, 32, 7, 8, 3, 1, 1),
        ]
        .iter()
        .map(|&(c, o, h, w, k, s, pad)| ConvGeom::new(c, o, h, w, k, s, pad).unwrap())
        .filter(|g| forward_supported(p, g))
        .collect()
    }

    #[test]
    fn forward_and_input_gradient_match_im2col() {
        for p in paths() {
            forward_and_input_gradient_on(p);
        }
    }

    fn forward_and_input_gradient_on(p: KernelPath) {
        for g in geoms(p) {
            let x = vals(g.in_len(), 7, 11);
            let w = vals(g.cout * g.kdim(), 5, 13);
            let (mut xp, mut packed, mut offs) = (vec![0.0; padded_len(&g)], vec![], vec![]);
            pad_sample(p, &g, &x, &mut xp);
            pack_weight(&g, &w, &mut packed);
            tap_offsets(&g, &mut offs);
            let mut y = vec![1.0; g.out_len()];
            forward_sample(p, &g, &xp, &packed, &offs, &mut y, true);
            let want = reference_forward(&g, &x, &w);
            for (a, b) in y.iter().zip(&want) {
                assert!((a - 1.0 - b).abs() < 1e-4, "{g:?}: {a} vs {b}");
            }
            // Adjoint: <conv(x), dy> = <x, conv_input_grad(dy)>.
            let Some(t) = input_grad_geom(&g) else {
                continue;
            };
            if !forward_supported(p, &t) {
                continue;
            }
            let dy = vals(g.out_len(), 3, 17);
            let (mut dyp, mut flipped) = (vec![0.0; padded_len(&t)], vec![]);
            pad_sample(p, &t, &dy, &mut dyp);
            pack_flipped(&g, &w, &mut flipped);
            tap_offsets(&t, &mut offs);
            let mut dx = vec![0.0; g.in_len()];
            forward_sample(p, &t, &dyp, &flipped, &offs, &mut dx, false);
            let lhs: f64 = want.iter().zip(&dy).map(|(a, b)| (a * b) as f64).sum();
            let rhs: f64 = x.iter().zip(&dx).map(|(a, b)| (a * b) as f64).sum();
            assert!((lhs - rhs).abs() < 1e-3, "{p} {g:?}: {lhs} vs {rhs}");
        }
    }

    #[test]
    fn weight_gradient_matches_im2col() {
        for p in paths() {
            weight_gradient_on(p);
        }
    }

    fn weight_gradient_on(p: KernelPath) {
        for g in geoms(p).into_iter().filter(|g| weight_grad_supported(p, g)) {
            let x = vals(g.in_len(), 7, 11);
            let dy = vals(g.out_len(), 3, 17);
            let mut col = vec![0.0; g.kdim() * g.out_hw()];
            im2col(&g, &x, &mut col);
            let (mut xp, mut offs) = (vec![0.0; padded_len(&g)], vec![]);
            pad_sample(p, &g, &x, &mut xp);
            tap_offsets(&g, &mut offs);
            let mut dyt = vec![0.0; g.out_len()];
            transpose(p, g.cout, g.out_hw(), &dy, &mut dyt);
            let mut dw = vec![0.5; g.cout * g.kdim()];
            weight_grad_sample(p, &g, &xp, &dyt, &offs, &mut dw);
            for o in 0..g.cout {
                for kk in 0..g.kdim() {
                    let want: f64 = (0..g.out_hw())
                        .map(|q| (dy[o * g.out_hw() + q] * col[kk * g.out_hw() + q]) as f64)
                        .sum();
                    let got = dw[o * g.kdim() + kk] as f64 - 0.5;
                    assert!(
                        (got - want).abs() < 1e-4,
                        "{g:?} ({o}, {kk}): {got} vs {want}"
                    );
                }
            }
        }
    }

    #[test]
    fn avx512_tiles_give_the_avx2_bits() {
        if !KernelPath::Avx512.supported() {
            return;
        }
        let run = |p: KernelPath, g: &ConvGeom| {
            let x = vals(g.in_len(), 7, 11);
            let w = vals(g.cout * g.kdim(), 5, 13);
            let dy = vals(g.out_len(), 3, 17);
            let (mut xp, mut packed, mut offs) = (vec![0.0; padded_len(g)], vec![], vec![]);
            pad_sample(p, g, &x, &mut xp);
            pack_weight(g, &w, &mut packed);
            tap_offsets(g, &mut offs);
            let mut y = vec![0.25; g.out_len()];
            forward_sample(p, g, &xp, &packed, &offs, &mut y, true);
            let mut dw = vec![0.5; g.cout * g.kdim()];
            if weight_grad_supported(p, g) {
                let mut dyt = vec![0.0; g.out_len()];
                transpose(p, g.cout, g.out_hw(), &dy, &mut dyt);
                weight_grad_sample(p, g, &xp, &dyt, &offs, &mut dw);
            }
            (y, dw)
        };
        for g in geoms(KernelPath::Avx512) {
            let (a, b) = (run(KernelPath::Avx2, &g), run(KernelPath::Avx512, &g));
            assert!(
                a.0.iter()
                    .zip(&b.0)
                    .all(|(x, y)| x.to_bits() == y.to_bits()),
                "{g:?}"
            );
            assert!(
                a.1.iter()
                    .zip(&b.1)
                    .all(|(x, y)| x.to_bits() == y.to_bits()),
                "{g:?}"
            );
        }
    }

    #[test]
    fn row_blocks_cover_the_rows() {
        for rows in 1..80 {
            let blocks: Vec<_> = row_blocks(rows).collect();
            let mut next = 0;
            for &(first, r) in &blocks {
                assert!(first == next && (1..=MR).contains(&r) && (r >= 3 || rows < 3));
                next += r;
            }
            assert_eq!(next, rows);
        }
    }

    #[test]
    fn transpose_round_trips() {
        for (r, c) in [(8, 16), (3, 5), (16, 24)] {
            let a = vals(r * c, 1, 1000);
            let mut t = vec![0.0; r * c];
            transpose(KernelPath::Avx2, r, c, &a, &mut t);
            for i in 0..r {
                for j in 0..c {
                    assert_eq!(t[j * r + i], a[i * c + j]);
                }
            }
        }
    }
}
