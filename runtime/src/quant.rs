//! Int8 arithmetic shared bit for bit by the runtime, the generated C and the IR interpreter (formats/scb.md,
//! "Int8 semantics"). Activations are symmetric per tensor (real = scale · q, zero point 0); weights are
//! symmetric per output channel; biases are i32 in units of `input scale · weight scale`.

/// Rounds half away from zero and saturates to `[lo, 127]` with `lo = 0` after ReLU and `-128` otherwise.
#[inline]
pub fn round_sat(v: f64, relu: bool) -> i8 {
    let lo = if relu { 0.0 } else { -128.0 };
    if v.is_nan() {
        return 0;
    }
    let r = if v >= 0.0 {
        floor(v + 0.5)
    } else {
        -floor(-v + 0.5)
    };
    let r = if r < lo {
        lo
    } else if r > 127.0 {
        127.0
    } else {
        r
    };
    r as i8
}

/// `floor` without libm: exact for every finite f64.
#[inline]
fn floor(v: f64) -> f64 {
    if v.is_nan() || v.abs() >= 4_503_599_627_370_496.0 {
        return v;
    }
    let t = v as i64 as f64;
    if t > v {
        t - 1.0
    } else {
        t
    }
}

/// Requantises an i32 accumulator: `round_sat(acc · m)` computed in f64.
#[inline]
pub fn requantize(acc: i32, m: f32, relu: bool) -> i8 {
    round_sat(acc as f64 * m as f64, relu)
}

/// [`requantize`] over a slice: `y[i] = requantize(acc[i], m, relu)`, written so that it vectorises (the value
/// is clamped to `[-129, 128]` before rounding, which leaves the saturated result unchanged).
#[inline(always)]
pub fn requantize_slice(acc: &[i32], y: &mut [i8], m: f32, relu: bool) {
    let m = m as f64;
    let lo = if relu { 0 } else { -128 };
    for (q, &a) in y.iter_mut().zip(acc) {
        let v = (a as f64 * m).clamp(-129.0, 128.0);
        let f = (v.abs() + 0.5) as i32;
        let r = if v < 0.0 { -f } else { f };
        *q = r.clamp(lo, 127) as i8;
    }
}

/// The per-channel multiplier of a convolution or gemm: `(s_in · s_w) / s_out` in f32.
#[inline]
pub fn multiplier(s_in: f32, s_w: f32, s_out: f32) -> f32 {
    (s_in * s_w) / s_out
}

/// Quantises a real value with scale `s`: `round_sat(x / s)` with the division in f32.
#[inline]
pub fn quantize(x: f32, s: f32) -> i8 {
    round_sat((x / s) as f64, false)
}

/// Dequantises: `q · s` in f32.
#[inline]
pub fn dequantize(q: i8, s: f32) -> f32 {
    q as f32 * s
}

/// Int8 addition: `round_sat(qa · ma + qb · mb)` with `ma = s_a / s_out`, `mb = s_b / s_out` in f32 and the
/// sum in f64.
#[inline]
pub fn add(qa: i8, ma: f32, qb: i8, mb: f32, relu: bool) -> i8 {
    round_sat(qa as f64 * ma as f64 + qb as f64 * mb as f64, relu)
}

/// The multiplier of an int8 average pool over `n` elements: `s_in / (s_out · n)` in f32.
#[inline]
pub fn pool_multiplier(s_in: f32, s_out: f32, n: usize) -> f32 {
    s_in / (s_out * n as f32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rounding_and_saturation() {
        assert_eq!(round_sat(2.5, false), 3);
        assert_eq!(round_sat(-2.5, false), -3);
        assert_eq!(round_sat(2.4999, false), 2);
        assert_eq!(round_sat(-0.4, false), 0);
        assert_eq!(round_sat(1000.0, false), 127);
        assert_eq!(round_sat(-1000.0, false), -128);
        assert_eq!(round_sat(-3.0, true), 0);
        assert_eq!(round_sat(f64::NAN, false), 0);
        assert_eq!(requantize(300, 0.01, false), 3);
        assert_eq!(quantize(1.0, 0.1), 10);
        assert_eq!(floor(-1.5), -2.0);
        assert_eq!(floor(3.0), 3.0);
    }

    #[test]
    fn slice_requantisation_matches_scalar() {
        let mut accs = [0i32; 64];
        let mut x: u32 = 7;
        for (i, a) in accs.iter_mut().enumerate() {
            x = x.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            *a = match i {
                0 => i32::MIN,
                1 => i32::MAX,
                2 => 0,
                _ => (x as i32) >> (x % 28),
            };
        }
        let ms = [
            0.0,
            1e-9,
            3.7e-4,
            0.01,
            0.5,
            1.0,
            2.5,
            1e6,
            3.4e38,
            f32::INFINITY,
            f32::NAN,
        ];
        for m in ms {
            for relu in [false, true] {
                let mut y = [0i8; 64];
                requantize_slice(&accs, &mut y, m, relu);
                for (a, q) in accs.iter().zip(y) {
                    assert_eq!(q, requantize(*a, m, relu), "acc {a} m {m} relu {relu}");
                }
            }
        }
        for a in -2000..2000 {
            let mut y = [0i8];
            requantize_slice(&[a], &mut y, 0.0625, false);
            assert_eq!(y[0], requantize(a, 0.0625, false));
        }
    }
}
