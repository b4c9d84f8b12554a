//! Int8 post-training quantisation (the semantics are in [`crate::compile::ir`]):
//!
//! - weights: symmetric per output channel, `scales[r] = max|w_r| / 127` (1 for an all-zero row),
//!   `q = round(w / scales[r])` half away from zero, clamped to [−127, 127]; the storage pattern is kept;
//! - activations: symmetric per tensor, `s = max|a| / 127` over a calibration sample run through the float
//!   interpreter (1 when the maximum is 0); max-pool, ReLU, subsample-pad and flatten keep their input's scale;
//! - biases: `round(b / (s_in · scales[r]))` as i32 (saturated);
//! - requantisation: every real factor of the int8 semantics becomes an integer multiplier and shift
//!   ([`fixed_multiplier`], [`add_multipliers`]), so the int8 graph runs without floating point.

use rayon::prelude::*;

use crate::compile::interp;
use crate::compile::ir::{Bias, Graph, Op, Storage, ValueType};
use crate::error::{Error, Result};

/// The integer form `(m, sh)` of a real requantisation factor `real > 0`: `m · 2^−sh` with `m` rounded to 31
/// significant bits (`2^30 ≤ m < 2^31`) and `sh ≤ 63`. Factors below `2^−33` lose precision as `sh` saturates
/// at 63 (`m` shrinks, possibly to 0); factors of `2^31` and above saturate to `(2^31 − 1, 0)`. Non-positive
/// or non-finite factors give `(0, 0)`.
pub fn fixed_multiplier(real: f64) -> (i32, u32) {
    if !(real > 0.0 && real.is_finite()) {
        return (0, 0);
    }
    let bits = real.to_bits();
    let biased = ((bits >> 52) & 0x7FF) as i64;
    if biased == 0 {
        return (0, sculpt_runtime::quant::MAX_SHIFT);
    }
    // real = f · 2^e with f in [0.5, 1).
    let mut e = biased - 1022;
    let f = f64::from_bits((bits & !(0x7FFu64 << 52)) | (1022u64 << 52));
    let mut m = (f * (1u64 << 31) as f64).round() as i64;
    if m == 1 << 31 {
        m = 1 << 30;
        e += 1;
    }
    let sh = 31 - e;
    if sh < 0 {
        return (i32::MAX, 0);
    }
    let max = sculpt_runtime::quant::MAX_SHIFT as i64;
    if sh > max {
        let extra = (sh - max).min(62) as u32;
        let m = (m + (1i64 << (extra - 1))) >> extra;
        return (m as i32, max as u32);
    }
    (m as i32, sh as u32)
}

/// The integer form `(ma, mb, sh)` of the two factors of an int8 ADD: the largest `sh ≤ 30` for which both
/// `round(r · 2^sh)` stay within `2^22` (formats/scb.md §8); larger factors saturate at `2^22`.
pub fn add_multipliers(ra: f64, rb: f64) -> (i32, i32, u32) {
    use sculpt_runtime::quant::{MAX_ADD_MULTIPLIER, MAX_ADD_SHIFT};
    let fix = |r: f64, sh: u32| -> i64 {
        if r > 0.0 && r.is_finite() {
            (r * (1u64 << sh) as f64).round() as i64
        } else {
            0
        }
    };
    let cap = MAX_ADD_MULTIPLIER as i64;
    let mut sh = MAX_ADD_SHIFT;
    while sh > 0 && (fix(ra, sh) > cap || fix(rb, sh) > cap) {
        sh -= 1;
    }
    (fix(ra, sh).min(cap) as i32, fix(rb, sh).min(cap) as i32, sh)
}

/// The requantisation factor of a convolution or gemm row: `(s_in · s_w) / s_out` in f64.
pub fn conv_factor(s_in: f32, s_w: f32, s_out: f32) -> f64 {
    (s_in as f64 * s_w as f64) / s_out as f64
}

/// The requantisation factor of an average over `n` values: `s_in / (s_out · n)` in f64.
pub fn pool_factor(s_in: f32, s_out: f32, n: usize) -> f64 {
    s_in as f64 / (s_out as f64 * n as f64)
}

fn scale_of(max: f32) -> f32 {
    if max > 0.0 && max.is_finite() {
        max / 127.0
    } else {
        1.0
    }
}

/// Per-node maximum absolute activation of the float graph over `samples` (concatenated C·H·W images in
/// [0, 1]).
pub fn calibrate(graph: &Graph, samples: &[f32]) -> Result<Vec<f32>> {
    let per: usize = graph.input.shape.iter().product();
    if samples.is_empty() || samples.len() % per != 0 {
        return Err(Error::Invalid(format!(
            "quantize: calibration needs a whole number of samples of {per} values, got {}",
            samples.len()
        )));
    }
    let maxes: Result<Vec<Vec<f32>>> = samples
        .par_chunks(per)
        .map(|x| {
            Ok(interp::activations(graph, x)?
                .iter()
                .map(|a| a.iter().fold(0.0f32, |m, v| m.max(v.abs())))
                .collect())
        })
        .collect();
    let maxes = maxes?;
    let mut out = vec![0.0f32; graph.nodes.len()];
    for m in &maxes {
        for (o, v) in out.iter_mut().zip(m) {
            *o = o.max(*v);
        }
    }
    Ok(out)
}

/// Quantises a float graph (batch norms folded) with activation ranges from `samples`.
pub fn quantize(graph: &Graph, samples: &[f32]) -> Result<Graph> {
    graph.validate()?;
    if graph.is_quantized() {
        return Err(Error::Invalid(
            "quantize: the graph is already quantised".into(),
        ));
    }
    if let Some(n) = graph
        .nodes
        .iter()
        .find(|n| matches!(n.op, Op::BatchNorm { .. }))
    {
        return Err(Error::Invalid(format!(
            "quantize: batch norm '{}' must be folded first",
            n.name
        )));
    }
    let maxes = calibrate(graph, samples)?;
    let mut g = graph.clone();
    #[allow(clippy::needless_range_loop)]
    for at in 0..g.nodes.len() {
        let keep = matches!(
            g.nodes[at].op,
            Op::MaxPool { .. } | Op::Relu | Op::SubsamplePad { .. } | Op::Flatten
        );
        let s_in = g.nodes[at].inputs.first().and_then(|&i| g.nodes[i].scale);
        let s = if keep {
            s_in.unwrap_or(1.0)
        } else {
            scale_of(maxes[at])
        };
        g.nodes[at].scale = Some(s);
        let s_in = s_in.unwrap_or(1.0);
        if let Op::Conv { weight, bias, .. } | Op::Gemm { weight, bias, .. } = &mut g.nodes[at].op {
            let dense = weight.to_dense();
            let cols = weight.cols();
            let scales: Vec<f32> = dense
                .chunks(cols)
                .map(|row| scale_of(row.iter().fold(0.0f32, |m, v| m.max(v.abs()))))
                .collect();
            let q = |r: usize, v: f32| ((v / scales[r]) as f64).round().clamp(-127.0, 127.0) as f32;
            match &mut weight.storage {
                Storage::Dense(v) => {
                    for (i, x) in v.iter_mut().enumerate() {
                        *x = q(i / cols, *x);
                    }
                }
                Storage::Csr { indptr, values, .. } => {
                    for r in 0..scales.len() {
                        for x in &mut values[indptr[r] as usize..indptr[r + 1] as usize] {
                            *x = q(r, *x);
                        }
                    }
                }
            }
            if let Some(Bias::F32(b)) = bias {
                let qb = b
                    .iter()
                    .enumerate()
                    .map(|(r, v)| {
                        (*v as f64 / (s_in as f64 * scales[r] as f64))
                            .round()
                            .clamp(i32::MIN as f64, i32::MAX as f64) as i32
                    })
                    .collect();
                *bias = Some(Bias::I32(qb));
            }
            weight.dtype = ValueType::I8;
            weight.scales = Some(scales);
        }
    }
    Ok(g)
}

/// Rounds every conv/gemm weight of a float graph to half precision (dtype F16).
pub fn to_f16(graph: &Graph) -> Result<Graph> {
    let mut g = graph.clone();
    for n in &mut g.nodes {
        if let Some(w) = n.op.weight_mut() {
            if w.dtype == ValueType::I8 {
                return Err(Error::Invalid(format!("to_f16: '{}' is quantised", n.name)));
            }
            match &mut w.storage {
                Storage::Dense(v) | Storage::Csr { values: v, .. } => {
                    v.iter_mut()
                        .for_each(|x| *x = half::f16::from_f32(*x).to_f32());
                }
            }
            w.dtype = ValueType::F16;
        }
    }
    g.validate()?;
    Ok(g)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fixed_multipliers_represent_the_factor() {
        for real in [1e-9, 3.7e-4, 0.01, 0.25, 0.5, 0.999_999_9, 1.0, 3.0, 1e6] {
            let (m, sh) = fixed_multiplier(real);
            assert!((1 << 30..1i64 << 31).contains(&(m as i64)), "{real}: m {m}");
            let back = m as f64 / 2f64.powi(sh as i32);
            assert!(
                (back - real).abs() <= real * 2f64.powi(-30),
                "{real}: {back}"
            );
        }
        assert_eq!(fixed_multiplier(0.5), (1 << 30, 31));
        assert_eq!(fixed_multiplier(0.0), (0, 0));
        assert_eq!(fixed_multiplier(f64::NAN), (0, 0));
        assert_eq!(fixed_multiplier(1e12), (i32::MAX, 0));
        let (m, sh) = fixed_multiplier(2f64.powi(-40));
        assert_eq!(sh, 63);
        assert_eq!(m, 1 << 23);
    }

    #[test]
    fn add_multipliers_fit_their_bounds() {
        let (ma, mb, sh) = add_multipliers(0.25, 0.75);
        assert_eq!((ma, mb, sh), (1 << 20, 3 << 20, 22));
        let (ma, mb, sh) = add_multipliers(1e-3, 2e-3);
        assert_eq!(sh, 30);
        assert!(ma > 0 && mb > 0 && mb <= 1 << 22);
        let (ma, mb, sh) = add_multipliers(1e9, 1.0);
        assert_eq!((ma, mb, sh), (1 << 22, 1, 0));
    }
}
