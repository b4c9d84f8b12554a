//! ONNX emitters (profile in formats/onnx.md): opset 13, IR version 8. The dense variant stores every constant
//! as a dense `initializer`; the sparse variant stores a conv or gemm weight as `sparse_initializer` (values and
//! int64 linear indices into the row-major weight) where that encodes smaller than the dense initializer, and
//! densely otherwise. The emitters never optimise: they write the graph as it is.
//!
//! The input `input` is the *normalised* image `[N, C, H, W]` (N symbolic); the normalisation is recorded in the
//! model's metadata (`sculpt.normalization.mean`, `sculpt.normalization.std`, JSON arrays) together with
//! `sculpt.model_hash` (hex) and `sculpt.graph_sha256`, the SHA-256 of the serialised graph, which the importer
//! checks to detect corruption. The output `logits` is `[N, classes]`.

use onnx_protobuf::{
    attribute_proto::AttributeType, tensor_proto::DataType, tensor_shape_proto, type_proto,
    AttributeProto, GraphProto, ModelProto, NodeProto, OperatorSetIdProto, SparseTensorProto,
    StringStringEntryProto, TensorProto, TensorShapeProto, TypeProto, ValueInfoProto,
};
use protobuf::{Message, MessageField};
use sha2::{Digest, Sha256};

use crate::compile::ir::{Bias, Graph, Op, ValueType, Weight};
use crate::error::{Error, Result};

/// The ONNX opset the emitters target.
pub const OPSET: i64 = 13;
/// The ONNX IR version the emitters write.
pub const IR_VERSION: i64 = 8;
/// Name of the graph input.
pub const INPUT: &str = "input";
/// Name of the graph output.
pub const OUTPUT: &str = "logits";

/// Metadata key of the integrity check: hex SHA-256 of the serialised `GraphProto`.
pub const GRAPH_SHA256: &str = "sculpt.graph_sha256";

/// Which constant layout to write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Variant {
    /// Every constant as a dense initializer.
    Dense,
    /// Conv and gemm weights as sparse initializers.
    Sparse,
}

fn attr_ints(name: &str, v: &[i64]) -> AttributeProto {
    let mut a = AttributeProto::new();
    a.name = name.into();
    a.type_ = AttributeType::INTS.into();
    a.ints = v.to_vec();
    a
}

fn attr_int(name: &str, v: i64) -> AttributeProto {
    let mut a = AttributeProto::new();
    a.name = name.into();
    a.type_ = AttributeType::INT.into();
    a.i = v;
    a
}

fn node(
    op: &str,
    name: &str,
    inputs: &[&str],
    output: &str,
    attrs: Vec<AttributeProto>,
) -> NodeProto {
    let mut n = NodeProto::new();
    n.op_type = op.into();
    n.name = name.into();
    n.input = inputs.iter().map(|s| s.to_string()).collect();
    n.output = vec![output.into()];
    n.attribute = attrs;
    n
}

fn f32_tensor(name: &str, dims: &[usize], v: &[f32]) -> TensorProto {
    let mut t = TensorProto::new();
    t.name = name.into();
    t.data_type = DataType::FLOAT as i32;
    t.dims = dims.iter().map(|&d| d as i64).collect();
    t.raw_data = v.iter().flat_map(|x| x.to_le_bytes()).collect();
    t
}

fn i64_tensor(name: &str, dims: &[usize], v: &[i64]) -> TensorProto {
    let mut t = TensorProto::new();
    t.name = name.into();
    t.data_type = DataType::INT64 as i32;
    t.dims = dims.iter().map(|&d| d as i64).collect();
    t.raw_data = v.iter().flat_map(|x| x.to_le_bytes()).collect();
    t
}

fn value_info(name: &str, dims: &[Result<i64, &str>]) -> ValueInfoProto {
    let mut shape = TensorShapeProto::new();
    for d in dims {
        let mut dim = tensor_shape_proto::Dimension::new();
        dim.value = Some(match d {
            Ok(v) => tensor_shape_proto::dimension::Value::DimValue(*v),
            Err(p) => tensor_shape_proto::dimension::Value::DimParam(p.to_string()),
        });
        shape.dim.push(dim);
    }
    let mut tt = type_proto::Tensor::new();
    tt.elem_type = DataType::FLOAT as i32;
    tt.shape = MessageField::some(shape);
    let mut ty = TypeProto::new();
    ty.value = Some(type_proto::Value::TensorType(tt));
    let mut v = ValueInfoProto::new();
    v.name = name.into();
    v.type_ = MessageField::some(ty);
    v
}

fn meta(key: &str, value: String) -> StringStringEntryProto {
    let mut e = StringStringEntryProto::new();
    e.key = key.into();
    e.value = value;
    e
}

/// Real (dequantised) weight values; float graphs only.
fn real_weight(w: &Weight, who: &str) -> Result<Vec<f32>> {
    if w.dtype == ValueType::I8 {
        return Err(Error::Invalid(format!(
            "onnx: {who}: int8 weights are not exported to ONNX"
        )));
    }
    Ok(w.real_dense())
}

struct Builder {
    g: GraphProto,
    variant: Variant,
}

impl Builder {
    fn weight(&mut self, name: &str, w: &Weight, who: &str) -> Result<()> {
        let dense = real_weight(w, who)?;
        match self.variant {
            Variant::Dense => self.g.initializer.push(f32_tensor(name, &w.shape, &dense)),
            Variant::Sparse => {
                let full = f32_tensor(name, &w.shape, &dense);
                let (idx, vals): (Vec<i64>, Vec<f32>) = dense
                    .iter()
                    .enumerate()
                    .filter(|(_, v)| **v != 0.0)
                    .map(|(i, v)| (i as i64, *v))
                    .unzip();
                let mut s = SparseTensorProto::new();
                s.values = MessageField::some(f32_tensor(name, &[vals.len()], &vals));
                s.indices = MessageField::some(i64_tensor("", &[idx.len()], &idx));
                s.dims = w.shape.iter().map(|&d| d as i64).collect();
                if s.compute_size() < full.compute_size() {
                    self.g.sparse_initializer.push(s);
                } else {
                    self.g.initializer.push(full);
                }
            }
        }
        Ok(())
    }

    fn bias(&mut self, name: &str, b: &Option<Bias>, who: &str) -> Result<Option<String>> {
        match b {
            None => Ok(None),
            Some(Bias::F32(v)) => {
                self.g.initializer.push(f32_tensor(name, &[v.len()], v));
                Ok(Some(name.to_string()))
            }
            Some(Bias::I32(_)) => Err(Error::Invalid(format!(
                "onnx: {who}: int8 biases are not exported to ONNX"
            ))),
        }
    }

    fn relu_after(&mut self, name: &str, pre: &str, out: &str) {
        self.g
            .node
            .push(node("Relu", &format!("{name}.relu"), &[pre], out, vec![]));
    }
}

/// Builds the ONNX model of a float graph.
pub fn to_model(graph: &Graph, variant: Variant) -> Result<ModelProto> {
    graph.validate()?;
    if graph.is_quantized() {
        return Err(Error::Invalid(
            "onnx: quantised graphs are exported as .scb and C only".into(),
        ));
    }
    let mut b = Builder {
        g: GraphProto::new(),
        variant,
    };
    b.g.name = "sculpt".into();
    let last = graph.output();
    let names: Vec<String> = graph
        .nodes
        .iter()
        .enumerate()
        .map(|(i, n)| {
            if i == 0 {
                INPUT.to_string()
            } else if i == last {
                OUTPUT.to_string()
            } else {
                n.name.clone()
            }
        })
        .collect();
    for (i, n) in graph.nodes.iter().enumerate().skip(1) {
        let out = names[i].as_str();
        let x = names[n.inputs[0]].as_str();
        let pre = format!("{}.pre", n.name);
        let name = n.name.as_str();
        match &n.op {
            Op::Input => unreachable!("validate() keeps the input at node 0"),
            Op::Conv {
                weight,
                bias,
                stride,
                padding,
                relu,
            } => {
                let wname = format!("{name}.weight");
                b.weight(&wname, weight, name)?;
                let mut ins = vec![x.to_string(), wname];
                ins.extend(b.bias(&format!("{name}.bias"), bias, name)?);
                let k = weight.shape[2] as i64;
                let (s, p) = (*stride as i64, *padding as i64);
                let target = if *relu { pre.as_str() } else { out };
                let ins: Vec<&str> = ins.iter().map(|s| s.as_str()).collect();
                b.g.node.push(node(
                    "Conv",
                    name,
                    &ins,
                    target,
                    vec![
                        attr_ints("kernel_shape", &[k, k]),
                        attr_ints("strides", &[s, s]),
                        attr_ints("pads", &[p, p, p, p]),
                    ],
                ));
                if *relu {
                    b.relu_after(name, &pre, out);
                }
            }
            Op::Gemm { weight, bias, relu } => {
                let src = graph.nodes[n.inputs[0]].shape.len();
                let flat = format!("{name}.flatten");
                let xin = if src == 1 {
                    x.to_string()
                } else {
                    b.g.node.push(node(
                        "Flatten",
                        &flat,
                        &[x],
                        &flat,
                        vec![attr_int("axis", 1)],
                    ));
                    flat.clone()
                };
                let wname = format!("{name}.weight");
                b.weight(&wname, weight, name)?;
                let mut ins = vec![xin, wname];
                ins.extend(b.bias(&format!("{name}.bias"), bias, name)?);
                let target = if *relu { pre.as_str() } else { out };
                let ins: Vec<&str> = ins.iter().map(|s| s.as_str()).collect();
                b.g.node.push(node(
                    "Gemm",
                    name,
                    &ins,
                    target,
                    vec![attr_int("transB", 1)],
                ));
                if *relu {
                    b.relu_after(name, &pre, out);
                }
            }
            Op::BatchNorm {
                gamma,
                beta,
                mean,
                var,
                eps,
            } => {
                let c = gamma.len();
                let p: Vec<String> = ["weight", "bias", "running_mean", "running_var"]
                    .iter()
                    .map(|s| format!("{name}.{s}"))
                    .collect();
                for (pn, v) in p.iter().zip([gamma, beta, mean, var]) {
                    b.g.initializer.push(f32_tensor(pn, &[c], v));
                }
                let mut a = AttributeProto::new();
                a.name = "epsilon".into();
                a.type_ = AttributeType::FLOAT.into();
                a.f = *eps;
                b.g.node.push(node(
                    "BatchNormalization",
                    name,
                    &[x, &p[0], &p[1], &p[2], &p[3]],
                    out,
                    vec![a],
                ));
            }
            Op::Relu => b.g.node.push(node("Relu", name, &[x], out, vec![])),
            Op::MaxPool { kernel, stride } | Op::AvgPool { kernel, stride } => {
                let op = if matches!(n.op, Op::MaxPool { .. }) {
                    "MaxPool"
                } else {
                    "AveragePool"
                };
                let (k, s) = (*kernel as i64, *stride as i64);
                b.g.node.push(node(
                    op,
                    name,
                    &[x],
                    out,
                    vec![
                        attr_ints("kernel_shape", &[k, k]),
                        attr_ints("strides", &[s, s]),
                    ],
                ));
            }
            Op::GlobalAvgPool => {
                b.g.node
                    .push(node("GlobalAveragePool", name, &[x], &pre, vec![]));
                b.g.node.push(node(
                    "Flatten",
                    &format!("{name}.flatten"),
                    &[&pre],
                    out,
                    vec![attr_int("axis", 1)],
                ));
            }
            Op::Flatten => {
                b.g.node
                    .push(node("Flatten", name, &[x], out, vec![attr_int("axis", 1)]))
            }
            Op::Add { relu } => {
                let y = names[n.inputs[1]].as_str();
                let target = if *relu { pre.as_str() } else { out };
                b.g.node.push(node("Add", name, &[x, y], target, vec![]));
                if *relu {
                    b.relu_after(name, &pre, out);
                }
            }
            Op::SubsamplePad {
                stride,
                pad_before,
                pad_after,
            } => {
                let consts = [
                    (format!("{name}.starts"), vec![0i64, 0]),
                    (format!("{name}.ends"), vec![i64::MAX, i64::MAX]),
                    (format!("{name}.axes"), vec![2, 3]),
                    (
                        format!("{name}.steps"),
                        vec![*stride as i64, *stride as i64],
                    ),
                    (
                        format!("{name}.pads"),
                        vec![0, *pad_before as i64, 0, 0, 0, *pad_after as i64, 0, 0],
                    ),
                ];
                for (cn, v) in &consts {
                    b.g.initializer.push(i64_tensor(cn, &[v.len()], v));
                }
                let sliced = format!("{name}.slice");
                b.g.node.push(node(
                    "Slice",
                    &sliced,
                    &[x, &consts[0].0, &consts[1].0, &consts[2].0, &consts[3].0],
                    &sliced,
                    vec![],
                ));
                b.g.node
                    .push(node("Pad", name, &[&sliced, &consts[4].0], out, vec![]));
            }
        }
    }
    let [c, h, w] = graph.input.shape;
    b.g.input.push(value_info(
        INPUT,
        &[Err("N"), Ok(c as i64), Ok(h as i64), Ok(w as i64)],
    ));
    b.g.output
        .push(value_info(OUTPUT, &[Err("N"), Ok(graph.classes() as i64)]));
    let mut m = ModelProto::new();
    m.ir_version = IR_VERSION;
    let mut opset = OperatorSetIdProto::new();
    opset.domain = String::new();
    opset.version = OPSET;
    m.opset_import.push(opset);
    m.producer_name = "sculpt".into();
    m.producer_version = env!("CARGO_PKG_VERSION").into();
    let graph_bytes =
        b.g.write_to_bytes()
            .map_err(|e| Error::Invalid(format!("onnx: cannot serialise: {e}")))?;
    m.graph = MessageField::some(b.g);
    let json = |v: &[f32]| serde_json::to_string(v).expect("f32 arrays serialise");
    m.metadata_props
        .push(meta("sculpt.normalization.mean", json(&graph.input.mean)));
    m.metadata_props
        .push(meta("sculpt.normalization.std", json(&graph.input.std)));
    m.metadata_props
        .push(meta("sculpt.model_hash", hex(&graph.model_hash())));
    m.metadata_props
        .push(meta(GRAPH_SHA256, hex(&Sha256::digest(&graph_bytes))));
    Ok(m)
}

/// Lower-case hex of bytes.
pub fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Serialised ONNX bytes of a float graph; `hash` (when given) replaces the graph's own model hash in the
/// metadata so that every export of one compilation carries the same hash.
pub fn emit(graph: &Graph, variant: Variant, hash: Option<&[u8; 32]>) -> Result<Vec<u8>> {
    let mut m = to_model(graph, variant)?;
    if let Some(h) = hash {
        for e in &mut m.metadata_props {
            if e.key == "sculpt.model_hash" {
                e.value = hex(h);
            }
        }
    }
    m.write_to_bytes()
        .map_err(|e| Error::Invalid(format!("onnx: cannot serialise: {e}")))
}
