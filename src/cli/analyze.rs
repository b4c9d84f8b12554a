//! `sculpt analyze`: linear mode connectivity, sign flips and sparsity tables of checkpoints.

use std::path::PathBuf;

use crate::analysis::checkpoints::{self, LmcOptions};
use crate::analysis::lmc::default_alphas;
use crate::analysis::table::render;
use crate::data::DataSource;
use crate::engine::Device;

/// Arguments of `sculpt analyze`.
#[derive(Debug, Clone, clap::Args)]
pub struct AnalyzeArgs {
    #[command(subcommand)]
    pub what: AnalyzeCommand,
    /// Print JSON instead of a table.
    #[arg(long, global = true)]
    pub json: bool,
}

/// Which analysis.
#[derive(Debug, Clone, clap::Subcommand)]
pub enum AnalyzeCommand {
    /// Linear mode connectivity between two checkpoints (11 points, BN re-estimated, error barrier).
    Lmc {
        /// Checkpoint at α = 1.
        a: PathBuf,
        /// Checkpoint at α = 0.
        b: PathBuf,
        /// Training images for the BN re-estimation at each α (default: all).
        #[arg(long)]
        bn_images: Option<usize>,
        /// Test images to evaluate (default: all).
        #[arg(long)]
        test_images: Option<usize>,
        /// Dataset directory of the MNIST-family IDX files instead of the checkpoint recipe's dataset.
        #[arg(long)]
        idx: Option<PathBuf>,
        /// CIFAR-10 directory instead of the checkpoint recipe's dataset.
        #[arg(long)]
        cifar10: Option<PathBuf>,
        #[arg(long, default_value_t = 500)]
        batch: usize,
        /// Device to evaluate on: cpu, tch-cpu, cuda, cuda:N.
        #[arg(long, value_name = "DEVICE", default_value = "cpu")]
        device: Device,
    },
    /// Sign flips per layer between two checkpoints.
    Signs { a: PathBuf, b: PathBuf },
    /// Per-layer sparsity of a checkpoint.
    Sparsity { checkpoint: PathBuf },
}

/// Runs the analysis and prints the result.
pub fn run(args: &AnalyzeArgs) -> anyhow::Result<()> {
    match &args.what {
        AnalyzeCommand::Lmc {
            a,
            b,
            bn_images,
            test_images,
            idx,
            cifar10,
            batch,
            device,
        } => {
            let data = match (idx, cifar10) {
                (Some(_), Some(_)) => anyhow::bail!("give at most one of --idx and --cifar10"),
                (Some(d), None) => Some(DataSource::Idx { dir: d.clone() }),
                (None, Some(d)) => Some(DataSource::Cifar10 { dir: d.clone() }),
                (None, None) => None,
            };
            let opts = LmcOptions {
                data,
                bn_images: *bn_images,
                test_images: *test_images,
                batch: *batch,
                alphas: default_alphas(),
                device: *device,
            };
            let r = checkpoints::lmc(a, b, &opts)?;
            if args.json {
                println!("{}", serde_json::to_string_pretty(&r)?);
            } else {
                println!("{:>6}  {:>10}  {:>9}", "alpha", "test loss", "error");
                for p in &r.points {
                    println!(
                        "{:>6.2}  {:>10.4}  {:>8.2}%",
                        p.alpha,
                        p.loss,
                        100.0 * p.error
                    );
                }
                println!("error barrier: {:.2}%", 100.0 * r.barrier);
            }
        }
        AnalyzeCommand::Signs { a, b } => {
            let rows = checkpoints::signs(a, b)?;
            if args.json {
                println!("{}", serde_json::to_string_pretty(&rows)?);
            } else {
                let w = rows.iter().map(|r| r.layer.len()).max().unwrap_or(5).max(5);
                println!(
                    "{:<w$}  {:>10}  {:>10}  {:>8}",
                    "layer", "active", "flips", "flipped"
                );
                let (mut act, mut fl) = (0, 0);
                for r in &rows {
                    println!(
                        "{:<w$}  {:>10}  {:>10}  {:>7.2}%",
                        r.layer,
                        r.active,
                        r.flips,
                        100.0 * r.fraction()
                    );
                    act += r.active;
                    fl += r.flips;
                }
                let frac = if act == 0 {
                    0.0
                } else {
                    fl as f64 / act as f64
                };
                println!(
                    "{:<w$}  {:>10}  {:>10}  {:>7.2}%",
                    "total",
                    act,
                    fl,
                    100.0 * frac
                );
            }
        }
        AnalyzeCommand::Sparsity { checkpoint } => {
            let rows = checkpoints::sparsity(checkpoint)?;
            if args.json {
                println!("{}", serde_json::to_string_pretty(&rows)?);
            } else {
                print!("{}", render(&rows));
            }
        }
    }
    Ok(())
}
