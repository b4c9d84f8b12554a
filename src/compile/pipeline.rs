//! The compilation pipeline: import → fold batch norm → fuse ReLU → (float) layout → emit, and in parallel
//! quantise → (int8) layout → emit; then the budget check against a target. Every export carries the same
//! model hash: the SHA-256 of the imported graph's canonical bytes.
//!
//! Output files in the artefact directory: `model.onnx` (dense), `model.sparse.onnx`, `model.scb` (f32),
//! `model.int8.scb`, `model.h`/`model.c` (f32 C), `int8/model.h`/`int8/model.c` (int8 C) and
//! `manifest.json`, which records the source, the options and every file so that `verify` can rebuild the
//! reference graphs. All files are written atomically.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::compile::emit::onnx::{self, hex, Variant};
use crate::compile::import;
use crate::compile::ir::{Graph, IndexFormat};
use crate::compile::lower;
use crate::compile::passes::layout::{layout_for, Objective};
use crate::compile::passes::{fold_bn::fold_bn, fuse::fuse, quantize::quantize};
use crate::compile::target::{Footprint, Target};
use crate::data::{self, DataSource, Dataset};
use crate::error::{Error, Result};
pub use crate::fsio::write_atomic;

/// Compilation options.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CompileOptions {
    /// Dataset whose training split calibrates int8 activation ranges.
    pub calibration_data: DataSource,
    /// Number of calibration images (the first ones of the training split).
    pub calibration_samples: usize,
    /// Emit the int8 artefacts.
    pub int8: bool,
}

impl Default for CompileOptions {
    fn default() -> Self {
        CompileOptions {
            calibration_data: DataSource::Embedded,
            calibration_samples: 256,
            int8: true,
        }
    }
}

/// One written file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Artefact {
    /// `onnx`, `onnx-sparse`, `scb`, `scb-int8`, `c`, `c-int8`.
    pub format: String,
    /// Path relative to the artefact directory.
    pub file: String,
    pub bytes: u64,
    /// Flash and RAM for the binary formats (`.scb` and C share them).
    pub footprint: Option<Footprint>,
}

/// `manifest.json`: what was compiled, how, and into what.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    pub format: String,
    pub version: u32,
    pub source: PathBuf,
    pub model_hash: String,
    pub target: Option<String>,
    pub options: CompileOptions,
    pub index_formats: Vec<IndexFormat>,
    pub files: Vec<Artefact>,
}

/// The result of a compilation.
#[derive(Debug, Clone)]
pub struct Artefacts {
    pub dir: PathBuf,
    pub manifest: Manifest,
    /// The float graph that was emitted (reference for float formats).
    pub float: Graph,
    /// The int8 graph that was emitted, when int8 artefacts were requested.
    pub int8: Option<Graph>,
    /// Human-readable size and budget report.
    pub report: String,
}

/// The graphs of a compilation: the imported source, the float graph and the int8 graph.
#[derive(Debug, Clone)]
pub struct Graphs {
    pub source: Graph,
    pub float: Graph,
    pub int8: Option<Graph>,
    pub hash: [u8; 32],
}

/// Images of a dataset as f32 in [0, 1], concatenated.
pub fn images_f32(ds: &Dataset, count: usize) -> Vec<f32> {
    let n = count.min(ds.len());
    (0..n)
        .flat_map(|i| ds.image(i).iter().map(|&b| b as f32 / 255.0))
        .collect()
}

/// Runs the passes on an imported graph with the smallest storage per weight. `calibration` holds [0, 1]
/// images for int8 (none: no int8 graph); `formats` are the index formats the target allows.
pub fn build(
    source: Graph,
    formats: &[IndexFormat],
    calibration: Option<&[f32]>,
) -> Result<Graphs> {
    build_for(source, formats, calibration, Objective::Size)
}

/// [`build`] with the per-weight storage chosen for `objective`.
pub fn build_for(
    source: Graph,
    formats: &[IndexFormat],
    calibration: Option<&[f32]>,
    objective: Objective,
) -> Result<Graphs> {
    let hash = source.model_hash();
    let folded = fuse(fold_bn(source.clone())?)?;
    let float = layout_for(folded.clone(), formats, objective)?;
    let int8 = match calibration {
        Some(c) => Some(layout_for(quantize(&folded, c)?, formats, objective)?),
        None => None,
    };
    Ok(Graphs {
        source,
        float,
        int8,
        hash,
    })
}

/// Calibration images for `options` and a graph's input shape.
pub fn calibration_images(graph: &Graph, options: &CompileOptions) -> Result<Vec<f32>> {
    let splits = data::load(&options.calibration_data)?;
    if splits.train.shape != graph.input.shape {
        return Err(Error::Invalid(format!(
            "calibration data {} has images {:?}, the model takes {:?}",
            splits.train.name, splits.train.shape, graph.input.shape
        )));
    }
    let x = images_f32(&splits.train, options.calibration_samples.max(1));
    if x.is_empty() {
        return Err(Error::Invalid(
            "calibration data has no training images".into(),
        ));
    }
    Ok(x)
}

/// Index formats a target allows (all without a target).
pub fn target_formats(target: Option<&Target>) -> Vec<IndexFormat> {
    match target {
        Some(t) => t
            .index_encodings
            .iter()
            .map(|&e| lower::index_format(e))
            .collect(),
        None => vec![
            IndexFormat::Gap8,
            IndexFormat::U16,
            IndexFormat::U32,
            IndexFormat::Rice,
        ],
    }
}

/// Compiles `input` (checkpoint or `.onnx`) into `out_dir` for `target`. Errors when no binary artefact whose
/// value type the target allows fits its flash and RAM budget (the message says by how much); the files are
/// written either way, so the report can be inspected.
pub fn compile(
    input: &Path,
    out_dir: &Path,
    target: Option<&Target>,
    options: &CompileOptions,
) -> Result<Artefacts> {
    let source = import::import(input)?;
    let calib = if options.int8 {
        Some(calibration_images(&source, options)?)
    } else {
        None
    };
    let formats = target_formats(target);
    let objective = target.map_or(Objective::Size, |t| t.layout);
    let g = build_for(source, &formats, calib.as_deref(), objective)?;
    let hash = g.hash;
    let mut files = Vec::new();
    let mut put = |format: &str, file: &str, bytes: &[u8], fp: Option<Footprint>| -> Result<()> {
        write_atomic(&out_dir.join(file), bytes)?;
        files.push(Artefact {
            format: format.into(),
            file: file.into(),
            bytes: bytes.len() as u64,
            footprint: fp,
        });
        Ok(())
    };
    put(
        "onnx",
        "model.onnx",
        &onnx::emit(&g.float, Variant::Dense, Some(&hash))?,
        None,
    )?;
    put(
        "onnx-sparse",
        "model.sparse.onnx",
        &onnx::emit(&g.float, Variant::Sparse, Some(&hash))?,
        None,
    )?;
    let scb = lower::scb(&g.float, hash)?;
    let fp = Footprint::of_scb(&scb)?;
    put("scb", "model.scb", &scb, Some(fp))?;
    let c = lower::c(&g.float, hash)?;
    put("c", "model.c", c.source.as_bytes(), Some(fp))?;
    write_atomic(&out_dir.join("model.h"), c.header.as_bytes())?;
    if let Some(q) = &g.int8 {
        let scb = lower::scb(q, hash)?;
        let fp = Footprint::of_scb(&scb)?;
        put("scb-int8", "model.int8.scb", &scb, Some(fp))?;
        let c = lower::c(q, hash)?;
        put("c-int8", "int8/model.c", c.source.as_bytes(), Some(fp))?;
        write_atomic(&out_dir.join("int8/model.h"), c.header.as_bytes())?;
    }
    let manifest = Manifest {
        format: "sculpt-artefacts".into(),
        version: 1,
        source: std::fs::canonicalize(input).unwrap_or_else(|_| input.to_path_buf()),
        model_hash: hex(&hash),
        target: target.map(|t| t.name.clone()),
        options: options.clone(),
        index_formats: formats,
        files,
    };
    let json = serde_json::to_vec_pretty(&manifest)
        .map_err(|e| Error::Invalid(format!("manifest: {e}")))?;
    write_atomic(&out_dir.join("manifest.json"), &json)?;
    let (report, fits) = budget_report(&manifest, target);
    let a = Artefacts {
        dir: out_dir.to_path_buf(),
        manifest,
        float: g.float,
        int8: g.int8,
        report,
    };
    match (target, fits) {
        (Some(t), Err(over)) => Err(Error::Invalid(format!(
            "no artefact fits target {}: {over}",
            t.name
        ))),
        _ => Ok(a),
    }
}

/// A size table and, with a target, one budget line per binary artefact. The second value is `Err` with the
/// overflow messages when no binary artefact of an allowed value type fits.
pub fn budget_report(
    m: &Manifest,
    target: Option<&Target>,
) -> (String, std::result::Result<(), String>) {
    let mut s = format!(
        "model {}\n{:<12} {:<22} {:>10}\n",
        &m.model_hash[..16],
        "format",
        "file",
        "bytes"
    );
    for f in &m.files {
        s.push_str(&format!(
            "{:<12} {:<22} {:>10}\n",
            f.format, f.file, f.bytes
        ));
    }
    let Some(t) = target else { return (s, Ok(())) };
    let mut over = Vec::new();
    let mut any_fits = false;
    for f in m.files.iter().filter(|f| f.format.starts_with("scb")) {
        let Some(fp) = f.footprint else { continue };
        let vt = if f.format == "scb-int8" { "i8" } else { "f32" };
        let allowed = t.value_types.iter().any(|v| {
            serde_json::to_value(v)
                .ok()
                .and_then(|x| x.as_str().map(|s| s == vt))
                .unwrap_or(false)
        });
        s.push_str(&t.report(&f.file, &fp));
        if !allowed {
            s.push_str(&format!(" [value type {vt} not allowed on {}]\n", t.name));
            continue;
        }
        match t.check(&f.file, &fp) {
            Ok(()) => {
                any_fits = true;
                s.push_str(" [fits]\n");
            }
            Err(e) => {
                s.push_str(" [OVER BUDGET]\n");
                over.push(e.to_string());
            }
        }
    }
    if any_fits {
        (s, Ok(()))
    } else {
        (s, Err(over.join("; ")))
    }
}

/// Reads `manifest.json` from an artefact directory.
pub fn read_manifest(dir: &Path) -> Result<Manifest> {
    let p = dir.join("manifest.json");
    let text = std::fs::read_to_string(&p).map_err(|e| Error::io(&p, e))?;
    let m: Manifest = serde_json::from_str(&text)
        .map_err(|e| Error::format(&p, format!("invalid manifest: {e}")))?;
    if m.format != "sculpt-artefacts" || m.version != 1 {
        return Err(Error::format(
            &p,
            "not a sculpt artefact manifest (format sculpt-artefacts, version 1)",
        ));
    }
    Ok(m)
}
