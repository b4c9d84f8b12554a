//! Imports ONNX models of the supported subset (formats/onnx.md) as PyTorch exports them: Conv, Gemm,
//! MatMul (+Add of a constant), BatchNormalization, Relu, MaxPool, AveragePool, GlobalAveragePool, Add, Flatten,
//! Reshape to 2-D, Slice (spatial subsampling) and Pad (channel zero padding) for the option-A shortcut,
//! Identity; constants from `initializer`, `sparse_initializer` and `Constant` nodes, and the shape ops of
//! [`fold`] on constant inputs. Anything else is an error naming the op; malformed protobuf, missing
//! initializers and inconsistent shapes are errors, never panics.

mod fold;
mod tensor;

use std::collections::BTreeMap;
use std::path::Path;

use onnx_protobuf::{AttributeProto, ModelProto, NodeProto};
use protobuf::Message;
use sha2::{Digest, Sha256};

use crate::compile::emit::onnx::GRAPH_SHA256;

use crate::budget::Budget;
use crate::compile::ir::{Bias, Graph, IndexEncoding, InputSpec, Op, Storage, Weight};
use crate::error::{clip_lines, quote, Error, Result};

use tensor::Tensor;

/// A constant, with the CSR pattern (sorted linear indices) of a sparse initializer when it had one.
#[derive(Debug, Clone)]
struct Const {
    t: Tensor,
    sparse: Option<Vec<usize>>,
}

impl Const {
    fn dense(t: Tensor) -> Self {
        Const { t, sparse: None }
    }
}

/// A computed tensor subsampled along H and W but not yet part of the graph: rows `0, steps[0], …` and
/// columns `0, steps[1], …` of IR node `src`. It becomes a `SubsamplePad` (merged with a following channel
/// Pad) once consumed, which needs equal steps.
#[derive(Debug, Clone)]
struct Strided {
    src: usize,
    steps: [usize; 2],
    /// (C, H, W) after subsampling.
    shape: Vec<usize>,
    /// The name its IR node takes.
    name: String,
}

/// The value a folded `Shape` gives a symbolic batch dimension: a Reshape to `[SYMBOLIC_BATCH, k]` (what
/// `x.view(x.size(0), -1)` exports to) keeps the batch. Exactly representable in f32, so casts keep it.
const SYMBOLIC_BATCH: i64 = -(1 << 40);

/// The largest kernel, stride or padding the importer accepts.
const MAX_WINDOW: i64 = 1 << 16;

struct Ctx<'a> {
    path: &'a Path,
    consts: BTreeMap<String, Const>,
    /// ONNX value name → IR node index.
    values: BTreeMap<String, usize>,
    /// ONNX value name → pending spatial subsampling.
    strided: BTreeMap<String, Strided>,
    /// The input's batch dimension when the file fixes it.
    batch: Option<usize>,
    g: Graph,
    budget: &'a Budget,
}

/// An error about the file; every line is clipped, since messages quote names and values from the file.
fn err(path: &Path, msg: impl Into<String>) -> Error {
    Error::format(path, clip_lines(&format!("onnx: {}", msg.into()), 12))
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
            format!("node {} ({}): {msg}", quote(&n.name), quote(&n.op_type)),
        )
    }

    /// Charges `count` elements of `width` bytes for `what` of node `n`.
    fn charge(&self, n: &NodeProto, what: &str, count: usize, width: usize) -> Result<()> {
        self.budget
            .charge_elements(what, count, width)
            .map_err(|e| self.bad(n, e))
    }

    /// Checks that no value is named `name` yet: every ONNX value has exactly one producer.
    fn fresh(&self, n: &NodeProto, name: &str) -> Result<()> {
        if self.values.contains_key(name)
            || self.consts.contains_key(name)
            || self.strided.contains_key(name)
        {
            return Err(self.bad(
                n,
                format!(
                    "its output {} is already produced by an earlier node, an initializer or the input",
                    quote(name)
                ),
            ));
        }
        Ok(())
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

    /// The IR node of computed input `k`; a pending subsampling becomes a node here.
    fn value(&mut self, n: &NodeProto, k: usize) -> Result<usize> {
        let name = n
            .input
            .get(k)
            .ok_or_else(|| self.bad(n, format!("missing input {k}")))?;
        self.materialize(name).map_err(|e| self.bad(n, e))?;
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

    /// Turns the pending subsampling named `name`, if any, into a `SubsamplePad` node.
    fn materialize(&mut self, name: &str) -> std::result::Result<(), String> {
        let Some(s) = self.strided.remove(name) else {
            return Ok(());
        };
        if s.steps[0] != s.steps[1] {
            return Err(format!(
                "'{name}' subsamples rows by {} and columns by {}: only equal steps are supported",
                s.steps[0], s.steps[1]
            ));
        }
        let op = Op::SubsamplePad {
            stride: s.steps[0],
            pad_before: 0,
            pad_after: 0,
        };
        let i = self
            .g
            .push(s.name, op, vec![s.src])
            .map_err(|e| e.to_string())?;
        self.values.insert(name.to_string(), i);
        Ok(())
    }

    /// Input `k` as a (possibly trivial) spatial subsampling of an IR node, without materialising it.
    fn strided_input(&mut self, n: &NodeProto, k: usize) -> Result<Strided> {
        if let Some(s) = n.input.get(k).and_then(|name| self.strided.get(name)) {
            return Ok(s.clone());
        }
        let src = self.value(n, k)?;
        Ok(Strided {
            src,
            steps: [1, 1],
            shape: self.g.nodes[src].shape.clone(),
            name: String::new(),
        })
    }

    /// Whether every input `n` names is a constant.
    fn all_const(&self, n: &NodeProto) -> bool {
        n.input
            .iter()
            .all(|s| s.is_empty() || self.consts.contains_key(s))
    }

    /// The inputs of `n` as constants (`None` where left out); input `k` must be a constant unless in `skip`.
    fn const_inputs(&self, n: &NodeProto, skip: &[usize]) -> Result<Vec<Option<&Tensor>>> {
        (0..n.input.len())
            .map(|k| {
                if skip.contains(&k) || n.input[k].is_empty() {
                    Ok(None)
                } else {
                    self.konst(n, k).map(|c| Some(&c.t))
                }
            })
            .collect()
    }

    /// Evaluates a [`fold::foldable`] node whose inputs are all constants.
    fn fold(&mut self, n: &NodeProto) -> Result<()> {
        let c = if n.op_type == "Identity" {
            self.konst(n, 0)?.clone()
        } else {
            let inputs = self.const_inputs(n, &[])?;
            Const::dense(fold::fold(n, &inputs, self.budget).map_err(|e| self.bad(n, e))?)
        };
        let o = self.out(n)?;
        self.fresh(n, &o)?;
        self.consts.insert(o, c);
        Ok(())
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
        let o = self.out(n)?;
        self.fresh(n, &o)?;
        let i = self.g.push(name, op, inputs).map_err(|e| self.bad(n, e))?;
        let numel = tensor::numel(&self.g.nodes[i].shape).map_err(|e| self.bad(n, e))?;
        self.charge(n, "its output", numel, 4)?;
        self.values.insert(o, i);
        Ok(())
    }

    fn alias(&mut self, n: &NodeProto, to: usize) -> Result<()> {
        let o = self.out(n)?;
        self.fresh(n, &o)?;
        self.values.insert(o, to);
        Ok(())
    }

    fn weight(&self, n: &NodeProto, k: usize, shape: Vec<usize>) -> Result<Weight> {
        let c = self.konst(n, k)?;
        if c.t.dims != shape {
            return Err(self.bad(
                n,
                format!(
                    "weight {} has shape {:?}, expected {shape:?}",
                    quote(&n.input[k]),
                    c.t.dims
                ),
            ));
        }
        self.to_weight(n, c, shape)
    }

    /// The IR weight of constant `c` (charged to the budget: its values are copied twice).
    fn to_weight(&self, n: &NodeProto, c: &Const, shape: Vec<usize>) -> Result<Weight> {
        self.charge(n, "its weight", c.t.len(), 8)?;
        let values = c.t.to_f32();
        let mut w = Weight::dense(shape, values.clone());
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
                values: lin.iter().map(|&i| values[i]).collect(),
                index: IndexEncoding::CsrIdx32,
            };
        }
        Ok(w)
    }

    fn bias(&self, n: &NodeProto, k: usize, rows: usize) -> Result<Option<Bias>> {
        if n.input.get(k).is_none_or(|s| s.is_empty()) {
            return Ok(None);
        }
        let c = self.konst(n, k)?;
        if c.t.len() != rows || c.t.dims.len() != 1 {
            return Err(self.bad(
                n,
                format!("bias has shape {:?}, expected [{rows}]", c.t.dims),
            ));
        }
        Ok(Some(Bias::F32(c.t.to_f32())))
    }

    fn square(&self, n: &NodeProto, name: &str) -> Result<usize> {
        match attr_ints(n, name).as_deref() {
            Some([a, b]) if a == b && (1..=MAX_WINDOW).contains(a) => Ok(*a as usize),
            Some(other) => Err(self.bad(
                n,
                format!("{name} must be two equal values in 1..={MAX_WINDOW}, got {other:?}"),
            )),
            None => Err(self.bad(n, format!("{name} is missing"))),
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
            Some([a, b, c, d]) if a == b && b == c && c == d && (0..=MAX_WINDOW).contains(a) => {
                Ok(*a as usize)
            }
            Some(p) => Err(self.bad(n, format!("pads {p:?} must be four equal values"))),
        }
    }

    /// Slice of a computed tensor: every k-th element of whole axes only (start 0, end clamped to the dimension,
    /// step k ≥ 1), k = 1 on the channel axis, the whole batch axis with step 1 (a no-op the dynamo exporter
    /// writes). Spatial steps accumulate in a pending subsampling.
    fn slice(&mut self, n: &NodeProto) -> Result<()> {
        let mut s = self.strided_input(n, 0)?;
        let params = self.const_inputs(n, &[0])?;
        let axes = fold::slice_axes(n, &params, s.shape.len() + 1).map_err(|e| self.bad(n, e))?;
        for a in axes {
            let whole_batch = a.start == 0
                && a.step == 1
                && (a.end >= i64::MAX / 2 || self.batch.is_some_and(|b| a.end >= b as i64));
            if a.axis == 0 && whole_batch {
                continue;
            }
            if a.axis == 0 {
                return Err(self.bad(
                    n,
                    "slicing the batch axis is not supported (only the whole axis, step 1)",
                ));
            }
            let dim = s.shape[a.axis - 1];
            let picked = a.indices(dim);
            let step = usize::try_from(a.step).unwrap_or(0);
            if step == 0 || picked.first() != Some(&0) || picked.len() != dim.div_ceil(step) {
                return Err(self.bad(
                    n,
                    format!(
                        "only whole-axis slices are supported (start 0, end ≥ the dimension, step ≥ 1), \
                         got start {}, end {}, step {} on axis {} of size {dim}",
                        a.start, a.end, a.step, a.axis
                    ),
                ));
            }
            match a.axis {
                1 if step != 1 => return Err(self.bad(n, "subsampling channels is not supported")),
                1 => {}
                2 | 3 => {
                    let k = a.axis - 2;
                    s.steps[k] = s.steps[k]
                        .checked_mul(step)
                        .ok_or_else(|| self.bad(n, "the subsampling step overflows"))?;
                    s.shape[a.axis - 1] = picked.len();
                }
                _ => return Err(self.bad(n, format!("axis {} is not an N×C×H×W axis", a.axis))),
            }
        }
        let o = self.out(n)?;
        self.fresh(n, &o)?;
        if s.steps == [1, 1] {
            self.values.insert(o, s.src);
        } else {
            s.name = if n.name.is_empty() {
                o.clone()
            } else {
                n.name.clone()
            };
            self.strided.insert(o, s);
        }
        Ok(())
    }

    /// Pad of a computed N×C×H×W tensor: non-negative zero padding of the channel axis only (pads, constant
    /// value and axes as inputs, or as attributes before opset 11). It becomes one `SubsamplePad` with the
    /// pending subsampling of its input, stride 1 without one.
    fn pad(&mut self, n: &NodeProto) -> Result<()> {
        let s = self.strided_input(n, 0)?;
        let mode = attr(n, "mode").map(|a| a.s.clone()).unwrap_or_default();
        if !mode.is_empty() && mode != b"constant" {
            return Err(self.bad(n, "only constant padding is supported"));
        }
        let given = |k: usize| n.input.get(k).is_some_and(|v| !v.is_empty());
        let nonzero = if given(2) {
            self.konst(n, 2)?.t.to_f32().iter().any(|&v| v != 0.0)
        } else {
            attr(n, "value").is_some_and(|a| a.f != 0.0)
        };
        if nonzero {
            return Err(self.bad(n, "only zero padding is supported"));
        }
        let ints = |k: usize, what: &str| -> Result<Vec<i64>> {
            let c = self.konst(n, k)?;
            c.t.as_i64()
                .map(<[i64]>::to_vec)
                .ok_or_else(|| self.bad(n, format!("{what} must be int64")))
        };
        let rank = s.shape.len() + 1;
        let values = if given(1) {
            ints(1, "pads")?
        } else {
            attr_ints(n, "pads").ok_or_else(|| self.bad(n, "has no pads"))?
        };
        let axes = if given(3) {
            fold::distinct_axes(&ints(3, "axes")?, rank).map_err(|e| self.bad(n, e))?
        } else {
            (0..rank).collect()
        };
        if values.len() != 2 * axes.len() {
            return Err(self.bad(
                n,
                format!("pads {values:?} do not match {} axes", axes.len()),
            ));
        }
        let mut pads = vec![0i64; 2 * rank];
        for (i, &a) in axes.iter().enumerate() {
            pads[a] = values[i];
            pads[rank + a] = values[axes.len() + i];
        }
        let limit = tensor::MAX_ELEMENTS as i64;
        let channel_only = rank == 4
            && pads
                .iter()
                .enumerate()
                .all(|(i, &v)| (0..=limit).contains(&v) && (v == 0 || i == 1 || i == 5));
        if !channel_only {
            return Err(self.bad(
                n,
                format!("only zero padding of the channel axis of an N×C×H×W tensor is supported, got pads {pads:?}"),
            ));
        }
        if s.steps[0] != s.steps[1] {
            return Err(self.bad(
                n,
                format!(
                    "its input subsamples rows by {} and columns by {}: only equal steps are supported",
                    s.steps[0], s.steps[1]
                ),
            ));
        }
        let op = Op::SubsamplePad {
            stride: s.steps[0],
            pad_before: pads[1] as usize,
            pad_after: pads[5] as usize,
        };
        self.push(n, op, vec![s.src])
    }

    /// CastLike: the constant input 0 cast to the type of input 1 (f32 when input 1 is computed, since every
    /// computed tensor is float).
    fn cast_like(&mut self, n: &NodeProto) -> Result<()> {
        let x = self.konst(n, 0)?.t.clone();
        let like = n
            .input
            .get(1)
            .ok_or_else(|| self.bad(n, "missing input 1"))?;
        let t = match self.consts.get(like) {
            Some(c) if matches!(c.t.data, tensor::Data::I64(_)) => match x.data {
                tensor::Data::I64(_) => x,
                tensor::Data::F32(ref v) => tensor::Tensor::i64(
                    x.dims.clone(),
                    v.iter()
                        .map(|f| {
                            if f.is_finite() {
                                Ok(f.trunc() as i64)
                            } else {
                                Err(self.bad(n, format!("cannot cast {f} to int64")))
                            }
                        })
                        .collect::<Result<_>>()?,
                ),
            },
            Some(_) => tensor::Tensor::f32(x.dims.clone(), x.to_f32()),
            None => {
                self.value(n, 1)?;
                tensor::Tensor::f32(x.dims.clone(), x.to_f32())
            }
        };
        let o = self.out(n)?;
        self.fresh(n, &o)?;
        self.consts.insert(o, Const::dense(t));
        Ok(())
    }

    /// ReduceMean over the spatial axes of an N×C×H×W tensor (how current exporters write global average
    /// pooling): axes from the attribute (opset < 18) or the constant input 1 (opset 18+).
    fn reduce_mean(&mut self, n: &NodeProto) -> Result<()> {
        let x = self.value(n, 0)?;
        let axes: Vec<i64> = match n.input.get(1).filter(|s| !s.is_empty()) {
            Some(_) => self
                .konst(n, 1)?
                .t
                .as_i64()
                .ok_or_else(|| self.bad(n, "the axes must be int64"))?
                .to_vec(),
            None => attr_ints(n, "axes").unwrap_or_default(),
        };
        let rank = self.g.nodes[x].shape.len() + 1;
        let mut axes = fold::distinct_axes(&axes, rank).map_err(|e| self.bad(n, e))?;
        axes.sort_unstable();
        if rank != 4 || axes != [2, 3] {
            return Err(self.bad(
                n,
                format!(
                    "only ReduceMean over the spatial axes [2, 3] of an N×C×H×W tensor (global average pooling) is                      supported, got axes {axes:?} of a rank-{rank} tensor"
                ),
            ));
        }
        self.push(n, Op::GlobalAvgPool, vec![x])
    }

    fn node(&mut self, n: &NodeProto) -> Result<()> {
        if !n.domain.is_empty() && n.domain != "ai.onnx" {
            return Err(self.bad(
                n,
                format!("operator domain '{}' is not supported", n.domain),
            ));
        }
        if n.op_type == "CastLike" {
            return self.cast_like(n);
        }
        if n.op_type == "Constant" {
            if let Some(a) = attr(n, "sparse_value") {
                if n.attribute.len() != 1 {
                    return Err(self.bad(n, "a Constant needs exactly one value attribute"));
                }
                let sp = a
                    .sparse_tensor
                    .as_ref()
                    .ok_or_else(|| self.bad(n, "sparse_value holds no sparse tensor"))?;
                let (_, c) = sparse_const(self.path, sp, self.budget)?;
                let o = self.out(n)?;
                self.fresh(n, &o)?;
                self.consts.insert(o, c);
                return Ok(());
            }
        }
        if fold::foldable(&n.op_type) && self.all_const(n) {
            return self.fold(n);
        }
        match n.op_type.as_str() {
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
                let c = self.konst(n, 1)?.t.dims.clone();
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
                let c = self.konst(n, 1)?;
                let dims = c.t.dims.clone();
                if dims.len() != 2 {
                    return Err(self.bad(n, format!("weight must be 2-D, got {dims:?}")));
                }
                let weight = if attr_int(n, "transB", 0) != 0 {
                    self.to_weight(n, c, dims)?
                } else {
                    self.charge(n, "its transposed weight", c.t.len(), 12)?;
                    self.to_weight(n, &transpose(c), vec![dims[1], dims[0]])?
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
                let c = self.konst(n, 1)?;
                let dims = c.t.dims.clone();
                if dims.len() != 2 {
                    return Err(self.bad(n, format!("MatMul weight must be 2-D, got {dims:?}")));
                }
                self.charge(n, "its transposed weight", c.t.len(), 12)?;
                let weight = self.to_weight(n, &transpose(c), vec![dims[1], dims[0]])?;
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
                if attr_int(n, "training_mode", 0) != 0
                    || n.output.iter().skip(1).any(|o| !o.is_empty())
                {
                    return Err(self.bad(
                        n,
                        "training-mode batch norm (training_mode=1 or running-statistics outputs) computes batch                          statistics; export the model in eval mode (model.eval())",
                    ));
                }
                let x = self.value(n, 0)?;
                let ch = self.g.nodes[x].shape.first().copied().unwrap_or(0);
                let mut p = Vec::new();
                for k in 1..5 {
                    let c = self.konst(n, k)?;
                    if c.t.len() != ch {
                        return Err(self.bad(
                            n,
                            format!("parameter {k} has {} values for {ch} channels", c.t.len()),
                        ));
                    }
                    p.push(c.t.to_f32());
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
            "ReduceMean" => self.reduce_mean(n)?,
            "Flatten" | "Reshape" => {
                let x = self.value(n, 0)?;
                if n.op_type == "Flatten" && attr_int(n, "axis", 1) != 1 {
                    return Err(self.bad(n, "only Flatten with axis 1 is supported"));
                }
                if n.op_type == "Reshape" {
                    let numel: usize = self.g.nodes[x].shape.iter().product();
                    let s = self
                        .konst(n, 1)?
                        .t
                        .as_i64()
                        .ok_or_else(|| self.bad(n, "the shape must be int64"))?
                        .to_vec();
                    let ok = s.len() == 2
                        && (s[0] == -1
                            || s[0] == 0
                            || s[0] == 1
                            || s[0] == SYMBOLIC_BATCH
                            || self.batch.is_some_and(|b| s[0] == b as i64))
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
                    let c = self.konst(n, ck)?.t.to_f32();
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
            "Slice" => self.slice(n)?,
            "Pad" => self.pad(n)?,
            "Shape" => {
                let dims = match n.input.first().and_then(|x| self.strided.get(x)) {
                    Some(s) => s.shape.clone(),
                    None => {
                        let x = self.value(n, 0)?;
                        self.g.nodes[x].shape.clone()
                    }
                };
                let dims = [vec![self.batch.unwrap_or(1)], dims].concat();
                let mut t = fold::shape(n, &dims).map_err(|e| self.bad(n, e))?;
                let r = dims.len() as i64;
                let start = attr_int(n, "start", 0);
                let start = if start < 0 {
                    start.saturating_add(r)
                } else {
                    start
                };
                if self.batch.is_none() && start <= 0 {
                    if let tensor::Data::I64(v) = &mut t.data {
                        if let Some(b) = v.first_mut() {
                            *b = SYMBOLIC_BATCH;
                        }
                    }
                }
                let o = self.out(n)?;
                self.fresh(n, &o)?;
                self.consts.insert(o, Const::dense(t));
            }
            op if fold::foldable(op) => {
                let k = n
                    .input
                    .iter()
                    .position(|s| !s.is_empty() && !self.consts.contains_key(s))
                    .unwrap_or(0);
                self.value(n, k)?;
                return Err(self.bad(
                    n,
                    format!(
                        "{op} is supported only on constant inputs; '{}' is computed",
                        n.input[k]
                    ),
                ));
            }
            other => return Err(self.bad(n, format!("unsupported operator {other}"))),
        }
        Ok(())
    }
}

/// The transpose of a 2-D constant, as f32.
fn transpose(c: &Const) -> Const {
    let (r, k) = (c.t.dims[0], c.t.dims[1]);
    let v = c.t.to_f32();
    let mut f = vec![0.0; v.len()];
    for i in 0..r {
        for j in 0..k {
            f[j * r + i] = v[i * k + j];
        }
    }
    let sparse = c.sparse.as_ref().map(|s| {
        let mut t: Vec<usize> = s.iter().map(|&l| (l % k) * r + l / k).collect();
        t.sort_unstable();
        t
    });
    Const {
        t: Tensor::f32(vec![k, r], f),
        sparse,
    }
}

/// Decodes an initializer or constant, charging it to `budget`; errors name the file.
fn tensor_const(path: &Path, t: &onnx_protobuf::TensorProto, budget: &Budget) -> Result<Tensor> {
    tensor::from_proto(t, budget).map_err(|e| err(path, e))
}

/// The metadata keys sculpt writes (formats/onnx.md) and reads back.
const MEAN_KEY: &str = "sculpt.normalization.mean";
const STD_KEY: &str = "sculpt.normalization.std";
const MODEL_HASH_KEY: &str = "sculpt.model_hash";

/// The metadata sculpt reads, validated: each `sculpt.*` key at most once; the normalisation arrays hold `c`
/// finite numbers (stds positive) and come together; the hashes are 64 lower-case hex digits. A file written
/// by sculpt (its producer or any `sculpt.*` key says so) must carry `sculpt.graph_sha256`: without it the file
/// was cut or edited, and its normalisation cannot be trusted. Returns `(mean, std)`, identity when absent.
fn read_metadata(path: &Path, m: &ModelProto, c: usize) -> Result<(Vec<f32>, Vec<f32>)> {
    let mut seen = std::collections::BTreeSet::new();
    for e in &m.metadata_props {
        if e.key.starts_with("sculpt.") && !seen.insert(e.key.as_str()) {
            return Err(err(
                path,
                format!("metadata key {} appears twice", quote(&e.key)),
            ));
        }
    }
    let get = |key: &str| {
        m.metadata_props
            .iter()
            .find(|e| e.key == key)
            .map(|e| e.value.as_str())
    };
    let written_by_sculpt = m.producer_name == "sculpt" || !seen.is_empty();
    if written_by_sculpt && get(GRAPH_SHA256).is_none() {
        return Err(err(
            path,
            format!(
                "the file was written by sculpt but lacks its integrity record {GRAPH_SHA256}: it is \
                 truncated or was edited, so its graph and normalisation cannot be trusted"
            ),
        ));
    }
    for key in [GRAPH_SHA256, MODEL_HASH_KEY] {
        if let Some(v) = get(key) {
            if v.len() != 64
                || !v
                    .bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
            {
                return Err(err(
                    path,
                    format!(
                        "metadata {key} must be 64 lower-case hex digits, got {}",
                        quote(v)
                    ),
                ));
            }
        }
    }
    let vector = |key: &str, positive: bool| -> Result<Option<Vec<f32>>> {
        let Some(text) = get(key) else {
            return Ok(None);
        };
        let what = if positive {
            "finite positive numbers"
        } else {
            "finite numbers"
        };
        let v: Vec<f64> = serde_json::from_str(text).map_err(|_| {
            err(
                path,
                format!(
                    "metadata {key} must be a JSON array of {c} {what}, got {}",
                    quote(text)
                ),
            )
        })?;
        let ok = v.len() == c
            && v.iter()
                .all(|&x| (x as f32).is_finite() && (!positive || x as f32 > 0.0));
        if !ok {
            return Err(err(
                path,
                format!(
                    "metadata {key} must hold {c} {what} (one per input channel), got {}",
                    quote(text)
                ),
            ));
        }
        Ok(Some(v.into_iter().map(|x| x as f32).collect()))
    };
    match (vector(MEAN_KEY, false)?, vector(STD_KEY, true)?) {
        (Some(mean), Some(std)) => Ok((mean, std)),
        (None, None) => Ok((vec![0.0; c], vec![1.0; c])),
        (Some(_), None) | (None, Some(_)) => Err(err(
            path,
            format!("metadata {MEAN_KEY} and {STD_KEY} must be given together"),
        )),
    }
}

/// Checks the recorded SHA-256 of the serialised graph, when the file records one.
fn check_integrity(path: &Path, m: &ModelProto, budget: &Budget) -> Result<()> {
    let (Some(e), Some(graph)) = (
        m.metadata_props.iter().find(|e| e.key == GRAPH_SHA256),
        m.graph.as_ref(),
    ) else {
        return Ok(());
    };
    budget
        .charge("the re-serialised graph", graph.compute_size())
        .map_err(|e| Error::budget(path, e))?;
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
                quote(&e.value)
            ),
        ));
    }
    Ok(())
}

/// A sparse initializer as a dense constant with its CSR pattern, charged to `budget` before expanding.
fn sparse_const(
    path: &Path,
    s: &onnx_protobuf::SparseTensorProto,
    budget: &Budget,
) -> Result<(String, Const)> {
    let vals = s
        .values
        .as_ref()
        .ok_or_else(|| err(path, "sparse initializer without values"))?;
    let name = quote(&vals.name);
    let dims: Vec<usize> = s
        .dims
        .iter()
        .map(|&d| usize::try_from(d))
        .collect::<std::result::Result<_, _>>()
        .map_err(|_| {
            err(
                path,
                format!("sparse initializer {name} has a negative dimension"),
            )
        })?;
    let n = tensor::numel(&dims)
        .map_err(|_| err(path, format!("sparse initializer {name} is too large")))?;
    let v = tensor_const(path, vals, budget)?;
    let idx = s
        .indices
        .as_ref()
        .ok_or_else(|| err(path, format!("sparse initializer {name} without indices")))?;
    let idx = tensor_const(path, idx, budget)?;
    let values = v.to_f32();
    let idx = match idx.as_i64() {
        Some(i) if idx.dims.len() == 1 && i.len() == values.len() && v.dims.len() == 1 => i,
        _ => {
            return Err(err(
                path,
                format!(
                    "sparse initializer {name}: only 1-D linear int64 indices are supported, matching the values"
                ),
            ))
        }
    };
    budget
        .charge_elements(format!("sparse initializer {name} expanded"), n, 4)
        .and_then(|()| budget.charge_elements("its pattern", idx.len(), 8))
        .map_err(|e| Error::budget(path, e))?;
    let mut dense = vec![0.0f32; n];
    let mut lin = Vec::with_capacity(idx.len());
    for (k, (&i, &x)) in idx.iter().zip(&values).enumerate() {
        if i < 0 || i as usize >= n || (k > 0 && i <= idx[k - 1]) {
            return Err(err(
                path,
                format!("sparse initializer {name}: index {i} out of range or not increasing"),
            ));
        }
        dense[i as usize] = x;
        lin.push(i as usize);
    }
    Ok((
        vals.name.clone(),
        Const {
            t: Tensor::f32(dims, dense),
            sparse: Some(lin),
        },
    ))
}

/// A dimension for messages: its value, or `?` when symbolic.
fn dim_text(d: &Option<i64>) -> String {
    d.map_or("?".into(), |v| v.to_string())
}

/// Imports an ONNX model from bytes within a default [`Budget`]; `path` names the source in errors.
pub fn import_bytes(bytes: &[u8], path: &Path) -> Result<Graph> {
    import_bytes_within(bytes, path, &Budget::default())
}

/// Imports an ONNX model from bytes, charging the bytes, every constant (read or folded), every weight and
/// every activation of one sample to `budget` before allocating it.
pub fn import_bytes_within(bytes: &[u8], path: &Path, budget: &Budget) -> Result<Graph> {
    budget
        .charge("the parsed model", bytes.len() as u64)
        .map_err(|e| Error::budget(path, e))?;
    let m = ModelProto::parse_from_bytes(bytes)
        .map_err(|e| err(path, format!("malformed protobuf: {e}")))?;
    let graph = m
        .graph
        .as_ref()
        .ok_or_else(|| err(path, "the model has no graph"))?;
    check_integrity(path, &m, budget)?;
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
    let mut define = |name: String, c: Const| -> Result<()> {
        if consts.insert(name.clone(), c).is_some() {
            return Err(err(
                path,
                format!("initializer {} is defined twice", quote(&name)),
            ));
        }
        Ok(())
    };
    for t in &graph.initializer {
        define(t.name.clone(), Const::dense(tensor_const(path, t, budget)?))?;
    }
    for s in &graph.sparse_initializer {
        let (name, c) = sparse_const(path, s, budget)?;
        define(name, c)?;
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
    if let Some(onnx_protobuf::type_proto::Value::TensorType(tt)) =
        input.type_.as_ref().and_then(|t| t.value.as_ref())
    {
        let float = onnx_protobuf::tensor_proto::DataType::FLOAT as i32;
        if tt.elem_type != float {
            return Err(err(
                path,
                format!(
                    "input {} has element type {} ({}); sculpt imports float (1) image inputs only",
                    quote(&input.name),
                    tt.elem_type,
                    <onnx_protobuf::tensor_proto::DataType as protobuf::Enum>::from_i32(
                        tt.elem_type
                    )
                    .map_or("unknown".to_string(), |d| format!("{d:?}"))
                ),
            ));
        }
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
        .ok_or_else(|| {
            err(
                path,
                format!("input {} has no tensor shape", quote(&input.name)),
            )
        })?;
    let shown = || {
        let d: Vec<String> = dims.iter().map(dim_text).collect();
        format!("[{}]", d.join(", "))
    };
    let chw: [usize; 3] = match dims.as_slice() {
        [_, Some(c), Some(h), Some(w)] if *c > 0 && *h > 0 && *w > 0 => {
            let as_size = |v: i64| usize::try_from(v).unwrap_or(usize::MAX);
            [as_size(*c), as_size(*h), as_size(*w)]
        }
        _ => {
            return Err(err(
                path,
                format!(
                    "input {} must be [N, C, H, W] with known positive C, H, W, got {}",
                    quote(&input.name),
                    shown()
                ),
            ))
        }
    };
    let numel = tensor::numel(&chw).map_err(|_| {
        err(
            path,
            format!(
                "input {} of shape {} is too large",
                quote(&input.name),
                shown()
            ),
        )
    })?;
    budget
        .charge_elements(
            format!("input {} of shape {}", quote(&input.name), shown()),
            numel,
            4,
        )
        .map_err(|e| Error::budget(path, e))?;
    let batch = match dims[0] {
        Some(n) if n > 0 => usize::try_from(n).ok(),
        _ => None,
    };
    let (mean, std) = read_metadata(path, &m, chw[0])?;
    let mut ctx = Ctx {
        path,
        consts,
        values: BTreeMap::new(),
        strided: BTreeMap::new(),
        batch,
        g: Graph::new(InputSpec {
            shape: chw,
            mean,
            std,
        }),
        budget,
    };
    if ctx.consts.contains_key(&input.name) {
        return Err(err(path, "the input shares its name with a constant"));
    }
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
    ctx.materialize(&out.name).map_err(|e| err(path, e))?;
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

/// Imports the ONNX file at `path`; the file and everything decoded from it are charged to one default
/// [`Budget`].
pub fn import_file(path: &Path) -> Result<Graph> {
    let budget = Budget::default();
    let bytes = crate::fsio::read_within(path, &budget, "the file")?;
    import_bytes_within(&bytes, path, &budget)
}

#[cfg(test)]
mod tests {
    use super::*;
    use onnx_protobuf::{
        tensor_proto::DataType, tensor_shape_proto, type_proto, GraphProto, TensorProto,
        TensorShapeProto, TypeProto, ValueInfoProto,
    };

    /// A model with input `x` of dims [1, 4, 8, 8], int64 initializers and the nodes (op, inputs, output,
    /// attributes); the last node's output is the graph output.
    fn model(
        inits: &[(&str, &[i64])],
        nodes: Vec<(&str, &[&str], &str, Vec<AttributeProto>)>,
    ) -> Vec<u8> {
        let mut g = GraphProto::new();
        let mut shape = TensorShapeProto::new();
        for d in [1, 4, 8, 8] {
            let mut dim = tensor_shape_proto::Dimension::new();
            dim.value = Some(tensor_shape_proto::dimension::Value::DimValue(d));
            shape.dim.push(dim);
        }
        let mut tt = type_proto::Tensor::new();
        tt.elem_type = DataType::FLOAT as i32;
        tt.shape = protobuf::MessageField::some(shape);
        let mut ty = TypeProto::new();
        ty.value = Some(type_proto::Value::TensorType(tt));
        let mut input = ValueInfoProto::new();
        input.name = "x".into();
        input.type_ = protobuf::MessageField::some(ty);
        g.input.push(input);
        for (name, v) in inits {
            let mut t = TensorProto::new();
            t.name = name.to_string();
            t.data_type = DataType::INT64 as i32;
            t.dims = vec![v.len() as i64];
            t.int64_data = v.to_vec();
            g.initializer.push(t);
        }
        let last = nodes.last().map(|n| n.2.to_string()).unwrap_or_default();
        for (k, (op, inputs, output, attrs)) in nodes.into_iter().enumerate() {
            let mut n = NodeProto::new();
            n.op_type = op.into();
            n.name = format!("n{k}");
            n.input = inputs.iter().map(|s| s.to_string()).collect();
            n.output = vec![output.into()];
            n.attribute = attrs;
            g.node.push(n);
        }
        let mut out = ValueInfoProto::new();
        out.name = last;
        g.output.push(out);
        let mut m = ModelProto::new();
        m.graph = protobuf::MessageField::some(g);
        m.write_to_bytes().unwrap()
    }

    fn ints(name: &str, v: &[i64]) -> AttributeProto {
        let mut a = AttributeProto::new();
        a.name = name.into();
        a.ints = v.to_vec();
        a
    }

    fn import(bytes: &[u8]) -> Result<Graph> {
        import_bytes(bytes, Path::new("t.onnx"))
    }

    fn error(bytes: &[u8]) -> String {
        import(bytes).unwrap_err().to_string()
    }

    const MAX: i64 = i64::MAX;
    const SLICE_PARAMS: [(&str, &[i64]); 6] = [
        ("zero", &[0]),
        ("max", &[MAX]),
        ("two", &[2]),
        ("h", &[2]),
        ("w", &[3]),
        ("pads", &[0, 2, 0, 0, 0, 2, 0, 0]),
    ];

    fn ops(g: &Graph) -> Vec<(String, Op)> {
        g.nodes[1..]
            .iter()
            .map(|n| (n.name.clone(), n.op.clone()))
            .collect()
    }

    fn subsample_pad(stride: usize, before: usize, after: usize) -> Op {
        Op::SubsamplePad {
            stride,
            pad_before: before,
            pad_after: after,
        }
    }

    #[test]
    fn single_axis_slices_and_a_channel_pad_become_one_subsample_pad() {
        let g = import(&model(
            &SLICE_PARAMS,
            vec![
                ("Slice", &["x", "zero", "max", "h", "two"], "a", vec![]),
                ("Slice", &["a", "zero", "max", "w", "two"], "b", vec![]),
                ("Pad", &["b", "pads"], "c", vec![]),
                ("Flatten", &["c"], "y", vec![]),
            ],
        ))
        .unwrap();
        let o = ops(&g);
        assert_eq!(o[0].0, "n2");
        assert!(matches!(
            o[0].1,
            Op::SubsamplePad {
                stride: 2,
                pad_before: 2,
                pad_after: 2
            }
        ));
        assert_eq!(g.nodes[1].shape, [8, 4, 4]);
        assert!(matches!(o[1].1, Op::Flatten));
        assert_eq!(o.len(), 2);
    }

    #[test]
    fn a_multi_axis_slice_and_a_pad_become_one_subsample_pad() {
        let inits: &[(&str, &[i64])] = &[
            ("s", &[0, 0]),
            ("e", &[MAX, 100]),
            ("a", &[-1, 2]),
            ("k", &[2, 2]),
            ("pads", &[0, 1, 0, 0, 0, 3, 0, 0]),
        ];
        let g = import(&model(
            inits,
            vec![
                ("Slice", &["x", "s", "e", "a", "k"], "b", vec![]),
                ("Pad", &["b", "pads"], "c", vec![]),
                ("Flatten", &["c"], "y", vec![]),
            ],
        ))
        .unwrap();
        assert!(matches!(
            ops(&g)[0].1,
            Op::SubsamplePad {
                stride: 2,
                pad_before: 1,
                pad_after: 3
            }
        ));
        assert_eq!(g.nodes[1].shape, [8, 4, 4]);
    }

    #[test]
    fn a_pad_alone_has_stride_one_and_a_slice_alone_no_padding() {
        let g = import(&model(
            &SLICE_PARAMS,
            vec![
                ("Pad", &["x", "pads"], "c", vec![]),
                ("Flatten", &["c"], "y", vec![]),
            ],
        ))
        .unwrap();
        assert_eq!(ops(&g)[0].1, subsample_pad(1, 2, 2));
        let g = import(&model(
            &SLICE_PARAMS,
            vec![
                ("Slice", &["x", "zero", "max", "h", "two"], "a", vec![]),
                ("Slice", &["a", "zero", "max", "w", "two"], "b", vec![]),
                ("Flatten", &["b"], "y", vec![]),
            ],
        ))
        .unwrap();
        assert_eq!(ops(&g)[0], ("n1".to_string(), subsample_pad(2, 0, 0)));
        assert_eq!(g.nodes[1].shape, [4, 4, 4]);
    }

    fn int(name: &str, v: i64) -> AttributeProto {
        let mut a = AttributeProto::new();
        a.name = name.into();
        a.i = v;
        a
    }

    /// The pads subgraph PyTorch's exporter emits for `F.pad(x, (0, 0, 0, 0, 2, 2))`.
    #[test]
    fn pads_computed_from_constants_are_folded() {
        let to_i64 = || vec![int("to", DataType::INT64 as i32 as i64)];
        let g = import(&model(
            &[
                ("given", &[0, 0, 0, 0, 2, 2]),
                ("two", &[2]),
                ("pairs", &[-1, 2]),
                ("m1", &[-1]),
                ("mmax", &[-MAX]),
                ("ax0", &[0]),
            ],
            vec![
                ("ConstantOfShape", &["two"], "zeros", vec![]),
                ("Cast", &["zeros"], "izeros", to_i64()),
                ("Concat", &["given", "izeros"], "all", vec![int("axis", 0)]),
                ("Reshape", &["all", "pairs"], "p", vec![]),
                ("Slice", &["p", "m1", "mmax", "ax0", "m1"], "r", vec![]),
                ("Transpose", &["r"], "t", vec![ints("perm", &[1, 0])]),
                ("Reshape", &["t", "m1"], "flat", vec![]),
                ("Cast", &["flat"], "pads", to_i64()),
                ("Pad", &["x", "pads"], "c", vec![]),
                ("Flatten", &["c"], "y", vec![]),
            ],
        ))
        .unwrap();
        assert_eq!(ops(&g)[0], ("n8".to_string(), subsample_pad(1, 2, 2)));
        assert_eq!(g.nodes[1].shape, [8, 8, 8]);
    }

    /// `x.view(x.size(0), -1)` with a fixed batch size.
    #[test]
    fn the_batch_size_of_a_fixed_input_folds_a_view_reshape() {
        let g = import(&model(
            &[("zero", &[0]), ("minus", &[-1])],
            vec![
                ("Shape", &["x"], "s", vec![]),
                ("Squeeze", &["zero"], "k", vec![]),
                ("Gather", &["s", "k"], "n", vec![]),
                ("Unsqueeze", &["n"], "n1", vec![ints("axes", &[0])]),
                ("Concat", &["n1", "minus"], "shape", vec![int("axis", 0)]),
                ("Reshape", &["x", "shape"], "y", vec![]),
            ],
        ))
        .unwrap();
        assert_eq!(ops(&g).len(), 1);
        assert_eq!(ops(&g)[0].1.kind(), "flatten");
        assert_eq!(g.nodes[1].shape, [256]);
    }

    #[test]
    fn unsupported_slices_and_pads_are_errors() {
        let run = |nodes| error(&model(&SLICE_PARAMS, nodes));
        let e = run(vec![
            ("Slice", &["x", "zero", "max", "h", "two"], "a", vec![]),
            ("Flatten", &["a"], "y", vec![]),
        ]);
        assert!(e.contains("n1") && e.contains("equal steps"), "{e}");
        let e = run(vec![
            ("Slice", &["x", "two", "max", "h", "two"], "a", vec![]),
            ("Flatten", &["a"], "y", vec![]),
        ]);
        assert!(e.contains("whole-axis"), "{e}");
        let e = run(vec![
            ("Slice", &["x", "zero", "max", "zero", "two"], "a", vec![]),
            ("Flatten", &["a"], "y", vec![]),
        ]);
        assert!(e.contains("batch axis"), "{e}");
        let e = run(vec![("Pad", &["x", "max"], "y", vec![])]);
        assert!(e.contains("do not match"), "{e}");
        let e = error(&model(
            &[("pads", &[0, 0, 1, 0, 0, 0, 1, 0])],
            vec![("Pad", &["x", "pads"], "y", vec![])],
        ));
        assert!(e.contains("channel axis"), "{e}");
        let e = run(vec![("Concat", &["x", "x"], "y", vec![])]);
        assert!(e.contains("only on constant inputs"), "{e}");
        let e = run(vec![("Softmax", &["x"], "y", vec![])]);
        assert!(e.contains("unsupported operator Softmax"), "{e}");
        let e = run(vec![("Reshape", &["zero", "minus"], "y", vec![])]);
        assert!(
            e.contains("n0") && e.contains("'zero' must be computed"),
            "{e}"
        );
    }
}
