//! Lowers an IR graph to the `.scb` model description ([`ScbModel`]) that the binary and C emitters lay out:
//! one activation buffer per node (a flatten aliases its input's buffer: the gemm reads any shape), one op
//! record per node, weights in the storage and index format the IR chose, biases f32 (float graphs) or i32
//! (int8 graphs), the input normalisation, and the model hash. Besides, per `formats/scb.md`:
//!
//! - a convolution whose only reader is an ADD becomes one CONV op with a residual input (the ADD's other
//!   operand), written where the ADD was; its result is the ADD's (int8: the convolution's own output is
//!   requantised to its scale first, exactly as two ops would);
//! - int8 convolution weights are stored in channel-quad column order;
//! - int8 ops carry their integer requantisation parameters ([`crate::compile::passes::quantize`]);
//! - each float sparse convolution gets its loop order: tiles of positions outermost when the staged input
//!   exceeds [`L1_BYTES`], output channels outermost otherwise.

use sculpt_runtime::conv::quad_column;
use sculpt_runtime::format::{schedule, Opcode, NONE};

use crate::compile::emit::binary::{BufferSpec, CsrBytes, OpSpec, ScbModel, TensorSpec};
use crate::compile::emit::c::{emit_c, CSource};
use crate::compile::ir::{Bias, Graph, Op, Storage, ValueType, Weight};
use crate::compile::passes::quantize::{
    add_multipliers, conv_factor, fixed_multiplier, pool_factor,
};
use crate::error::{Error, Result};

/// The little-endian bytes of `values` stored as `t` (int8 and i32 values are integers held in `f32`).
fn value_bytes(t: ValueType, values: &[f32]) -> Vec<u8> {
    match t {
        ValueType::F32 => values.iter().flat_map(|v| v.to_le_bytes()).collect(),
        ValueType::F16 => values
            .iter()
            .flat_map(|v| half::f16::from_f32(*v).to_le_bytes())
            .collect(),
        ValueType::I8 => values.iter().map(|v| (*v as i8) as u8).collect(),
        ValueType::I32 => values
            .iter()
            .flat_map(|v| (*v as i32).to_le_bytes())
            .collect(),
    }
}

/// Staged input bytes above which a float sparse convolution runs tiles of positions outermost.
pub const L1_BYTES: usize = 32 * 1024;

/// `(indptr, columns, values)` of an int8 convolution weight in channel-quad column order (dense storage:
/// every column of the padded `cols`, zeros at padding channels).
fn quad_ordered(w: &Weight) -> (Vec<usize>, Vec<usize>, Vec<f32>, usize) {
    let k = w.shape[2];
    let cols4 = w.shape[1].div_ceil(4) * 4 * k * k;
    let cols = w.cols();
    let dense = matches!(w.storage, Storage::Dense(_));
    let d = w.to_dense();
    let stored: Vec<Vec<(usize, usize)>> = match &w.storage {
        Storage::Dense(_) => (0..w.rows())
            .map(|r| (0..cols).map(|c| (c, r * cols + c)).collect())
            .collect(),
        Storage::Csr {
            indptr, indices, ..
        } => (0..w.rows())
            .map(|r| {
                (indptr[r] as usize..indptr[r + 1] as usize)
                    .map(|e| (indices[e] as usize, r * cols + indices[e] as usize))
                    .collect()
            })
            .collect(),
    };
    let mut indptr = vec![0];
    let mut out_cols = Vec::new();
    let mut vals = Vec::new();
    for row in stored {
        let mut q: Vec<(usize, f32)> = row
            .iter()
            .map(|&(c, at)| (quad_column(c, k), d[at]))
            .collect();
        q.sort_by_key(|e| e.0);
        if dense {
            let mut full = vec![0.0f32; cols4];
            for (c, v) in q {
                full[c] = v;
            }
            out_cols.extend(0..cols4);
            vals.extend(full);
        } else {
            for (c, v) in q {
                out_cols.push(c);
                vals.push(v);
            }
        }
        indptr.push(out_cols.len());
    }
    (indptr, out_cols, vals, cols4)
}

fn weight_tensor(w: &Weight, who: &str) -> Result<TensorSpec> {
    let (dt, elem) = (w.dtype, w.dtype.size());
    if w.dtype == ValueType::I8 && w.shape.len() == 4 {
        let (indptr, indices, values, cols4) = quad_ordered(w);
        let csr = CsrBytes {
            rows: w.rows(),
            cols: cols4,
            indptr,
            indices,
            values: value_bytes(dt, &values),
            elem,
        };
        let data = match &w.storage {
            Storage::Dense(_) => csr.dense(),
            Storage::Csr { index, .. } => csr.encode(*index).ok_or_else(|| {
                Error::Invalid(format!(
                    "scb: {who}: index format {} cannot hold this weight",
                    index.name()
                ))
            })?,
        };
        return Ok(TensorSpec {
            dtype: dt,
            dims: w.shape.clone(),
            data,
            scales: w.scales.clone(),
        });
    }
    let data = match &w.storage {
        Storage::Dense(v) => TensorSpec::dense(dt, w.shape.clone(), value_bytes(dt, v)).data,
        Storage::Csr {
            indptr,
            indices,
            values,
            index,
        } => {
            let csr = CsrBytes {
                rows: w.rows(),
                cols: w.cols(),
                indptr: indptr.iter().map(|&p| p as usize).collect(),
                indices: indices.iter().map(|&i| i as usize).collect(),
                values: value_bytes(dt, values),
                elem,
            };
            csr.encode(*index).ok_or_else(|| {
                Error::Invalid(format!(
                    "scb: {who}: index format {} cannot hold this weight",
                    index.name()
                ))
            })?
        }
    };
    Ok(TensorSpec {
        dtype: dt,
        dims: w.shape.clone(),
        data,
        scales: w.scales.clone(),
    })
}

fn bias_tensor(b: &Bias) -> TensorSpec {
    match b {
        Bias::F32(v) => TensorSpec::dense(
            ValueType::F32,
            vec![v.len()],
            v.iter().flat_map(|x| x.to_le_bytes()).collect(),
        ),
        Bias::I32(v) => TensorSpec::dense(
            ValueType::I32,
            vec![v.len()],
            v.iter().flat_map(|x| x.to_le_bytes()).collect(),
        ),
    }
}

fn small(v: usize, what: &str, who: &str) -> Result<u8> {
    u8::try_from(v).map_err(|_| Error::Invalid(format!("scb: {who}: {what} {v} exceeds 255")))
}

/// `(m, sh)` words of each row of a conv/gemm weight requantised from `s_in` to `s_out`.
fn row_params(w: &Weight, s_in: f32, s_out: f32) -> Vec<i32> {
    let scales = w.scales.as_deref().unwrap_or(&[]);
    let mut p = Vec::with_capacity(2 * scales.len());
    for &sw in scales {
        let (m, sh) = fixed_multiplier(conv_factor(s_in, sw, s_out));
        p.extend([m, sh as i32]);
    }
    p
}

fn add_params(s_a: f32, s_b: f32, s_out: f32) -> [i32; 3] {
    let (ma, mb, sh) = add_multipliers(s_a as f64 / s_out as f64, s_b as f64 / s_out as f64);
    [ma, mb, sh as i32]
}

/// For each node, the indices of the nodes that read it.
fn readers(graph: &Graph) -> Vec<Vec<usize>> {
    let mut r = vec![Vec::new(); graph.nodes.len()];
    for (at, n) in graph.nodes.iter().enumerate() {
        for &i in &n.inputs {
            r[i].push(at);
        }
    }
    r
}

/// The ADD that absorbs convolution `at`, and the ADD's other operand: the convolution has no ReLU, is not
/// the graph output, and the ADD is its only reader.
fn residual_of(graph: &Graph, readers: &[Vec<usize>], at: usize) -> Option<(usize, usize)> {
    let node = &graph.nodes[at];
    if !matches!(node.op, Op::Conv { relu: false, .. }) || at == graph.output() {
        return None;
    }
    let [a] = readers[at][..] else { return None };
    let add = &graph.nodes[a];
    if !matches!(add.op, Op::Add { .. }) || add.inputs[0] == add.inputs[1] {
        return None;
    }
    let other = if add.inputs[0] == at {
        add.inputs[1]
    } else {
        add.inputs[0]
    };
    Some((a, other))
}

/// The loop order of a float convolution: tiles outermost when its staged input exceeds [`L1_BYTES`] and
/// its weights are sparse.
fn conv_schedule(ins: &[usize], stride: usize, pad: usize, w: &Weight) -> u8 {
    let (c, h, wd) = (ins[0], ins[1], ins[2]);
    let phase = (h + 2 * pad).div_ceil(stride) * (wd + 2 * pad).div_ceil(stride);
    let staged = 4 * c * phase * stride * stride;
    if w.dtype != ValueType::I8 && matches!(w.storage, Storage::Csr { .. }) && staged > L1_BYTES {
        schedule::TILES_OUTER
    } else {
        schedule::CHANNELS_OUTER
    }
}

/// Lowers a validated graph (batch norms folded) to an [`ScbModel`] carrying `model_hash`.
pub fn lower(graph: &Graph, model_hash: [u8; 32]) -> Result<ScbModel> {
    graph.validate()?;
    let int8 = graph.is_quantized();
    let mut m = ScbModel {
        int8,
        model_hash,
        normalization: Some((graph.input.mean.clone(), graph.input.std.clone())),
        ..ScbModel::default()
    };
    let scale = |i: usize| graph.nodes[i].scale.unwrap_or(1.0);
    let readers = readers(graph);
    let mut fused: Vec<Option<usize>> = vec![None; graph.nodes.len()];
    for at in 0..graph.nodes.len() {
        if let Some((a, _)) = residual_of(graph, &readers, at) {
            fused[a] = Some(at);
        }
    }
    let absorbed = |at: usize| fused.contains(&Some(at));
    let mut buf_of = vec![0u32; graph.nodes.len()];
    for (at, node) in graph.nodes.iter().enumerate() {
        let who = node.name.as_str();
        if matches!(node.op, Op::Flatten) {
            buf_of[at] = buf_of[node.inputs[0]];
            continue;
        }
        if absorbed(at) {
            continue;
        }
        let out = m.buffers.len() as u32;
        m.buffers.push(BufferSpec {
            dims: node.shape.clone(),
            scale: if int8 { node.scale.unwrap_or(0.0) } else { 0.0 },
        });
        buf_of[at] = out;
        if let Some(conv_at) = fused[at] {
            let conv = &graph.nodes[conv_at];
            let other = if node.inputs[0] == conv_at {
                node.inputs[1]
            } else {
                node.inputs[0]
            };
            let mut op = conv_op(
                graph,
                conv_at,
                buf_of[conv.inputs[0]],
                out,
                &mut m,
                int8,
                scale,
            )?;
            op.residual = true;
            op.relu = node.op.relu();
            op.in1 = buf_of[other];
            if int8 {
                op.params
                    .extend(add_params(scale(conv_at), scale(other), scale(at)));
            }
            m.ops.push(op);
            continue;
        }
        let in0 = node.inputs.first().map_or(NONE, |&i| buf_of[i]);
        let s_in = node.inputs.first().map_or(1.0, |&i| scale(i));
        let mut op = OpSpec::simple(Opcode::Relu, in0, out);
        op.relu = node.op.relu();
        match &node.op {
            Op::Input => {
                m.input = out;
                continue;
            }
            Op::Conv { .. } => op = conv_op(graph, at, in0, out, &mut m, int8, scale)?,
            Op::Gemm { weight, bias, .. } => {
                op.opcode = Opcode::Gemm;
                op.weight = m.tensors.len() as u32;
                m.tensors.push(weight_tensor(weight, who)?);
                if let Some(b) = bias {
                    op.bias = m.tensors.len() as u32;
                    m.tensors.push(bias_tensor(b));
                }
                if int8 {
                    op.params = row_params(weight, s_in, scale(at));
                }
            }
            Op::BatchNorm { .. } => {
                return Err(Error::Invalid(format!(
                    "scb: {who}: batch norm must be folded before lowering"
                )))
            }
            Op::Relu => op.opcode = Opcode::Relu,
            Op::MaxPool { kernel, stride } | Op::AvgPool { kernel, stride } => {
                op.opcode = if matches!(node.op, Op::MaxPool { .. }) {
                    Opcode::MaxPool
                } else {
                    Opcode::AvgPool
                };
                op.kernel = small(*kernel, "kernel", who)?;
                op.stride = small(*stride, "stride", who)?;
                if int8 && op.opcode == Opcode::AvgPool {
                    let (mm, sh) = fixed_multiplier(pool_factor(s_in, scale(at), kernel * kernel));
                    op.params = vec![mm, sh as i32];
                }
            }
            Op::GlobalAvgPool => {
                op.opcode = Opcode::GlobalAvgPool;
                if int8 {
                    let ins = &graph.nodes[node.inputs[0]].shape;
                    let n: usize = ins[1..].iter().product();
                    let (mm, sh) = fixed_multiplier(pool_factor(s_in, scale(at), n));
                    op.params = vec![mm, sh as i32];
                }
            }
            Op::Flatten => unreachable!("flatten aliases its input's buffer"),
            Op::Add { .. } => {
                op.opcode = Opcode::Add;
                op.in1 = buf_of[node.inputs[1]];
                if int8 {
                    op.params = add_params(scale(node.inputs[0]), scale(node.inputs[1]), scale(at))
                        .to_vec();
                }
            }
            Op::SubsamplePad {
                stride, pad_before, ..
            } => {
                op.opcode = Opcode::SubsamplePad;
                op.stride = small(*stride, "stride", who)?;
                op.pad = u16::try_from(*pad_before).map_err(|_| {
                    Error::Invalid(format!("scb: {who}: channel padding too large"))
                })?;
            }
        }
        m.ops.push(op);
    }
    m.output = buf_of[graph.output()];
    Ok(m)
}

/// The CONV op of `node` reading buffer `in0` and writing `out`, its tensors appended to `m`; int8 graphs
/// get the per-channel requantisation to the node's own scale.
fn conv_op(
    graph: &Graph,
    at: usize,
    in0: u32,
    out: u32,
    m: &mut ScbModel,
    int8: bool,
    scale: impl Fn(usize) -> f32,
) -> Result<OpSpec> {
    let node = &graph.nodes[at];
    let who = node.name.as_str();
    let Op::Conv {
        weight,
        bias,
        stride,
        padding,
        relu,
    } = &node.op
    else {
        unreachable!("conv_op of a convolution");
    };
    let mut op = OpSpec::simple(Opcode::Conv, in0, out);
    op.relu = *relu;
    op.kernel = small(weight.shape[2], "kernel", who)?;
    op.stride = small(*stride, "stride", who)?;
    op.pad = u16::try_from(*padding)
        .map_err(|_| Error::Invalid(format!("scb: {who}: padding too large")))?;
    op.weight = m.tensors.len() as u32;
    m.tensors.push(weight_tensor(weight, who)?);
    if let Some(b) = bias {
        op.bias = m.tensors.len() as u32;
        m.tensors.push(bias_tensor(b));
    }
    let input = node.inputs[0];
    op.schedule = conv_schedule(&graph.nodes[input].shape, *stride, *padding, weight);
    if int8 {
        op.params = row_params(weight, scale(input), scale(at));
    }
    Ok(op)
}

/// The int8 requantisation parameters (formats/scb.md §8) of an op of `m` without a residual input, from
/// the scales of its buffers and weight: what [`lower`] stores for it. Empty for float models and for ops
/// without parameters.
pub fn requant_params(m: &ScbModel, op: &OpSpec) -> Vec<i32> {
    if !m.int8 {
        return Vec::new();
    }
    let scale = |b: u32| m.buffers.get(b as usize).map_or(1.0, |b| b.scale);
    let (s_in, s_out) = (scale(op.in0), scale(op.out));
    let fixed = |r: f64| {
        let (mm, sh) = fixed_multiplier(r);
        vec![mm, sh as i32]
    };
    match op.opcode {
        Opcode::Conv | Opcode::Gemm => {
            let scales = m
                .tensors
                .get(op.weight as usize)
                .and_then(|t| t.scales.as_deref())
                .unwrap_or(&[]);
            scales
                .iter()
                .flat_map(|&sw| fixed(conv_factor(s_in, sw, s_out)))
                .collect()
        }
        Opcode::Add => add_params(s_in, scale(op.in1), s_out).to_vec(),
        Opcode::AvgPool => fixed(pool_factor(
            s_in,
            s_out,
            op.kernel as usize * op.kernel as usize,
        )),
        Opcode::GlobalAvgPool => {
            let n: usize = m
                .buffers
                .get(op.in0 as usize)
                .map_or(1, |b| b.dims[1..].iter().product());
            fixed(pool_factor(s_in, s_out, n))
        }
        _ => Vec::new(),
    }
}

/// `.scb` bytes of a graph.
pub fn scb(graph: &Graph, model_hash: [u8; 32]) -> Result<Vec<u8>> {
    lower(graph, model_hash)?.to_bytes()
}

/// C99 `model.h` / `model.c` of a graph.
pub fn c(graph: &Graph, model_hash: [u8; 32]) -> Result<CSource> {
    emit_c(&lower(graph, model_hash)?)
}
