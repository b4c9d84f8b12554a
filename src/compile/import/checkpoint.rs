//! Imports a sculpt checkpoint (formats/checkpoint.md) into the IR: the JSON `model` spec gives the graph
//! (`ModelSpec::graph`), the safetensors file the tensors by path. A weight with a mask becomes CSR storage
//! with exactly the mask's pattern; other weights are dense (the layout pass turns exact zeros into sparsity).

use std::path::{Path, PathBuf};

use safetensors::{Dtype, SafeTensors};

use crate::budget::Budget;
use crate::compile::ir::{Bias, Graph, IndexEncoding, InputSpec, Op, Storage, Weight};
use crate::error::{clip_lines, describe_safetensors, quote, Error, Result};
use crate::fsio;
use crate::nn::spec::{Arch, ModelSpec, Op as NnOp};

/// The two files of the checkpoint named by `path` (which may end in `.safetensors`, `.json`, or neither).
pub fn paths(path: &Path) -> (PathBuf, PathBuf) {
    let base = match path.extension().and_then(|e| e.to_str()) {
        Some("safetensors") | Some("json") => path.with_extension(""),
        _ => path.to_path_buf(),
    };
    let mut st = base.clone().into_os_string();
    st.push(".safetensors");
    let mut js = base.into_os_string();
    js.push(".json");
    (PathBuf::from(st), PathBuf::from(js))
}

fn ck(path: &Path, msg: impl Into<String>) -> Error {
    Error::Checkpoint {
        path: path.to_path_buf(),
        msg: msg.into(),
    }
}

/// What the importer reads from the JSON metadata.
#[derive(Debug, Clone, PartialEq)]
pub struct Meta {
    pub model: ModelSpec,
    pub mean: Vec<f32>,
    pub std: Vec<f32>,
}

/// Parses checkpoint metadata: `format`, `version` 1, `model` (a ModelSpec), optional `normalization`.
pub fn parse_meta(path: &Path, text: &str) -> Result<Meta> {
    let v: serde_json::Value = serde_json::from_str(text).map_err(|e| {
        ck(
            path,
            format!("invalid JSON: {}", clip_lines(&e.to_string(), 4)),
        )
    })?;
    if v.get("format").and_then(|f| f.as_str()) != Some("sculpt-checkpoint") {
        return Err(ck(
            path,
            "not a sculpt checkpoint (`format` must be \"sculpt-checkpoint\")",
        ));
    }
    match v.get("version") {
        Some(n) if n.as_u64() == Some(1) => {}
        Some(other) => {
            return Err(ck(
                path,
                format!(
                    "`version` is {}, this reader supports version 1",
                    quote(&other.to_string())
                ),
            ))
        }
        None => return Err(ck(path, "`version` is missing (need 1)")),
    }
    let mut model = match v.get("model") {
        Some(serde_json::Value::Object(m)) => m.clone(),
        _ => return Err(ck(path, "`model` missing or not an object")),
    };
    let input: [usize; 3] = model
        .remove("input")
        .and_then(|i| serde_json::from_value(i).ok())
        .ok_or_else(|| ck(path, "`model.input` missing or not three sizes"))?;
    let classes: usize = model
        .remove("classes")
        .and_then(|i| serde_json::from_value(i).ok())
        .ok_or_else(|| ck(path, "`model.classes` missing or not a size"))?;
    let arch: Arch = serde_json::from_value(serde_json::Value::Object(model))
        .map_err(|e| ck(path, format!("`model`: {}", clip_lines(&e.to_string(), 4))))?;
    let model = ModelSpec {
        arch,
        input,
        classes,
    };
    model
        .graph()
        .map_err(|e| ck(path, format!("`model`: {}", strip_model_prefix(e))))?;
    let c = input[0];
    let (mean, std) = match v.get("normalization") {
        None | Some(serde_json::Value::Null) => (vec![0.0; c], vec![1.0; c]),
        Some(n) => {
            let get = |k: &str| -> Result<Vec<f32>> {
                n.get(k)
                    .and_then(|x| serde_json::from_value::<Vec<f32>>(x.clone()).ok())
                    .ok_or_else(|| ck(path, format!("`normalization.{k}` missing or not numbers")))
            };
            (get("mean")?, get("std")?)
        }
    };
    if mean.len() != c
        || std.len() != c
        || mean.iter().any(|m| !m.is_finite())
        || std.iter().any(|s| !(s.is_finite() && *s > 0.0))
    {
        return Err(ck(
            path,
            format!("`normalization` needs {c} finite means and {c} finite positive stds"),
        ));
    }
    Ok(Meta { model, mean, std })
}

fn strip_model_prefix(e: Error) -> String {
    match e {
        Error::Model(m) => m,
        other => other.to_string(),
    }
}

struct Tensors<'a> {
    st: SafeTensors<'a>,
    path: &'a Path,
    budget: &'a Budget,
}

impl Tensors<'_> {
    fn has(&self, name: &str) -> bool {
        self.st.tensor(name).is_ok()
    }

    fn f32(&self, name: &str, shape: &[usize]) -> Result<Vec<f32>> {
        let t = self
            .st
            .tensor(name)
            .map_err(|_| ck(self.path, format!("missing tensor {name}")))?;
        if t.dtype() != Dtype::F32 {
            return Err(ck(
                self.path,
                format!("tensor {name} is {:?}, expected F32", t.dtype()),
            ));
        }
        if t.shape() != shape {
            return Err(ck(
                self.path,
                format!(
                    "tensor {name} has shape {:?}, the model needs {shape:?}",
                    t.shape()
                ),
            ));
        }
        self.charge(&format!("tensor {name}"), t.data().len())?;
        let v: Vec<f32> = t
            .data()
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect();
        if v.iter().any(|x| !x.is_finite()) {
            return Err(ck(
                self.path,
                format!("tensor {name} holds non-finite values"),
            ));
        }
        Ok(v)
    }

    fn i64s(&self, name: &str) -> Result<Vec<i64>> {
        let t = self
            .st
            .tensor(name)
            .map_err(|_| ck(self.path, format!("missing tensor {name}")))?;
        if t.dtype() != Dtype::I64 || t.shape().len() != 1 {
            return Err(ck(
                self.path,
                format!("tensor {name} must be a 1-D I64 array"),
            ));
        }
        self.charge(&format!("tensor {name}"), t.data().len())?;
        Ok(t.data()
            .chunks_exact(8)
            .map(|b| i64::from_le_bytes(b.try_into().expect("8 bytes")))
            .collect())
    }

    fn charge(&self, what: &str, bytes: usize) -> Result<()> {
        self.budget
            .charge(what, bytes as u64)
            .map_err(|e| Error::budget(self.path, e))
    }

    /// The weight at `path` with `shape`; CSR with the mask pattern when `mask.<path>.*` exist.
    fn weight(&self, name: &str, shape: Vec<usize>) -> Result<Weight> {
        let dense = self.f32(name, &shape)?;
        let mut w = Weight::dense(shape, dense);
        let (ip, ix) = (
            format!("mask.{name}.indptr"),
            format!("mask.{name}.indices"),
        );
        if !self.has(&ip) && !self.has(&ix) {
            return Ok(w);
        }
        let (rows, cols) = (w.rows(), w.cols());
        let indptr = self.i64s(&ip)?;
        let indices = self.i64s(&ix)?;
        let bad = |m: &str| ck(self.path, format!("mask of {name}: {m}"));
        if indptr.len() != rows + 1 || indptr[0] != 0 || indptr[rows] as usize != indices.len() {
            return Err(bad(
                "row pointers do not match the weight's rows or the index count",
            ));
        }
        let dense = w.to_dense();
        self.charge(
            &format!("the mask of {name}"),
            dense.len() * 5 + indices.len() * 8,
        )?;
        let mut kept = vec![false; dense.len()];
        let mut values = Vec::with_capacity(indices.len());
        for r in 0..rows {
            let (a, b) = (indptr[r], indptr[r + 1]);
            if a > b || b as usize > indices.len() {
                return Err(bad("row pointers are not monotone"));
            }
            for k in a as usize..b as usize {
                let c = indices[k];
                if c < 0 || c as usize >= cols || (k > a as usize && c <= indices[k - 1]) {
                    return Err(bad(&format!(
                        "column index {c} in row {r} out of range or out of order"
                    )));
                }
                kept[r * cols + c as usize] = true;
                values.push(dense[r * cols + c as usize]);
            }
        }
        if dense.iter().zip(&kept).any(|(v, k)| *v != 0.0 && !k) {
            return Err(bad("nonzero weights outside the mask"));
        }
        w.storage = Storage::Csr {
            indptr: indptr.iter().map(|&v| v as u32).collect(),
            indices: indices.iter().map(|&v| v as u32).collect(),
            values,
            index: IndexEncoding::CsrIdx32,
        };
        Ok(w)
    }
}

/// Builds the IR of `spec` with tensors read by path from safetensors bytes (`path` names the file in errors),
/// within a default [`Budget`].
pub fn graph_from_tensors(meta: &Meta, bytes: &[u8], path: &Path) -> Result<Graph> {
    graph_from_tensors_within(meta, bytes, path, &Budget::default())
}

/// [`graph_from_tensors`] charging every decoded tensor to `budget`.
pub fn graph_from_tensors_within(
    meta: &Meta,
    bytes: &[u8],
    path: &Path,
    budget: &Budget,
) -> Result<Graph> {
    let st = SafeTensors::deserialize(bytes).map_err(|e| {
        ck(
            path,
            format!("not a valid safetensors file: {}", describe_safetensors(&e)),
        )
    })?;
    let t = Tensors { st, path, budget };
    let nn = meta.model.graph()?;
    let mut g = Graph::new(InputSpec {
        shape: meta.model.input,
        mean: meta.mean.clone(),
        std: meta.std.clone(),
    });
    for node in nn.nodes.iter().skip(1) {
        let p = |s: &str| format!("{}.{s}", node.name);
        let op = match &node.op {
            NnOp::Input => return Err(ck(path, "model graph has a second input")),
            NnOp::Conv2d {
                in_channels,
                out_channels,
                kernel,
                stride,
                padding,
                bias,
            } => Op::Conv {
                weight: t.weight(
                    &p("weight"),
                    vec![*out_channels, *in_channels, *kernel, *kernel],
                )?,
                bias: if *bias {
                    Some(Bias::F32(t.f32(&p("bias"), &[*out_channels])?))
                } else {
                    None
                },
                stride: *stride,
                padding: *padding,
                relu: false,
            },
            NnOp::Linear {
                in_features,
                out_features,
                bias,
            } => Op::Gemm {
                weight: t.weight(&p("weight"), vec![*out_features, *in_features])?,
                bias: if *bias {
                    Some(Bias::F32(t.f32(&p("bias"), &[*out_features])?))
                } else {
                    None
                },
                relu: false,
            },
            NnOp::BatchNorm2d { channels } => Op::BatchNorm {
                gamma: t.f32(&p("weight"), &[*channels])?,
                beta: t.f32(&p("bias"), &[*channels])?,
                mean: t.f32(&p("running_mean"), &[*channels])?,
                var: t.f32(&p("running_var"), &[*channels])?,
                eps: 1e-5,
            },
            NnOp::Relu => Op::Relu,
            NnOp::MaxPool2d { kernel, stride } => Op::MaxPool {
                kernel: *kernel,
                stride: *stride,
            },
            NnOp::AvgPool2d { kernel, stride } => Op::AvgPool {
                kernel: *kernel,
                stride: *stride,
            },
            NnOp::GlobalAvgPool => Op::GlobalAvgPool,
            NnOp::Flatten => Op::Flatten,
            NnOp::Add => Op::Add { relu: false },
            NnOp::SubsamplePad {
                stride,
                pad_before,
                pad_after,
            } => Op::SubsamplePad {
                stride: *stride,
                pad_before: *pad_before,
                pad_after: *pad_after,
            },
        };
        g.push(node.name.clone(), op, node.inputs.clone())
            .map_err(|e| ck(path, format!("node {}: {e}", node.name)))?;
    }
    g.validate().map_err(|e| ck(path, e.to_string()))?;
    Ok(g)
}

/// Imports the checkpoint named by `path`; both files and every decoded tensor are charged to one default
/// [`Budget`].
pub fn import(path: &Path) -> Result<Graph> {
    let (st_path, json_path) = paths(path);
    let budget = Budget::default();
    let text = fsio::read_text_within(&json_path, &budget, "the metadata")?;
    let meta = parse_meta(&json_path, &text)?;
    let bytes = fsio::read_within(&st_path, &budget, "the tensors")?;
    graph_from_tensors_within(&meta, &bytes, &st_path, &budget)
}

/// Tensor name of a checkpoint's probe images (formats/checkpoint.md, "Probe").
pub const PROBE_INPUTS: &str = "probe.inputs";
/// Tensor name of a checkpoint's probe logits.
pub const PROBE_LOGITS: &str = "probe.logits";

/// A checkpoint's probe as data: `samples` images of the graph's input shape in [0, 1] and the trainer's
/// eval-mode logits on them, both concatenated.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredProbe {
    pub samples: usize,
    pub inputs: Vec<f32>,
    pub logits: Vec<f32>,
}

/// Reads the probe of the checkpoint named by `path` (whose imported graph is `graph`); `None` when the
/// checkpoint has none (written before probes existed). Shapes must match the graph; values must be finite.
pub fn read_probe(path: &Path, graph: &Graph) -> Result<Option<StoredProbe>> {
    let (st_path, _) = paths(path);
    let budget = Budget::default();
    let bytes = fsio::read_within(&st_path, &budget, "the tensors")?;
    let st = SafeTensors::deserialize(&bytes).map_err(|e| {
        ck(
            &st_path,
            format!("not a valid safetensors file: {}", describe_safetensors(&e)),
        )
    })?;
    let t = Tensors {
        st,
        path: &st_path,
        budget: &budget,
    };
    match (t.has(PROBE_INPUTS), t.has(PROBE_LOGITS)) {
        (false, false) => return Ok(None),
        (true, true) => {}
        _ => {
            return Err(ck(
                &st_path,
                format!("a probe needs both {PROBE_INPUTS} and {PROBE_LOGITS}"),
            ))
        }
    }
    let n =
        t.st.tensor(PROBE_INPUTS)
            .map(|v| v.shape().first().copied().unwrap_or(0))
            .unwrap_or(0);
    let [c, h, w] = graph.input.shape;
    let inputs = t.f32(PROBE_INPUTS, &[n, c, h, w])?;
    let logits = t.f32(PROBE_LOGITS, &[n, graph.classes()])?;
    Ok(Some(StoredProbe {
        samples: n,
        inputs,
        logits,
    }))
}
