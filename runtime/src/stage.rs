//! Staging of convolution inputs into the op's scratch (the layouts of [`crate::conv`]): zero-padded and
//! split into the `S × S` phases of the stride, then [`STAGE_SLACK`] positions of zeros.
//!
//! With stride 1 a padded plane is one contiguous run of rows, so [`stage_f32`] and [`stage_i8_planes`] write
//! it in a single pass, every position once: the top border, then per input row the copied values and one
//! short store that covers the row's right padding and the next row's left padding, then the bottom border.
//! Only the two borders of a plane are filled with a call; the rows are copied with vector (float) or 8-byte
//! (int8) moves inline. Other strides, and paddings too wide for one short store, zero the planes first and
//! then place each value.

use crate::conv::{ConvGeom, STAGE_SLACK};
use crate::lanes::Lanes;

/// Stages a float input: for each channel and stride phase, the zero-padded phase plane; then zeros.
///
/// # Safety
/// The CPU must support path `S`.
#[inline(always)]
pub(crate) unsafe fn stage_f32<S: Lanes>(x: &[f32], staged: &mut [f32], g: &ConvGeom) {
    let n = g.c * g.s * g.s * g.phase_h() * g.phase_w();
    if staged.len() < n || x.len() < g.c * g.h * g.w {
        return;
    }
    if g.s == 1 && 2 * g.p <= S::L {
        // SAFETY: the path is available (the caller's contract); lengths checked above.
        unsafe { unit_f32::<S>(x, staged, g) };
    } else {
        general(x, staged, g, 0.0, |v| v);
    }
    staged[n..].fill(0.0);
}

/// Stride-1 float planes, `2 · P ≤ L` (the caller checks the lengths).
#[inline(always)]
unsafe fn unit_f32<S: Lanes>(x: &[f32], staged: &mut [f32], g: &ConvGeom) {
    let (ws, p, w) = (g.phase_w(), g.p, g.w);
    let plane = g.phase_h() * ws;
    // SAFETY: the path is available.
    let zero = unsafe { S::splat(0.0) };
    for (ci, xp) in x.chunks_exact(g.h * w).take(g.c).enumerate() {
        let sp = &mut staged[ci * plane..(ci + 1) * plane];
        sp[..p * ws + p].fill(0.0);
        let d = sp.as_mut_ptr();
        let rows = g.h;
        for (iy, xr) in xp.chunks_exact(w).enumerate() {
            let at = (iy + p) * ws + p;
            let src = xr.as_ptr();
            // SAFETY: the row's values go to at .. at + W, inside the plane; below the last row the 2·P pads
            // end at the next row's first value, (iy + P + 1) · WS + P ≤ (H + P) · WS < plane length.
            unsafe {
                let mut j = 0;
                while j + S::L <= w {
                    S::store(d.add(at + j), S::load(src.add(j)));
                    j += S::L;
                }
                if j < w {
                    S::store_part(d.add(at + j), S::load_part(src.add(j), 0, w - j), 0, w - j);
                }
                if iy + 1 < rows && p > 0 {
                    S::store_part(d.add(at + w), zero, 0, 2 * p);
                }
            }
        }
        sp[(rows - 1 + p) * ws + p + w..].fill(0.0);
    }
}

/// Stages an int8 input as channel quads: position `(group, phase, y, x)` holds channels `4·group .. +4`,
/// each byte offset by 128 when `unsigned` (padding and missing channels are the value 0).
pub(crate) fn stage_i8_quads(x: &[i8], staged: &mut [u8], g: &ConvGeom, unsigned: bool) {
    let (hs, ws, s, p) = (g.phase_h(), g.phase_w(), g.s, g.p);
    let plane = hs * ws;
    let flip = if unsigned { 0x8080_8080u32 } else { 0 };
    let zero = flip.to_le_bytes();
    let hw = g.h * g.w;
    let planes = g.groups() * s * s;
    // SAFETY: u32 has no invalid bit patterns; align_to only yields aligned elements.
    let (head, words, _) = unsafe { staged.align_to_mut::<u32>() };
    if !head.is_empty() || words.len() < planes * plane {
        return;
    }
    let channel = |ci: usize| x.get(ci * hw..(ci + 1) * hw);
    const NONE: &[i8] = &[];
    for grp in 0..g.groups() {
        let ch: [&[i8]; 4] = core::array::from_fn(|j| channel(4 * grp + j).unwrap_or(NONE));
        if s == 1 {
            let wp = &mut words[grp * plane..(grp + 1) * plane];
            wp[..p * ws].fill(flip);
            for iy in 0..g.h {
                let row = &mut wp[(iy + p) * ws..(iy + p + 1) * ws];
                row[..p].fill(flip);
                row[p + g.w..].fill(flip);
                let r: [&[i8]; 4] =
                    core::array::from_fn(|j| ch[j].get(iy * g.w..(iy + 1) * g.w).unwrap_or(NONE));
                let dst = &mut row[p..p + g.w];
                if r.iter().all(|c| c.len() == g.w) {
                    for (ix, d) in dst.iter_mut().enumerate() {
                        let b = [
                            r[0][ix] as u8,
                            r[1][ix] as u8,
                            r[2][ix] as u8,
                            r[3][ix] as u8,
                        ];
                        *d = u32::from_le_bytes(b) ^ flip;
                    }
                } else {
                    for (ix, d) in dst.iter_mut().enumerate() {
                        let b: [u8; 4] =
                            core::array::from_fn(|j| r[j].get(ix).map_or(0, |&v| v as u8));
                        *d = u32::from_le_bytes(b) ^ flip;
                    }
                }
            }
            wp[(g.h + p) * ws..].fill(flip);
        } else {
            let first = grp * s * s * plane;
            words[first..first + s * s * plane].fill(flip);
            for iy in 0..g.h {
                let py = iy + p;
                for (b, j0, cols) in phase_columns(g) {
                    let ph = (grp * s + py % s) * s + b;
                    let dst = &mut words[ph * plane + (py / s) * ws..][j0..j0 + cols];
                    let first = iy * g.w + j0 * s + b - p;
                    for (jj, d) in dst.iter_mut().enumerate() {
                        let at = first + jj * s;
                        let q: [u8; 4] =
                            core::array::from_fn(|j| ch[j].get(at).map_or(0, |&v| v as u8));
                        *d = u32::from_le_bytes(q) ^ flip;
                    }
                }
            }
        }
    }
    for w in words[planes * plane..].iter_mut() {
        *w = u32::from_le_bytes(zero);
    }
}

/// Stages an int8 input as byte planes, one per channel and stride phase (the layout of [`stage_f32`]),
/// each byte offset by 128 when `unsigned` (padding is the value 0); then [`STAGE_SLACK`] zero values.
pub(crate) fn stage_i8_planes(x: &[i8], staged: &mut [u8], g: &ConvGeom, unsigned: bool) {
    let n = g.c * g.s * g.s * g.phase_h() * g.phase_w();
    if staged.len() < n + STAGE_SLACK || x.len() < g.c * g.h * g.w {
        return;
    }
    let flip = if unsigned { 0x80u8 } else { 0 };
    if g.s == 1 && 2 * g.p <= 8 && g.w + 2 * g.p >= 8 {
        unit_i8_planes(x, staged, g, flip);
    } else {
        general(x, staged, g, flip, |v: i8| v as u8 ^ flip);
    }
    staged[n..n + STAGE_SLACK].fill(flip);
}

/// Stride-1 int8 planes, `2 · P ≤ 8 ≤ W + 2 · P` (the caller checks the lengths).
fn unit_i8_planes(x: &[i8], staged: &mut [u8], g: &ConvGeom, flip: u8) {
    let (ws, p, w) = (g.phase_w(), g.p, g.w);
    let plane = g.phase_h() * ws;
    let flips = u64::from_ne_bytes([flip; 8]);
    for (ci, xp) in x.chunks_exact(g.h * w).take(g.c).enumerate() {
        let sp = &mut staged[ci * plane..(ci + 1) * plane];
        sp[..p * ws + p].fill(flip);
        let d = sp.as_mut_ptr();
        let rows = g.h;
        for (iy, xr) in xp.chunks_exact(w).enumerate() {
            let at = (iy + p) * ws + p;
            let src = xr.as_ptr() as *const u8;
            // SAFETY: the row's values go to at .. at + W, inside the plane. Below the last row the pads are one
            // 8-byte store from at + W: it ends at most at the next row's last value (8 ≤ W + 2·P), which the
            // next row rewrites, and inside the plane.
            unsafe {
                if w >= 8 {
                    let mut j = 0;
                    while j + 8 <= w {
                        let v = core::ptr::read_unaligned(src.add(j) as *const u64) ^ flips;
                        core::ptr::write_unaligned(d.add(at + j) as *mut u64, v);
                        j += 8;
                    }
                    if j < w {
                        let v = core::ptr::read_unaligned(src.add(w - 8) as *const u64) ^ flips;
                        core::ptr::write_unaligned(d.add(at + w - 8) as *mut u64, v);
                    }
                } else {
                    for j in 0..w {
                        *d.add(at + j) = *src.add(j) ^ flip;
                    }
                }
                if iy + 1 < rows && p > 0 {
                    core::ptr::write_unaligned(d.add(at + w) as *mut u64, flips);
                }
            }
        }
        sp[(rows - 1 + p) * ws + p + w..].fill(flip);
    }
}

/// The staging of any stride and padding: the planes filled with `pad`, then `f(v)` placed for every input
/// value `v`; stride 2 splits each row into its two column phases in one pass.
fn general<X: Copy, T: Copy>(x: &[X], staged: &mut [T], g: &ConvGeom, pad: T, f: impl Fn(X) -> T) {
    let (ws, s, p) = (g.phase_w(), g.s, g.p);
    let plane = g.phase_h() * ws;
    staged[..g.c * s * s * plane].fill(pad);
    for (ci, xp) in x.chunks_exact(g.h * g.w).take(g.c).enumerate() {
        for (iy, xr) in xp.chunks_exact(g.w).enumerate() {
            let py = iy + p;
            let row = |b: usize| ((ci * s + py % s) * s + b) * plane + (py / s) * ws;
            if s == 2 {
                let (lo, hi) = staged.split_at_mut(row(1));
                let (d0, d1) = (&mut lo[row(0)..row(0) + ws], &mut hi[..ws]);
                let (even, odd) = if p % 2 == 0 { (d0, d1) } else { (d1, d0) };
                let (je, jo) = (p / 2, p.div_ceil(2));
                let pairs = xr.chunks_exact(2);
                if let [last] = pairs.remainder() {
                    if let Some(d) = even.get_mut(je + g.w / 2) {
                        *d = f(*last);
                    }
                }
                for ((pr, e), o) in pairs.zip(&mut even[je..]).zip(&mut odd[jo..]) {
                    *e = f(pr[0]);
                    *o = f(pr[1]);
                }
                continue;
            }
            for (b, j0, cols) in phase_columns(g) {
                let dst = &mut staged[row(b)..][j0..j0 + cols];
                let first = j0 * s + b - p;
                for (d, &v) in dst.iter_mut().zip(xr[first..].iter().step_by(s)) {
                    *d = f(v);
                }
            }
        }
    }
}

/// For each column phase `b` of a strided staging: `(b, j0, n)`, the phase-plane columns `j0 .. j0 + n` that
/// hold input columns (padded column `j · S + b`, input column `j · S + b − P` in `0..W`).
fn phase_columns(g: &ConvGeom) -> impl Iterator<Item = (usize, usize, usize)> {
    let (s, p, w) = (g.s, g.p, g.w);
    (0..s).filter_map(move |b| {
        let j0 = if p > b { (p - b).div_ceil(s) } else { 0 };
        let end = (w + p).saturating_sub(b).div_ceil(s);
        (end > j0).then_some((b, j0, end - j0))
    })
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use crate::cpu::KernelPath;
    use std::vec::Vec;

    /// The staged value at `at` by definition: plane `(ci · S + a) · S + b`, phase row `yy`, column `xx` holds
    /// input `(ci, yy · S + a − P, xx · S + b − P)`, or zero outside the input and after the planes.
    fn expected(x: &[f32], g: &ConvGeom, at: usize) -> f32 {
        let (hs, ws, s, p) = (g.phase_h(), g.phase_w(), g.s, g.p);
        let plane = hs * ws;
        if at >= g.c * s * s * plane {
            return 0.0;
        }
        let (ph, pos) = (at / plane, at % plane);
        let (ci, a, b) = (ph / (s * s), (ph / s) % s, ph % s);
        let (py, px) = ((pos / ws) * s + a, (pos % ws) * s + b);
        if py < p || px < p || py - p >= g.h || px - p >= g.w {
            return 0.0;
        }
        x[(ci * g.h + py - p) * g.w + px - p]
    }

    fn stage_f32_on(path: KernelPath, x: &[f32], staged: &mut [f32], g: &ConvGeom) {
        #[cfg(target_arch = "x86_64")]
        #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512dq,avx512vnni,avx2,fma")]
        unsafe fn avx512(x: &[f32], staged: &mut [f32], g: &ConvGeom) {
            // SAFETY: entered only where the path is available.
            unsafe { stage_f32::<crate::lanes::Avx512>(x, staged, g) }
        }
        #[cfg(target_arch = "x86_64")]
        #[target_feature(enable = "avx2,fma")]
        unsafe fn avx2(x: &[f32], staged: &mut [f32], g: &ConvGeom) {
            // SAFETY: as above.
            unsafe { stage_f32::<crate::lanes::Avx2>(x, staged, g) }
        }
        assert!(path.available());
        // SAFETY: the path is available (asserted).
        unsafe {
            match path {
                #[cfg(target_arch = "x86_64")]
                KernelPath::Avx512 => avx512(x, staged, g),
                #[cfg(target_arch = "x86_64")]
                KernelPath::Avx2 => avx2(x, staged, g),
                _ => stage_f32::<crate::lanes::Portable>(x, staged, g),
            }
        }
    }

    /// Geometries with every stride up to 3, paddings up to 6 (wider than the short pad stores), and widths
    /// around the 8-byte and vector lengths.
    fn geometries() -> Vec<ConvGeom> {
        let mut out = Vec::new();
        let mut seed = 12345u32;
        let mut next = |n: usize| {
            seed = seed.wrapping_mul(1_103_515_245).wrapping_add(12345);
            (seed >> 8) as usize % n
        };
        for i in 0..300 {
            let s = 1 + if i % 3 == 0 { next(3) } else { 0 };
            let p = next(7);
            let (h, w) = (1 + next(12), 1 + next(40));
            let k = 1 + next(3);
            if h + 2 * p < k || w + 2 * p < k {
                continue;
            }
            let (oh, ow) = ((h + 2 * p - k) / s + 1, (w + 2 * p - k) / s + 1);
            let c = 1 + next(6);
            out.push(ConvGeom {
                c,
                h,
                w,
                co: 1,
                oh,
                ow,
                k,
                s,
                p,
            });
        }
        out
    }

    #[test]
    fn float_staging_matches_the_definition_on_every_path() {
        for g in geometries() {
            let x: Vec<f32> = (0..g.c * g.h * g.w).map(|i| 1.0 + i as f32).collect();
            let n = g.c * g.s * g.s * g.phase_h() * g.phase_w() + STAGE_SLACK;
            for path in KernelPath::ALL.into_iter().filter(|p| p.available()) {
                let mut staged = std::vec![f32::NAN; n];
                stage_f32_on(path, &x, &mut staged, &g);
                for (at, &v) in staged.iter().enumerate() {
                    let want = expected(&x, &g, at);
                    assert_eq!(v.to_bits(), want.to_bits(), "{g:?} {path:?} at {at}");
                }
            }
        }
    }

    #[test]
    fn int8_planes_match_the_definition() {
        for g in geometries() {
            let x: Vec<i8> = (0..g.c * g.h * g.w)
                .map(|i| (i % 251) as u8 as i8 ^ 0x55)
                .collect();
            let xf: Vec<f32> = x.iter().map(|&v| v as u8 as f32).collect();
            let n = g.c * g.s * g.s * g.phase_h() * g.phase_w() + STAGE_SLACK;
            for unsigned in [false, true] {
                let flip = if unsigned { 0x80u8 } else { 0 };
                let mut staged = std::vec![0xA5u8; n + 3];
                stage_i8_planes(&x, &mut staged[..n], &g, unsigned);
                for (at, &v) in staged[..n].iter().enumerate() {
                    let want = expected(&xf, &g, at) as u8 ^ flip;
                    assert_eq!(v, want, "{g:?} unsigned {unsigned} at {at}");
                }
                assert_eq!(staged[n..], [0xA5; 3], "{g:?}: wrote past the staging");
            }
        }
    }
}
