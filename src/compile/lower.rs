//! Lowers an IR graph to the `.scb` model description ([`ScbModel`]) that the binary and C emitters lay out:
//! one activation buffer per node (a flatten aliases its input's buffer: the gemm reads any shape), one op
//! record per node, weights in the storage and index format the IR chose, biases f32 (float graphs) or i32
//! (int8 graphs), the input normalisation, and the model hash.

use sculpt_runtime::format::{dtype, opcode, NONE};

use crate::compile::emit::binary::{
    BufferSpec, CsrBytes, IndexEncoding, OpSpec, ScbModel, TensorSpec,
};
use crate::compile::emit::c::{emit_c, CSource};
use crate::compile::ir::{Bias, DType, Graph, IndexFormat, Op, Storage, Weight};
use crate::error::{Error, Result};

fn encoding(f: IndexFormat) -> IndexEncoding {
    match f {
        IndexFormat::Gap8 => IndexEncoding::Gap8,
        IndexFormat::U16 => IndexEncoding::Idx16,
        IndexFormat::U32 => IndexEncoding::Idx32,
        IndexFormat::Rice => IndexEncoding::Rice,
    }
}

/// The IR index format of a `.scb` index encoding.
pub fn index_format(e: IndexEncoding) -> IndexFormat {
    match e {
        IndexEncoding::Gap8 => IndexFormat::Gap8,
        IndexEncoding::Idx16 => IndexFormat::U16,
        IndexEncoding::Idx32 => IndexFormat::U32,
        IndexEncoding::Rice => IndexFormat::Rice,
    }
}

fn value_bytes(w: &Weight, values: &[f32]) -> (u8, usize, Vec<u8>) {
    match w.dtype {
        DType::F32 => (
            dtype::F32,
            4,
            values.iter().flat_map(|v| v.to_le_bytes()).collect(),
        ),
        DType::F16 => (
            dtype::F16,
            2,
            values
                .iter()
                .flat_map(|v| half::f16::from_f32(*v).to_le_bytes())
                .collect(),
        ),
        DType::I8 => (
            dtype::I8,
            1,
            values.iter().map(|v| (*v as i8) as u8).collect(),
        ),
    }
}

fn weight_tensor(w: &Weight, who: &str) -> Result<TensorSpec> {
    let (dt, elem, _) = value_bytes(w, &[]);
    let data = match &w.storage {
        Storage::Dense(v) => TensorSpec::dense(dt, w.shape.clone(), value_bytes(w, v).2).data,
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
                values: value_bytes(w, values).2,
                elem,
            };
            csr.encode(encoding(*index)).ok_or_else(|| {
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
            dtype::F32,
            vec![v.len()],
            v.iter().flat_map(|x| x.to_le_bytes()).collect(),
        ),
        Bias::I32(v) => TensorSpec::dense(
            dtype::I32,
            vec![v.len()],
            v.iter().flat_map(|x| x.to_le_bytes()).collect(),
        ),
    }
}

fn small(v: usize, what: &str, who: &str) -> Result<u8> {
    u8::try_from(v).map_err(|_| Error::Invalid(format!("scb: {who}: {what} {v} exceeds 255")))
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
    let mut buf_of = vec![0u32; graph.nodes.len()];
    for (at, node) in graph.nodes.iter().enumerate() {
        let who = node.name.as_str();
        if matches!(node.op, Op::Flatten) {
            buf_of[at] = buf_of[node.inputs[0]];
            continue;
        }
        let out = m.buffers.len() as u32;
        m.buffers.push(BufferSpec {
            dims: node.shape.clone(),
            scale: if int8 { node.scale.unwrap_or(0.0) } else { 0.0 },
        });
        buf_of[at] = out;
        let in0 = node.inputs.first().map_or(NONE, |&i| buf_of[i]);
        let mut op = OpSpec::simple(0, in0, out);
        op.relu = node.op.relu();
        match &node.op {
            Op::Input => {
                m.input = out;
                continue;
            }
            Op::Conv {
                weight,
                bias,
                stride,
                padding,
                ..
            } => {
                op.opcode = opcode::CONV;
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
            }
            Op::Gemm { weight, bias, .. } => {
                op.opcode = opcode::GEMM;
                op.weight = m.tensors.len() as u32;
                m.tensors.push(weight_tensor(weight, who)?);
                if let Some(b) = bias {
                    op.bias = m.tensors.len() as u32;
                    m.tensors.push(bias_tensor(b));
                }
            }
            Op::BatchNorm { .. } => {
                return Err(Error::Invalid(format!(
                    "scb: {who}: batch norm must be folded before lowering"
                )))
            }
            Op::Relu => op.opcode = opcode::RELU,
            Op::MaxPool { kernel, stride } | Op::AvgPool { kernel, stride } => {
                op.opcode = if matches!(node.op, Op::MaxPool { .. }) {
                    opcode::MAX_POOL
                } else {
                    opcode::AVG_POOL
                };
                op.kernel = small(*kernel, "kernel", who)?;
                op.stride = small(*stride, "stride", who)?;
            }
            Op::GlobalAvgPool => op.opcode = opcode::GLOBAL_AVG_POOL,
            Op::Flatten => unreachable!("flatten aliases its input's buffer"),
            Op::Add { .. } => {
                op.opcode = opcode::ADD;
                op.in1 = buf_of[node.inputs[1]];
            }
            Op::SubsamplePad {
                stride, pad_before, ..
            } => {
                op.opcode = opcode::SUBSAMPLE_PAD;
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

/// `.scb` bytes of a graph.
pub fn scb(graph: &Graph, model_hash: [u8; 32]) -> Result<Vec<u8>> {
    lower(graph, model_hash)?.to_bytes()
}

/// C99 `model.h` / `model.c` of a graph.
pub fn c(graph: &Graph, model_hash: [u8; 32]) -> Result<CSource> {
    emit_c(&lower(graph, model_hash)?)
}
