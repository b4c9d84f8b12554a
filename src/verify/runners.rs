//! Executors of each artefact kind, all with one contract: given the artefact and `n` samples of C·H·W values
//! in [0, 1] (concatenated), return `n` rows of logits (concatenated). ONNX files take normalised inputs (see
//! formats/onnx.md), so the ONNX runners normalise first; `.scb` and C apply the normalisation themselves.
//! Each runner checks that the samples fit the model's input before running, names the artefact's file in its
//! errors, and runs third-party code inside the [`boundary`](super::boundary).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use super::boundary::contain;
use crate::budget::Budget;
use crate::compile::interp::normalize;
use crate::compile::ir::Graph;
use crate::error::{Error, Result};

fn fail(what: &str, e: impl std::fmt::Display) -> Error {
    Error::Invalid(format!("{what}: {e}"))
}

/// An ONNX model loaded and optimised by tract for batch-1 inputs of a graph's input shape.
pub struct Tract {
    plan: std::sync::Arc<tract_onnx::prelude::TypedSimplePlan>,
    shape: [usize; 3],
}

impl Tract {
    /// Loads `bytes` for single images of `graph`'s input shape (inside the panic boundary). The file's
    /// intermediate and output shapes are ignored (re-inferred from the batch-1 input), since exporters
    /// annotate them with a symbolic batch that a batch-1 plan cannot unify.
    pub fn load(bytes: &[u8], graph: &Graph) -> Result<Self> {
        use tract_onnx::prelude::*;
        let [c, h, w] = graph.input.shape;
        let plan = contain("tract", "loading the ONNX model", || {
            tract_onnx::onnx()
                .with_ignore_value_info(true)
                .with_ignore_output_shapes(true)
                .model_for_read(&mut &bytes[..])
                .and_then(|m| m.with_input_fact(0, f32::fact([1, c, h, w]).into()))
                .and_then(|m| m.into_optimized())
                .and_then(|m| m.into_runnable())
                .map_err(|e| fail("tract cannot load the ONNX model", format!("{e:#}")))
        })?;
        Ok(Tract {
            plan,
            shape: graph.input.shape,
        })
    }

    /// The logits of one already-normalised image (inside the panic boundary).
    pub fn run_normalised(&self, x: &[f32]) -> Result<Vec<f32>> {
        use tract_onnx::prelude::*;
        let [c, h, w] = self.shape;
        contain("tract", "running the ONNX model", || {
            let t = tract_ndarray::Array4::from_shape_vec((1, c, h, w), x.to_vec())
                .map_err(|e| fail("tract input", e))?;
            let r = self
                .plan
                .run(tvec!(Tensor::from(t).into()))
                .map_err(|e| fail("tract run", format!("{e:#}")))?;
            let v = r
                .first()
                .ok_or_else(|| Error::Invalid("tract run: the model has no output".into()))?
                .to_plain_array_view::<f32>()
                .map_err(|e| fail("tract output", e))?;
            Ok(v.iter().copied().collect())
        })
    }
}

/// Checks that `xs` holds whole samples of `shape` before a run: `who` (the file) names the model in the error.
pub fn check_samples(who: &Path, shape: [usize; 3], xs: &[f32]) -> Result<usize> {
    let per: usize = shape.iter().product();
    if per == 0 || xs.len() % per != 0 {
        return Err(Error::Invalid(format!(
            "{}: the model takes images of {}x{}x{} = {per} values, the samples hold {} values, not a whole number of images",
            who.display(),
            shape[0],
            shape[1],
            shape[2],
            xs.len()
        )));
    }
    Ok(xs.len() / per)
}

/// Adds the file name to an error of a runner.
fn in_file(path: &Path) -> impl Fn(Error) -> Error + '_ {
    move |e| match e {
        Error::Invalid(m) => Error::Invalid(format!("{}: {m}", path.display())),
        other => other,
    }
}

/// Runs an ONNX model with tract, one sample at a time. `graph` supplies the input shape and normalisation;
/// `path` names the file in errors.
pub fn tract(path: &Path, bytes: &[u8], graph: &Graph, xs: &[f32]) -> Result<Vec<f32>> {
    check_samples(path, graph.input.shape, xs)?;
    let model = Tract::load(bytes, graph).map_err(in_file(path))?;
    let per: usize = graph.input.shape.iter().product();
    let mut out = Vec::new();
    for x in xs.chunks(per) {
        out.extend(
            model
                .run_normalised(&normalize(graph, x))
                .map_err(in_file(path))?,
        );
    }
    Ok(out)
}

/// Where the ONNX Runtime shared library is: `ORT_DYLIB_PATH`, else the `onnxruntime` Python package's
/// `capi/libonnxruntime.so*`.
pub fn find_onnxruntime() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("ORT_DYLIB_PATH") {
        let p = PathBuf::from(p);
        return p.is_file().then_some(p);
    }
    let out = Command::new("python3")
        .args([
            "-c",
            "import onnxruntime,os;print(os.path.dirname(onnxruntime.__file__))",
        ])
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    let dir = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim()).join("capi");
    let mut libs: Vec<PathBuf> = std::fs::read_dir(&dir)
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.file_name().and_then(|n| n.to_str()).is_some_and(|n| {
                n.starts_with("libonnxruntime.so")
                    || n.starts_with("libonnxruntime.") && n.ends_with(".dylib")
            })
        })
        .collect();
    libs.sort();
    libs.pop()
}

static ORT: OnceLock<std::result::Result<PathBuf, String>> = OnceLock::new();

fn ort_unavailable(why: String) -> Error {
    Error::Unavailable {
        tool: "ONNX Runtime".into(),
        why,
    }
}

/// Loads ONNX Runtime once per process; the error ([`Error::Unavailable`]) says why it is unavailable.
pub fn ort_init() -> Result<PathBuf> {
    ORT.get_or_init(|| {
        let lib = find_onnxruntime().ok_or_else(|| {
            "ONNX Runtime not found: set ORT_DYLIB_PATH or `pip install onnxruntime`".to_string()
        })?;
        ort::init_from(lib.display().to_string())
            .commit()
            .map_err(|e| format!("cannot load ONNX Runtime from {}: {e}", lib.display()))?;
        Ok(lib)
    })
    .clone()
    .map_err(ort_unavailable)
}

/// Runs an ONNX model with ONNX Runtime (the sparse export: ORT accepts `sparse_initializer`); `path` names
/// the file in errors.
pub fn onnxruntime(path: &Path, bytes: &[u8], graph: &Graph, xs: &[f32]) -> Result<Vec<f32>> {
    let n = check_samples(path, graph.input.shape, xs)?;
    ort_init()?;
    contain("ONNX Runtime", &path.display().to_string(), || {
        onnxruntime_unguarded(bytes, graph, xs, n)
    })
    .map_err(in_file(path))
}

fn onnxruntime_unguarded(bytes: &[u8], graph: &Graph, xs: &[f32], n: usize) -> Result<Vec<f32>> {
    let [c, h, w] = graph.input.shape;
    let per = c * h * w;
    let mut session = ort::session::Session::builder()
        .and_then(|b| b.with_intra_threads(1))
        .and_then(|b| b.commit_from_memory(bytes))
        .map_err(|e| fail("ONNX Runtime cannot load the model", e))?;
    let normalised: Vec<f32> = xs.chunks(per).flat_map(|x| normalize(graph, x)).collect();
    let input = ort::value::Tensor::from_array(([n, c, h, w], normalised))
        .map_err(|e| fail("ONNX Runtime input", e))?;
    let outputs = session
        .run(ort::inputs![crate::compile::emit::onnx::INPUT => input])
        .map_err(|e| fail("ONNX Runtime run", e))?;
    let (_, data) = outputs[crate::compile::emit::onnx::OUTPUT]
        .try_extract_tensor::<f32>()
        .map_err(|e| fail("ONNX Runtime output", e))?;
    Ok(data.to_vec())
}

/// A copy of an ONNX model with every `sparse_initializer` replaced by the equivalent dense `initializer`
/// (f32 values; int64 indices, linear `[nnz]` or coordinates `[nnz, rank]`, as raw or typed data). This
/// reader shares nothing with the emitter but the protobuf schema, so a sparse file run by tract through it
/// checks the sparse encoding itself.
pub fn densify_sparse(path: &Path, bytes: &[u8]) -> Result<Vec<u8>> {
    use onnx_protobuf::{tensor_proto::DataType, ModelProto, TensorProto};
    use protobuf::Message;
    let bad = |m: String| Error::format(path, format!("sparse initializer: {m}"));
    let mut m = ModelProto::parse_from_bytes(bytes)
        .map_err(|e| Error::format(path, format!("not an ONNX model: {e}")))?;
    let g = m
        .graph
        .as_mut()
        .ok_or_else(|| bad("the model has no graph".into()))?;
    let budget = Budget::default();
    for s in std::mem::take(&mut g.sparse_initializer) {
        let (Some(values), Some(indices)) = (s.values.as_ref(), s.indices.as_ref()) else {
            return Err(bad("missing values or indices".into()));
        };
        if values.data_type != DataType::FLOAT as i32 || indices.data_type != DataType::INT64 as i32
        {
            return Err(bad(format!(
                "{}: needs f32 values and int64 indices",
                values.name
            )));
        }
        let vals: Vec<f32> = if values.raw_data.is_empty() {
            values.float_data.clone()
        } else {
            values
                .raw_data
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect()
        };
        let idx: Vec<i64> = if indices.raw_data.is_empty() {
            indices.int64_data.clone()
        } else {
            indices
                .raw_data
                .chunks_exact(8)
                .map(|b| i64::from_le_bytes(b.try_into().expect("8 bytes")))
                .collect()
        };
        let dims: Vec<usize> = s
            .dims
            .iter()
            .map(|&d| usize::try_from(d).map_err(|_| bad(format!("dimension {d}"))))
            .collect::<Result<_>>()?;
        let numel = dims
            .iter()
            .try_fold(1usize, |a, &d| a.checked_mul(d))
            .ok_or_else(|| bad("the shape overflows".into()))?;
        budget
            .charge_elements(format!("sparse initializer {}", values.name), numel, 4)
            .map_err(|e| Error::budget(path, e))?;
        let rank = dims.len();
        let linear: Vec<i64> = if idx.len() == vals.len() {
            idx
        } else if idx.len() == vals.len() * rank {
            idx.chunks(rank.max(1))
                .map(|c| {
                    c.iter()
                        .zip(&dims)
                        .fold(0i64, |a, (&i, &d)| a * d as i64 + i)
                })
                .collect()
        } else {
            return Err(bad(format!(
                "{}: {} indices for {} values",
                values.name,
                idx.len(),
                vals.len()
            )));
        };
        let mut dense = vec![0f32; numel];
        for (&i, &v) in linear.iter().zip(&vals) {
            let slot = usize::try_from(i)
                .ok()
                .and_then(|i| dense.get_mut(i))
                .ok_or_else(|| bad(format!("{}: index {i} out of range", values.name)))?;
            *slot = v;
        }
        let mut t = TensorProto::new();
        t.name = values.name.clone();
        t.data_type = DataType::FLOAT as i32;
        t.dims = s.dims.clone();
        t.raw_data = dense.iter().flat_map(|x| x.to_le_bytes()).collect();
        g.initializer.push(t);
    }
    m.write_to_bytes()
        .map_err(|e| Error::Invalid(format!("{}: cannot re-encode: {e}", path.display())))
}

/// Runs a sparse ONNX model with tract after [`densify_sparse`] (tract does not read `sparse_initializer`).
pub fn tract_densified(path: &Path, bytes: &[u8], graph: &Graph, xs: &[f32]) -> Result<Vec<f32>> {
    tract(path, &densify_sparse(path, bytes)?, graph, xs)
}

/// Runs a `.scb` model with the runtime crate (float API: the runtime normalises, and for int8 models
/// quantises the input and dequantises the logits), the samples split across the rayon pool's threads
/// ([`crate::compile::batch`]). The arenas (one per thread) and the logits are charged to a default
/// [`Budget`] before they are allocated; `path` names the file in errors.
pub fn runtime(path: &Path, bytes: &[u8], xs: &[f32]) -> Result<Vec<f32>> {
    let m = sculpt_runtime::Model::parse(bytes)
        .map_err(|e| Error::format(path, format!("not a valid .scb model: {e}")))?;
    let per = m.input_len();
    if per == 0 || xs.len() % per != 0 {
        return Err(Error::format(
            path,
            format!(
                "the model takes inputs of {per} values, the samples hold {} values, not a whole number of inputs",
                xs.len()
            ),
        ));
    }
    let n = xs.len() / per;
    let threads = rayon::current_num_threads().clamp(1, n.max(1));
    let budget = Budget::default();
    budget
        .charge(
            "the arenas the header declares (one per thread)",
            (m.arena_size() as u64 + 16).saturating_mul(threads as u64),
        )
        .and_then(|()| budget.charge_elements("the logits", n.saturating_mul(m.output_len()), 4))
        .map_err(|e| Error::budget(path, e))?;
    let mut all = vec![0.0f32; n * m.output_len()];
    crate::compile::batch::run_batch(&m, xs, &mut all, threads)
        .map_err(|e| Error::format(path, format!("the runtime cannot run the model: {e}")))?;
    Ok(all)
}

const HARNESS: &str = r#"#include <stdio.h>
#include <stdlib.h>
#include "model.h"
int main(int argc, char **argv)
{
    static float in[SCULPT_MODEL_INPUT_LEN];
    static float out[SCULPT_MODEL_OUTPUT_LEN];
    FILE *fi;
    FILE *fo;
    if (argc != 3) {
        return 2;
    }
    fi = fopen(argv[1], "rb");
    fo = fopen(argv[2], "wb");
    if (fi == NULL || fo == NULL) {
        return 3;
    }
    while (fread(in, sizeof(float), SCULPT_MODEL_INPUT_LEN, fi) == SCULPT_MODEL_INPUT_LEN) {
        if (sculpt_model_run(in, out) != 0) {
            return 4;
        }
        if (fwrite(out, sizeof(float), SCULPT_MODEL_OUTPUT_LEN, fo) != SCULPT_MODEL_OUTPUT_LEN) {
            return 5;
        }
    }
    fclose(fi);
    fclose(fo);
    return 0;
}
"#;

/// Compiles `dir/model.c` with `cc` and a harness that reads f32 samples from a file and writes logits, then
/// runs it on `xs`.
pub fn c(dir: &Path, cc: &str, xs: &[f32]) -> Result<Vec<f32>> {
    let work = tempfile::tempdir().map_err(|e| Error::io(std::env::temp_dir(), e))?;
    let w = work.path();
    for f in ["model.c", "model.h"] {
        std::fs::copy(dir.join(f), w.join(f)).map_err(|e| Error::io(dir.join(f), e))?;
    }
    std::fs::write(w.join("harness.c"), HARNESS).map_err(|e| Error::io(w.join("harness.c"), e))?;
    let exe = w.join("harness");
    let out = Command::new(cc)
        .args([
            "-std=c99",
            "-O2",
            "-ffp-contract=off",
            "-Wall",
            "-Wextra",
            "-Werror",
            "-pedantic",
            "-o",
        ])
        .arg(&exe)
        .arg(w.join("harness.c"))
        .arg(w.join("model.c"))
        .output()
        .map_err(|e| Error::Unavailable {
            tool: format!("the C compiler '{cc}'"),
            why: format!("cannot run it: {e}"),
        })?;
    if !out.status.success() {
        return Err(fail(
            &format!("{} does not compile", dir.join("model.c").display()),
            String::from_utf8_lossy(&out.stderr),
        ));
    }
    let bin: Vec<u8> = xs.iter().flat_map(|v| v.to_le_bytes()).collect();
    std::fs::write(w.join("in.bin"), bin).map_err(|e| Error::io(w.join("in.bin"), e))?;
    let st = Command::new(&exe)
        .arg(w.join("in.bin"))
        .arg(w.join("out.bin"))
        .status()
        .map_err(|e| fail("cannot run the C harness", e))?;
    if !st.success() {
        return Err(fail("the C harness failed", st));
    }
    let o = std::fs::read(w.join("out.bin")).map_err(|e| Error::io(w.join("out.bin"), e))?;
    Ok(o.chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect())
}
