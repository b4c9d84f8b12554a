//! The reference interpreter of the IR: straightforward loops, no tricks, the oracle every artefact is checked
//! against. Float graphs follow the float semantics of [`crate::compile::ir`]; quantised graphs follow its int8
//! semantics exactly (this module implements them on its own, without the runtime's code).

use crate::compile::ir::{Bias, Graph, Op, Weight};
use crate::compile::passes::quantize::{
    add_multipliers, conv_factor, fixed_multiplier, pool_factor,
};
use crate::error::{Error, Result};

/// Normalises one [0, 1]-scaled sample in f32: `(x − mean[c]) / std[c]`.
pub fn normalize(graph: &Graph, x: &[f32]) -> Vec<f32> {
    let [c, h, w] = graph.input.shape;
    let plane = h * w;
    let mut out = Vec::with_capacity(c * plane);
    for ch in 0..c {
        let (m, s) = (graph.input.mean[ch], graph.input.std[ch]);
        out.extend(x[ch * plane..(ch + 1) * plane].iter().map(|v| (v - m) / s));
    }
    out
}

fn check_input(graph: &Graph, x: &[f32]) -> Result<()> {
    let n: usize = graph.input.shape.iter().product();
    if x.len() != n {
        return Err(Error::Invalid(format!(
            "interpreter: input has {} values, the model takes {:?} = {n}",
            x.len(),
            graph.input.shape
        )));
    }
    Ok(())
}

/// Runs a float graph on one [0, 1]-scaled sample (C·H·W values) and returns the logits. For a quantised graph
/// this runs the int8 semantics and dequantises the logits.
pub fn run(graph: &Graph, x: &[f32]) -> Result<Vec<f32>> {
    if graph.is_quantized() {
        let (q, s) = run_int8(graph, x)?;
        return Ok(q.iter().map(|&v| v as f32 * s).collect());
    }
    Ok(activations(graph, x)?.pop().unwrap_or_default())
}

/// Runs a float graph on one [0, 1]-scaled sample and returns every node's output (node 0: the normalised
/// input), in node order. Int8 weights are used dequantised; activation scales are ignored.
pub fn activations(graph: &Graph, x: &[f32]) -> Result<Vec<Vec<f32>>> {
    check_input(graph, x)?;
    let mut vals: Vec<Vec<f32>> = Vec::with_capacity(graph.nodes.len());
    for node in &graph.nodes {
        let arg = |k: usize| -> &[f32] { &vals[node.inputs[k]] };
        let ins = node
            .inputs
            .first()
            .map(|&i| graph.nodes[i].shape.as_slice())
            .unwrap_or(&[]);
        let y = match &node.op {
            Op::Input => normalize(graph, x),
            Op::Conv {
                weight,
                bias,
                stride,
                padding,
                relu,
            } => {
                let w = weight.real_dense();
                let mut y = conv_f32(arg(0), ins, weight, &w, *stride, *padding, &node.shape);
                add_bias(&mut y, bias, node.shape[1..].iter().product());
                if *relu {
                    relu_inplace(&mut y);
                }
                y
            }
            Op::Gemm { weight, bias, relu } => {
                let w = weight.real_dense();
                let (rows, cols) = (weight.rows(), weight.cols());
                let xin = arg(0);
                let mut y: Vec<f32> = (0..rows)
                    .map(|r| {
                        w[r * cols..(r + 1) * cols]
                            .iter()
                            .zip(xin)
                            .map(|(a, b)| a * b)
                            .sum()
                    })
                    .collect();
                add_bias(&mut y, bias, 1);
                if *relu {
                    relu_inplace(&mut y);
                }
                y
            }
            Op::BatchNorm {
                gamma,
                beta,
                mean,
                var,
                eps,
            } => {
                let plane: usize = ins[1..].iter().product();
                let mut y = arg(0).to_vec();
                for (c, chunk) in y.chunks_mut(plane.max(1)).enumerate() {
                    let inv = 1.0 / (var[c] + eps).sqrt();
                    for v in chunk {
                        *v = (*v - mean[c]) * inv * gamma[c] + beta[c];
                    }
                }
                y
            }
            Op::Relu => {
                let mut y = arg(0).to_vec();
                relu_inplace(&mut y);
                y
            }
            Op::MaxPool { kernel, stride } => {
                pool(arg(0), ins, *kernel, *stride, &node.shape, |win| {
                    win.iter().copied().fold(f32::NEG_INFINITY, f32::max)
                })
            }
            Op::AvgPool { kernel, stride } => {
                let n = (kernel * kernel) as f32;
                pool(arg(0), ins, *kernel, *stride, &node.shape, |win| {
                    win.iter().sum::<f32>() / n
                })
            }
            Op::GlobalAvgPool => {
                let plane: usize = ins[1..].iter().product();
                arg(0)
                    .chunks(plane)
                    .map(|c| c.iter().sum::<f32>() / plane as f32)
                    .collect()
            }
            Op::Flatten => arg(0).to_vec(),
            Op::Add { relu } => {
                let mut y: Vec<f32> = arg(0).iter().zip(arg(1)).map(|(a, b)| a + b).collect();
                if *relu {
                    relu_inplace(&mut y);
                }
                y
            }
            Op::SubsamplePad {
                stride, pad_before, ..
            } => subsample_pad(arg(0), ins, *stride, *pad_before, &node.shape, 0.0),
        };
        vals.push(y);
    }
    Ok(vals)
}

/// Runs [`run`] on every sample of a batch (`n` samples of C·H·W values, concatenated); returns `n` rows of
/// logits, concatenated.
pub fn run_batch(graph: &Graph, xs: &[f32]) -> Result<Vec<f32>> {
    use rayon::prelude::*;
    let per: usize = graph.input.shape.iter().product();
    if per == 0 || xs.len() % per != 0 {
        return Err(Error::Invalid(format!(
            "interpreter: batch of {} values is not a multiple of {per}",
            xs.len()
        )));
    }
    let rows: Result<Vec<Vec<f32>>> = xs.par_chunks(per).map(|x| run(graph, x)).collect();
    Ok(rows?.concat())
}

fn relu_inplace(y: &mut [f32]) {
    for v in y {
        *v = v.max(0.0);
    }
}

fn add_bias(y: &mut [f32], bias: &Option<Bias>, plane: usize) {
    if let Some(Bias::F32(b)) = bias {
        for (c, chunk) in y.chunks_mut(plane.max(1)).enumerate() {
            for v in chunk {
                *v += b[c];
            }
        }
    }
}

/// Direct convolution with zero padding; `w` is the dense real weight (CO, CI·K·K).
fn conv_f32(
    x: &[f32],
    ins: &[usize],
    weight: &Weight,
    w: &[f32],
    stride: usize,
    pad: usize,
    out: &[usize],
) -> Vec<f32> {
    let (ci, h, wd) = (ins[0], ins[1], ins[2]);
    let (co, oh, ow) = (out[0], out[1], out[2]);
    let k = weight.shape[2];
    let mut y = vec![0.0f32; co * oh * ow];
    for o in 0..co {
        for oy in 0..oh {
            for ox in 0..ow {
                let mut acc = 0.0f32;
                for c in 0..ci {
                    for ky in 0..k {
                        let iy = (oy * stride + ky) as isize - pad as isize;
                        if iy < 0 || iy >= h as isize {
                            continue;
                        }
                        for kx in 0..k {
                            let ix = (ox * stride + kx) as isize - pad as isize;
                            if ix < 0 || ix >= wd as isize {
                                continue;
                            }
                            acc += w[((o * ci + c) * k + ky) * k + kx]
                                * x[(c * h + iy as usize) * wd + ix as usize];
                        }
                    }
                }
                y[(o * oh + oy) * ow + ox] = acc;
            }
        }
    }
    y
}

fn pool<T: Copy, U>(
    x: &[T],
    ins: &[usize],
    k: usize,
    s: usize,
    out: &[usize],
    f: impl Fn(&[T]) -> U,
) -> Vec<U> {
    let (h, w) = (ins[1], ins[2]);
    let (c, oh, ow) = (out[0], out[1], out[2]);
    let mut y = Vec::with_capacity(c * oh * ow);
    let mut win = Vec::with_capacity(k * k);
    for ch in 0..c {
        for oy in 0..oh {
            for ox in 0..ow {
                win.clear();
                for ky in 0..k {
                    for kx in 0..k {
                        win.push(x[(ch * h + oy * s + ky) * w + ox * s + kx]);
                    }
                }
                y.push(f(&win));
            }
        }
    }
    y
}

fn subsample_pad<T: Copy>(
    x: &[T],
    ins: &[usize],
    s: usize,
    before: usize,
    out: &[usize],
    zero: T,
) -> Vec<T> {
    let (ci, h, w) = (ins[0], ins[1], ins[2]);
    let (co, oh, ow) = (out[0], out[1], out[2]);
    let mut y = vec![zero; co * oh * ow];
    for c in 0..ci {
        for oy in 0..oh {
            for ox in 0..ow {
                y[((c + before) * oh + oy) * ow + ox] = x[(c * h + oy * s) * w + ox * s];
            }
        }
    }
    y
}

/// Input quantisation of the int8 semantics: `v = x / s` in f32, rounded half away from zero, saturated to
/// [−128, 127]; NaN gives 0.
pub fn quantize_input(x: f32, s: f32) -> i8 {
    let v = x / s;
    if v.is_nan() {
        return 0;
    }
    if v >= 127.5 {
        return 127;
    }
    if v <= -128.5 {
        return -128;
    }
    let t = v.trunc();
    let r = if (v - t).abs() >= 0.5 {
        t + v.signum()
    } else {
        t
    };
    r as i8
}

/// Integer requantisation of the int8 semantics: `clamp((acc · m + 2^(sh−1)) >> sh)` in i64 (no rounding
/// term for `sh = 0`), to [−128, 127] or [0, 127] after ReLU.
pub fn requantize(acc: i32, (m, sh): (i32, u32), relu: bool) -> i8 {
    let p = acc as i64 * m as i64;
    let v = if sh == 0 {
        p
    } else {
        (p + (1i64 << (sh - 1))) >> sh
    };
    v.clamp(if relu { 0 } else { -128 }, 127) as i8
}

/// Integer ADD of the int8 semantics: `clamp((a · ma + b · mb + 2^(sh−1)) >> sh)` in i32.
pub fn add_int8(a: i8, b: i8, (ma, mb, sh): (i32, i32, u32), relu: bool) -> i8 {
    let s = a as i32 * ma + b as i32 * mb;
    let v = if sh == 0 {
        s
    } else {
        (s + (1 << (sh - 1))) >> sh
    };
    v.clamp(if relu { 0 } else { -128 }, 127) as i8
}

/// Runs a quantised graph on one [0, 1]-scaled sample with the int8 semantics of the IR; returns the quantised
/// logits and the output scale.
pub fn run_int8(graph: &Graph, x: &[f32]) -> Result<(Vec<i8>, f32)> {
    check_input(graph, x)?;
    if !graph.is_quantized() {
        return Err(Error::Invalid(
            "interpreter: int8 run of a graph without activation scales".into(),
        ));
    }
    let scale = |i: usize| graph.nodes[i].scale.unwrap_or(1.0);
    let mut vals: Vec<Vec<i8>> = Vec::with_capacity(graph.nodes.len());
    for (at, node) in graph.nodes.iter().enumerate() {
        let s_out = scale(at);
        let arg = |k: usize| -> &[i8] { &vals[node.inputs[k]] };
        let ins = node
            .inputs
            .first()
            .map(|&i| graph.nodes[i].shape.as_slice())
            .unwrap_or(&[]);
        let s_in = node.inputs.first().map_or(1.0, |&i| scale(i));
        let y: Vec<i8> = match &node.op {
            Op::Input => normalize(graph, x)
                .iter()
                .map(|&v| quantize_input(v, s_out))
                .collect(),
            Op::Conv {
                weight,
                bias,
                stride,
                padding,
                relu,
            } => {
                let acc = conv_i32(arg(0), ins, weight, *stride, *padding, &node.shape);
                requant_rows(
                    acc,
                    weight,
                    bias,
                    s_in,
                    s_out,
                    node.shape[1..].iter().product(),
                    *relu,
                )
            }
            Op::Gemm { weight, bias, relu } => {
                let w = weight.to_dense();
                let cols = weight.cols();
                let xin = arg(0);
                let acc: Vec<i32> = (0..weight.rows())
                    .map(|r| {
                        w[r * cols..(r + 1) * cols]
                            .iter()
                            .zip(xin)
                            .map(|(a, b)| *a as i32 * *b as i32)
                            .sum()
                    })
                    .collect();
                requant_rows(acc, weight, bias, s_in, s_out, 1, *relu)
            }
            Op::BatchNorm { .. } => {
                return Err(Error::Invalid(format!(
                    "interpreter: unfolded batch norm '{}' in an int8 graph",
                    node.name
                )))
            }
            Op::Relu => arg(0).iter().map(|v| (*v).max(0)).collect(),
            Op::MaxPool { kernel, stride } => {
                pool(arg(0), ins, *kernel, *stride, &node.shape, |w| {
                    w.iter().copied().max().unwrap_or(0)
                })
            }
            Op::AvgPool { kernel, stride } => {
                let m = fixed_multiplier(pool_factor(s_in, s_out, kernel * kernel));
                pool(arg(0), ins, *kernel, *stride, &node.shape, |w| {
                    let acc: i32 = w.iter().map(|&v| v as i32).sum();
                    requantize(acc, m, false)
                })
            }
            Op::GlobalAvgPool => {
                let plane: usize = ins[1..].iter().product();
                let m = fixed_multiplier(pool_factor(s_in, s_out, plane));
                arg(0)
                    .chunks(plane)
                    .map(|c| requantize(c.iter().map(|&v| v as i32).sum::<i32>(), m, false))
                    .collect()
            }
            Op::Flatten => arg(0).to_vec(),
            Op::Add { relu } => {
                let m = add_multipliers(
                    scale(node.inputs[0]) as f64 / s_out as f64,
                    scale(node.inputs[1]) as f64 / s_out as f64,
                );
                arg(0)
                    .iter()
                    .zip(arg(1))
                    .map(|(&a, &b)| add_int8(a, b, m, *relu))
                    .collect()
            }
            Op::SubsamplePad {
                stride, pad_before, ..
            } => subsample_pad(arg(0), ins, *stride, *pad_before, &node.shape, 0i8),
        };
        vals.push(y);
    }
    Ok((vals.pop().unwrap_or_default(), scale(graph.output())))
}

fn requant_rows(
    acc: Vec<i32>,
    w: &Weight,
    bias: &Option<Bias>,
    s_in: f32,
    s_out: f32,
    plane: usize,
    relu: bool,
) -> Vec<i8> {
    let scales = w.scales.as_deref().unwrap_or(&[]);
    let mut y = Vec::with_capacity(acc.len());
    for (r, chunk) in acc.chunks(plane.max(1)).enumerate() {
        let b = match bias {
            Some(Bias::I32(b)) => b[r],
            _ => 0,
        };
        let m = fixed_multiplier(conv_factor(
            s_in,
            scales.get(r).copied().unwrap_or(1.0),
            s_out,
        ));
        for &a in chunk {
            y.push(requantize(a.wrapping_add(b), m, relu));
        }
    }
    y
}

fn conv_i32(
    x: &[i8],
    ins: &[usize],
    weight: &Weight,
    stride: usize,
    pad: usize,
    out: &[usize],
) -> Vec<i32> {
    let w = weight.to_dense();
    let (ci, h, wd) = (ins[0], ins[1], ins[2]);
    let (co, oh, ow) = (out[0], out[1], out[2]);
    let k = weight.shape[2];
    let mut y = vec![0i32; co * oh * ow];
    for o in 0..co {
        for oy in 0..oh {
            for ox in 0..ow {
                let mut acc = 0i32;
                for c in 0..ci {
                    for ky in 0..k {
                        let iy = (oy * stride + ky) as isize - pad as isize;
                        if iy < 0 || iy >= h as isize {
                            continue;
                        }
                        for kx in 0..k {
                            let ix = (ox * stride + kx) as isize - pad as isize;
                            if ix < 0 || ix >= wd as isize {
                                continue;
                            }
                            let q = w[((o * ci + c) * k + ky) * k + kx] as i32;
                            acc = acc.wrapping_add(
                                q * x[(c * h + iy as usize) * wd + ix as usize] as i32,
                            );
                        }
                    }
                }
                y[(o * oh + oy) * ow + ox] = acc;
            }
        }
    }
    y
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integer_rules() {
        assert_eq!(quantize_input(2.5, 1.0), 3);
        assert_eq!(quantize_input(-2.5, 1.0), -3);
        assert_eq!(quantize_input(0.49999997, 1.0), 0);
        assert_eq!(quantize_input(500.0, 1.0), 127);
        assert_eq!(quantize_input(-500.0, 1.0), -128);
        assert_eq!(quantize_input(f32::NAN, 1.0), 0);
        let half = (1 << 30, 31);
        assert_eq!(requantize(3, half, false), 2);
        assert_eq!(requantize(-3, half, false), -1);
        assert_eq!(requantize(-3, half, true), 0);
        assert_eq!(requantize(1 << 20, half, false), 127);
        assert_eq!(add_int8(4, 4, (1 << 18, 3 << 18, 20), false), 4);
        assert_eq!(add_int8(-128, -128, (1 << 22, 1 << 22, 20), false), -128);
    }
}
