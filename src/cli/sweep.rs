//! `sculpt sweep FILE`: methods × sparsities × seeds from one TOML file (schema in `analysis::sweep`).

use std::path::PathBuf;

use anyhow::Context;

use crate::analysis::sweep::{run_sweep, SweepSpec};
use crate::train::RunOptions;

/// Arguments of `sculpt sweep`.
#[derive(Debug, Clone, clap::Args)]
pub struct SweepArgs {
    /// The sweep file.
    pub file: PathBuf,
    /// Also write a Markdown report here, with its plots (PNG and SVG) beside it.
    #[arg(long)]
    pub report: Option<PathBuf>,
    /// List the points and exit without training.
    #[arg(long)]
    pub dry_run: bool,
    /// Hide the per-run progress bars.
    #[arg(long)]
    pub quiet: bool,
}

/// Runs the sweep; finished points are skipped and interrupted ones resumed, so re-running continues it.
pub fn run(args: &SweepArgs) -> anyhow::Result<()> {
    let (spec, root) = SweepSpec::load(&args.file)?;
    if args.dry_run {
        for p in spec.points(&root)? {
            println!(
                "{}  sparsity {}  seed {}  -> {}",
                p.entry.name,
                p.sparsity,
                p.seed,
                p.dir.display()
            );
        }
        return Ok(());
    }
    let opts = RunOptions {
        quiet: args.quiet,
        ..RunOptions::default()
    };
    let command = format!(
        "sculpt sweep {}{}",
        args.file.display(),
        args.report
            .as_ref()
            .map_or(String::new(), |r| format!(" --report {}", r.display()))
    );
    let rows = run_sweep(
        &spec,
        &root,
        args.report.as_deref(),
        &opts,
        &|r, d, o| crate::train::run(r, d, o),
        &mut |m| eprintln!("{m}"),
        &command,
    )
    .with_context(|| format!("sweep {}", args.file.display()))?;
    println!(
        "{} runs; results in {}",
        rows.len(),
        root.join(&spec.out).display()
    );
    Ok(())
}
