//! `sculpt run`: inference with any model file on dataset samples: `.scb` through the runtime crate, `.onnx`
//! through tract, a checkpoint through the reference interpreter.

use std::path::{Path, PathBuf};

use anyhow::bail;

use crate::compile::artefact::{Artefact, ModelFile};
use crate::compile::import;
use crate::compile::interp;
use crate::compile::pipeline::images_f32;
use crate::data::{self, Dataset};
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
    let logits = model_logits(&args.model, &test, n)?;
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

/// Checks that the model at `path` takes images of the dataset's shape, before anything runs.
fn check_shape(path: &Path, model: [usize; 3], test: &Dataset) -> anyhow::Result<()> {
    if model != test.shape {
        let [c, h, w] = model;
        let [dc, dh, dw] = test.shape;
        bail!(
            "{}: the model takes images of {c}x{h}x{w}, the dataset {} has images of {dc}x{dh}x{dw}",
            path.display(),
            test.name
        );
    }
    Ok(())
}

/// The logits of the first `n` test images under the model at `path`: `.scb` through the runtime crate,
/// dense `.onnx` through tract, sparse `.onnx` through ONNX Runtime (or the reference interpreter when ONNX
/// Runtime is not installed), a checkpoint through the reference interpreter.
fn model_logits(path: &Path, test: &Dataset, n: usize) -> anyhow::Result<Vec<f32>> {
    let logits = match ModelFile::recognise(path)? {
        ModelFile::Artefact(Artefact::ScbF32 | Artefact::ScbInt8, bytes) => {
            let m = sculpt_runtime::Model::parse(&bytes)
                .map_err(|e| anyhow::anyhow!("{}: not a valid .scb model: {e}", path.display()))?;
            let b = m.input();
            let shape = [b.dims[0] as usize, b.dims[1] as usize, b.dims[2] as usize];
            if b.rank != 3 {
                bail!(
                    "{}: the model's input is not an image (rank {})",
                    path.display(),
                    b.rank
                );
            }
            check_shape(path, shape, test)?;
            runners::runtime(path, &bytes, &images_f32(test, n))?
        }
        ModelFile::Artefact(Artefact::OnnxDense | Artefact::OnnxSparse, bytes) => {
            let g = import::onnx::import_bytes(&bytes, path)?;
            check_shape(path, g.input.shape, test)?;
            let xs = images_f32(test, n);
            match Artefact::of_onnx(&g) {
                Artefact::OnnxDense => runners::tract(path, &bytes, &g, &xs)?,
                _ if runners::ort_init().is_ok() => runners::onnxruntime(path, &bytes, &g, &xs)?,
                _ => {
                    eprintln!(
                        "note: {} has sparse initializers and ONNX Runtime is not installed; running it with \
                         sculpt's reference interpreter",
                        path.display()
                    );
                    interp::run_batch(&g, &xs)?
                }
            }
        }
        ModelFile::Artefact(a @ (Artefact::CF32 | Artefact::CInt8), _) => {
            bail!(
                "{}: a {a} artefact is run by `sculpt verify`, not `sculpt run`",
                path.display()
            )
        }
        ModelFile::Checkpoint => {
            let g = import::checkpoint::import(path)?;
            check_shape(path, g.input.shape, test)?;
            interp::run_batch(&g, &images_f32(test, n))?
        }
    };
    let classes = logits.len() / n.max(1);
    if n > 0 && (classes == 0 || logits.len() != classes * n) {
        bail!(
            "{}: the model produced {} values for {n} images, not one row of logits per image",
            path.display(),
            logits.len()
        );
    }
    Ok(logits)
}
