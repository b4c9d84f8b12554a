//! Int8 arithmetic shared bit for bit by the runtime, the generated C and the IR interpreter
//! (`formats/scb.md` §8). Activations are symmetric per tensor (real = scale · q, zero point 0); weights are
//! symmetric per output channel; biases are i32 in units of `input scale · weight scale`. Requantisation is
//! integer-only: a multiplier `m` (0 ≤ m < 2³¹) and a right shift `sh` (0..=63) stored in the model stand for
//! the real factor `m · 2^−sh`.

/// Largest shift of a requantisation multiplier.
pub const MAX_SHIFT: u32 = 63;
/// Largest shift of an int8 ADD.
pub const MAX_ADD_SHIFT: u32 = 30;
/// Largest multiplier of an int8 ADD operand (so that `a·ma + b·mb` plus the rounding term fits i32).
pub const MAX_ADD_MULTIPLIER: i32 = 1 << 22;

/// `(v + 2^(sh−1)) >> sh` with an arithmetic shift: division by `2^sh` rounding halves up (no rounding term
/// when `sh` is 0).
#[inline(always)]
fn shift_round(v: i64, sh: u32) -> i64 {
    if sh == 0 {
        v
    } else {
        (v + (1i64 << (sh - 1))) >> sh
    }
}

#[inline(always)]
fn saturate(v: i64, relu: bool) -> i8 {
    let lo = if relu { 0 } else { -128 };
    v.clamp(lo, 127) as i8
}

/// Requantises an i32 accumulator: `clamp((acc · m + 2^(sh−1)) >> sh)` in i64, to `[-128, 127]`, or to
/// `[0, 127]` after ReLU. `m` ≥ 0, `sh` ≤ [`MAX_SHIFT`].
#[inline(always)]
pub fn requantize(acc: i32, m: i32, sh: u32, relu: bool) -> i8 {
    saturate(shift_round(acc as i64 * m as i64, sh), relu)
}

/// Int8 addition: `clamp((a · ma + b · mb + 2^(sh−1)) >> sh)` in i32 (`ma`, `mb` ≤
/// [`MAX_ADD_MULTIPLIER`], `sh` ≤ [`MAX_ADD_SHIFT`], so nothing overflows).
#[inline(always)]
pub fn add(a: i8, ma: i32, b: i8, mb: i32, sh: u32, relu: bool) -> i8 {
    let s = a as i32 * ma + b as i32 * mb;
    let r = if sh == 0 {
        s
    } else {
        (s + (1 << (sh - 1))) >> sh
    };
    saturate(r as i64, relu)
}

/// Quantises a real value with scale `s` (the entry of the float API): `x / s` in f32, rounded half away
/// from zero, saturated to `[-128, 127]`; NaN gives 0.
#[inline]
pub fn quantize(x: f32, s: f32) -> i8 {
    // Without branches, so that loops over inputs vectorise: a NaN stays NaN through the clamp, converts to
    // 0, and fails both rounding comparisons.
    let v = (x / s).clamp(-129.0, 128.0);
    let t = v as i32;
    let frac = v - t as f32;
    let r = t + i32::from(frac >= 0.5) - i32::from(frac <= -0.5);
    r.clamp(-128, 127) as i8
}

/// Dequantises: `q · s` in f32.
#[inline]
pub fn dequantize(q: i8, s: f32) -> f32 {
    q as f32 * s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requantisation_rounds_halves_up_and_saturates() {
        // m · 2^-sh = 0.5: 3 · 0.5 = 1.5 → 2, −3 · 0.5 = −1.5 → −1 (half up), 5 → 3.
        let (m, sh) = (1 << 30, 31);
        assert_eq!(requantize(3, m, sh, false), 2);
        assert_eq!(requantize(-3, m, sh, false), -1);
        assert_eq!(requantize(5, m, sh, false), 3);
        assert_eq!(requantize(-5, m, sh, false), -2);
        assert_eq!(requantize(1000, m, sh, false), 127);
        assert_eq!(requantize(-1000, m, sh, false), -128);
        assert_eq!(requantize(-7, m, sh, true), 0);
        assert_eq!(requantize(i32::MAX, i32::MAX, 0, false), 127);
        assert_eq!(requantize(i32::MIN, i32::MAX, 0, false), -128);
        assert_eq!(requantize(i32::MIN, i32::MAX, 63, false), 0);
        assert_eq!(requantize(i32::MIN, i32::MAX, 62, false), -1);
        assert_eq!(requantize(7, 3, 0, false), 21);
    }

    #[test]
    fn addition_in_i32() {
        // 0.25 a + 0.75 b with sh = 20.
        let (ma, mb, sh) = (1 << 18, 3 << 18, 20);
        assert_eq!(add(4, ma, 4, mb, sh, false), 4);
        assert_eq!(add(-127, ma, -128, mb, sh, false), -128);
        assert_eq!(add(-2, ma, 0, mb, sh, false), 0);
        assert_eq!(add(-6, ma, 0, mb, sh, false), -1);
        assert_eq!(add(-8, ma, 0, mb, sh, true), 0);
        // (127 · 2^22 · 2 + 2^29) >> 30 = 1: the largest operands do not overflow.
        assert_eq!(
            add(
                127,
                MAX_ADD_MULTIPLIER,
                127,
                MAX_ADD_MULTIPLIER,
                MAX_ADD_SHIFT,
                false
            ),
            1
        );
        assert_eq!(
            add(
                -128,
                MAX_ADD_MULTIPLIER,
                -128,
                MAX_ADD_MULTIPLIER,
                MAX_ADD_SHIFT,
                false
            ),
            -1
        );
    }

    /// The branching statement of [`quantize`]'s contract.
    fn quantize_by_cases(x: f32, s: f32) -> i8 {
        let v = x / s;
        if v.is_nan() {
            return 0;
        }
        let v = v.clamp(-129.0, 128.0);
        let t = v as i32;
        let frac = v - t as f32;
        let r = if frac >= 0.5 {
            t + 1
        } else if frac <= -0.5 {
            t - 1
        } else {
            t
        };
        r.clamp(-128, 127) as i8
    }

    #[test]
    fn branch_free_quantisation_agrees_with_the_cases() {
        let mut bits = 0x1234_5678u32;
        for i in 0..200_000u32 {
            bits = bits.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            let x = match i % 4 {
                0 => f32::from_bits(bits),
                1 => (bits as i32 as f32) / 16_777_216.0,
                2 => (i as f32 - 100_000.0) / 512.0,
                _ => ((bits >> 8) % 600) as f32 * 0.5 - 150.0,
            };
            for s in [1.0f32, 0.1, 0.0173, 3.0e-5, 7.5] {
                assert_eq!(quantize(x, s), quantize_by_cases(x, s), "{x:e} / {s}");
            }
        }
        for x in [
            f32::NAN,
            f32::INFINITY,
            f32::NEG_INFINITY,
            0.0,
            -0.0,
            127.5,
            -128.5,
        ] {
            assert_eq!(quantize(x, 1.0), quantize_by_cases(x, 1.0), "{x}");
        }
    }

    #[test]
    fn input_quantisation_in_f32() {
        assert_eq!(quantize(0.25, 0.1), 3);
        assert_eq!(quantize(-0.25, 0.1), -3);
        assert_eq!(quantize(0.5, 1.0), 1);
        assert_eq!(quantize(-0.5, 1.0), -1);
        assert_eq!(quantize(0.49999997, 1.0), 0);
        assert_eq!(quantize(1e9, 1.0), 127);
        assert_eq!(quantize(-1e9, 1.0), -128);
        assert_eq!(quantize(f32::NAN, 1.0), 0);
        assert_eq!(quantize(f32::INFINITY, 1.0), 127);
        assert_eq!(dequantize(-3, 0.5), -1.5);
    }
}
