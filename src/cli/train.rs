//! `sculpt train`: a recipe file (or the embedded default) with flags overriding any of its fields.

use std::path::PathBuf;

use anyhow::Context;
use clap::Args;

use crate::engine::Device;
use crate::train::{self, Override, Recipe, Run};

/// Arguments of `sculpt train`. Every flag overrides the corresponding recipe field; `--set` reaches any other.
#[derive(Debug, Clone, Args)]
pub struct TrainArgs {
    /// Recipe file (TOML, see formats/recipe.md); without it the embedded default recipe is used.
    #[arg(long, short = 'r', value_name = "FILE")]
    pub recipe: Option<PathBuf>,

    /// Output directory for metrics.jsonl, checkpoints and the final weights.
    #[arg(long, short = 'o', value_name = "DIR", default_value = "runs/train")]
    pub out: PathBuf,

    /// Resume the stopped run in DIR with the recipe stored in its checkpoint.
    #[arg(long, value_name = "DIR", conflicts_with_all = ["recipe", "out"])]
    pub resume: Option<PathBuf>,

    /// Model name (model.name), e.g. lenet5, lenet300, resnet20.
    #[arg(long)]
    pub model: Option<String>,
    /// Epochs per cycle (train.epochs).
    #[arg(long)]
    pub epochs: Option<i64>,
    /// Batch size (train.batch_size).
    #[arg(long)]
    pub batch_size: Option<i64>,
    /// Peak learning rate (schedule.lr).
    #[arg(long)]
    pub lr: Option<f64>,
    /// Seed (train.seed).
    #[arg(long)]
    pub seed: Option<i64>,
    /// Dataset: `embedded`, `idx:DIR`, `cifar10:DIR`, `cifar100:DIR`, `cifar100-coarse:DIR`, or a directory of
    /// IDX files (data.source).
    #[arg(long, value_name = "SOURCE")]
    pub data: Option<String>,
    /// Validation fraction of the training split (data.validation).
    #[arg(long)]
    pub validation: Option<f64>,
    /// Random-crop padding in pixels (data.augment.crop_padding).
    #[arg(long)]
    pub crop_padding: Option<i64>,
    /// Random horizontal flips (data.augment.hflip).
    #[arg(long)]
    pub hflip: bool,
    /// Label smoothing (train.label_smoothing).
    #[arg(long)]
    pub label_smoothing: Option<f64>,
    /// Evaluate every N epochs (train.eval_every).
    #[arg(long)]
    pub eval_every: Option<i64>,
    /// SGD momentum (optimizer.momentum).
    #[arg(long)]
    pub momentum: Option<f64>,
    /// Weight decay (optimizer.weight_decay).
    #[arg(long)]
    pub weight_decay: Option<f64>,
    /// Nesterov momentum (optimizer.nesterov).
    #[arg(long)]
    pub nesterov: bool,
    /// Schedule shape (schedule.shape): constant, cosine, multi_step, triangular; replaces the recipe's shape
    /// parameters (set new ones via --set schedule.KEY=VALUE).
    #[arg(long)]
    pub schedule: Option<String>,
    /// Warm-up fraction of each cycle (schedule.warmup).
    #[arg(long)]
    pub warmup: Option<f64>,
    /// Training method (method.kind); its parameters via --set method.KEY=VALUE.
    #[arg(long)]
    pub method: Option<String>,
    /// Any recipe field as a dotted key and a TOML value, e.g. `--set train.eval_every=2`; repeatable, applied
    /// after the other flags.
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub set: Vec<String>,

    /// Device to train on: cpu, tch-cpu, cuda, cuda:N (default: the recipe's train.device; with --resume, the
    /// device the run was trained on). Checkpoints are the same on every device.
    #[arg(long, value_name = "DEVICE")]
    pub device: Option<Device>,

    /// Print the resolved recipe as TOML and exit without training.
    #[arg(long)]
    pub print_recipe: bool,
    /// No progress bar and no per-epoch lines.
    #[arg(long, short = 'q')]
    pub quiet: bool,
    /// Print the run summary as JSON.
    #[arg(long)]
    pub json: bool,
}

/// Parses a `--data` value into the TOML form of `data::DataSource`.
pub fn parse_data_source(text: &str) -> anyhow::Result<toml::Value> {
    let mut t = toml::Table::new();
    let (kind, dir) = match text.split_once(':') {
        _ if text == "embedded" => ("embedded", None),
        Some(("idx", d)) => ("idx", Some(d)),
        Some(("cifar10", d)) => ("cifar10", Some(d)),
        Some(("cifar100", d)) => ("cifar100", Some(d)),
        Some(("cifar100-coarse", d)) => {
            t.insert("coarse".into(), toml::Value::Boolean(true));
            ("cifar100", Some(d))
        }
        Some((k, _)) if !k.contains('/') && !k.contains('\\') && k.len() > 1 => {
            anyhow::bail!("--data: unknown dataset kind '{k}' (embedded, idx, cifar10, cifar100, cifar100-coarse)")
        }
        _ => ("idx", Some(text)),
    };
    if let Some(d) = dir {
        anyhow::ensure!(!d.is_empty(), "--data {text}: the directory is empty");
        t.insert("dir".into(), toml::Value::String(d.into()));
    }
    t.insert("kind".into(), toml::Value::String(kind.into()));
    Ok(toml::Value::Table(t))
}

impl TrainArgs {
    /// The overrides the flags stand for, in application order.
    pub fn overrides(&self) -> anyhow::Result<Vec<Override>> {
        let mut o = Vec::new();
        if let Some(v) = &self.model {
            o.push(Override::new("model.name", v.as_str()));
        }
        if let Some(v) = self.epochs {
            o.push(Override::new("train.epochs", v));
        }
        if let Some(v) = self.batch_size {
            o.push(Override::new("train.batch_size", v));
        }
        if let Some(v) = self.lr {
            o.push(Override::new("schedule.lr", v));
        }
        if let Some(v) = self.seed {
            o.push(Override::new("train.seed", v));
        }
        if let Some(v) = &self.data {
            o.push(Override::new("data.source", parse_data_source(v)?));
        }
        if let Some(v) = self.validation {
            o.push(Override::new("data.validation", v));
        }
        if let Some(v) = self.crop_padding {
            o.push(Override::new("data.augment.crop_padding", v));
        }
        if self.hflip {
            o.push(Override::new("data.augment.hflip", true));
        }
        if let Some(v) = self.label_smoothing {
            o.push(Override::new("train.label_smoothing", v));
        }
        if let Some(v) = self.eval_every {
            o.push(Override::new("train.eval_every", v));
        }
        if let Some(v) = self.momentum {
            o.push(Override::new("optimizer.momentum", v));
        }
        if let Some(v) = self.weight_decay {
            o.push(Override::new("optimizer.weight_decay", v));
        }
        if self.nesterov {
            o.push(Override::new("optimizer.nesterov", true));
        }
        if let Some(v) = &self.schedule {
            for k in ["min_lr", "milestones", "gamma", "start", "peak"] {
                o.push(Override::unset(format!("schedule.{k}")));
            }
            o.push(Override::new("schedule.shape", v.as_str()));
        }
        if let Some(v) = self.warmup {
            o.push(Override::new("schedule.warmup", v));
        }
        if let Some(v) = &self.method {
            let mut t = toml::Table::new();
            t.insert("kind".into(), toml::Value::String(v.clone()));
            o.push(Override::new("method", toml::Value::Table(t)));
        }
        for s in &self.set {
            o.push(Override::parse(s)?);
        }
        Ok(o)
    }

    fn has_recipe_flags(&self) -> anyhow::Result<bool> {
        Ok(!self.overrides()?.is_empty())
    }
}

/// Runs `sculpt train`.
pub fn run(args: &TrainArgs) -> anyhow::Result<()> {
    let (summary, out) = if let Some(dir) = &args.resume {
        anyhow::ensure!(
            !args.has_recipe_flags()?,
            "--resume continues with the recipe stored in the checkpoint; recipe flags cannot be combined with it"
        );
        let stored = train::resume_recipe(dir)
            .with_context(|| format!("cannot resume the run in {}", dir.display()))?;
        if args.print_recipe {
            println!("{}", stored.to_toml()?.trim_end());
            return Ok(());
        }
        let device = args.device.unwrap_or(stored.train.device);
        let s = Run::resume(dir, device)
            .and_then(|r| r.quiet(args.quiet).run_to_end())
            .with_context(|| format!("cannot resume the run in {}", dir.display()))?;
        (s, dir.clone())
    } else {
        let mut recipe = Recipe::load(args.recipe.as_deref(), &args.overrides()?)?;
        if let Some(d) = args.device {
            recipe.train.device = d;
        }
        if args.print_recipe {
            println!("{}", recipe.to_toml()?.trim_end());
            return Ok(());
        }
        let s = Run::start(&recipe, recipe.train.device, &args.out)?
            .quiet(args.quiet)
            .run_to_end()?;
        (s, args.out.clone())
    };
    if crate::distributed::world().rank() != 0 {
        return Ok(());
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(&summary)?);
    } else if summary.completed {
        let pct = |v: Option<f64>| v.map_or("-".to_string(), |a| format!("{:.2}%", 100.0 * a));
        println!(
            "trained {} epochs ({} steps, {:.1} s per epoch): test accuracy {}, best validation {}, density {:.4}",
            summary.total_epochs,
            summary.total_steps,
            summary.mean_epoch_seconds,
            pct(summary.final_test_acc),
            pct(summary.best_val_acc),
            summary.density
        );
        println!("final checkpoint: {}", summary.final_checkpoint.display());
        println!("metrics: {}", summary.metrics.display());
    } else {
        println!(
            "stopped after {} epochs; resume with: sculpt train --resume {}",
            summary.total_epochs,
            out.display()
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::DataSource;

    fn source(text: &str) -> DataSource {
        parse_data_source(text).unwrap().try_into().unwrap()
    }

    #[test]
    fn data_sources_parse() {
        assert_eq!(source("embedded"), DataSource::Embedded);
        assert_eq!(
            source("idx:/d/mnist"),
            DataSource::Idx {
                dir: "/d/mnist".into()
            }
        );
        assert_eq!(
            source("/d/fashion"),
            DataSource::Idx {
                dir: "/d/fashion".into()
            }
        );
        assert_eq!(
            source("cifar10:c10"),
            DataSource::Cifar10 { dir: "c10".into() }
        );
        assert_eq!(
            source("cifar100-coarse:c100"),
            DataSource::Cifar100 {
                dir: "c100".into(),
                coarse: true
            }
        );
        assert!(parse_data_source("imagenet:/d")
            .unwrap_err()
            .to_string()
            .contains("imagenet"));
        assert!(parse_data_source("idx:").is_err());
    }
}
