//! `sculpt sweep FILE`: methods × sparsities × seeds from one TOML file (schema in `analysis::sweep`).

use std::path::PathBuf;

use anyhow::Context;

use crate::analysis::sweep::{run_sweep, SweepSpec};
use crate::engine::Device;
use crate::train::Run;

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
    /// Device to train every point on: cpu, tch-cpu, cuda, cuda:N (default: each recipe's train.device).
    /// Interrupted points resume on it whichever device they started on.
    #[arg(long, value_name = "DEVICE")]
    pub device: Option<Device>,
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
        &|recipe, dir| {
            let device = args.device.unwrap_or(recipe.train.device);
            Run::start_or_resume(recipe, device, dir)?
                .quiet(args.quiet)
                .run_to_end()
        },
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
