//! Imports ONNX models of the supported subset (formats/onnx.md) as PyTorch exports them: Conv, Gemm,
//! MatMul (+Add of a constant), BatchNormalization, Relu, MaxPool, AveragePool, GlobalAveragePool, Add, Flatten,
//! Reshape to 2-D, Slice (spatial subsampling) and Pad (channel zero padding) for the option-A shortcut,
//! Identity; constants from `initializer`, `sparse_initializer` and `Constant` nodes. Anything else is an error
//! naming the op; malformed protobuf, missing initializers and inconsistent shapes are errors, never panics.

use std::collections::BTreeMap;
use std::path::Path;

use onnx_protobuf::{tensor_proto::DataType, AttributeProto, ModelProto, NodeProto, TensorProto};
use protobuf::Message;
use sha2::{Digest, Sha256};

use crate::compile::emit::onnx::GRAPH_SHA256;

use crate::compile::ir::{Bias, Graph, IndexFormat, InputSpec, Op, Storage, Weight};
use crate::error::{Error, Result};

/// A constant: dims and values (f32 or i64), with the CSR pattern of a sparse initializer when it had one.
#[derive(Debug, Clone)]
struct Const {
    dims: Vec<usize>,
    f32: Vec<f32>,
    i64: Vec<i64>,
    sparse: Option<Vec<usize>>,
}

struct Ctx<'a> {
    path: &'a Path,
    consts: BTreeMap<String, Const>,
    /// ONNX value name → IR node index.
    values: BTreeMap<String, usize>,
    g: Graph,
}

fn err(path: &Path, msg: impl Into<String>) -> Error {
    Error::format(path, format!("onnx: {}", msg.into()))
}

fn tensor_const(path: &Path, t: &TensorProto) -> Result<Const> {
    let dims: Vec<usize> = t
        .dims
        .iter()
        .map(|&d| {
            usize::try_from(d).map_err(|_| {
                err(
                    path,
                    format!("tensor '{}' has a negative dimension", t.name),
                )
            })
        })
        .collect::<Result<_>>()?;
    let n = dims.iter().try_fold(1usize, |a, &d| a.checked_mul(d));
    let n = n
        .filter(|&n| n <= 1 << 31)
        .ok_or_else(|| err(path, format!("tensor '{}' is too large", t.name)))?;
    if !t.external_data.is_empty() {
        return Err(err(
            path,
            format!(
                "tensor '{}' uses external data, which is not supported",
                t.name
            ),
        ));
    }
    let (f32v, i64v) = if t.data_type == DataType::FLOAT as i32 {
        let v: Vec<f32> = if !t.raw_data.is_empty() {
            t.raw_data
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect()
        } else {
            t.float_data.clone()
        };
        (v, vec![])
    } else if t.data_type == DataType::INT64 as i32 {
        let v: Vec<i64> = if !t.raw_data.is_empty() {
            t.raw_data
                .chunks_exact(8)
                .map(|b| i64::from_le_bytes(b.try_into().expect("8 bytes")))
                .collect()
        } else {
            t.int64_data.clone()
        };
        (v.iter().map(|&x| x as f32).collect(), v)
    } else {
        return Err(err(
            path,
            format!(
                "tensor '{}' has unsupported data type {}",
                t.name, t.data_type
            ),
        ));
    };
    let got = f32v.len();
    let raw_ok =
        t.raw_data.is_empty() || t.raw_data.len() == n * if i64v.is_empty() { 4 } else { 8 };
    if got != n || !raw_ok {
        return Err(err(
            path,
            format!(
                "tensor '{}' holds {got} values, its dims {dims:?} need {n}",
                t.name
            ),
        ));
    }
    Ok(Const {
        dims,
        f32: f32v,
        i64: i64v,
        sparse: None,
    })
}

fn attr<'a>(n: &'a NodeProto, name: &str) -> Option<&'a AttributeProto> {
    n.attribute.iter().find(|a| a.name == name)
}

fn attr_ints(n: &NodeProto, name: &str) -> Option<Vec<i64>> {
    attr(n, name).map(|a| a.ints.clone())
}

fn attr_int(n: &NodeProto, name: &str, default: i64) -> i64 {
    attr(n, name).map_or(default, |a| a.i)
}

impl Ctx<'_> {
    fn bad(&self, n: &NodeProto, msg: impl std::fmt::Display) -> Error {
        err(
            self.path,
            format!("node '{}' ({}): {msg}", n.name, n.op_type),
        )
    }

    fn konst(&self, n: &NodeProto, k: usize) -> Result<&Const> {
        let name = n
            .input
            .get(k)
            .ok_or_else(|| self.bad(n, format!("missing input {k}")))?;
        self.consts.get(name).ok_or_else(|| {
            self.bad(
                n,
                format!("input '{name}' is not an initializer or constant"),
            )
        })
    }

    fn value(&self, n: &NodeProto, k: usize) -> Result<usize> {
        let name = n
            .input
            .get(k)
            .ok_or_else(|| self.bad(n, format!("missing input {k}")))?;
        self.values.get(name).copied().ok_or_else(|| {
            if self.consts.contains_key(name) {
                self.bad(
                    n,
                    format!("input '{name}' must be computed, not a constant"),
                )
            } else {
                self.bad(
                    n,
                    format!(
                        "input '{name}' is not produced by any earlier node (missing initializer?)"
                    ),
                )
            }
        })
    }

    fn out(&self, n: &NodeProto) -> Result<String> {
        match n.output.first() {
            Some(o) if !o.is_empty() => Ok(o.clone()),
            _ => Err(self.bad(n, "has no output")),
        }
    }

    fn push(&mut self, n: &NodeProto, op: Op, inputs: Vec<usize>) -> Result<()> {
        let name = if n.name.is_empty() {
            self.out(n)?
        } else {
            n.name.clone()
        };
        let i = self.g.push(name, op, inputs).map_err(|e| self.bad(n, e))?;
        let o = self.out(n)?;
        self.values.insert(o, i);
        Ok(())
    }

    fn alias(&mut self, n: &NodeProto, to: usize) -> Result<()> {
        let o = self.out(n)?;
        self.values.insert(o, to);
        Ok(())
    }

    fn weight(&self, n: &NodeProto, k: usize, shape: Vec<usize>) -> Result<Weight> {
        let c = self.konst(n, k)?;
        if c.dims != shape {
            return Err(self.bad(
                n,
                format!(
                    "weight '{}' has shape {:?}, expected {shape:?}",
                    n.input[k], c.dims
                ),
            ));
        }
        Ok(self.to_weight(c, shape))
    }

    fn to_weight(&self, c: &Const, shape: Vec<usize>) -> Weight {
        let mut w = Weight::dense(shape, c.f32.clone());
        if let Some(lin) = &c.sparse {
            let cols = w.cols();
            let mut indptr = vec![0u32; w.rows() + 1];
            for &i in lin {
                indptr[i / cols + 1] += 1;
            }
            for r in 0..w.rows() {
                indptr[r + 1] += indptr[r];
            }
            w.storage = Storage::Csr {
                indptr,
                indices: lin.iter().map(|&i| (i % cols) as u32).collect(),
                values: lin.iter().map(|&i| c.f32[i]).collect(),
                index: IndexFormat::U32,
            };
        }
        w
    }

    fn bias(&self, n: &NodeProto, k: usize, rows: usize) -> Result<Option<Bias>> {
        if n.input.get(k).is_none_or(|s| s.is_empty()) {
            return Ok(None);
        }
        let c = self.konst(n, k)?;
        if c.f32.len() != rows || c.dims.len() != 1 {
            return Err(self.bad(n, format!("bias has shape {:?}, expected [{rows}]", c.dims)));
        }
        Ok(Some(Bias::F32(c.f32.clone())))
    }

    fn square(&self, n: &NodeProto, name: &str) -> Result<usize> {
        match attr_ints(n, name).as_deref() {
            Some([a, b]) if a == b && *a >= 1 => Ok(*a as usize),
            other => Err(self.bad(
                n,
                format!("{name} must be two equal positive values, got {other:?}"),
            )),
        }
    }

    fn no_dilation_or_autopad(&self, n: &NodeProto) -> Result<()> {
        if let Some(d) = attr_ints(n, "dilations") {
            if d.iter().any(|&v| v != 1) {
                return Err(self.bad(n, format!("dilations {d:?} are not supported")));
            }
        }
        if let Some(a) = attr(n, "auto_pad") {
            if !a.s.is_empty() && a.s != b"NOTSET" {
                return Err(self.bad(n, "auto_pad is not supported (use explicit pads)"));
            }
        }
        Ok(())
    }

    fn pads(&self, n: &NodeProto) -> Result<usize> {
        match attr_ints(n, "pads").as_deref() {
            None => Ok(0),
            Some([a, b, c, d]) if a == b && b == c && c == d && *a >= 0 => Ok(*a as usize),
            Some(p) => Err(self.bad(n, format!("pads {p:?} must be four equal values"))),
        }
    }

    fn node(&mut self, n: &NodeProto) -> Result<()> {
        if !n.domain.is_empty() && n.domain != "ai.onnx" {
            return Err(self.bad(
                n,
                format!("operator domain '{}' is not supported", n.domain),
            ));
        }
        match n.op_type.as_str() {
            "Constant" => {
                let t = attr(n, "value").and_then(|a| a.t.as_ref()).ok_or_else(|| {
                    self.bad(n, "only the tensor `value` form of Constant is supported")
                })?;
                let c = tensor_const(self.path, t)?;
                self.consts.insert(self.out(n)?, c);
            }
            "Identity" | "Dropout" => {
                let x = self.value(n, 0)?;
                self.alias(n, x)?;
            }
            "Conv" => {
                let x = self.value(n, 0)?;
                self.no_dilation_or_autopad(n)?;
                if attr_int(n, "group", 1) != 1 {
                    return Err(self.bad(n, "grouped convolution is not supported"));
                }
                let c = self.konst(n, 1)?.dims.clone();
                if c.len() != 4 {
                    return Err(self.bad(n, format!("weight must be 4-D, got {c:?}")));
                }
                let k = match attr_ints(n, "kernel_shape") {
                    Some(_) => self.square(n, "kernel_shape")?,
                    None => c[2],
                };
                let stride = if attr(n, "strides").is_some() {
                    self.square(n, "strides")?
                } else {
                    1
                };
                let padding = self.pads(n)?;
                let weight = self.weight(n, 1, vec![c[0], c[1], k, k])?;
                let bias = self.bias(n, 2, c[0])?;
                self.push(
                    n,
                    Op::Conv {
                        weight,
                        bias,
                        stride,
                        padding,
                        relu: false,
                    },
                    vec![x],
                )?;
            }
            "Gemm" => {
                let x = self.value(n, 0)?;
                if attr_int(n, "transA", 0) != 0 {
                    return Err(self.bad(n, "transA is not supported"));
                }
                for a in ["alpha", "beta"] {
                    if attr(n, a).is_some_and(|v| v.f != 1.0) {
                        return Err(self.bad(n, format!("{a} other than 1 is not supported")));
                    }
                }
                let c = self.konst(n, 1)?.clone();
                if c.dims.len() != 2 {
                    return Err(self.bad(n, format!("weight must be 2-D, got {:?}", c.dims)));
                }
                let weight = if attr_int(n, "transB", 0) != 0 {
                    self.to_weight(&c, c.dims.clone())
                } else {
                    self.to_weight(&transpose(&c), vec![c.dims[1], c.dims[0]])
                };
                let bias = self.bias(n, 2, weight.rows())?;
                self.push(
                    n,
                    Op::Gemm {
                        weight,
                        bias,
                        relu: false,
                    },
                    vec![x],
                )?;
            }
            "MatMul" => {
                let x = self.value(n, 0)?;
                let c = self.konst(n, 1)?.clone();
                if c.dims.len() != 2 {
                    return Err(self.bad(n, format!("MatMul weight must be 2-D, got {:?}", c.dims)));
                }
                let weight = self.to_weight(&transpose(&c), vec![c.dims[1], c.dims[0]]);
                self.push(
                    n,
                    Op::Gemm {
                        weight,
                        bias: None,
                        relu: false,
                    },
                    vec![x],
                )?;
            }
            "BatchNormalization" => {
                let x = self.value(n, 0)?;
                let ch = self.g.nodes[x].shape.first().copied().unwrap_or(0);
                let mut p = Vec::new();
                for k in 1..5 {
                    let c = self.konst(n, k)?;
                    if c.f32.len() != ch {
                        return Err(self.bad(
                            n,
                            format!("parameter {k} has {} values for {ch} channels", c.f32.len()),
                        ));
                    }
                    p.push(c.f32.clone());
                }
                let eps = attr(n, "epsilon").map_or(1e-5, |a| a.f);
                let var = p.pop().unwrap_or_default();
                let mean = p.pop().unwrap_or_default();
                let beta = p.pop().unwrap_or_default();
                let gamma = p.pop().unwrap_or_default();
                self.push(
                    n,
                    Op::BatchNorm {
                        gamma,
                        beta,
                        mean,
                        var,
                        eps,
                    },
                    vec![x],
                )?;
            }
            "Relu" => {
                let x = self.value(n, 0)?;
                self.push(n, Op::Relu, vec![x])?;
            }
            "MaxPool" | "AveragePool" => {
                let x = self.value(n, 0)?;
                self.no_dilation_or_autopad(n)?;
                if self.pads(n)? != 0 || attr_int(n, "ceil_mode", 0) != 0 {
                    return Err(self.bad(n, "padded or ceil-mode pooling is not supported"));
                }
                let kernel = self.square(n, "kernel_shape")?;
                let stride = if attr(n, "strides").is_some() {
                    self.square(n, "strides")?
                } else {
                    1
                };
                let op = if n.op_type == "MaxPool" {
                    Op::MaxPool { kernel, stride }
                } else {
                    Op::AvgPool { kernel, stride }
                };
                self.push(n, op, vec![x])?;
            }
            "GlobalAveragePool" => {
                let x = self.value(n, 0)?;
                self.push(n, Op::GlobalAvgPool, vec![x])?;
            }
            "Flatten" | "Reshape" => {
                let x = self.value(n, 0)?;
                if n.op_type == "Flatten" && attr_int(n, "axis", 1) != 1 {
                    return Err(self.bad(n, "only Flatten with axis 1 is supported"));
                }
                if n.op_type == "Reshape" {
                    let numel: usize = self.g.nodes[x].shape.iter().product();
                    let s = self.konst(n, 1)?.i64.clone();
                    let ok = s.len() == 2
                        && (s[0] == -1 || s[0] == 0 || s[0] == 1)
                        && (s[1] == -1 || s[1] == numel as i64);
                    if !ok || (s[0] == -1 && s[1] == -1) {
                        return Err(self.bad(
                            n,
                            format!("only a reshape to [N, {numel}] is supported, got {s:?}"),
                        ));
                    }
                }
                if self.g.nodes[x].shape.len() == 1 {
                    self.alias(n, x)?;
                } else {
                    self.push(n, Op::Flatten, vec![x])?;
                }
            }
            "Add" => {
                let a_const = n.input.first().is_some_and(|s| self.consts.contains_key(s));
                let b_const = n.input.get(1).is_some_and(|s| self.consts.contains_key(s));
                if a_const || b_const {
                    let (xk, ck) = if a_const { (1, 0) } else { (0, 1) };
                    let x = self.value(n, xk)?;
                    let c = self.konst(n, ck)?.f32.clone();
                    let rows = self.g.nodes[x].shape.iter().product::<usize>();
                    let node = &mut self.g.nodes[x];
                    match &mut node.op {
                        Op::Gemm {
                            bias: bias @ None, ..
                        } if c.len() == rows => *bias = Some(Bias::F32(c)),
                        _ => {
                            return Err(self.bad(
                                n,
                                "adding a constant is supported only as the bias of a MatMul",
                            ))
                        }
                    }
                    self.alias(n, x)?;
                } else {
                    let (a, b) = (self.value(n, 0)?, self.value(n, 1)?);
                    self.push(n, Op::Add { relu: false }, vec![a, b])?;
                }
            }
            "Slice" => {
                let x = self.value(n, 0)?;
                let get = |k: usize| -> Result<Vec<i64>> { Ok(self.konst(n, k)?.i64.clone()) };
                let (starts, ends, axes) = (get(1)?, get(2)?, get(3)?);
                let steps = if n.input.len() > 4 {
                    get(4)?
                } else {
                    vec![1; starts.len()]
                };
                let dims = self.g.nodes[x].shape.clone();
                let full = |k: usize, ax: usize| -> bool {
                    starts.get(k) == Some(&0)
                        && ends
                            .get(k)
                            .is_some_and(|&e| e >= dims.get(ax - 1).copied().unwrap_or(0) as i64)
                };
                let ok = dims.len() == 3
                    && axes == [2, 3]
                    && steps.len() == 2
                    && steps[0] == steps[1]
                    && steps[0] >= 1
                    && full(0, 2)
                    && full(1, 3);
                if !ok {
                    return Err(self.bad(n, "only a full spatial subsampling slice (axes 2 and 3, equal steps) is supported"));
                }
                self.push(
                    n,
                    Op::SubsamplePad {
                        stride: steps[0] as usize,
                        pad_before: 0,
                        pad_after: 0,
                    },
                    vec![x],
                )?;
            }
            "Pad" => {
                let x = self.value(n, 0)?;
                let mode = attr(n, "mode").map(|a| a.s.clone()).unwrap_or_default();
                if !mode.is_empty() && mode != b"constant" {
                    return Err(self.bad(n, "only constant padding is supported"));
                }
                if n.input.len() > 2
                    && !n.input[2].is_empty()
                    && self.konst(n, 2)?.f32.iter().any(|&v| v != 0.0)
                {
                    return Err(self.bad(n, "only zero padding is supported"));
                }
                let p = self.konst(n, 1)?.i64.clone();
                if p.len() != 8
                    || p.iter()
                        .enumerate()
                        .any(|(i, &v)| (i != 1 && i != 5 && v != 0) || v < 0)
                {
                    return Err(self.bad(
                        n,
                        format!("only channel padding is supported, got pads {p:?}"),
                    ));
                }
                let (before, after) = (p[1] as usize, p[5] as usize);
                match &self.g.nodes[x].op {
                    Op::SubsamplePad {
                        stride,
                        pad_before: 0,
                        pad_after: 0,
                    } if x == self.g.output() => {
                        let stride = *stride;
                        let prev = self.g.nodes.pop().expect("x is the last node");
                        self.values.retain(|_, v| *v != x);
                        self.push(
                            n,
                            Op::SubsamplePad {
                                stride,
                                pad_before: before,
                                pad_after: after,
                            },
                            prev.inputs,
                        )?;
                    }
                    _ => self.push(
                        n,
                        Op::SubsamplePad {
                            stride: 1,
                            pad_before: before,
                            pad_after: after,
                        },
                        vec![x],
                    )?,
                }
            }
            other => return Err(self.bad(n, format!("unsupported operator {other}"))),
        }
        Ok(())
    }
}

fn transpose(c: &Const) -> Const {
    let (r, k) = (c.dims[0], c.dims[1]);
    let mut f = vec![0.0; c.f32.len()];
    for i in 0..r {
        for j in 0..k {
            f[j * r + i] = c.f32[i * k + j];
        }
    }
    let sparse = c.sparse.as_ref().map(|s| {
        let mut t: Vec<usize> = s.iter().map(|&l| (l % k) * r + l / k).collect();
        t.sort_unstable();
        t
    });
    Const {
        dims: vec![k, r],
        f32: f,
        i64: vec![],
        sparse,
    }
}

fn metadata_vec(m: &ModelProto, key: &str) -> Option<Vec<f32>> {
    m.metadata_props
        .iter()
        .find(|e| e.key == key)
        .and_then(|e| serde_json::from_str(&e.value).ok())
}

/// Imports an ONNX model from bytes; `path` names the source in errors.
pub fn import_bytes(bytes: &[u8], path: &Path) -> Result<Graph> {
    let m = ModelProto::parse_from_bytes(bytes)
        .map_err(|e| err(path, format!("malformed protobuf: {e}")))?;
    let graph = m
        .graph
        .as_ref()
        .ok_or_else(|| err(path, "the model has no graph"))?;
    if let Some(e) = m.metadata_props.iter().find(|e| e.key == GRAPH_SHA256) {
        let bytes = graph
            .write_to_bytes()
            .map_err(|e| err(path, format!("cannot re-serialise the graph: {e}")))?;
        let got: String = Sha256::digest(&bytes)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        if got != e.value {
            return Err(err(
                path,
                format!(
                    "integrity check failed: the graph's SHA-256 is {got}, the file records {}",
                    e.value
                ),
            ));
        }
    }
    if let Some(o) = m
        .opset_import
        .iter()
        .find(|o| o.domain.is_empty() || o.domain == "ai.onnx")
    {
        if o.version < 7 {
            return Err(err(
                path,
                format!("opset {} is too old (7 or later supported)", o.version),
            ));
        }
    }
    let mut consts = BTreeMap::new();
    for t in &graph.initializer {
        consts.insert(t.name.clone(), tensor_const(path, t)?);
    }
    for s in &graph.sparse_initializer {
        let vals = s
            .values
            .as_ref()
            .ok_or_else(|| err(path, "sparse initializer without values"))?;
        let v = tensor_const(path, vals)?;
        let idx = s.indices.as_ref().ok_or_else(|| {
            err(
                path,
                format!("sparse initializer '{}' without indices", vals.name),
            )
        })?;
        let idx = tensor_const(path, idx)?;
        let dims: Vec<usize> = s.dims.iter().map(|&d| d.max(0) as usize).collect();
        let n = dims
            .iter()
            .try_fold(1usize, |a, &d| a.checked_mul(d))
            .filter(|&n| n <= 1 << 31);
        let n = n.ok_or_else(|| {
            err(
                path,
                format!("sparse initializer '{}' is too large", vals.name),
            )
        })?;
        if idx.dims.len() != 1 || idx.i64.len() != v.f32.len() || v.dims.len() != 1 {
            return Err(err(path, format!("sparse initializer '{}': only 1-D linear int64 indices are supported, matching the values", vals.name)));
        }
        let mut dense = vec![0.0f32; n];
        let mut lin = Vec::with_capacity(idx.i64.len());
        for (k, (&i, &x)) in idx.i64.iter().zip(&v.f32).enumerate() {
            if i < 0 || i as usize >= n || (k > 0 && i <= idx.i64[k - 1]) {
                return Err(err(
                    path,
                    format!(
                        "sparse initializer '{}': index {i} out of range or not increasing",
                        vals.name
                    ),
                ));
            }
            dense[i as usize] = x;
            lin.push(i as usize);
        }
        consts.insert(
            vals.name.clone(),
            Const {
                dims,
                f32: dense,
                i64: vec![],
                sparse: Some(lin),
            },
        );
    }
    let input = graph
        .input
        .iter()
        .find(|i| !consts.contains_key(&i.name))
        .ok_or_else(|| err(path, "the graph has no non-constant input"))?;
    if graph
        .input
        .iter()
        .filter(|i| !consts.contains_key(&i.name))
        .count()
        != 1
    {
        return Err(err(
            path,
            "exactly one non-constant graph input is supported",
        ));
    }
    let dims: Vec<Option<i64>> = input
        .type_
        .as_ref()
        .and_then(|t| match &t.value {
            Some(onnx_protobuf::type_proto::Value::TensorType(tt)) => tt.shape.as_ref().map(|s| {
                s.dim
                    .iter()
                    .map(|d| match d.value {
                        Some(onnx_protobuf::tensor_shape_proto::dimension::Value::DimValue(v)) => {
                            Some(v)
                        }
                        _ => None,
                    })
                    .collect()
            }),
            _ => None,
        })
        .ok_or_else(|| err(path, format!("input '{}' has no tensor shape", input.name)))?;
    let chw: Vec<usize> = match dims.as_slice() {
        [_, Some(c), Some(h), Some(w)] if *c > 0 && *h > 0 && *w > 0 => {
            vec![*c as usize, *h as usize, *w as usize]
        }
        _ => {
            return Err(err(
                path,
                format!(
                    "input '{}' must be [N, C, H, W] with known C, H, W, got {dims:?}",
                    input.name
                ),
            ))
        }
    };
    let c = chw[0];
    let mean = metadata_vec(&m, "sculpt.normalization.mean")
        .filter(|v| v.len() == c)
        .unwrap_or(vec![0.0; c]);
    let std = metadata_vec(&m, "sculpt.normalization.std")
        .filter(|v| v.len() == c)
        .unwrap_or(vec![1.0; c]);
    let mut ctx = Ctx {
        path,
        consts,
        values: BTreeMap::new(),
        g: Graph::new(InputSpec {
            shape: [chw[0], chw[1], chw[2]],
            mean,
            std,
        }),
    };
    ctx.values.insert(input.name.clone(), 0);
    for n in &graph.node {
        ctx.node(n)?;
    }
    let out = graph
        .output
        .first()
        .ok_or_else(|| err(path, "the graph has no output"))?;
    if graph.output.len() != 1 {
        return Err(err(path, "exactly one graph output is supported"));
    }
    let at = *ctx.values.get(&out.name).ok_or_else(|| {
        err(
            path,
            format!("output '{}' is not produced by any node", out.name),
        )
    })?;
    if at != ctx.g.output() {
        return Err(err(
            path,
            format!(
                "output '{}' is not the last computed value (dead nodes follow it)",
                out.name
            ),
        ));
    }
    ctx.g.validate().map_err(|e| err(path, e.to_string()))?;
    Ok(ctx.g)
}

/// Imports the ONNX file at `path`.
pub fn import_file(path: &Path) -> Result<Graph> {
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    import_bytes(&bytes, path)
}
