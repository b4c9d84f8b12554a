//! `sculpt inspect`: layers, shapes, per-layer sparsity, storage and bytes of any artefact (`.onnx`, `.scb`,
//! checkpoint).

use std::path::PathBuf;

use anyhow::Context;
use serde::Serialize;

use crate::compile::artefact::{Artefact, ModelFile};
use crate::compile::import;
use crate::compile::ir::{Graph, Storage};
use crate::compile::passes::layout::cost;
use sculpt_runtime::format::{IndexEncoding, ValueType};

/// Arguments of `sculpt inspect`.
#[derive(Debug, Clone, clap::Args)]
pub struct InspectArgs {
    /// `.onnx`, `.scb`, or checkpoint (`NAME`, `NAME.json`, `NAME.safetensors`).
    pub path: PathBuf,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// One layer of the listing.
#[derive(Debug, Clone, Serialize)]
pub struct Layer {
    pub name: String,
    pub op: String,
    pub output: Vec<usize>,
    pub weight: Option<Vec<usize>>,
    pub sparsity: Option<f64>,
    pub storage: Option<String>,
    pub dtype: Option<String>,
    pub bytes: Option<usize>,
}

/// The listing of an IR graph.
pub fn layers_of_graph(g: &Graph) -> Vec<Layer> {
    g.nodes
        .iter()
        .map(|n| {
            let w = n.op.weight();
            let storage = w.map(|w| match &w.storage {
                Storage::Dense(_) => "dense".to_string(),
                Storage::Csr { index, .. } => format!("csr-{}", index.name()),
            });
            let fmt = w.and_then(|w| match &w.storage {
                Storage::Dense(_) => None,
                Storage::Csr { index, .. } => Some(*index),
            });
            Layer {
                name: n.name.clone(),
                op: format!("{}{}", n.op.kind(), if n.op.relu() { "+relu" } else { "" }),
                output: n.shape.clone(),
                weight: w.map(|w| w.shape.clone()),
                sparsity: w.map(|w| w.sparsity()),
                storage,
                dtype: w.map(|w| w.dtype.name().to_string()),
                bytes: w.and_then(|w| cost(w, fmt)),
            }
        })
        .collect()
}

/// The listing of a `.scb` file (parsed and validated by the runtime). Sparsity counts stored entries
/// (filler entries included), so dense-stored layers show 0%.
pub fn layers_of_scb(bytes: &[u8]) -> anyhow::Result<(Vec<Layer>, String)> {
    let m =
        sculpt_runtime::Model::parse(bytes).map_err(|e| anyhow::anyhow!("invalid .scb: {e:?}"))?;
    let hash: String = m.model_hash().iter().map(|b| format!("{b:02x}")).collect();
    let mut out = Vec::new();
    for i in 0..m.op_count() as u32 {
        let op = m.op(i);
        let ob = m.buffer(op.out);
        let mut l = Layer {
            name: format!("op{i}"),
            op: format!(
                "{}{}",
                op.opcode.name(),
                if op.relu() { "+relu" } else { "" }
            ),
            output: ob.dims[..ob.rank as usize]
                .iter()
                .map(|&d| d as usize)
                .collect(),
            weight: None,
            sparsity: None,
            storage: None,
            dtype: None,
            bytes: None,
        };
        if op.weight != sculpt_runtime::format::NONE {
            let t = m.tensor(op.weight);
            let stored = m.entries(op.weight).count();
            l.weight = Some(
                t.dims[..t.rank as usize]
                    .iter()
                    .map(|&d| d as usize)
                    .collect(),
            );
            l.sparsity = Some(1.0 - stored as f64 / t.numel().max(1) as f64);
            l.storage = IndexEncoding::try_from(t.encoding).ok().map(|e| match e {
                IndexEncoding::Dense => e.name().to_string(),
                IndexEncoding::Rice => format!("{e}(k={})", t.param),
                _ => format!("csr-{e}"),
            });
            l.dtype = ValueType::try_from(t.dtype)
                .ok()
                .map(|v| v.name().to_string());
            l.bytes = Some(m.tensor_bytes(op.weight));
        }
        out.push(l);
    }
    let summary = format!(
        "{} bytes, arena {} bytes, {} ops, {}, model {}",
        bytes.len(),
        m.arena_size(),
        m.op_count(),
        if m.is_int8() { "int8" } else { "float" },
        hash
    );
    Ok((out, summary))
}

fn table(layers: &[Layer]) -> String {
    let mut s = format!(
        "{:<24} {:<16} {:<14} {:<16} {:>8} {:<10} {:<5} {:>9}\n",
        "layer", "op", "output", "weight", "sparsity", "storage", "type", "bytes"
    );
    let opt = |v: &Option<String>| v.clone().unwrap_or_else(|| "-".into());
    for l in layers {
        s.push_str(&format!(
            "{:<24} {:<16} {:<14} {:<16} {:>8} {:<10} {:<5} {:>9}\n",
            l.name,
            l.op,
            format!("{:?}", l.output),
            l.weight.as_ref().map_or("-".into(), |w| format!("{w:?}")),
            l.sparsity
                .map_or("-".into(), |v| format!("{:.2}%", 100.0 * v)),
            opt(&l.storage),
            opt(&l.dtype),
            l.bytes.map_or("-".into(), |b| b.to_string()),
        ));
    }
    let total: usize = layers.iter().filter_map(|l| l.bytes).sum();
    s.push_str(&format!("weights: {total} bytes\n"));
    s
}

/// Runs `sculpt inspect`.
pub fn run(args: &InspectArgs) -> anyhow::Result<()> {
    let graph_listing = |g: Graph| {
        let hash: String = g.model_hash().iter().map(|b| format!("{b:02x}")).collect();
        let summary = format!(
            "input {:?}, {} classes, model {}",
            g.input.shape,
            g.classes(),
            hash
        );
        (layers_of_graph(&g), summary)
    };
    let (layers, summary) = match ModelFile::recognise(&args.path)? {
        ModelFile::Artefact(Artefact::ScbF32 | Artefact::ScbInt8, bytes) => {
            layers_of_scb(&bytes).with_context(|| args.path.display().to_string())?
        }
        ModelFile::Artefact(Artefact::OnnxDense | Artefact::OnnxSparse, bytes) => {
            graph_listing(import::onnx::import_bytes(&bytes, &args.path)?)
        }
        ModelFile::Artefact(a @ (Artefact::CF32 | Artefact::CInt8), _) => {
            anyhow::bail!("{}: a {a} artefact has no listing", args.path.display())
        }
        ModelFile::Checkpoint => graph_listing(import::checkpoint::import(&args.path)?),
    };
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(
                &serde_json::json!({ "summary": summary, "layers": layers })
            )?
        );
    } else {
        println!("{}: {summary}", args.path.display());
        print!("{}", table(&layers));
    }
    Ok(())
}
