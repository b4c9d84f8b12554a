//! `sculpt compile`: a checkpoint or ONNX file → every artefact for a target, with a size and budget report.

use std::path::{Path, PathBuf};

use anyhow::Context;

use crate::compile::pipeline::{compile, CompileOptions};
use crate::compile::target::Target;

/// Arguments of `sculpt compile`.
#[derive(Debug, Clone, clap::Args)]
pub struct CompileArgs {
    /// Checkpoint (`NAME`, `NAME.json` or `NAME.safetensors`) or `.onnx` file.
    pub input: PathBuf,
    /// Artefact directory.
    #[arg(short, long, default_value = "artefacts")]
    pub out: PathBuf,
    /// Target name (a file in --targets-dir) or path to a target TOML.
    #[arg(short, long)]
    pub target: Option<String>,
    /// Directory of target files.
    #[arg(long, default_value = "targets")]
    pub targets_dir: PathBuf,
    /// Calibration images for int8 (first N of the training split).
    #[arg(long, default_value_t = 256)]
    pub calibration: usize,
    /// Calibration dataset: `embedded`, `idx:DIR`, `cifar10:DIR`, `cifar100:DIR`.
    #[arg(long, default_value = "embedded")]
    pub calibration_data: String,
    /// Skip the int8 artefacts.
    #[arg(long)]
    pub no_int8: bool,
    /// Print the manifest as JSON instead of the report.
    #[arg(long)]
    pub json: bool,
}

/// Loads a target from a path when `name` ends in `.toml`, else by name from `dir`, else a built-in target.
pub fn load_target(name: &str, dir: &Path) -> anyhow::Result<Target> {
    let t = if name.ends_with(".toml") {
        Target::load(Path::new(name))
    } else if !dir.join(format!("{name}.toml")).exists() && Target::builtin(name).is_some() {
        Ok(Target::builtin(name).expect("checked above"))
    } else {
        Target::load_named(dir, name)
    };
    t.with_context(|| format!("cannot load target '{name}'"))
}

/// Runs `sculpt compile`.
pub fn run(args: &CompileArgs) -> anyhow::Result<()> {
    let target = match &args.target {
        Some(t) => Some(load_target(t, &args.targets_dir)?),
        None => None,
    };
    let options = CompileOptions {
        calibration_data: crate::cli::verify::parse_dataset(&args.calibration_data)?,
        calibration_samples: args.calibration,
        int8: !args.no_int8,
    };
    let a = compile(&args.input, &args.out, target.as_ref(), &options)
        .with_context(|| format!("compiling {}", args.input.display()))?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&a.manifest)?);
    } else {
        print!("{}", a.report);
        println!("wrote {}", a.dir.display());
    }
    Ok(())
}
