//! `sculpt verify`: runs every artefact of a compilation on a dataset against the IR interpreter.

use std::path::PathBuf;

use anyhow::{bail, Context};

use crate::data::{self, DataSource};
use crate::verify::{verify, VerifyOptions};

/// Arguments of `sculpt verify`.
#[derive(Debug, Clone, clap::Args)]
pub struct VerifyArgs {
    /// Artefact directory written by `sculpt compile`.
    pub dir: PathBuf,
    /// Dataset whose test split is used: `embedded`, `idx:DIR`, `cifar10:DIR`, `cifar100:DIR`.
    #[arg(long, default_value = "embedded")]
    pub dataset: String,
    /// Use only the first N test samples.
    #[arg(long)]
    pub limit: Option<usize>,
    /// C compiler for the C artefacts.
    #[arg(long, default_value = "cc")]
    pub cc: String,
    /// Fail instead of skipping when ONNX Runtime or the C compiler is unavailable.
    #[arg(long)]
    pub require_all: bool,
    /// Also build the C and `.scb` artefacts for these targets' boards (comma-separated names or `.toml`
    /// paths; alone: the target the artefacts were compiled for), run them under the board's emulator and
    /// report measured flash, RAM and instructions per inference.
    #[arg(long, value_name = "TARGETS", num_args = 0..=1, require_equals = false, value_delimiter = ',')]
    pub on_target: Option<Vec<String>>,
    /// Directory of target files (for --on-target).
    #[arg(long, default_value = "targets")]
    pub targets_dir: PathBuf,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
}

/// Parses a dataset name: `embedded`, `idx:DIR`, `cifar10:DIR`, `cifar100:DIR` (fine labels) or
/// `cifar100-coarse:DIR`.
pub fn parse_dataset(s: &str) -> anyhow::Result<DataSource> {
    let (kind, dir) = s
        .split_once(':')
        .map_or((s, None), |(k, d)| (k, Some(PathBuf::from(d))));
    let need = |d: Option<PathBuf>| {
        d.with_context(|| format!("dataset '{kind}' needs a directory: {kind}:DIR"))
    };
    Ok(match kind {
        "embedded" => DataSource::Embedded,
        "idx" | "mnist" => DataSource::Idx { dir: need(dir)? },
        "cifar10" => DataSource::Cifar10 { dir: need(dir)? },
        "cifar100" => DataSource::Cifar100 { dir: need(dir)?, coarse: false },
        "cifar100-coarse" => DataSource::Cifar100 { dir: need(dir)?, coarse: true },
        other => bail!("unknown dataset '{other}' (embedded, idx:DIR, cifar10:DIR, cifar100:DIR, cifar100-coarse:DIR)"),
    })
}

/// Runs `sculpt verify`; errors (non-zero exit) when any artefact disagrees beyond its bound.
pub fn run(args: &VerifyArgs) -> anyhow::Result<()> {
    let source = parse_dataset(&args.dataset)?;
    let test = data::load(&source)?.test;
    let on_target = match &args.on_target {
        None => Vec::new(),
        Some(names) if !names.is_empty() => names.clone(),
        Some(_) => {
            let m = crate::compile::pipeline::read_manifest(&args.dir)?;
            vec![m.target.with_context(|| {
                format!(
                    "{} was compiled without a target: name one, e.g. --on-target cortex-m4f",
                    args.dir.display()
                )
            })?]
        }
    };
    let options = VerifyOptions {
        limit: args.limit,
        cc: args.cc.clone(),
        require_all: args.require_all,
        on_target,
        targets_dir: args.targets_dir.clone(),
        ..VerifyOptions::default()
    };
    let report = verify(&args.dir, &test, &options)?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", report.table());
    }
    if !report.passed {
        bail!(
            "artefacts in {} disagree with the reference",
            args.dir.display()
        );
    }
    Ok(())
}
