//! `sculpt pipeline`: the main job. Trains a sparse model (by default SCULPT on LeNet-5 with the embedded
//! digits), compiles it for a target and verifies every artefact against the reference, then checks that the
//! reference itself reproduces the trained model's test accuracy.

use std::path::PathBuf;

use anyhow::{bail, Context};

use crate::compile::pipeline::{compile, CompileOptions};
use crate::data;
use crate::engine::Device;
use crate::train::{Recipe, Run};
use crate::verify::{verify, VerifyOptions};

/// The built-in recipe of the main job.
pub const DEFAULT_RECIPE: &str = include_str!("../../recipes/pipeline.toml");

/// Arguments of `sculpt pipeline`.
#[derive(Debug, Clone, clap::Args)]
pub struct PipelineArgs {
    /// Recipe (default: the built-in SCULPT LeNet-5 recipe, recipes/pipeline.toml).
    #[arg(long)]
    pub recipe: Option<PathBuf>,
    /// Output directory: the run in `OUT/run`, the artefacts in `OUT/artefacts`.
    #[arg(short, long, default_value = "pipeline-out")]
    pub out: PathBuf,
    /// Deployment target (a built-in name, a file in --targets-dir, or a `.toml` path).
    #[arg(short, long, default_value = "cortex-m4f")]
    pub target: String,
    /// Directory of target files.
    #[arg(long, default_value = "targets")]
    pub targets_dir: PathBuf,
    /// Fail when ONNX Runtime or the C compiler is missing, instead of skipping those formats.
    #[arg(long)]
    pub require_all: bool,
    /// Device to train on: cpu, tch-cpu, cuda, cuda:N (default: the recipe's train.device).
    #[arg(long, value_name = "DEVICE")]
    pub device: Option<Device>,
    /// No progress bar.
    #[arg(long)]
    pub quiet: bool,
}

/// Runs `sculpt pipeline`.
pub fn run(args: &PipelineArgs) -> anyhow::Result<()> {
    let recipe = match &args.recipe {
        Some(p) => Recipe::load(Some(p), &[])?,
        None => Recipe::from_toml_str(DEFAULT_RECIPE, "recipes/pipeline.toml")?,
    };
    let run_dir = args.out.join("run");
    let art_dir = args.out.join("artefacts");
    eprintln!("[1/3] training into {}", run_dir.display());
    let device = args.device.unwrap_or(recipe.train.device);
    let summary = Run::start(&recipe, device, &run_dir)
        .and_then(|r| r.quiet(args.quiet).run_to_end())
        .context("training failed")?;
    let trained_acc = summary
        .final_test_acc
        .context("the training run did not complete")?;
    eprintln!(
        "      test accuracy {:.2}% at density {:.3}",
        100.0 * trained_acc,
        summary.density
    );

    eprintln!(
        "[2/3] compiling for {} into {}",
        args.target,
        art_dir.display()
    );
    let target = super::compile::load_target(&args.target, &args.targets_dir)?;
    let artefacts = compile(
        &summary.final_checkpoint,
        &art_dir,
        Some(&target),
        &CompileOptions {
            calibration_data: recipe.data.source.clone(),
            ..CompileOptions::default()
        },
    )
    .context("compilation failed")?;
    eprint!("{}", artefacts.report);

    eprintln!("[3/3] verifying every artefact on the test set");
    let test = data::load(&recipe.data.source)?.test;
    let report = verify(
        &art_dir,
        &test,
        &VerifyOptions {
            require_all: args.require_all,
            ..VerifyOptions::default()
        },
    )?;
    print!("{}", report.table());
    let gap = (report.reference_accuracy - trained_acc).abs();
    println!(
        "trained model: {:.2}%  reference: {:.2}%  (|Δ| = {:.3} pt)",
        100.0 * trained_acc,
        100.0 * report.reference_accuracy,
        100.0 * gap
    );
    if !report.passed {
        bail!(
            "artefacts in {} disagree with the reference",
            art_dir.display()
        );
    }
    // The reference runs the same weights in f32 with BN folded; a one-image difference is the most rounding
    // can explain on the test set.
    if gap * test.len() as f64 > 1.0 + 1e-9 {
        bail!(
            "the compiled reference's accuracy ({:.2}%) differs from the trained model's ({:.2}%)",
            100.0 * report.reference_accuracy,
            100.0 * trained_acc
        );
    }
    Ok(())
}
