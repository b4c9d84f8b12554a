//! Int8 post-training quantisation (the semantics are in [`crate::compile::ir`]):
//!
//! - weights: symmetric per output channel, `scales[r] = max|w_r| / 127` (1 for an all-zero row),
//!   `q = round(w / scales[r])` half away from zero, clamped to [−127, 127]; the storage pattern is kept;
//! - activations: symmetric per tensor, `s = max|a| / 127` over a calibration sample run through the float
//!   interpreter (1 when the maximum is 0); max-pool, ReLU, subsample-pad and flatten keep their input's scale;
//! - biases: `round(b / (s_in · scales[r]))` as i32 (saturated).

use rayon::prelude::*;

use crate::compile::interp;
use crate::compile::ir::{Bias, DType, Graph, Op, Storage};
use crate::error::{Error, Result};

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
            weight.dtype = DType::I8;
            weight.scales = Some(scales);
        }
    }
    g.validate()?;
    Ok(g)
}

/// Rounds every conv/gemm weight of a float graph to half precision (dtype F16).
pub fn to_f16(graph: &Graph) -> Result<Graph> {
    let mut g = graph.clone();
    for n in &mut g.nodes {
        if let Some(w) = n.op.weight_mut() {
            if w.dtype == DType::I8 {
                return Err(Error::Invalid(format!("to_f16: '{}' is quantised", n.name)));
            }
            match &mut w.storage {
                Storage::Dense(v) | Storage::Csr { values: v, .. } => {
                    v.iter_mut()
                        .for_each(|x| *x = half::f16::from_f32(*x).to_f32());
                }
            }
            w.dtype = DType::F16;
        }
    }
    g.validate()?;
    Ok(g)
}
