//! The vector operations the kernels are written in, one implementation per [`KernelPath`]
//! (crate::cpu::KernelPath): [`Portable`] (arrays of 8, no fused multiply-add), [`Avx2`] (8 lanes, FMA) and
//! [`Avx512`] (16 lanes, FMA, masked memory operations, VNNI int8 dot products).
//!
//! Every function is `unsafe`: pointers must be valid for the lanes they touch (for the `_part` functions, only
//! lanes `lo..hi`), and the vector paths must only run on CPUs that have them (the kernels are entered through
//! `#[target_feature]` functions after [`KernelPath::available`](crate::cpu::KernelPath::available)).
//!
//! Int8 activations reach the kernels as *channel quads*: 4 bytes per position holding 4 consecutive input
//! channels, either as signed bytes or, where [`Lanes::UNSIGNED_QUADS`] is set, offset by 128 (as unsigned
//! bytes, for `vpdpbusd`); the kernels then subtract `128 · Σ w` once per output.

#![allow(clippy::missing_safety_doc)]

/// Vector operations over `L` lanes of f32 and of i32.
pub(crate) trait Lanes: Copy {
    /// Lanes per vector.
    const L: usize;
    /// Whether [`Lanes::quad_mac`] reads activations offset by 128.
    const UNSIGNED_QUADS: bool;
    /// Most vectors of one single-row (sparse) tile: accumulators that stay in registers.
    const SPARSE_TILE: usize;
    /// Most vectors of one four-row (dense) tile.
    const DENSE_TILE: usize;
    type F: Copy;
    type I: Copy;
    /// A weight quad prepared for [`Lanes::quad_mac`].
    type W: Copy;

    unsafe fn splat(v: f32) -> Self::F;
    unsafe fn load(p: *const f32) -> Self::F;
    unsafe fn store(p: *mut f32, v: Self::F);
    /// `acc + w · x`: fused on the vector paths, a product then a sum on the portable path.
    unsafe fn fma(w: Self::F, x: Self::F, acc: Self::F) -> Self::F;
    unsafe fn add(a: Self::F, b: Self::F) -> Self::F;
    unsafe fn relu(v: Self::F) -> Self::F;
    /// Lanes `lo..hi` of `p` (lane `i` at `p + i`), zero elsewhere.
    unsafe fn load_part(p: *const f32, lo: usize, hi: usize) -> Self::F;
    /// Writes lanes `lo..hi` of `v` to `p + lo .. p + hi`.
    unsafe fn store_part(p: *mut f32, v: Self::F, lo: usize, hi: usize);
    /// The sum of the lanes, pairwise in a fixed tree.
    unsafe fn sum(v: Self::F) -> f32;

    unsafe fn splat_i(v: i32) -> Self::I;
    unsafe fn load_i(p: *const i32) -> Self::I;
    unsafe fn store_i(p: *mut i32, v: Self::I);
    unsafe fn add_i(a: Self::I, b: Self::I) -> Self::I;
    unsafe fn weight_quad(word: u32) -> Self::W;
    /// Lane `l` gains `Σ_j x[4l + j] · w_j` over the 4 bytes of position `l` at `p` (signed bytes, or unsigned
    /// offset by 128 under [`Lanes::UNSIGNED_QUADS`]) and the 4 signed weight bytes of `w`.
    unsafe fn quad_mac(acc: Self::I, p: *const u8, w: Self::W) -> Self::I;
    /// `clamp((v · m + 2^(sh−1)) >> sh, lo, 127)` per lane (i64 product, arithmetic shift; no rounding term
    /// when `sh` is 0).
    unsafe fn requant(v: Self::I, m: i32, sh: u32, lo: i32) -> Self::I;
    /// Sign-extended bytes `lo..hi` of `p`, zero elsewhere.
    unsafe fn load_i8_part(p: *const i8, lo: usize, hi: usize) -> Self::I;
    /// Lanes `lo..hi` of `v` (each in −128..=127) as bytes to `p + lo .. p + hi`.
    unsafe fn store_i8_part(p: *mut i8, v: Self::I, lo: usize, hi: usize);
    /// The lanes of four vectors (each in −128..=127) as `4 · L` bytes to `p`: lane `i` of `v[n]` at
    /// `p + n · L + i`.
    unsafe fn store_i8x4(p: *mut i8, v: [Self::I; 4]);
    /// `clamp((a · ma + b · mb + 2^(sh−1)) >> sh, lo, 127)` per lane in i32 (the int8 ADD).
    unsafe fn add_requant(a: Self::I, ma: i32, b: Self::I, mb: i32, sh: u32, lo: i32) -> Self::I;
    /// `Σ w[i] · x[i]` over `n` bytes, in i32 with wrap-around (so any order gives the same result).
    unsafe fn dot_i8(w: *const i8, x: *const i8, n: usize) -> i32;

    /// Most position groups (of `4 · L` positions each) of one sparse int8 tile.
    const GROUP_TILE: usize;
    /// Four sparse int8 entries over one group of `4 · L` consecutive positions: position `i` gains
    /// `Σ_j x_j[i] · w_j`, `x_j` the bytes at `p[j]` (signed, or offset by 128 under
    /// [`Lanes::UNSIGNED_QUADS`]) and `w_j` byte `j` of the weight quad `w`. The four accumulators hold the
    /// group's positions in a path-specific order that [`Lanes::group_order`] undoes.
    unsafe fn group_mac(acc: [Self::I; 4], p: [*const u8; 4], w: Self::W) -> [Self::I; 4];
    /// The accumulators of [`Lanes::group_mac`] in position order: vector `n` holds positions
    /// `n · L .. (n + 1) · L` of the group.
    unsafe fn group_order(acc: [Self::I; 4]) -> [Self::I; 4];
    /// The inverse of [`Lanes::group_order`].
    unsafe fn group_unorder(v: [Self::I; 4]) -> [Self::I; 4];
}

/// The scalar definition of [`Lanes::dot_i8`].
#[inline(always)]
pub(crate) unsafe fn dot_i8_scalar(w: *const i8, x: *const i8, n: usize) -> i32 {
    let mut acc = 0i32;
    for i in 0..n {
        // SAFETY: the caller guarantees n readable bytes at w and x.
        let (a, b) = unsafe { (*w.add(i), *x.add(i)) };
        acc = acc.wrapping_add(i32::from(i16::from(a) * i16::from(b)));
    }
    acc
}

/// The scalar definition of [`Lanes::requant`].
#[inline(always)]
pub(crate) fn requant_scalar(v: i32, m: i32, sh: u32, lo: i32) -> i32 {
    crate::quant::requantize(v, m, sh, lo == 0) as i32
}

/// Plain arrays of 8 lanes.
#[derive(Clone, Copy)]
pub(crate) struct Portable;

const PL: usize = 8;

impl Lanes for Portable {
    const L: usize = PL;
    const UNSIGNED_QUADS: bool = false;
    const SPARSE_TILE: usize = 6;
    const DENSE_TILE: usize = 1;
    type F = [f32; PL];
    type I = [i32; PL];
    type W = [i32; 4];

    #[inline(always)]
    unsafe fn splat(v: f32) -> Self::F {
        [v; PL]
    }
    #[inline(always)]
    unsafe fn load(p: *const f32) -> Self::F {
        // SAFETY: the caller guarantees PL readable floats at p.
        unsafe { core::ptr::read_unaligned(p as *const [f32; PL]) }
    }
    #[inline(always)]
    unsafe fn store(p: *mut f32, v: Self::F) {
        // SAFETY: the caller guarantees PL writable floats at p.
        unsafe { core::ptr::write_unaligned(p as *mut [f32; PL], v) }
    }
    #[inline(always)]
    unsafe fn fma(w: Self::F, x: Self::F, acc: Self::F) -> Self::F {
        let mut o = acc;
        for i in 0..PL {
            o[i] += w[i] * x[i];
        }
        o
    }
    #[inline(always)]
    unsafe fn add(a: Self::F, b: Self::F) -> Self::F {
        let mut o = a;
        for i in 0..PL {
            o[i] += b[i];
        }
        o
    }
    #[inline(always)]
    unsafe fn relu(v: Self::F) -> Self::F {
        let mut o = v;
        for x in o.iter_mut() {
            if *x < 0.0 {
                *x = 0.0;
            }
        }
        o
    }
    #[inline(always)]
    unsafe fn load_part(p: *const f32, lo: usize, hi: usize) -> Self::F {
        let mut o = [0.0; PL];
        for (i, v) in o.iter_mut().enumerate().take(hi).skip(lo) {
            // SAFETY: lanes lo..hi are readable.
            *v = unsafe { *p.wrapping_add(i) };
        }
        o
    }
    #[inline(always)]
    unsafe fn store_part(p: *mut f32, v: Self::F, lo: usize, hi: usize) {
        for (i, x) in v.iter().enumerate().take(hi).skip(lo) {
            // SAFETY: lanes lo..hi are writable.
            unsafe { *p.wrapping_add(i) = *x };
        }
    }
    #[inline(always)]
    unsafe fn sum(v: Self::F) -> f32 {
        ((v[0] + v[4]) + (v[2] + v[6])) + ((v[1] + v[5]) + (v[3] + v[7]))
    }

    #[inline(always)]
    unsafe fn splat_i(v: i32) -> Self::I {
        [v; PL]
    }
    #[inline(always)]
    unsafe fn load_i(p: *const i32) -> Self::I {
        // SAFETY: the caller guarantees PL readable ints at p.
        unsafe { core::ptr::read_unaligned(p as *const [i32; PL]) }
    }
    #[inline(always)]
    unsafe fn store_i(p: *mut i32, v: Self::I) {
        // SAFETY: the caller guarantees PL writable ints at p.
        unsafe { core::ptr::write_unaligned(p as *mut [i32; PL], v) }
    }
    #[inline(always)]
    unsafe fn add_i(a: Self::I, b: Self::I) -> Self::I {
        let mut o = a;
        for i in 0..PL {
            o[i] = o[i].wrapping_add(b[i]);
        }
        o
    }
    #[inline(always)]
    unsafe fn weight_quad(word: u32) -> Self::W {
        let b = word.to_le_bytes();
        [
            b[0] as i8 as i32,
            b[1] as i8 as i32,
            b[2] as i8 as i32,
            b[3] as i8 as i32,
        ]
    }
    #[inline(always)]
    unsafe fn quad_mac(acc: Self::I, p: *const u8, w: Self::W) -> Self::I {
        // SAFETY: the caller guarantees 4·PL readable bytes at p.
        let x = unsafe { core::ptr::read_unaligned(p as *const [[i8; 4]; PL]) };
        let mut o = acc;
        for l in 0..PL {
            let q = x[l];
            let d =
                q[0] as i32 * w[0] + q[1] as i32 * w[1] + q[2] as i32 * w[2] + q[3] as i32 * w[3];
            o[l] = o[l].wrapping_add(d);
        }
        o
    }
    #[inline(always)]
    unsafe fn requant(v: Self::I, m: i32, sh: u32, lo: i32) -> Self::I {
        let mut o = v;
        for x in o.iter_mut() {
            *x = requant_scalar(*x, m, sh, lo);
        }
        o
    }
    #[inline(always)]
    unsafe fn load_i8_part(p: *const i8, lo: usize, hi: usize) -> Self::I {
        let mut o = [0; PL];
        for (i, v) in o.iter_mut().enumerate().take(hi).skip(lo) {
            // SAFETY: bytes lo..hi are readable.
            *v = unsafe { *p.wrapping_add(i) } as i32;
        }
        o
    }
    #[inline(always)]
    unsafe fn store_i8_part(p: *mut i8, v: Self::I, lo: usize, hi: usize) {
        for (i, x) in v.iter().enumerate().take(hi).skip(lo) {
            // SAFETY: bytes lo..hi are writable.
            unsafe { *p.wrapping_add(i) = *x as i8 };
        }
    }
    #[inline(always)]
    unsafe fn store_i8x4(p: *mut i8, v: [Self::I; 4]) {
        let mut b = [0i8; 4 * PL];
        for (d, x) in b.iter_mut().zip(v.as_flattened()) {
            *d = *x as i8;
        }
        // SAFETY: the caller guarantees 4·PL writable bytes at p.
        unsafe { core::ptr::write_unaligned(p as *mut [i8; 4 * PL], b) }
    }
    #[inline(always)]
    unsafe fn add_requant(a: Self::I, ma: i32, b: Self::I, mb: i32, sh: u32, lo: i32) -> Self::I {
        let mut o = a;
        for i in 0..PL {
            o[i] = crate::quant::add(a[i] as i8, ma, b[i] as i8, mb, sh, lo == 0) as i32;
        }
        o
    }
    #[inline(always)]
    unsafe fn dot_i8(w: *const i8, x: *const i8, n: usize) -> i32 {
        // SAFETY: per the caller.
        unsafe { dot_i8_scalar(w, x, n) }
    }

    const GROUP_TILE: usize = 1;
    #[inline(always)]
    unsafe fn group_mac(acc: [Self::I; 4], p: [*const u8; 4], w: Self::W) -> [Self::I; 4] {
        // SAFETY: the caller guarantees 4·PL readable bytes at each p[j].
        let x: [[i8; 4 * PL]; 4] = core::array::from_fn(|j| unsafe {
            core::ptr::read_unaligned(p[j] as *const [i8; 4 * PL])
        });
        let mut o = acc;
        for (n, v) in o.iter_mut().enumerate() {
            for (l, a) in v.iter_mut().enumerate() {
                let i = n * PL + l;
                let d = x[0][i] as i32 * w[0]
                    + x[1][i] as i32 * w[1]
                    + x[2][i] as i32 * w[2]
                    + x[3][i] as i32 * w[3];
                *a = a.wrapping_add(d);
            }
        }
        o
    }
    #[inline(always)]
    unsafe fn group_order(acc: [Self::I; 4]) -> [Self::I; 4] {
        acc
    }
    #[inline(always)]
    unsafe fn group_unorder(v: [Self::I; 4]) -> [Self::I; 4] {
        v
    }
}

#[cfg(target_arch = "x86_64")]
pub(crate) use x86::{Avx2, Avx512};

#[cfg(target_arch = "x86_64")]
mod x86 {
    use super::Lanes;
    use core::arch::x86_64::*;

    /// 8 lanes of AVX2 with FMA.
    #[derive(Clone, Copy)]
    pub(crate) struct Avx2;

    /// 16 lanes of AVX-512 (F, BW, VL, DQ, VNNI).
    #[derive(Clone, Copy)]
    pub(crate) struct Avx512;

    #[inline(always)]
    unsafe fn lane_mask8(lo: usize, hi: usize) -> __m256i {
        // SAFETY: AVX2 is enabled in every caller (kernels run inside `#[target_feature(enable = "avx2")]`).
        unsafe {
            let idx = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
            let ge_lo = _mm256_cmpgt_epi32(idx, _mm256_set1_epi32(lo as i32 - 1));
            let lt_hi = _mm256_cmpgt_epi32(_mm256_set1_epi32(hi as i32), idx);
            _mm256_and_si256(ge_lo, lt_hi)
        }
    }

    #[inline(always)]
    fn kmask16(lo: usize, hi: usize) -> __mmask16 {
        let hi_bits = if hi >= 16 { 0xFFFF } else { (1u32 << hi) - 1 };
        let lo_bits = (1u32 << lo.min(16)) - 1;
        (hi_bits & !lo_bits) as __mmask16
    }

    /// `clamp((v · m + 2^(sh−1)) >> sh, lo, 127)` for the even i32 lanes of `v` (as i64), in the low dword of
    /// each 64-bit lane, AVX2.
    #[inline(always)]
    unsafe fn requant_even_avx2(v: __m256i, m: __m256i, rnd: __m256i, sh: u32, lo: i32) -> __m256i {
        // SAFETY: AVX2 is enabled in every caller.
        unsafe {
            let p = _mm256_add_epi64(_mm256_mul_epi32(v, m), rnd);
            if sh >= 32 {
                let hi = _mm256_srli_epi64::<32>(p);
                let r = _mm256_sra_epi32(hi, _mm_cvtsi32_si128(sh as i32 - 32));
                _mm256_max_epi32(
                    _mm256_min_epi32(r, _mm256_set1_epi32(127)),
                    _mm256_set1_epi32(lo),
                )
            } else {
                // An arithmetic 64-bit shift (logical shift, sign bits filled in), then a 64-bit clamp.
                let sign = _mm256_cmpgt_epi64(_mm256_setzero_si256(), p);
                let l = _mm256_srl_epi64(p, _mm_cvtsi32_si128(sh as i32));
                let fill = _mm256_sll_epi64(sign, _mm_cvtsi32_si128(64 - sh as i32));
                let r = _mm256_or_si256(l, fill);
                let top = _mm256_set1_epi64x(127);
                let bot = _mm256_set1_epi64x(lo as i64);
                let r = _mm256_blendv_epi8(r, top, _mm256_cmpgt_epi64(r, top));
                _mm256_blendv_epi8(r, bot, _mm256_cmpgt_epi64(bot, r))
            }
        }
    }

    impl Lanes for Avx2 {
        const L: usize = 8;
        const UNSIGNED_QUADS: bool = false;
        const SPARSE_TILE: usize = 12;
        const DENSE_TILE: usize = 2;
        type F = __m256;
        type I = __m256i;
        type W = __m256i;

        #[inline(always)]
        unsafe fn splat(v: f32) -> __m256 {
            // SAFETY: AVX2 kernels only (see the module docs).
            unsafe { _mm256_set1_ps(v) }
        }
        #[inline(always)]
        unsafe fn load(p: *const f32) -> __m256 {
            // SAFETY: 8 readable floats at p.
            unsafe { _mm256_loadu_ps(p) }
        }
        #[inline(always)]
        unsafe fn store(p: *mut f32, v: __m256) {
            // SAFETY: 8 writable floats at p.
            unsafe { _mm256_storeu_ps(p, v) }
        }
        #[inline(always)]
        unsafe fn fma(w: __m256, x: __m256, acc: __m256) -> __m256 {
            // SAFETY: FMA is part of this path.
            unsafe { _mm256_fmadd_ps(w, x, acc) }
        }
        #[inline(always)]
        unsafe fn add(a: __m256, b: __m256) -> __m256 {
            // SAFETY: AVX2 kernels only.
            unsafe { _mm256_add_ps(a, b) }
        }
        #[inline(always)]
        unsafe fn relu(v: __m256) -> __m256 {
            // SAFETY: AVX2 kernels only. max(0, NaN) is NaN in the second operand's favour: `v < 0` → 0.
            unsafe {
                _mm256_blendv_ps(
                    v,
                    _mm256_setzero_ps(),
                    _mm256_cmp_ps::<_CMP_LT_OQ>(v, _mm256_setzero_ps()),
                )
            }
        }
        #[inline(always)]
        unsafe fn load_part(p: *const f32, lo: usize, hi: usize) -> __m256 {
            // SAFETY: masked lanes are not accessed.
            unsafe { _mm256_maskload_ps(p, lane_mask8(lo, hi)) }
        }
        #[inline(always)]
        unsafe fn store_part(p: *mut f32, v: __m256, lo: usize, hi: usize) {
            // SAFETY: masked lanes are not accessed.
            unsafe { _mm256_maskstore_ps(p, lane_mask8(lo, hi), v) }
        }
        #[inline(always)]
        unsafe fn sum(v: __m256) -> f32 {
            // SAFETY: AVX2 kernels only.
            unsafe {
                let h = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps::<1>(v));
                let h = _mm_add_ps(h, _mm_movehl_ps(h, h));
                _mm_cvtss_f32(_mm_add_ss(h, _mm_shuffle_ps::<1>(h, h)))
            }
        }

        #[inline(always)]
        unsafe fn splat_i(v: i32) -> __m256i {
            // SAFETY: AVX2 kernels only.
            unsafe { _mm256_set1_epi32(v) }
        }
        #[inline(always)]
        unsafe fn load_i(p: *const i32) -> __m256i {
            // SAFETY: 8 readable ints at p.
            unsafe { _mm256_loadu_si256(p as *const __m256i) }
        }
        #[inline(always)]
        unsafe fn store_i(p: *mut i32, v: __m256i) {
            // SAFETY: 8 writable ints at p.
            unsafe { _mm256_storeu_si256(p as *mut __m256i, v) }
        }
        #[inline(always)]
        unsafe fn add_i(a: __m256i, b: __m256i) -> __m256i {
            // SAFETY: AVX2 kernels only.
            unsafe { _mm256_add_epi32(a, b) }
        }
        #[inline(always)]
        unsafe fn weight_quad(word: u32) -> __m256i {
            let b = word.to_le_bytes();
            let (w0, w1, w2, w3) = (
                b[0] as i8 as i16,
                b[1] as i8 as i16,
                b[2] as i8 as i16,
                b[3] as i8 as i16,
            );
            // SAFETY: AVX2 kernels only.
            unsafe {
                _mm256_setr_epi16(
                    w0, w1, w2, w3, w0, w1, w2, w3, w0, w1, w2, w3, w0, w1, w2, w3,
                )
            }
        }
        #[inline(always)]
        unsafe fn quad_mac(acc: __m256i, p: *const u8, w: __m256i) -> __m256i {
            // SAFETY: 32 readable bytes at p.
            unsafe {
                let a = _mm256_cvtepi8_epi16(_mm_loadu_si128(p as *const __m128i));
                let b = _mm256_cvtepi8_epi16(_mm_loadu_si128(p.add(16) as *const __m128i));
                let pa = _mm256_madd_epi16(a, w);
                let pb = _mm256_madd_epi16(b, w);
                let s = _mm256_hadd_epi32(pa, pb);
                let s = _mm256_permutevar8x32_epi32(s, _mm256_setr_epi32(0, 1, 4, 5, 2, 3, 6, 7));
                _mm256_add_epi32(acc, s)
            }
        }
        #[inline(always)]
        unsafe fn requant(v: __m256i, m: i32, sh: u32, lo: i32) -> __m256i {
            // SAFETY: AVX2 kernels only.
            unsafe {
                let mv = _mm256_set1_epi64x(m as i64);
                let rnd = _mm256_set1_epi64x(if sh == 0 { 0 } else { 1i64 << (sh - 1) });
                let even = requant_even_avx2(v, mv, rnd, sh, lo);
                let odd = requant_even_avx2(_mm256_srli_epi64::<32>(v), mv, rnd, sh, lo);
                _mm256_blend_epi32::<0b1010_1010>(even, _mm256_slli_epi64::<32>(odd))
            }
        }
        #[inline(always)]
        unsafe fn load_i8_part(p: *const i8, lo: usize, hi: usize) -> __m256i {
            let mut b = [0i8; 8];
            for (i, v) in b.iter_mut().enumerate().take(hi).skip(lo) {
                // SAFETY: bytes lo..hi are readable.
                *v = unsafe { *p.wrapping_add(i) };
            }
            // SAFETY: AVX2 kernels only.
            unsafe { _mm256_cvtepi8_epi32(_mm_loadl_epi64(b.as_ptr() as *const __m128i)) }
        }
        #[inline(always)]
        unsafe fn store_i8x4(p: *mut i8, v: [__m256i; 4]) {
            // SAFETY: 32 writable bytes at p; AVX2 kernels only. The saturating packs keep values in range
            // and leave dword k of 128-bit lane h holding lanes 4h .. 4h + 4 of v[k]: dwords 0, 4, 1, 5, …
            // are the bytes in order.
            unsafe {
                let ab = _mm256_packs_epi32(v[0], v[1]);
                let cd = _mm256_packs_epi32(v[2], v[3]);
                let x = _mm256_packs_epi16(ab, cd);
                let x = _mm256_permutevar8x32_epi32(x, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
                _mm256_storeu_si256(p as *mut __m256i, x)
            }
        }
        #[inline(always)]
        unsafe fn store_i8_part(p: *mut i8, v: __m256i, lo: usize, hi: usize) {
            let mut b = [0i32; 8];
            // SAFETY: AVX2 kernels only; b holds 8 ints.
            unsafe { _mm256_storeu_si256(b.as_mut_ptr() as *mut __m256i, v) };
            for (i, x) in b.iter().enumerate().take(hi).skip(lo) {
                // SAFETY: bytes lo..hi are writable.
                unsafe { *p.wrapping_add(i) = *x as i8 };
            }
        }
        #[inline(always)]
        unsafe fn add_requant(
            a: __m256i,
            ma: i32,
            b: __m256i,
            mb: i32,
            sh: u32,
            lo: i32,
        ) -> __m256i {
            // SAFETY: AVX2 kernels only.
            unsafe {
                let s = _mm256_add_epi32(
                    _mm256_mullo_epi32(a, _mm256_set1_epi32(ma)),
                    _mm256_mullo_epi32(b, _mm256_set1_epi32(mb)),
                );
                let rnd = if sh == 0 { 0 } else { 1i32 << (sh - 1) };
                let s = _mm256_sra_epi32(
                    _mm256_add_epi32(s, _mm256_set1_epi32(rnd)),
                    _mm_cvtsi32_si128(sh as i32),
                );
                _mm256_max_epi32(
                    _mm256_min_epi32(s, _mm256_set1_epi32(127)),
                    _mm256_set1_epi32(lo),
                )
            }
        }
        #[inline(always)]
        unsafe fn dot_i8(w: *const i8, x: *const i8, n: usize) -> i32 {
            // SAFETY: n readable bytes at w and x; AVX2 kernels only.
            unsafe {
                let mut acc = _mm256_setzero_si256();
                let mut i = 0;
                while i + 16 <= n {
                    let a = _mm256_cvtepi8_epi16(_mm_loadu_si128(w.add(i) as *const __m128i));
                    let b = _mm256_cvtepi8_epi16(_mm_loadu_si128(x.add(i) as *const __m128i));
                    acc = _mm256_add_epi32(acc, _mm256_madd_epi16(a, b));
                    i += 16;
                }
                let h = _mm_add_epi32(
                    _mm256_castsi256_si128(acc),
                    _mm256_extracti128_si256::<1>(acc),
                );
                let h = _mm_add_epi32(h, _mm_shuffle_epi32::<0b01_00_11_10>(h));
                let h = _mm_add_epi32(h, _mm_shuffle_epi32::<0b10_11_00_01>(h));
                _mm_cvtsi128_si32(h).wrapping_add(super::dot_i8_scalar(w.add(i), x.add(i), n - i))
            }
        }

        const GROUP_TILE: usize = 1;
        #[inline(always)]
        unsafe fn group_mac(acc: [__m256i; 4], p: [*const u8; 4], w: __m256i) -> [__m256i; 4] {
            // SAFETY: 32 readable bytes at each p[j]; AVX2 kernels only.
            unsafe {
                let [a, b, c, d] = p.map(|q| _mm256_loadu_si256(q as *const __m256i));
                let (ab_lo, ab_hi) = (_mm256_unpacklo_epi8(a, b), _mm256_unpackhi_epi8(a, b));
                let (cd_lo, cd_hi) = (_mm256_unpacklo_epi8(c, d), _mm256_unpackhi_epi8(c, d));
                let q = [
                    _mm256_unpacklo_epi16(ab_lo, cd_lo),
                    _mm256_unpackhi_epi16(ab_lo, cd_lo),
                    _mm256_unpacklo_epi16(ab_hi, cd_hi),
                    _mm256_unpackhi_epi16(ab_hi, cd_hi),
                ];
                let mut o = acc;
                for (v, &x) in o.iter_mut().zip(&q) {
                    *v = quad_dot_avx2(*v, x, w);
                }
                o
            }
        }
        #[inline(always)]
        unsafe fn group_order(acc: [__m256i; 4]) -> [__m256i; 4] {
            // SAFETY: AVX2 kernels only. Accumulator k holds positions 16·c + 4·k + i in its 128-bit chunk c.
            unsafe {
                [
                    _mm256_permute2x128_si256::<0x20>(acc[0], acc[1]),
                    _mm256_permute2x128_si256::<0x20>(acc[2], acc[3]),
                    _mm256_permute2x128_si256::<0x31>(acc[0], acc[1]),
                    _mm256_permute2x128_si256::<0x31>(acc[2], acc[3]),
                ]
            }
        }
        #[inline(always)]
        unsafe fn group_unorder(v: [__m256i; 4]) -> [__m256i; 4] {
            // SAFETY: AVX2 kernels only.
            unsafe {
                [
                    _mm256_permute2x128_si256::<0x20>(v[0], v[2]),
                    _mm256_permute2x128_si256::<0x31>(v[0], v[2]),
                    _mm256_permute2x128_si256::<0x20>(v[1], v[3]),
                    _mm256_permute2x128_si256::<0x31>(v[1], v[3]),
                ]
            }
        }
    }

    /// `acc + Σ_j v[4l + j] · w_j` per dword lane `l` (signed bytes; `w` as [`Lanes::weight_quad`] makes it).
    #[inline(always)]
    unsafe fn quad_dot_avx2(acc: __m256i, v: __m256i, w: __m256i) -> __m256i {
        // SAFETY: AVX2 kernels only.
        unsafe {
            let a = _mm256_cvtepi8_epi16(_mm256_castsi256_si128(v));
            let b = _mm256_cvtepi8_epi16(_mm256_extracti128_si256::<1>(v));
            let s = _mm256_hadd_epi32(_mm256_madd_epi16(a, w), _mm256_madd_epi16(b, w));
            let s = _mm256_permutevar8x32_epi32(s, _mm256_setr_epi32(0, 1, 4, 5, 2, 3, 6, 7));
            _mm256_add_epi32(acc, s)
        }
    }

    impl Lanes for Avx512 {
        const L: usize = 16;
        const UNSIGNED_QUADS: bool = true;
        const SPARSE_TILE: usize = 12;
        const DENSE_TILE: usize = 6;
        type F = __m512;
        type I = __m512i;
        type W = __m512i;

        #[inline(always)]
        unsafe fn splat(v: f32) -> __m512 {
            // SAFETY: AVX-512 kernels only.
            unsafe { _mm512_set1_ps(v) }
        }
        #[inline(always)]
        unsafe fn load(p: *const f32) -> __m512 {
            // SAFETY: 16 readable floats at p.
            unsafe { _mm512_loadu_ps(p) }
        }
        #[inline(always)]
        unsafe fn store(p: *mut f32, v: __m512) {
            // SAFETY: 16 writable floats at p.
            unsafe { _mm512_storeu_ps(p, v) }
        }
        #[inline(always)]
        unsafe fn fma(w: __m512, x: __m512, acc: __m512) -> __m512 {
            // SAFETY: AVX-512 kernels only.
            unsafe { _mm512_fmadd_ps(w, x, acc) }
        }
        #[inline(always)]
        unsafe fn add(a: __m512, b: __m512) -> __m512 {
            // SAFETY: AVX-512 kernels only.
            unsafe { _mm512_add_ps(a, b) }
        }
        #[inline(always)]
        unsafe fn relu(v: __m512) -> __m512 {
            // SAFETY: AVX-512 kernels only. Lanes with v < 0 become 0, NaN stays.
            unsafe {
                let neg = _mm512_cmp_ps_mask::<_CMP_LT_OQ>(v, _mm512_setzero_ps());
                _mm512_mask_blend_ps(neg, v, _mm512_setzero_ps())
            }
        }
        #[inline(always)]
        unsafe fn load_part(p: *const f32, lo: usize, hi: usize) -> __m512 {
            // SAFETY: masked lanes are not accessed.
            unsafe { _mm512_maskz_loadu_ps(kmask16(lo, hi), p) }
        }
        #[inline(always)]
        unsafe fn store_part(p: *mut f32, v: __m512, lo: usize, hi: usize) {
            // SAFETY: masked lanes are not accessed.
            unsafe { _mm512_mask_storeu_ps(p, kmask16(lo, hi), v) }
        }
        #[inline(always)]
        unsafe fn sum(v: __m512) -> f32 {
            // SAFETY: AVX-512 kernels only.
            unsafe {
                let h = _mm256_add_ps(_mm512_castps512_ps256(v), _mm512_extractf32x8_ps::<1>(v));
                let h = _mm_add_ps(_mm256_castps256_ps128(h), _mm256_extractf128_ps::<1>(h));
                let h = _mm_add_ps(h, _mm_movehl_ps(h, h));
                _mm_cvtss_f32(_mm_add_ss(h, _mm_shuffle_ps::<1>(h, h)))
            }
        }

        #[inline(always)]
        unsafe fn splat_i(v: i32) -> __m512i {
            // SAFETY: AVX-512 kernels only.
            unsafe { _mm512_set1_epi32(v) }
        }
        #[inline(always)]
        unsafe fn load_i(p: *const i32) -> __m512i {
            // SAFETY: 16 readable ints at p.
            unsafe { _mm512_loadu_si512(p as *const __m512i) }
        }
        #[inline(always)]
        unsafe fn store_i(p: *mut i32, v: __m512i) {
            // SAFETY: 16 writable ints at p.
            unsafe { _mm512_storeu_si512(p as *mut __m512i, v) }
        }
        #[inline(always)]
        unsafe fn add_i(a: __m512i, b: __m512i) -> __m512i {
            // SAFETY: AVX-512 kernels only.
            unsafe { _mm512_add_epi32(a, b) }
        }
        #[inline(always)]
        unsafe fn weight_quad(word: u32) -> __m512i {
            // SAFETY: AVX-512 kernels only.
            unsafe { _mm512_set1_epi32(word as i32) }
        }
        #[inline(always)]
        unsafe fn quad_mac(acc: __m512i, p: *const u8, w: __m512i) -> __m512i {
            // SAFETY: 64 readable bytes at p; VNNI is part of this path.
            unsafe { _mm512_dpbusd_epi32(acc, _mm512_loadu_si512(p as *const __m512i), w) }
        }
        #[inline(always)]
        unsafe fn requant(v: __m512i, m: i32, sh: u32, lo: i32) -> __m512i {
            // SAFETY: AVX-512 kernels only.
            unsafe {
                let mv = _mm512_set1_epi64(m as i64);
                let rnd = _mm512_set1_epi64(if sh == 0 { 0 } else { 1i64 << (sh - 1) });
                let shv = _mm512_set1_epi64(sh as i64);
                let (top, bot) = (_mm512_set1_epi64(127), _mm512_set1_epi64(lo as i64));
                let even = _mm512_srav_epi64(_mm512_add_epi64(_mm512_mul_epi32(v, mv), rnd), shv);
                let even = _mm512_max_epi64(_mm512_min_epi64(even, top), bot);
                let odd_in = _mm512_srli_epi64::<32>(v);
                let odd =
                    _mm512_srav_epi64(_mm512_add_epi64(_mm512_mul_epi32(odd_in, mv), rnd), shv);
                let odd = _mm512_max_epi64(_mm512_min_epi64(odd, top), bot);
                _mm512_mask_blend_epi32(0xAAAA, even, _mm512_slli_epi64::<32>(odd))
            }
        }
        #[inline(always)]
        unsafe fn load_i8_part(p: *const i8, lo: usize, hi: usize) -> __m512i {
            // SAFETY: masked bytes are not accessed.
            unsafe { _mm512_cvtepi8_epi32(_mm_maskz_loadu_epi8(kmask16(lo, hi), p)) }
        }
        #[inline(always)]
        unsafe fn store_i8_part(p: *mut i8, v: __m512i, lo: usize, hi: usize) {
            // SAFETY: masked bytes are not accessed. Packs and a dword permutation instead of a truncating
            // store, which is slow on some CPUs: dword 4k of the packed vector holds lanes 4k .. 4k + 4.
            unsafe {
                let x = _mm512_packs_epi16(_mm512_packs_epi32(v, v), _mm512_setzero_si512());
                let idx = _mm512_setr_epi32(0, 4, 8, 12, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0);
                let x = _mm512_castsi512_si128(_mm512_permutexvar_epi32(idx, x));
                _mm_mask_storeu_epi8(p, kmask16(lo, hi), x)
            }
        }
        #[inline(always)]
        unsafe fn store_i8x4(p: *mut i8, v: [__m512i; 4]) {
            // SAFETY: 64 writable bytes at p. The saturating packs keep values in range and leave dword
            // 4k + n holding lanes 4k .. 4k + 4 of v[n].
            unsafe {
                let ab = _mm512_packs_epi32(v[0], v[1]);
                let cd = _mm512_packs_epi32(v[2], v[3]);
                let x = _mm512_packs_epi16(ab, cd);
                let idx = _mm512_setr_epi32(0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15);
                _mm512_storeu_si512(p as *mut __m512i, _mm512_permutexvar_epi32(idx, x))
            }
        }
        #[inline(always)]
        unsafe fn add_requant(
            a: __m512i,
            ma: i32,
            b: __m512i,
            mb: i32,
            sh: u32,
            lo: i32,
        ) -> __m512i {
            // SAFETY: AVX-512 kernels only.
            unsafe {
                let s = _mm512_add_epi32(
                    _mm512_mullo_epi32(a, _mm512_set1_epi32(ma)),
                    _mm512_mullo_epi32(b, _mm512_set1_epi32(mb)),
                );
                let rnd = if sh == 0 { 0 } else { 1i32 << (sh - 1) };
                let s = _mm512_sra_epi32(
                    _mm512_add_epi32(s, _mm512_set1_epi32(rnd)),
                    _mm_cvtsi32_si128(sh as i32),
                );
                _mm512_max_epi32(
                    _mm512_min_epi32(s, _mm512_set1_epi32(127)),
                    _mm512_set1_epi32(lo),
                )
            }
        }
        #[inline(always)]
        unsafe fn dot_i8(w: *const i8, x: *const i8, n: usize) -> i32 {
            // SAFETY: n readable bytes at w and x (masked tails are not accessed); VNNI is part of this path.
            unsafe {
                let flip = _mm512_set1_epi8(-128);
                let mut acc = _mm512_setzero_si512();
                let mut corr = _mm512_setzero_si512();
                let mut i = 0;
                while i < n {
                    let left = n - i;
                    let m: __mmask64 = if left >= 64 { !0 } else { (1u64 << left) - 1 };
                    let a = _mm512_xor_si512(_mm512_maskz_loadu_epi8(m, w.add(i)), flip);
                    let b = _mm512_maskz_loadu_epi8(m, x.add(i));
                    acc = _mm512_dpbusd_epi32(acc, a, b);
                    corr = _mm512_dpbusd_epi32(corr, flip, b);
                    i += 64;
                }
                _mm512_reduce_add_epi32(acc).wrapping_sub(_mm512_reduce_add_epi32(corr))
            }
        }

        const GROUP_TILE: usize = 3;
        #[inline(always)]
        unsafe fn group_mac(acc: [__m512i; 4], p: [*const u8; 4], w: __m512i) -> [__m512i; 4] {
            // SAFETY: 64 readable bytes at each p[j]; VNNI is part of this path.
            unsafe {
                let [a, b, c, d] = p.map(|q| _mm512_loadu_si512(q as *const __m512i));
                let (ab_lo, ab_hi) = (_mm512_unpacklo_epi8(a, b), _mm512_unpackhi_epi8(a, b));
                let (cd_lo, cd_hi) = (_mm512_unpacklo_epi8(c, d), _mm512_unpackhi_epi8(c, d));
                [
                    _mm512_dpbusd_epi32(acc[0], _mm512_unpacklo_epi16(ab_lo, cd_lo), w),
                    _mm512_dpbusd_epi32(acc[1], _mm512_unpackhi_epi16(ab_lo, cd_lo), w),
                    _mm512_dpbusd_epi32(acc[2], _mm512_unpacklo_epi16(ab_hi, cd_hi), w),
                    _mm512_dpbusd_epi32(acc[3], _mm512_unpackhi_epi16(ab_hi, cd_hi), w),
                ]
            }
        }
        #[inline(always)]
        unsafe fn group_order(acc: [__m512i; 4]) -> [__m512i; 4] {
            // SAFETY: AVX-512 kernels only. Accumulator k holds positions 16·c + 4·k + i in its 128-bit chunk
            // c: a 4 × 4 transpose of 128-bit chunks.
            unsafe {
                let t0 = _mm512_shuffle_i64x2::<0x44>(acc[0], acc[1]);
                let t1 = _mm512_shuffle_i64x2::<0x44>(acc[2], acc[3]);
                let t2 = _mm512_shuffle_i64x2::<0xEE>(acc[0], acc[1]);
                let t3 = _mm512_shuffle_i64x2::<0xEE>(acc[2], acc[3]);
                [
                    _mm512_shuffle_i64x2::<0x88>(t0, t1),
                    _mm512_shuffle_i64x2::<0xDD>(t0, t1),
                    _mm512_shuffle_i64x2::<0x88>(t2, t3),
                    _mm512_shuffle_i64x2::<0xDD>(t2, t3),
                ]
            }
        }
        #[inline(always)]
        unsafe fn group_unorder(v: [__m512i; 4]) -> [__m512i; 4] {
            // SAFETY: AVX-512 kernels only; a transpose is its own inverse.
            unsafe { Self::group_order(v) }
        }
    }
}
