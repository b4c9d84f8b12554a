//! The compilation pipeline: import → the passes of [`driver::standard`] (fold batch norm → fuse ReLU →
//! (float) layout → emit, and from the fused graph quantise → (int8) layout → emit) → the budget check
//! against a target. Every export carries the same
//! model hash: the SHA-256 of the imported graph's canonical bytes.
//!
//! Output files in the artefact directory: `model.onnx` (dense), `model.sparse.onnx`, `model.scb` (f32),
//! `model.int8.scb`, `model.h`/`model.c` (f32 C), `int8/model.h`/`int8/model.c` (int8 C), a copy of the
//! source under `source/` and `manifest.json`, which records the source, the options and every file so that
//! `verify` can rebuild the reference graphs. Every path in the manifest is relative to its folder and stays
//! inside it ([`contained`]), so a folder moved or copied to another machine still verifies. All files are
//! written atomically.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

pub use crate::compile::artefact::Artefact;
use crate::compile::artefact::BudgetRule;
use crate::compile::emit::onnx::{self, hex, Variant};
use crate::compile::import;
use crate::compile::ir::{Graph, IndexEncoding};
use crate::compile::lower;
use crate::compile::passes::driver::{self, Ctx, Stages};
use crate::compile::passes::layout::Objective;
use crate::compile::target::{Footprint, Target};
use crate::compile::text;
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
pub struct ArtefactFile {
    /// Its kind (`onnx`, `onnx-sparse`, `scb`, `scb-int8`, `c`, `c-int8` in the manifest).
    pub format: Artefact,
    /// Path relative to the artefact directory.
    pub file: String,
    pub bytes: u64,
    /// Estimated flash and RAM for the binary formats (`.scb` and C share them): the `.scb` file and its arena.
    pub footprint: Option<Footprint>,
    /// Flash and RAM measured in an image linked with the target's toolchain (code and helpers included;
    /// static RAM, no stack), where it was measured; the budget check then uses it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub measured: Option<Footprint>,
    /// Why a binary artefact was not measured (a missing toolchain, a failed build).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unmeasured: Option<String>,
}

/// Measures the binary artefacts of a folder for a target in the images its toolchain links, setting
/// [`ArtefactFile::measured`] or [`ArtefactFile::unmeasured`] of each (`verify::on_target::OnTarget` does).
pub trait Measure {
    fn measure(&self, dir: &Path, files: &mut [ArtefactFile]);
}

/// `manifest.json`: what was compiled, how, and into what.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    pub format: String,
    /// 2 (this writer): `source` is relative to the folder; 1 (older): `source` may be absolute.
    pub version: u32,
    /// The copy of the compiled checkpoint or ONNX file, relative to the folder (see [`source_path`]).
    pub source: PathBuf,
    /// Where the source was compiled from (information only; never read back).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub origin: Option<PathBuf>,
    /// The storage objective of the layout passes (absent in older manifests: size).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub objective: Option<Objective>,
    pub model_hash: String,
    pub target: Option<String>,
    pub options: CompileOptions,
    #[serde(with = "crate::compile::codes::names")]
    pub index_formats: Vec<IndexEncoding>,
    pub files: Vec<ArtefactFile>,
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

/// The graphs of a compilation: the imported source, the float graph and the int8 graph, and every stage
/// the pass driver computed on the way.
#[derive(Debug, Clone)]
pub struct Graphs {
    pub source: Graph,
    pub float: Graph,
    pub int8: Option<Graph>,
    pub hash: [u8; 32],
    pub stages: Stages,
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
    formats: &[IndexEncoding],
    calibration: Option<&[f32]>,
) -> Result<Graphs> {
    build_for(source, formats, calibration, Objective::Size)
}

/// [`build`] with the per-weight storage chosen for `objective`.
pub fn build_for(
    source: Graph,
    formats: &[IndexEncoding],
    calibration: Option<&[f32]>,
    objective: Objective,
) -> Result<Graphs> {
    build_with(source, &driver::standard(), formats, calibration, objective)
}

/// [`build_for`] with the pass list `passes` (which must end its branches in [`driver::FLOAT_OUTPUT`] and,
/// for int8, [`driver::INT8_OUTPUT`]).
pub fn build_with(
    source: Graph,
    passes: &[driver::Pass],
    formats: &[IndexEncoding],
    calibration: Option<&[f32]>,
    objective: Objective,
) -> Result<Graphs> {
    let hash = source.model_hash();
    let ctx = Ctx {
        formats,
        objective,
        calibration,
    };
    let stages = driver::run(source.clone(), passes, &ctx, None)?;
    let missing = |s: &str| Error::Invalid(format!("the pass list has no stage '{s}'"));
    let float = stages
        .get(driver::FLOAT_OUTPUT)
        .ok_or_else(|| missing(driver::FLOAT_OUTPUT))?
        .clone();
    let int8 = match calibration {
        Some(_) => Some(
            stages
                .get(driver::INT8_OUTPUT)
                .ok_or_else(|| missing(driver::INT8_OUTPUT))?
                .clone(),
        ),
        None => None,
    };
    Ok(Graphs {
        source,
        float,
        int8,
        hash,
        stages,
    })
}

/// Imports `input` and runs the standard passes for `target` up to and including `stop_after` (all of them
/// without), returning every stage.
pub fn stages(
    input: &Path,
    target: Option<&Target>,
    options: &CompileOptions,
    stop_after: Option<&str>,
) -> Result<Stages> {
    let source = import::import(input)?;
    let calib = if options.int8 {
        Some(calibration_images(&source, options)?)
    } else {
        None
    };
    let formats = target_formats(target);
    let ctx = Ctx {
        formats: &formats,
        objective: target.map_or(Objective::Size, |t| t.layout),
        calibration: calib.as_deref(),
    };
    driver::run(source, &driver::standard(), &ctx, stop_after)
}

/// Writes the text IR of every stage into `dir` as `NN-stage.ir` (atomically); returns the paths.
pub fn dump_ir(stages: &Stages, dir: &Path) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for (k, s) in stages.0.iter().enumerate() {
        let p = dir.join(driver::dump_name(k, &s.name));
        write_atomic(&p, text::print(&s.graph).as_bytes())?;
        out.push(p);
    }
    Ok(out)
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
pub fn target_formats(target: Option<&Target>) -> Vec<IndexEncoding> {
    match target {
        Some(t) => t.index_encodings.clone(),
        None => IndexEncoding::SPARSE.to_vec(),
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
    compile_dumping(input, out_dir, target, options, None)
}

/// [`compile`], also writing the text IR of every stage into `dump_ir` (see [`dump_ir`]).
pub fn compile_dumping(
    input: &Path,
    out_dir: &Path,
    target: Option<&Target>,
    options: &CompileOptions,
    dump: Option<&Path>,
) -> Result<Artefacts> {
    compile_measuring(input, out_dir, target, options, dump, None)
}

/// [`compile_dumping`], with the binary artefacts measured by `measure` (with a target) before the budget
/// check, which then decides on the measured figures where there are some.
pub fn compile_measuring(
    input: &Path,
    out_dir: &Path,
    target: Option<&Target>,
    options: &CompileOptions,
    dump: Option<&Path>,
    measure: Option<&dyn Measure>,
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
    if let Some(d) = dump {
        dump_ir(&g.stages, d)?;
    }
    let hash = g.hash;
    let mut files = Vec::new();
    let mut put = |kind: Artefact, bytes: &[u8], fp: Option<Footprint>| -> Result<()> {
        write_atomic(&out_dir.join(kind.file()), bytes)?;
        files.push(ArtefactFile {
            format: kind,
            file: kind.file().into(),
            bytes: bytes.len() as u64,
            footprint: fp,
            measured: None,
            unmeasured: None,
        });
        Ok(())
    };
    put(
        Artefact::OnnxDense,
        &onnx::emit(&g.float, Variant::Dense, Some(&hash))?,
        None,
    )?;
    put(
        Artefact::OnnxSparse,
        &onnx::emit(&g.float, Variant::Sparse, Some(&hash))?,
        None,
    )?;
    let scb = lower::scb(&g.float, hash)?;
    let fp = Footprint::of_scb(&scb)?;
    put(Artefact::ScbF32, &scb, Some(fp))?;
    let c = lower::c(&g.float, hash)?;
    put(Artefact::CF32, c.source.as_bytes(), Some(fp))?;
    write_atomic(&out_dir.join("model.h"), c.header.as_bytes())?;
    if let Some(q) = &g.int8 {
        let scb = lower::scb(q, hash)?;
        let fp = Footprint::of_scb(&scb)?;
        put(Artefact::ScbInt8, &scb, Some(fp))?;
        let c = lower::c(q, hash)?;
        put(Artefact::CInt8, c.source.as_bytes(), Some(fp))?;
        write_atomic(&out_dir.join("int8/model.h"), c.header.as_bytes())?;
    }
    if let (Some(m), Some(_)) = (measure, target) {
        m.measure(out_dir, &mut files);
    }
    let source = copy_source(input, out_dir)?;
    let manifest = Manifest {
        format: "sculpt-artefacts".into(),
        version: MANIFEST_VERSION,
        source,
        origin: Some(std::fs::canonicalize(input).unwrap_or_else(|_| input.to_path_buf())),
        objective: Some(objective),
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

/// A size table and, with a target, one budget line per binary artefact: the measured figure beside the
/// estimate where there is one (a measured C artefact is checked on its own figure), else the estimate and
/// what it leaves out. The second value is `Err` with the overflow messages when no binary artefact of an
/// allowed value type fits.
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
            f.format.name(),
            f.file,
            f.bytes
        ));
    }
    let Some(t) = target else { return (s, Ok(())) };
    let mut over = Vec::new();
    let mut any_fits = false;
    for f in &m.files {
        match (f.format.budget(), f.measured) {
            (BudgetRule::Checked, _) | (BudgetRule::SharesScb, Some(_)) => {}
            _ => continue,
        };
        let vt = f.format.value_type();
        let Some(fp) = f.footprint else { continue };
        let allowed = t.value_types.contains(&vt);
        let (need, what) = match f.measured {
            Some(measured) => {
                s.push_str(&t.report_measured(&f.file, &measured, &fp));
                (
                    measured,
                    format!("{} (measured in the linked image)", f.file),
                )
            }
            None => {
                s.push_str(&t.report(&f.file, &fp));
                if let Some(why) = &f.unmeasured {
                    s.push_str(&format!(" [not measured: {why}]"));
                }
                (fp, format!("{} (estimated)", f.file))
            }
        };
        if !allowed {
            s.push_str(&format!(" [value type {vt} not allowed on {}]\n", t.name));
            continue;
        }
        match t.check(&what, &need) {
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

/// The manifest version this code writes.
pub const MANIFEST_VERSION: u32 = 2;
/// The folder of an artefact directory that holds the copy of the source.
pub const SOURCE_DIR: &str = "source";

/// Whether `p` is a relative path of plain names (no root, no `..`, no `.`, not empty): joined to a folder,
/// it stays inside it.
pub fn contained(p: &Path) -> bool {
    use std::path::Component;
    p.components().next().is_some() && p.components().all(|c| matches!(c, Component::Normal(_)))
}

/// Copies the source (both files of a checkpoint, or the `.onnx` file) into `out_dir/source/`; returns the
/// path the manifest records, relative to `out_dir`.
fn copy_source(input: &Path, out_dir: &Path) -> Result<PathBuf> {
    let budget = crate::budget::Budget::default();
    let copy = |from: &Path| -> Result<PathBuf> {
        let name = from
            .file_name()
            .ok_or_else(|| Error::Invalid(format!("source {} has no file name", from.display())))?;
        let rel = Path::new(SOURCE_DIR).join(name);
        let bytes = crate::fsio::read_within(from, &budget, "the source")?;
        write_atomic(&out_dir.join(&rel), &bytes)?;
        Ok(rel)
    };
    if crate::compile::artefact::ModelFile::is_onnx(input)? {
        return copy(input);
    }
    let (st, json) = import::checkpoint::paths(input);
    let rel = copy(&st)?;
    copy(&json)?;
    Ok(rel)
}

/// The source file of the manifest of `dir`: `dir` joined with the relative `source` (version 2); version 1
/// manifests may name it absolutely.
pub fn source_path(dir: &Path, m: &Manifest) -> Result<PathBuf> {
    if contained(&m.source) {
        Ok(dir.join(&m.source))
    } else if m.version == 1 && m.source.is_absolute() {
        Ok(m.source.clone())
    } else {
        Err(Error::format(
            dir.join("manifest.json"),
            format!(
                "`source` {} leaves the artefact folder",
                crate::error::quote(&m.source.display().to_string())
            ),
        ))
    }
}

/// Reads `manifest.json` from an artefact directory (versions 1 and 2); every `files[].file` must stay
/// inside the folder ([`contained`]).
pub fn read_manifest(dir: &Path) -> Result<Manifest> {
    let p = dir.join("manifest.json");
    let text = std::fs::read_to_string(&p).map_err(|e| Error::io(&p, e))?;
    let m: Manifest = serde_json::from_str(&text)
        .map_err(|e| Error::format(&p, format!("invalid manifest: {e}")))?;
    if m.format != "sculpt-artefacts" || !(1..=MANIFEST_VERSION).contains(&m.version) {
        return Err(Error::format(
            &p,
            "not a sculpt artefact manifest (format sculpt-artefacts, version 1 or 2)",
        ));
    }
    if let Some(f) = m.files.iter().find(|f| !contained(Path::new(&f.file))) {
        return Err(Error::format(
            &p,
            format!(
                "file {} leaves the artefact folder",
                crate::error::quote(&f.file)
            ),
        ));
    }
    source_path(dir, &m)?;
    Ok(m)
}
