//! `sculpt sweep FILE`: methods × sparsities × seeds from one TOML file (schema in `analysis::sweep`), in one
//! process or split over many (`--shard K/N`, then `--collect`).

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;

use crate::analysis::sweep::{collect, run_sweep, train_shard, Participation, Shard, SweepSpec};
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
    /// Train only shard K of N (1 <= K <= N) of the points, e.g. one task of a Slurm job array
    /// (`--shard $SLURM_ARRAY_TASK_ID/$SLURM_ARRAY_TASK_COUNT`). Writes no tables or report: run `--collect`
    /// when the shards are done.
    #[arg(long, value_name = "K/N", conflicts_with_all = ["collect", "dry_run"])]
    pub shard: Option<Shard>,
    /// Train nothing: write the tables, plots and `--report` from the points that have finished, and list the
    /// ones that have not.
    #[arg(long, conflicts_with = "dry_run")]
    pub collect: bool,
    /// Seconds after which a point's lease that its holder stopped renewing (a killed process, a lost node) is
    /// taken over by another process.
    #[arg(long, value_name = "SECONDS", default_value_t = 600)]
    pub lease_timeout: u64,
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
    if args.collect {
        let report = args.report.as_deref();
        let (rows, missing) = collect(
            &spec,
            &root,
            report,
            &format!("sculpt sweep {} --collect", args.file.display()),
        )
        .with_context(|| format!("sweep {}", args.file.display()))?;
        for p in &missing {
            println!(
                "not finished: {}  sparsity {}  seed {}",
                p.entry.name, p.sparsity, p.seed
            );
        }
        println!(
            "{} rows from {} finished points, {} not finished; results in {}",
            rows.len(),
            spec.points(&root)?.len() - missing.len(),
            missing.len(),
            root.join(&spec.out).display()
        );
        return Ok(());
    }
    let train = |recipe: &crate::train::Recipe, dir: &std::path::Path| {
        let device = args.device.unwrap_or(recipe.train.device);
        Run::start_or_resume(recipe, device, dir)?
            .quiet(args.quiet)
            .run_to_end()
    };
    if let Some(shard) = args.shard {
        let how = Participation {
            shard,
            lease_timeout: Duration::from_secs(args.lease_timeout),
        };
        let outcome = train_shard(&spec, &root, how, &train, &mut |m| eprintln!("{m}"))
            .with_context(|| {
                format!(
                    "sweep {} shard {}/{}",
                    args.file.display(),
                    shard.index,
                    shard.count
                )
            })?;
        println!(
            "shard {}/{}: {} rows; {} points left to other processes; assemble with `sculpt sweep {} --collect`",
            shard.index,
            shard.count,
            outcome.rows.len(),
            outcome.busy,
            args.file.display()
        );
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
        &train,
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
