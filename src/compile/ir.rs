//! The compiler's intermediate representation: the single meeting point of importers, passes, emitters and
//! the reference interpreter.
//!
//! # Structure
//!
//! A [`Graph`] is a list of [`Node`]s in topological order. Node 0 is always [`Op::Input`] (and no other node
//! is); the last node is the graph output (the logits). A node's `inputs` are indices of earlier nodes. Every
//! node carries its per-sample output `shape` — `(C, H, W)` for feature maps, `(F,)` for vectors — which
//! [`Graph::validate`] re-infers and checks. Activations are channel-major (NCHW without the batch).
//!
//! Constants live inside the ops that use them: a [`Weight`] (conv or gemm matrix) and an optional [`Bias`].
//! A weight is a matrix of `rows` = output channels and `cols` = fan-in (`CI·K·K` for a conv, row-major over
//! `(ci, ky, kx)`; `in` for a gemm), stored [`Storage::Dense`] (row-major) or [`Storage::Csr`] (row pointers,
//! strictly increasing column indices per row, values). A CSR weight carries the [`IndexEncoding`] that the
//! binary emitters must use for it (chosen by `passes::index`).
//!
//! # Value types
//!
//! - [`ValueType::F32`]: the stored `f32` values are the weights.
//! - [`ValueType::F16`]: the stored values are exactly representable in IEEE half precision (the f16 pass rounds
//!   them to nearest-even); emitters store them as f16 without further rounding. Arithmetic stays f32.
//! - [`ValueType::I8`]: the stored values are integers `q` in `[-127, 127]` (held exactly in `f32`), and
//!   `scales[r]` (finite, > 0) gives the real weight `scales[r] · q` of row `r` (symmetric per output channel).
//!
//! # Float semantics (reference interpreter, `interp.rs`)
//!
//! The input is an image scaled to [0, 1]; the graph first normalises it per channel, `(x − mean[c]) / std[c]`
//! in f32 (see [`InputSpec`]). Then each node in order: `Conv` (zero padding, square kernel, output size
//! `(H + 2p − k)/s + 1`), `Gemm` (`y = W·flatten(x) + b`, any input shape whose element count is `cols`),
//! `BatchNorm` (`(x − mean)/sqrt(var + eps)·gamma + beta`), pools without padding (`(H − k)/s + 1`, average
//! divides by `k²`), `GlobalAvgPool` to `(C,)`, `Flatten` (a reshape, no data movement: emitters may alias
//! the buffer), `Add`, `SubsamplePad` (pixel `(c, y·s, x·s)` goes to channel `c + pad_before`, other channels
//! zero; output `(C + pad_before + pad_after, ⌈H/s⌉, ⌈W/s⌉)`). A `relu` flag applies `max(0, ·)` after the op.
//! Float results of other executors agree with the interpreter to rounding (summation order is not part of
//! the contract).
//!
//! # Int8 semantics (identical to `formats/scb.md` §8; runtime and generated C match them bit for bit)
//!
//! A graph is quantised when every node has `scale: Some(s)` (the activation scale, finite, > 0, symmetric,
//! zero point 0: real = s·q, q ∈ [−128, 127]); then every conv/gemm weight is [`ValueType::I8`], every bias is
//! [`Bias::I32`] in units of `s_in · scales[r]`, and no `BatchNorm` remains. Every real factor below becomes
//! an integer multiplier and shift at compile time ([`crate::compile::passes::quantize::fixed_multiplier`],
//! [`crate::compile::passes::quantize::add_multipliers`]), so the graph runs in integers only. `sat(v)`
//! saturates to `[−128, 127]` (`[0, 127]` when the op's `relu` flag is set); `rshr(v, sh) = (v + 2^(sh−1))
//! >> sh` (floor shift, no rounding term for `sh = 0`).
//!
//! - Input: normalise in f32 as above, then `v = x_norm / s_in` in f32, rounded half away from zero and
//!   saturated; NaN gives 0.
//! - Conv, Gemm: `acc = bias[r] + Σ q_w·q_x` in i32 (padding contributes 0); `(m, sh)` of the factor
//!   `(s_in · scales[r]) / s_out` (f64); `y = sat(rshr(acc · m, sh))` with the product in i64.
//! - Add: `(ma, mb, sh)` of the factors `s_a / s_out`, `s_b / s_out`; `y = sat(rshr(qa·ma + qb·mb, sh))` in
//!   i32.
//! - AvgPool, GlobalAvgPool: `acc = Σ q` in i32 over the `n` window elements; `(m, sh)` of `s_in / (s_out ·
//!   n)`; `y = sat(rshr(acc · m, sh))`.
//! - MaxPool, Relu, SubsamplePad, Flatten keep the scale: the node's scale equals its input's scale; Relu
//!   gives `max(q, 0)`, SubsamplePad fills with 0.
//! - Output: logits `q · s_out` in f32.
//!
//! # Stability
//!
//! Emitters consume this module; changes are additive. The canonical byte serialisation
//! ([`Graph::canonical_bytes`]) and the model hash ([`Graph::model_hash`]) are defined here.

use sha2::{Digest, Sha256};

use crate::error::{Error, Result};

/// Element type of stored weight values (see the module docs): f32, f16 or i8 (i32 is no weight type), and
/// how the column indices of a CSR weight are encoded in binary artefacts (`.scb`, C): any sparse
/// encoding (dense is no index encoding of a CSR weight). Both are the `.scb` format's own codes.
pub use sculpt_runtime::format::{IndexEncoding, ValueType};

/// The spelling of a value type in the canonical bytes and the model hash (fixed by format version 2).
fn canonical_value_type(t: ValueType) -> &'static str {
    match t {
        ValueType::F32 => "f32",
        ValueType::F16 => "f16",
        ValueType::I8 => "int8",
        ValueType::I32 => "i32",
    }
}

/// The spelling of an index encoding in the canonical bytes and the model hash (fixed by format version 2).
fn canonical_index(e: IndexEncoding) -> &'static str {
    match e {
        IndexEncoding::Dense => "dense",
        IndexEncoding::CsrGap8 => "gap8",
        IndexEncoding::CsrIdx16 => "u16",
        IndexEncoding::CsrIdx32 => "u32",
        IndexEncoding::Rice => "rice",
    }
}

/// Weight values, dense or CSR (rows = output channels, cols = fan-in).
#[derive(Debug, Clone, PartialEq)]
pub enum Storage {
    /// Row-major `rows × cols` values.
    Dense(Vec<f32>),
    /// Compressed sparse rows: `indptr.len() == rows + 1`, `indptr[0] == 0`, non-decreasing, last = nnz;
    /// `indices` strictly increasing within a row and `< cols`; `values.len() == indices.len()`.
    /// Stored entries may be zero (e.g. a mask entry whose weight is zero); they are kept.
    Csr {
        indptr: Vec<u32>,
        indices: Vec<u32>,
        values: Vec<f32>,
        index: IndexEncoding,
    },
}

/// A conv or gemm weight: logical shape, storage, value type and (int8) per-row scales.
#[derive(Debug, Clone, PartialEq)]
pub struct Weight {
    /// `(CO, CI, K, K)` for a conv, `(out, in)` for a gemm.
    pub shape: Vec<usize>,
    pub storage: Storage,
    pub dtype: ValueType,
    /// `Some` exactly when `dtype == I8`: one scale per row.
    pub scales: Option<Vec<f32>>,
}

impl Weight {
    /// A dense f32 weight.
    pub fn dense(shape: Vec<usize>, values: Vec<f32>) -> Self {
        Weight {
            shape,
            storage: Storage::Dense(values),
            dtype: ValueType::F32,
            scales: None,
        }
    }

    /// Output channels.
    pub fn rows(&self) -> usize {
        self.shape.first().copied().unwrap_or(0)
    }

    /// Fan-in: the product of all dimensions but the first.
    pub fn cols(&self) -> usize {
        self.shape.iter().skip(1).product()
    }

    /// Number of stored entries (all of them for dense storage).
    pub fn stored(&self) -> usize {
        match &self.storage {
            Storage::Dense(v) => v.len(),
            Storage::Csr { values, .. } => values.len(),
        }
    }

    /// Number of nonzero values.
    pub fn nnz(&self) -> usize {
        self.values().iter().filter(|v| **v != 0.0).count()
    }

    /// Fraction of zeros among `rows · cols`.
    pub fn sparsity(&self) -> f64 {
        let n = self.rows() * self.cols();
        if n == 0 {
            0.0
        } else {
            1.0 - self.nnz() as f64 / n as f64
        }
    }

    /// The stored values (q for int8), in storage order.
    pub fn values(&self) -> &[f32] {
        match &self.storage {
            Storage::Dense(v) => v,
            Storage::Csr { values, .. } => values,
        }
    }

    /// The stored values as a dense row-major matrix (q for int8; zeros where CSR stores nothing).
    pub fn to_dense(&self) -> Vec<f32> {
        match &self.storage {
            Storage::Dense(v) => v.clone(),
            Storage::Csr {
                indptr,
                indices,
                values,
                ..
            } => {
                let cols = self.cols();
                let mut out = vec![0.0; self.rows() * cols];
                for r in 0..self.rows() {
                    for k in indptr[r] as usize..indptr[r + 1] as usize {
                        out[r * cols + indices[k] as usize] = values[k];
                    }
                }
                out
            }
        }
    }

    /// The real weights as a dense row-major matrix: stored values, times the row scale for int8.
    pub fn real_dense(&self) -> Vec<f32> {
        let mut d = self.to_dense();
        if let Some(s) = &self.scales {
            let cols = self.cols();
            for (r, row) in d.chunks_mut(cols.max(1)).enumerate() {
                for v in row {
                    *v *= s[r];
                }
            }
        }
        d
    }

    /// Converts to CSR keeping the nonzero values (CSR input is re-packed without its explicit zeros).
    pub fn to_csr(&self, index: IndexEncoding) -> Storage {
        let dense = self.to_dense();
        let cols = self.cols();
        let mut indptr = vec![0u32];
        let mut indices = Vec::new();
        let mut values = Vec::new();
        for r in 0..self.rows() {
            for c in 0..cols {
                let v = dense[r * cols + c];
                if v != 0.0 {
                    indices.push(c as u32);
                    values.push(v);
                }
            }
            indptr.push(indices.len() as u32);
        }
        Storage::Csr {
            indptr,
            indices,
            values,
            index,
        }
    }

    /// Checks storage, dtype and scales against the shape.
    pub fn validate(&self, who: &str) -> Result<()> {
        let bad = |msg: String| {
            Err(Error::Node {
                node: who.to_string(),
                kind: "weight",
                msg,
            })
        };
        if self.shape.len() < 2 || self.shape.contains(&0) {
            return bad(format!(
                "weight shape {:?} must have rank ≥ 2 and no zero dimension",
                self.shape
            ));
        }
        let (rows, cols) = (self.rows(), self.cols());
        match &self.storage {
            Storage::Dense(v) => {
                if v.len() != rows * cols {
                    return bad(format!(
                        "dense weight holds {} values, shape {:?} needs {}",
                        v.len(),
                        self.shape,
                        rows * cols
                    ));
                }
            }
            Storage::Csr {
                indptr,
                indices,
                values,
                index,
            } => {
                if indptr.len() != rows + 1 || indptr[0] != 0 {
                    return bad(format!(
                        "CSR indptr has {} entries (need {}) or does not start at 0",
                        indptr.len(),
                        rows + 1
                    ));
                }
                if indices.len() != values.len()
                    || *indptr.last().unwrap_or(&0) as usize != indices.len()
                {
                    return bad("CSR indptr, indices and values disagree on nnz".into());
                }
                for r in 0..rows {
                    let (a, b) = (indptr[r] as usize, indptr[r + 1] as usize);
                    if a > b || b > indices.len() {
                        return bad(format!("CSR indptr not monotone at row {r}"));
                    }
                    for k in a..b {
                        if indices[k] as usize >= cols || (k > a && indices[k] <= indices[k - 1]) {
                            return bad(format!(
                                "CSR column index {} in row {r} out of range or out of order",
                                indices[k]
                            ));
                        }
                    }
                }
                if *index == IndexEncoding::Dense {
                    return bad("a CSR weight needs a sparse index encoding, not dense".into());
                }
                if *index == IndexEncoding::CsrIdx16 && cols > 65536 {
                    return bad(format!("u16 indices cannot address {cols} columns"));
                }
            }
        }
        match (self.dtype, &self.scales) {
            (ValueType::I8, Some(s)) => {
                if s.len() != rows || s.iter().any(|v| !v.is_finite() || *v <= 0.0) {
                    return bad("int8 weight needs one finite positive scale per row".into());
                }
                if self
                    .values()
                    .iter()
                    .any(|v| v.fract() != 0.0 || v.abs() > 127.0)
                {
                    return bad("int8 weight values must be integers in [-127, 127]".into());
                }
            }
            (ValueType::I8, None) => return bad("int8 weight without scales".into()),
            (_, Some(_)) => return bad("scales on a float weight".into()),
            (ValueType::F16, None) => {
                if self
                    .values()
                    .iter()
                    .any(|&v| half::f16::from_f32(v).to_f32() != v && v.is_finite())
                {
                    return bad("f16 weight value not representable in half precision".into());
                }
            }
            (ValueType::F32, None) => {}
            (ValueType::I32, None) => return bad("i32 is a bias type, not a weight type".into()),
        }
        if self.values().iter().any(|v| !v.is_finite()) {
            return bad("non-finite weight value".into());
        }
        Ok(())
    }
}

/// A per-output-channel bias: real f32 values in float graphs, i32 in units of `s_in · scales[r]` in int8 graphs.
#[derive(Debug, Clone, PartialEq)]
pub enum Bias {
    F32(Vec<f32>),
    I32(Vec<i32>),
}

impl Bias {
    pub fn len(&self) -> usize {
        match self {
            Bias::F32(v) => v.len(),
            Bias::I32(v) => v.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The network input: per-sample shape and the normalisation the graph applies to [0, 1]-scaled images.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct InputSpec {
    /// (C, H, W).
    pub shape: [usize; 3],
    /// Per-channel mean (length C).
    pub mean: Vec<f32>,
    /// Per-channel standard deviation (length C, each > 0).
    pub std: Vec<f32>,
}

/// The closed set of operations.
#[derive(Debug, Clone, PartialEq)]
pub enum Op {
    /// The normalised network input; node 0 only.
    Input,
    /// 2-D convolution, square kernel `weight.shape[2] == weight.shape[3]`, zero padding on all sides.
    Conv {
        weight: Weight,
        bias: Option<Bias>,
        stride: usize,
        padding: usize,
        relu: bool,
    },
    /// `y = W·flatten(x) + b`; `weight.shape == [out, in]`.
    Gemm {
        weight: Weight,
        bias: Option<Bias>,
        relu: bool,
    },
    /// Inference batch norm over channels (removed by `passes::fold_bn`).
    BatchNorm {
        gamma: Vec<f32>,
        beta: Vec<f32>,
        mean: Vec<f32>,
        var: Vec<f32>,
        eps: f32,
    },
    Relu,
    MaxPool {
        kernel: usize,
        stride: usize,
    },
    AvgPool {
        kernel: usize,
        stride: usize,
    },
    /// (C, H, W) → (C,).
    GlobalAvgPool,
    /// Any shape → (numel,).
    Flatten,
    /// Elementwise sum of two equal shapes.
    Add {
        relu: bool,
    },
    /// The option-A shortcut (see the module docs).
    SubsamplePad {
        stride: usize,
        pad_before: usize,
        pad_after: usize,
    },
}

impl Op {
    /// Short name used in reports and errors.
    pub fn kind(&self) -> &'static str {
        match self {
            Op::Input => "input",
            Op::Conv { .. } => "conv",
            Op::Gemm { .. } => "gemm",
            Op::BatchNorm { .. } => "batchnorm",
            Op::Relu => "relu",
            Op::MaxPool { .. } => "maxpool",
            Op::AvgPool { .. } => "avgpool",
            Op::GlobalAvgPool => "globalavgpool",
            Op::Flatten => "flatten",
            Op::Add { .. } => "add",
            Op::SubsamplePad { .. } => "subsamplepad",
        }
    }

    /// Number of inputs the op takes.
    pub fn arity(&self) -> usize {
        match self {
            Op::Input => 0,
            Op::Add { .. } => 2,
            _ => 1,
        }
    }

    /// The weight of a conv or gemm.
    pub fn weight(&self) -> Option<&Weight> {
        match self {
            Op::Conv { weight, .. } | Op::Gemm { weight, .. } => Some(weight),
            _ => None,
        }
    }

    pub fn weight_mut(&mut self) -> Option<&mut Weight> {
        match self {
            Op::Conv { weight, .. } | Op::Gemm { weight, .. } => Some(weight),
            _ => None,
        }
    }

    /// The bias of a conv or gemm.
    pub fn bias(&self) -> Option<&Bias> {
        match self {
            Op::Conv { bias, .. } | Op::Gemm { bias, .. } => bias.as_ref(),
            _ => None,
        }
    }

    /// The fused-ReLU flag (false for ops without one).
    pub fn relu(&self) -> bool {
        match self {
            Op::Conv { relu, .. } | Op::Gemm { relu, .. } | Op::Add { relu } => *relu,
            _ => false,
        }
    }
}

/// One node: a name (the parameter prefix for imported checkpoints), the op, its inputs, its output shape and,
/// in quantised graphs, its output activation scale.
#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    pub name: String,
    pub op: Op,
    pub inputs: Vec<usize>,
    pub shape: Vec<usize>,
    pub scale: Option<f32>,
}

/// A model: input spec and nodes in topological order (see the module docs).
#[derive(Debug, Clone, PartialEq)]
pub struct Graph {
    pub input: InputSpec,
    pub nodes: Vec<Node>,
}

fn bad<T>(node: &Node, msg: impl std::fmt::Display) -> Result<T> {
    Err(Error::Node {
        node: node.name.clone(),
        kind: node.op.kind(),
        msg: msg.to_string(),
    })
}

fn chw(node: &Node, s: &[usize]) -> Result<(usize, usize, usize)> {
    match *s {
        [c, h, w] => Ok((c, h, w)),
        _ => bad(node, format!("needs a (C, H, W) input, got {s:?}")),
    }
}

fn window(node: &Node, size: usize, k: usize, s: usize) -> Result<usize> {
    if k == 0 || s == 0 {
        return bad(node, "kernel and stride must be ≥ 1");
    }
    if size < k {
        return bad(
            node,
            format!("input size {size} is smaller than the window {k}"),
        );
    }
    Ok((size - k) / s + 1)
}

impl Graph {
    /// A graph holding only its input node.
    pub fn new(input: InputSpec) -> Self {
        Graph {
            nodes: vec![Node {
                name: "input".into(),
                op: Op::Input,
                inputs: vec![],
                shape: input.shape.to_vec(),
                scale: None,
            }],
            input,
        }
    }

    /// Appends a node, inferring its shape; returns its index.
    pub fn push(&mut self, name: impl Into<String>, op: Op, inputs: Vec<usize>) -> Result<usize> {
        let mut node = Node {
            name: name.into(),
            op,
            inputs,
            shape: vec![],
            scale: None,
        };
        node.shape = self.infer(&node, self.nodes.len())?;
        self.nodes.push(node);
        Ok(self.nodes.len() - 1)
    }

    /// Index of the output node.
    pub fn output(&self) -> usize {
        self.nodes.len() - 1
    }

    /// Whether every node carries an activation scale (an int8 graph).
    pub fn is_quantized(&self) -> bool {
        self.nodes.iter().all(|n| n.scale.is_some())
    }

    /// Number of logits.
    pub fn classes(&self) -> usize {
        self.nodes.last().map_or(0, |n| n.shape.iter().product())
    }

    /// How many nodes read each node's output (the output node counts one extra reader).
    pub fn consumers(&self) -> Vec<usize> {
        let mut c = vec![0; self.nodes.len()];
        for n in &self.nodes {
            for &i in &n.inputs {
                c[i] += 1;
            }
        }
        if let Some(last) = c.last_mut() {
            *last += 1;
        }
        c
    }

    /// The shape node `at` produces given its inputs (which must be earlier nodes).
    fn infer(&self, node: &Node, at: usize) -> Result<Vec<usize>> {
        if node.inputs.len() != node.op.arity() {
            return bad(
                node,
                format!(
                    "takes {} inputs, has {}",
                    node.op.arity(),
                    node.inputs.len()
                ),
            );
        }
        if let Some(&i) = node.inputs.iter().find(|&&i| i >= at) {
            return bad(node, format!("input {i} is not an earlier node"));
        }
        let x = node
            .inputs
            .first()
            .map(|&i| self.nodes[i].shape.as_slice())
            .unwrap_or(&[]);
        Ok(match &node.op {
            Op::Input => {
                if at != 0 {
                    return bad(node, "the input op may only be node 0");
                }
                self.input.shape.to_vec()
            }
            Op::Conv {
                weight,
                bias,
                stride,
                padding,
                ..
            } => {
                weight.validate(&node.name)?;
                let (c, h, w) = chw(node, x)?;
                let s = &weight.shape;
                if s.len() != 4 || s[2] != s[3] || s[1] != c {
                    return bad(
                        node,
                        format!(
                            "weight shape {s:?} does not fit input {x:?} (need (CO, {c}, K, K))"
                        ),
                    );
                }
                if *padding >= s[2] {
                    return bad(
                        node,
                        format!("padding {padding} must be smaller than the kernel {}", s[2]),
                    );
                }
                check_bias(node, bias, s[0])?;
                vec![
                    s[0],
                    window(node, h + 2 * padding, s[2], *stride)?,
                    window(node, w + 2 * padding, s[2], *stride)?,
                ]
            }
            Op::Gemm { weight, bias, .. } => {
                weight.validate(&node.name)?;
                let s = &weight.shape;
                if s.len() != 2 || s[1] != x.iter().product::<usize>() {
                    return bad(node, format!("weight shape {s:?} does not fit input {x:?}"));
                }
                check_bias(node, bias, s[0])?;
                vec![s[0]]
            }
            Op::BatchNorm {
                gamma,
                beta,
                mean,
                var,
                eps,
            } => {
                let c = x.first().copied().unwrap_or(0);
                if [gamma, beta, mean, var].iter().any(|v| v.len() != c) {
                    return bad(node, format!("parameters must have {c} entries"));
                }
                if eps.is_nan()
                    || *eps < 0.0
                    || var.iter().any(|v| (*v + eps).is_nan() || *v + eps <= 0.0)
                {
                    return bad(node, "variance + eps must be positive");
                }
                x.to_vec()
            }
            Op::Relu => x.to_vec(),
            Op::MaxPool { kernel, stride } | Op::AvgPool { kernel, stride } => {
                let (c, h, w) = chw(node, x)?;
                vec![
                    c,
                    window(node, h, *kernel, *stride)?,
                    window(node, w, *kernel, *stride)?,
                ]
            }
            Op::GlobalAvgPool => vec![chw(node, x)?.0],
            Op::Flatten => vec![x.iter().product()],
            Op::Add { .. } => {
                let y = &self.nodes[node.inputs[1]].shape;
                if x != y.as_slice() {
                    return bad(node, format!("cannot add shapes {x:?} and {y:?}"));
                }
                x.to_vec()
            }
            Op::SubsamplePad {
                stride,
                pad_before,
                pad_after,
            } => {
                let (c, h, w) = chw(node, x)?;
                if *stride == 0 {
                    return bad(node, "stride must be ≥ 1");
                }
                vec![
                    c + pad_before + pad_after,
                    h.div_ceil(*stride),
                    w.div_ceil(*stride),
                ]
            }
        })
    }

    /// Checks every invariant of the module docs: node 0 is the only input, inputs point backwards, shapes
    /// re-infer to the stored ones, constants are consistent, and int8 graphs are complete. Run after every pass.
    pub fn validate(&self) -> Result<()> {
        let c = self.input.shape[0];
        if self.input.shape.contains(&0) {
            return Err(Error::Invalid(format!(
                "ir: input shape {:?} has a zero dimension",
                self.input.shape
            )));
        }
        if self.input.mean.len() != c || self.input.std.len() != c {
            return Err(Error::Invalid(format!(
                "ir: normalisation needs {c} means and stds"
            )));
        }
        if self.input.mean.iter().any(|m| !m.is_finite())
            || self.input.std.iter().any(|s| !(s.is_finite() && *s > 0.0))
        {
            return Err(Error::Invalid(
                "ir: normalisation mean must be finite and std finite and positive".into(),
            ));
        }
        if self.nodes.len() < 2 || self.nodes[0].op != Op::Input {
            return Err(Error::Invalid(
                "ir: a graph needs the input node and at least one op".into(),
            ));
        }
        let quant = self.nodes.iter().any(|n| n.scale.is_some());
        for (at, node) in self.nodes.iter().enumerate() {
            let shape = self.infer(node, at)?;
            if shape != node.shape {
                return bad(
                    node,
                    format!("stored shape {:?} but inferred {shape:?}", node.shape),
                );
            }
            if quant {
                self.validate_quant(node)?;
            } else if let Some(Bias::I32(_)) = node.op.bias() {
                return bad(node, "i32 bias in a float graph");
            } else if node.op.weight().is_some_and(|w| w.dtype == ValueType::I8) {
                return bad(node, "int8 weight in a float graph");
            }
        }
        if self.nodes.last().map(|n| n.shape.len()) != Some(1) {
            return Err(Error::Invalid(
                "ir: the output must be a vector of logits".into(),
            ));
        }
        Ok(())
    }

    fn validate_quant(&self, node: &Node) -> Result<()> {
        let s = match node.scale {
            Some(s) if s.is_finite() && s > 0.0 => s,
            Some(_) => return bad(node, "activation scale must be finite and positive"),
            None => return bad(node, "a quantised graph needs a scale on every node"),
        };
        let s_in = node.inputs.first().and_then(|&i| self.nodes[i].scale);
        match &node.op {
            Op::Conv { weight, bias, .. } | Op::Gemm { weight, bias, .. } => {
                if weight.dtype != ValueType::I8 {
                    return bad(node, "quantised graph with a non-int8 weight");
                }
                if matches!(bias, Some(Bias::F32(_))) {
                    return bad(node, "quantised graph with an f32 bias");
                }
            }
            Op::BatchNorm { .. } => {
                return bad(node, "batch norm must be folded before quantisation")
            }
            Op::MaxPool { .. } | Op::Relu | Op::SubsamplePad { .. } | Op::Flatten
                if s_in != Some(s) =>
            {
                return bad(node, "must keep its input's scale");
            }
            _ => {}
        }
        Ok(())
    }

    /// Deterministic serialisation of the whole graph (names, ops, parameters, constants, scales, input spec);
    /// little-endian, lengths as u64. Two graphs have equal canonical bytes exactly when they are equal.
    pub fn canonical_bytes(&self) -> Vec<u8> {
        let mut b = Canon(Vec::new());
        b.bytes(b"sculpt-ir-v1");
        for d in self.input.shape {
            b.u(d);
        }
        b.f32s(&self.input.mean);
        b.f32s(&self.input.std);
        b.u(self.nodes.len());
        for n in &self.nodes {
            b.bytes(n.name.as_bytes());
            b.bytes(n.op.kind().as_bytes());
            b.u(n.inputs.len());
            for &i in &n.inputs {
                b.u(i);
            }
            match n.scale {
                Some(s) => {
                    b.u(1);
                    b.f32s(&[s]);
                }
                None => b.u(0),
            }
            match &n.op {
                Op::Input | Op::Relu | Op::GlobalAvgPool | Op::Flatten => {}
                Op::Conv {
                    weight,
                    bias,
                    stride,
                    padding,
                    relu,
                } => {
                    b.u(*stride);
                    b.u(*padding);
                    b.u(usize::from(*relu));
                    b.weight(weight);
                    b.bias(bias);
                }
                Op::Gemm { weight, bias, relu } => {
                    b.u(usize::from(*relu));
                    b.weight(weight);
                    b.bias(bias);
                }
                Op::BatchNorm {
                    gamma,
                    beta,
                    mean,
                    var,
                    eps,
                } => {
                    for v in [gamma, beta, mean, var] {
                        b.f32s(v);
                    }
                    b.f32s(&[*eps]);
                }
                Op::MaxPool { kernel, stride } | Op::AvgPool { kernel, stride } => {
                    b.u(*kernel);
                    b.u(*stride);
                }
                Op::Add { relu } => b.u(usize::from(*relu)),
                Op::SubsamplePad {
                    stride,
                    pad_before,
                    pad_after,
                } => {
                    b.u(*stride);
                    b.u(*pad_before);
                    b.u(*pad_after);
                }
            }
        }
        b.0
    }

    /// SHA-256 of [`Graph::canonical_bytes`]: the model hash every export of one compilation carries.
    pub fn model_hash(&self) -> [u8; 32] {
        Sha256::digest(self.canonical_bytes()).into()
    }
}

fn check_bias(node: &Node, bias: &Option<Bias>, rows: usize) -> Result<()> {
    match bias {
        Some(b) if b.len() != rows => bad(
            node,
            format!("bias has {} entries, the weight {rows} rows", b.len()),
        ),
        Some(Bias::F32(v)) if v.iter().any(|x| !x.is_finite()) => bad(node, "non-finite bias"),
        _ => Ok(()),
    }
}

struct Canon(Vec<u8>);

impl Canon {
    fn u(&mut self, v: usize) {
        self.0.extend_from_slice(&(v as u64).to_le_bytes());
    }
    fn bytes(&mut self, v: &[u8]) {
        self.u(v.len());
        self.0.extend_from_slice(v);
    }
    fn f32s(&mut self, v: &[f32]) {
        self.u(v.len());
        for x in v {
            self.0.extend_from_slice(&x.to_bits().to_le_bytes());
        }
    }
    fn u32s(&mut self, v: &[u32]) {
        self.u(v.len());
        for x in v {
            self.0.extend_from_slice(&x.to_le_bytes());
        }
    }
    fn weight(&mut self, w: &Weight) {
        self.u(w.shape.len());
        for &d in &w.shape {
            self.u(d);
        }
        self.bytes(canonical_value_type(w.dtype).as_bytes());
        match &w.scales {
            Some(s) => {
                self.u(1);
                self.f32s(s);
            }
            None => self.u(0),
        }
        match &w.storage {
            Storage::Dense(v) => {
                self.u(0);
                self.f32s(v);
            }
            Storage::Csr {
                indptr,
                indices,
                values,
                index,
            } => {
                self.u(1);
                self.bytes(canonical_index(*index).as_bytes());
                self.u32s(indptr);
                self.u32s(indices);
                self.f32s(values);
            }
        }
    }
    fn bias(&mut self, b: &Option<Bias>) {
        match b {
            None => self.u(0),
            Some(Bias::F32(v)) => {
                self.u(1);
                self.f32s(v);
            }
            Some(Bias::I32(v)) => {
                self.u(2);
                self.u(v.len());
                for x in v {
                    self.0.extend_from_slice(&x.to_le_bytes());
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tiny() -> Graph {
        let mut g = Graph::new(InputSpec {
            shape: [1, 4, 4],
            mean: vec![0.5],
            std: vec![0.25],
        });
        let w = Weight::dense(
            vec![2, 1, 3, 3],
            (0..18).map(|i| i as f32 * 0.1 - 0.8).collect(),
        );
        let c = g
            .push(
                "conv",
                Op::Conv {
                    weight: w,
                    bias: Some(Bias::F32(vec![0.1, -0.1])),
                    stride: 1,
                    padding: 1,
                    relu: true,
                },
                vec![0],
            )
            .unwrap();
        let p = g
            .push(
                "pool",
                Op::MaxPool {
                    kernel: 2,
                    stride: 2,
                },
                vec![c],
            )
            .unwrap();
        g.push(
            "fc",
            Op::Gemm {
                weight: Weight::dense(vec![3, 8], vec![0.5; 24]),
                bias: None,
                relu: false,
            },
            vec![p],
        )
        .unwrap();
        g
    }

    #[test]
    fn shapes_infer_and_validate() {
        let g = tiny();
        assert_eq!(g.nodes[1].shape, vec![2, 4, 4]);
        assert_eq!(g.nodes[2].shape, vec![2, 2, 2]);
        assert_eq!(g.nodes[3].shape, vec![3]);
        g.validate().unwrap();
    }

    #[test]
    fn validate_rejects_inconsistencies() {
        let mut g = tiny();
        g.nodes[2].shape = vec![2, 3, 3];
        assert!(g.validate().unwrap_err().to_string().contains("pool"));
        let mut g = tiny();
        g.nodes[3].inputs = vec![3];
        assert!(g.validate().is_err());
        let mut g = tiny();
        if let Some(w) = g.nodes[1].op.weight_mut() {
            w.storage = Storage::Csr {
                indptr: vec![0, 2, 1],
                indices: vec![0, 1],
                values: vec![1.0, 1.0],
                index: IndexEncoding::CsrIdx32,
            };
        }
        assert!(g.validate().is_err());
        let mut g = tiny();
        g.nodes[1].scale = Some(0.1);
        assert!(g.validate().unwrap_err().to_string().contains("scale"));
    }

    #[test]
    fn csr_round_trip_and_hash() {
        let g = tiny();
        let w = g.nodes[1].op.weight().unwrap();
        let mut c = w.clone();
        c.storage = w.to_csr(IndexEncoding::CsrGap8);
        assert_eq!(c.to_dense(), w.to_dense());
        assert_eq!(c.stored(), w.nnz());
        c.validate("conv").unwrap();
        let mut g2 = g.clone();
        assert_eq!(g.model_hash(), g2.model_hash());
        *g2.nodes[1].op.weight_mut().unwrap() = c;
        assert_ne!(g.model_hash(), g2.model_hash());
    }
}
