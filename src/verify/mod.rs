//! Runs every artefact of a compilation on a dataset against the IR interpreter and reports agreement.
//!
//! The reference graphs are rebuilt from the manifest's source with the manifest's options (the pipeline is
//! deterministic), and the rebuilt model hash must equal the manifest's. Bounds:
//!
//! - float formats (dense ONNX via tract, sparse ONNX via ONNX Runtime, f32 `.scb` via the runtime crate, f32 C
//!   via the system compiler): identical top-1 on every sample and `max |Δlogit| ≤ 1e-3 · scale`, where `scale`
//!   is the largest |logit| of the float reference (at least 1);
//! - int8 formats (`.scb` and C): bit-identical logits to the interpreter's int8 semantics (hence to each other);
//! - the int8 reference against the float reference: top-1 agreement of at least
//!   [`VerifyOptions::int8_min_agreement`] (reported, loosely bounded).
//!
//! A format whose executor is unavailable (no ONNX Runtime library, no C compiler) is reported as skipped with
//! the missing tool, and fails the run only when the option requiring it is set. Each row's [`Outcome`] is
//! what decides: passed, failed (with the measured difference when it ran) or skipped.
pub mod boundary;
pub mod on_target;
pub mod runners;
pub mod stages;

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::compile::artefact::{Artefact, Bound, Executor};
use crate::compile::emit::onnx::hex;
use crate::compile::import;
use crate::compile::interp;
use crate::compile::ir::Graph;
use crate::compile::passes::driver::{self, Pass};
use crate::compile::passes::layout::Objective;
use crate::compile::pipeline::{
    build_with, calibration_images, images_f32, read_manifest, source_path,
};
use crate::data::Dataset;
use crate::error::{Error, Result};

/// Options of a verification run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VerifyOptions {
    /// Use only the first `limit` samples.
    pub limit: Option<usize>,
    /// C compiler for the C artefacts.
    pub cc: String,
    /// Relative logit bound for float formats.
    pub float_tolerance: f32,
    /// Minimum top-1 agreement of the int8 reference with the float reference.
    pub int8_min_agreement: f64,
    /// Fail (instead of skipping) when ONNX Runtime or the C compiler is unavailable.
    pub require_all: bool,
    /// Targets (names or `.toml` paths) whose boards also run the C and `.scb` artefacts
    /// ([`on_target`]).
    #[serde(default)]
    pub on_target: Vec<String>,
    /// Where target files and their board files are looked up first.
    #[serde(default = "default_targets_dir")]
    pub targets_dir: PathBuf,
}

fn default_targets_dir() -> PathBuf {
    PathBuf::from("targets")
}

impl Default for VerifyOptions {
    fn default() -> Self {
        VerifyOptions {
            limit: None,
            cc: std::env::var("CC").unwrap_or_else(|_| "cc".into()),
            float_tolerance: 1e-3,
            int8_min_agreement: 0.9,
            require_all: false,
            on_target: Vec::new(),
            targets_dir: default_targets_dir(),
        }
    }
}

/// How a row ended: the one value every decision on a row is made from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Outcome {
    /// Within its bound (and, on a target, its budget).
    Passed,
    /// Ran and broke its bound or budget (the measured difference given), or could not run (none given);
    /// `why` says which.
    Failed {
        max_abs_dlogit: Option<f32>,
        top1_agreement: Option<f64>,
        why: String,
    },
    /// Not run because `tool` is not installed; fails the run only when every executor is required.
    Skipped { tool: String, why: String },
}

impl Outcome {
    /// The outcome of a check that could not run: skipped for a missing tool, failed otherwise.
    pub fn of_error(e: &Error) -> Outcome {
        match e {
            Error::Unavailable { tool, .. } => Outcome::Skipped {
                tool: tool.clone(),
                why: e.to_string(),
            },
            _ => Outcome::Failed {
                max_abs_dlogit: None,
                top1_agreement: None,
                why: e.to_string(),
            },
        }
    }

    /// A measured comparison: passed when `within`, else failed with the difference and `why`.
    pub fn measured(
        within: bool,
        max_abs_dlogit: f32,
        top1_agreement: f64,
        why: String,
    ) -> Outcome {
        if within {
            Outcome::Passed
        } else {
            Outcome::Failed {
                max_abs_dlogit: Some(max_abs_dlogit),
                top1_agreement: Some(top1_agreement),
                why,
            }
        }
    }
}

/// One line of the report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FormatResult {
    /// The artefact kind ([`crate::compile::artefact::Artefact::name`]), or `probe`, `pass NAME`,
    /// `int8-reference` for the checks of the reference itself.
    pub format: String,
    /// The artefact a row checks; none for the checks of the reference itself.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artefact: Option<Artefact>,
    pub file: String,
    /// What ran it ([`Executor::label`]); `interpreter` for the reference checks.
    #[serde(default)]
    pub executor: String,
    pub bytes: u64,
    /// What it was compared with and the bound applied.
    pub bound: String,
    pub accuracy: Option<f64>,
    pub top1_agreement: Option<f64>,
    pub max_abs_dlogit: Option<f32>,
    /// Whether the row counts as passed: [`Outcome::Passed`], or skipped without `require_all`.
    pub passed: bool,
    pub outcome: Outcome,
    /// Why the format was not run or failed, or a remark on a passed check.
    pub note: Option<String>,
    /// Measured footprint and instruction count of an on-target row.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_target: Option<on_target::Figures>,
}

impl FormatResult {
    /// A row of `format` with its bound, before it is settled.
    pub fn new(format: String, file: String, executor: String, bytes: u64, bound: String) -> Self {
        FormatResult {
            format,
            artefact: None,
            file,
            executor,
            bytes,
            bound,
            accuracy: None,
            top1_agreement: None,
            max_abs_dlogit: None,
            passed: false,
            outcome: Outcome::Failed {
                max_abs_dlogit: None,
                top1_agreement: None,
                why: "not run".into(),
            },
            note: None,
            on_target: None,
        }
    }

    /// Records `outcome`; `passed` follows from it (a skipped row passes unless `require_all`), and the
    /// note says why a row failed or was skipped.
    pub fn settle(&mut self, outcome: Outcome, require_all: bool) {
        self.passed = match &outcome {
            Outcome::Passed => true,
            Outcome::Skipped { .. } => !require_all,
            Outcome::Failed { .. } => false,
        };
        match &outcome {
            Outcome::Passed => {}
            Outcome::Skipped { why, .. } => self.note = Some(format!("skipped: {why}")),
            Outcome::Failed { why, .. } => self.note = Some(why.clone()),
        }
        self.outcome = outcome;
    }
}

/// The verification report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VerifyReport {
    pub model_hash: String,
    pub dataset: String,
    pub samples: usize,
    pub reference_accuracy: f64,
    pub rows: Vec<FormatResult>,
    pub passed: bool,
}

fn argmax(v: &[f32]) -> usize {
    let mut best = 0;
    for (i, x) in v.iter().enumerate() {
        if *x > v[best] {
            best = i;
        }
    }
    best
}

struct Compare {
    accuracy: f64,
    agreement: f64,
    max_abs: f32,
}

fn compare(reference: &[f32], got: &[f32], classes: usize, labels: &[u32]) -> Result<Compare> {
    if got.len() != reference.len() {
        return Err(Error::Invalid(format!(
            "produced {} logits, expected {}",
            got.len(),
            reference.len()
        )));
    }
    let n = labels.len().max(1);
    let mut correct = 0;
    let mut agree = 0;
    for ((r, g), &l) in reference
        .chunks(classes)
        .zip(got.chunks(classes))
        .zip(labels)
    {
        correct += usize::from(argmax(g) == l as usize);
        agree += usize::from(argmax(g) == argmax(r));
    }
    let max_abs = reference
        .iter()
        .zip(got)
        .map(|(a, b)| (a - b).abs())
        .fold(
            0.0f32,
            |m, d| if d.is_nan() { f32::INFINITY } else { m.max(d) },
        );
    Ok(Compare {
        accuracy: correct as f64 / n as f64,
        agreement: agree as f64 / n as f64,
        max_abs,
    })
}

/// Verifies the artefacts in `dir` on the test split `dataset`.
pub fn verify(dir: &Path, dataset: &Dataset, options: &VerifyOptions) -> Result<VerifyReport> {
    verify_with(dir, dataset, options, &driver::standard())
}

/// [`verify`] with the reference graphs rebuilt by `passes` instead of the standard list (how a test injects
/// a faulty pass to see it caught and named).
pub fn verify_with(
    dir: &Path,
    dataset: &Dataset,
    options: &VerifyOptions,
    passes: &[Pass],
) -> Result<VerifyReport> {
    let manifest = read_manifest(dir)?;
    let source_file = source_path(dir, &manifest)?;
    if manifest.files.is_empty() {
        return Err(Error::format(
            dir.join("manifest.json"),
            "the manifest lists no artefacts, so there is nothing to verify",
        ));
    }
    let source = import::import(&source_file)?;
    if hex(&source.model_hash()) != manifest.model_hash {
        return Err(Error::Invalid(format!(
            "{}: the source {} no longer has model hash {} (recompile)",
            dir.display(),
            source_file.display(),
            manifest.model_hash
        )));
    }
    let probe = stages::source_probe(&source_file, &source)?;
    if dataset.shape != source.input.shape {
        return Err(Error::Invalid(format!(
            "dataset {} has images {:?}, the model takes {:?}",
            dataset.name, dataset.shape, source.input.shape
        )));
    }
    let needs_int8 = manifest.files.iter().any(|f| f.format.int8());
    let calib = if needs_int8 {
        Some(calibration_images(&source, &manifest.options)?)
    } else {
        None
    };
    let objective = manifest.objective.unwrap_or(Objective::Size);
    let graphs = build_with(
        source,
        passes,
        &manifest.index_formats,
        calib.as_deref(),
        objective,
    )?;
    let n = options.limit.unwrap_or(dataset.len()).min(dataset.len());
    let xs = images_f32(dataset, n);
    let per: usize = graphs.source.input.shape.iter().product();
    let fallback = &xs[..xs.len().min(per * stages::ONNX_PROBE_SAMPLES)];
    let labels = &dataset.labels[..n];
    let classes = graphs.float.classes();
    let reference = interp::run_batch(&graphs.float, &xs)?;
    let ref_acc = compare(&reference, &reference, classes, labels)?.accuracy;
    let scale = reference.iter().fold(1.0f32, |m, v| m.max(v.abs()));
    let int8_ref = match &graphs.int8 {
        Some(q) => Some(interp::run_batch(q, &xs)?),
        None => None,
    };
    let mut rows = stages::check(
        &graphs.stages,
        probe.as_ref(),
        fallback,
        options.float_tolerance,
    )?;
    if let Some(r8) = &int8_ref {
        let c = compare(&reference, r8, classes, labels)?;
        let mut row = FormatResult::new(
            "int8-reference".into(),
            "(interpreter)".into(),
            "interpreter".into(),
            0,
            format!(
                "top-1 agreement with float ≥ {:.0}%",
                100.0 * options.int8_min_agreement
            ),
        );
        row.accuracy = Some(c.accuracy);
        row.top1_agreement = Some(c.agreement);
        row.max_abs_dlogit = Some(c.max_abs);
        let within = c.agreement >= options.int8_min_agreement;
        let why = format!(
            "the int8 reference agrees with the float one on {:.2}% of top-1",
            100.0 * c.agreement
        );
        row.settle(
            Outcome::measured(within, c.max_abs, c.agreement, why),
            options.require_all,
        );
        rows.push(row);
    }
    for f in &manifest.files {
        let path = dir.join(&f.file);
        let int8 = f.format.int8();
        let (want, bound) = match (&int8_ref, f.format.bound()) {
            (Some(r), Bound::BitExact) => (r, "bit-identical to the int8 interpreter".to_string()),
            (None, Bound::BitExact) => continue,
            (_, Bound::Float) => (
                &reference,
                format!("same top-1, |Δ| ≤ {:.3e}", options.float_tolerance * scale),
            ),
        };
        let graph: &Graph = &graphs.float;
        for &exec in f.format.executors() {
            let run: Result<Vec<f32>> = (|| {
                let read = || std::fs::read(&path).map_err(|e| Error::io(&path, e));
                match exec {
                    Executor::Tract => runners::tract(&path, &read()?, graph, &xs),
                    Executor::TractDensified => {
                        runners::tract_densified(&path, &read()?, graph, &xs)
                    }
                    Executor::OnnxRuntime => runners::onnxruntime(&path, &read()?, graph, &xs),
                    Executor::Runtime => runners::runtime(&path, &read()?, &xs),
                    Executor::C => {
                        let d: PathBuf = path.parent().map(Path::to_path_buf).unwrap_or_default();
                        runners::c(&d, &options.cc, &xs)
                    }
                }
            })();
            let mut row = FormatResult::new(
                f.format.name().to_string(),
                f.file.clone(),
                exec.label().to_string(),
                std::fs::metadata(&path).map(|m| m.len()).unwrap_or(f.bytes),
                bound.clone(),
            );
            row.artefact = Some(f.format);
            let outcome = match run.and_then(|got| compare(want, &got, classes, labels)) {
                Ok(c) => {
                    let within = if int8 {
                        c.max_abs == 0.0
                    } else {
                        c.agreement == 1.0 && c.max_abs <= options.float_tolerance * scale
                    };
                    row.accuracy = Some(c.accuracy);
                    row.top1_agreement = Some(c.agreement);
                    row.max_abs_dlogit = Some(c.max_abs);
                    let why = format!("outside the bound ({bound})");
                    Outcome::measured(within, c.max_abs, c.agreement, why)
                }
                Err(e) => Outcome::of_error(&e),
            };
            row.settle(outcome, options.require_all);
            rows.push(row);
        }
    }
    if !options.on_target.is_empty() {
        let targets = options
            .on_target
            .iter()
            .map(|t| on_target::OnTarget::load(t, &options.targets_dir))
            .collect::<Result<Vec<_>>>()?;
        let refs = on_target::References {
            dir,
            files: &manifest.files,
            xs: &xs,
            labels,
            classes,
            float: &reference,
            int8: int8_ref.as_deref(),
            float_bound: options.float_tolerance * scale,
            require_all: options.require_all,
        };
        rows.extend(on_target::rows(&refs, &targets));
    }
    let passed = rows.iter().all(|r| r.passed);
    Ok(VerifyReport {
        model_hash: manifest.model_hash,
        dataset: dataset.name.clone(),
        samples: n,
        reference_accuracy: ref_acc,
        rows,
        passed,
    })
}

impl VerifyReport {
    /// The report as a table for people.
    pub fn table(&self) -> String {
        let mut s = format!(
            "model {}  dataset {} ({} samples)  reference accuracy {:.2}%\n",
            &self.model_hash[..16.min(self.model_hash.len())],
            self.dataset,
            self.samples,
            100.0 * self.reference_accuracy
        );
        s.push_str(&format!(
            "{:<15} {:<20} {:<17} {:>9} {:>9} {:>9} {:>11}  {:<6} {}\n",
            "format",
            "file",
            "executor",
            "bytes",
            "accuracy",
            "top-1 agr",
            "max|Δlogit|",
            "result",
            "bound"
        ));
        let pct = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{:.2}%", 100.0 * v));
        for r in &self.rows {
            s.push_str(&format!(
                "{:<15} {:<20} {:<17} {:>9} {:>9} {:>9} {:>11}  {:<6} {}\n",
                r.format,
                r.file,
                r.executor,
                r.bytes,
                pct(r.accuracy),
                pct(r.top1_agreement),
                r.max_abs_dlogit.map_or("-".into(), |v| format!("{v:.3e}")),
                if matches!(r.outcome, Outcome::Skipped { .. }) && r.passed {
                    "skip"
                } else if r.passed {
                    "ok"
                } else {
                    "FAIL"
                },
                r.note.as_deref().unwrap_or(&r.bound)
            ));
        }
        s.push_str(&on_target::table(&self.rows));
        s.push_str(if self.passed {
            "all artefacts agree\n"
        } else {
            "DISAGREEMENT: see FAIL rows\n"
        });
        s
    }
}
