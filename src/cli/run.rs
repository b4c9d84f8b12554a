//! `sculpt run`: inference with any model file on dataset samples: `.scb` through the runtime crate, `.onnx`
//! through tract, a checkpoint through the reference interpreter.

use std::path::PathBuf;

use anyhow::Context;

use crate::compile::import;
use crate::compile::interp;
use crate::compile::pipeline::images_f32;
use crate::data;
use crate::verify::runners;

/// Arguments of `sculpt run`.
#[derive(Debug, Clone, clap::Args)]
pub struct RunArgs {
    /// `.scb`, `.onnx` or checkpoint.
    pub model: PathBuf,
    /// Dataset whose test split is used: `embedded`, `idx:DIR`, `cifar10:DIR`, `cifar100:DIR`.
    #[arg(long, default_value = "embedded")]
    pub dataset: String,
    /// Number of test samples to run (from the first).
    #[arg(short = 'n', long, default_value_t = 10)]
    pub count: usize,
    /// Print every sample's logits.
    #[arg(long)]
    pub logits: bool,
    /// Print JSON (predictions, labels, accuracy).
    #[arg(long)]
    pub json: bool,
}

/// Runs `sculpt run`.
pub fn run(args: &RunArgs) -> anyhow::Result<()> {
    let test = data::load(&crate::cli::verify::parse_dataset(&args.dataset)?)?.test;
    let n = args.count.min(test.len());
    let xs = images_f32(&test, n);
    let ext = args
        .model
        .extension()
        .and_then(|e| e.to_str())
        .unwrap_or("");
    let logits = match ext {
        "scb" => {
            let bytes = std::fs::read(&args.model)
                .with_context(|| format!("reading {}", args.model.display()))?;
            runners::runtime(&bytes, &xs)?
        }
        "onnx" => {
            let bytes = std::fs::read(&args.model)
                .with_context(|| format!("reading {}", args.model.display()))?;
            let g = import::onnx::import_bytes(&bytes, &args.model)?;
            runners::tract(&bytes, &g, &xs)?
        }
        _ => interp::run_batch(&import::import(&args.model)?, &xs)?,
    };
    let classes = logits.len() / n.max(1);
    let preds: Vec<usize> = logits
        .chunks(classes.max(1))
        .map(|r| {
            r.iter()
                .enumerate()
                .fold(0, |b, (i, v)| if *v > r[b] { i } else { b })
        })
        .collect();
    let labels = &test.labels[..n];
    let correct = preds
        .iter()
        .zip(labels)
        .filter(|(p, l)| **p == **l as usize)
        .count();
    if args.json {
        let rows: Vec<serde_json::Value> = (0..n)
            .map(|i| {
                let mut v =
                    serde_json::json!({ "index": i, "prediction": preds[i], "label": labels[i] });
                if args.logits {
                    v["logits"] = serde_json::json!(&logits[i * classes..(i + 1) * classes]);
                }
                v
            })
            .collect();
        println!(
            "{}",
            serde_json::to_string_pretty(
                &serde_json::json!({ "samples": rows, "accuracy": correct as f64 / n.max(1) as f64 })
            )?
        );
        return Ok(());
    }
    for i in 0..n {
        print!("{i:>5}: predicted {} label {}", preds[i], labels[i]);
        if args.logits {
            print!("  {:?}", &logits[i * classes..(i + 1) * classes]);
        }
        println!();
    }
    println!(
        "accuracy {correct}/{n} ({:.2}%)",
        100.0 * correct as f64 / n.max(1) as f64
    );
    Ok(())
}
