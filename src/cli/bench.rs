//! `sculpt bench train|forward|infer`: throughput of an engine on its device (train step, eval forward) and of
//! the compiled artefacts (runtime vs tract) on random inputs.

use clap::{Args, ValueEnum};

use crate::compile::bench::{
    bench_graph, random_images, synthetic_graph, InferBench, InferBenchOptions,
};
use crate::engine::bench::{bench_infer, bench_train, BenchReport};
use crate::engine::Device;
use crate::nn::ModelSpec;

/// What to measure.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum BenchKind {
    /// The engine: forward, backward and SGD step.
    Train,
    /// The engine: eval-mode forward.
    Forward,
    /// The compiled model: `.scb` through the runtime (f32 and int8) against the dense ONNX through tract,
    /// batch-1 latency on one thread and throughput on `--threads`, at each of `--sparsities`; for the
    /// runtime also batches of 64 on one thread and split across `--threads`.
    Infer,
}

/// Arguments of `sculpt bench`.
#[derive(Debug, Clone, Args)]
pub struct BenchArgs {
    /// Train step or inference.
    #[arg(value_enum)]
    pub kind: BenchKind,
    /// Model name, e.g. lenet5, resnet20.
    #[arg(long, default_value = "resnet20")]
    pub model: String,
    /// Batch size (train and forward).
    #[arg(long, default_value_t = 128)]
    pub batch: usize,
    /// Sparsity of every convolution and linear layer but the first convolution and the last linear layer
    /// (train): measures the dense step, then the masked one, and prints both and their ratio.
    #[arg(long, default_value_t = 0.0)]
    pub sparsity: f64,
    /// Sparsities of the prunable weights (infer).
    #[arg(long, value_delimiter = ',', default_value = "0,0.9,0.95,0.98")]
    pub sparsities: Vec<f64>,
    /// Input shape C,H,W (default: 1,28,28 for MLP/LeNet models, 3,32,32 otherwise).
    #[arg(long, value_name = "C,H,W")]
    pub input: Option<String>,
    /// Number of classes.
    #[arg(long, default_value_t = 10)]
    pub classes: usize,
    /// Seconds of measurement (infer: per runner, for latency and again for throughput).
    #[arg(long, default_value_t = 5.0)]
    pub seconds: f64,
    /// Device of train and forward: cpu, tch-cpu, cuda, cuda:N.
    #[arg(long, value_name = "DEVICE", default_value = "cpu")]
    pub device: Device,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
}

/// The default input shape for a model name: MNIST-sized for MLPs and LeNets, CIFAR-sized otherwise.
pub fn default_input(model: &str) -> [usize; 3] {
    if model.starts_with("lenet") || model.starts_with("mlp") {
        [1, 28, 28]
    } else {
        [3, 32, 32]
    }
}

/// Parses `C,H,W`.
pub fn parse_input(text: &str) -> anyhow::Result<[usize; 3]> {
    let v: Vec<usize> = text
        .split(',')
        .map(|s| s.trim().parse::<usize>())
        .collect::<Result<_, _>>()
        .map_err(|_| anyhow::anyhow!("--input '{text}' is not of the form C,H,W"))?;
    match v[..] {
        [c, h, w] if c > 0 && h > 0 && w > 0 => Ok([c, h, w]),
        _ => anyhow::bail!("--input '{text}' must be three positive numbers C,H,W"),
    }
}

/// Runs `sculpt bench`.
pub fn run(args: &BenchArgs) -> anyhow::Result<()> {
    anyhow::ensure!(args.batch > 0, "--batch must be positive");
    anyhow::ensure!(args.classes > 0, "--classes must be positive");
    anyhow::ensure!(
        args.seconds.is_finite() && args.seconds > 0.0,
        "--seconds must be positive"
    );
    let input = match &args.input {
        Some(s) => parse_input(s)?,
        None => default_input(&args.model),
    };
    let spec = ModelSpec::from_name(&args.model, input, args.classes)?;
    let report: BenchReport = match args.kind {
        BenchKind::Train if args.sparsity > 0.0 => return train_masked(args, &spec),
        BenchKind::Train => bench_train(&spec, args.batch, 0.0, args.seconds, args.device)?,
        BenchKind::Forward => bench_infer(&spec, args.batch, args.seconds, args.device)?,
        BenchKind::Infer => {
            anyhow::ensure!(
                args.device == Device::Cpu,
                "bench infer runs the compiled artefacts on the CPU; --device applies to train and forward"
            );
            return infer(args, &spec);
        }
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        println!("{}", describe(&report));
    }
    Ok(())
}

fn describe(r: &BenchReport) -> String {
    format!(
        "{} {} batch {} on {} threads ({} engine, {}, {} kernels, sparsity {}, {} sparse layers): {:.1} images/s, \
         {:.2} ms/batch (fastest {:.2}, slowest {:.2} over {} reps), {:.2} useful GFLOP/s",
        r.model,
        r.mode,
        r.batch,
        r.threads,
        r.engine,
        r.device,
        r.kernel_path,
        r.sparsity,
        r.sparse_layers,
        r.images_per_s,
        r.ms_per_batch,
        r.spread_ms[0],
        r.spread_ms[1],
        r.reps,
        r.gflops
    )
}

/// `sculpt bench train --sparsity S`: the dense step, then the masked one, one after the other.
fn train_masked(args: &BenchArgs, spec: &ModelSpec) -> anyhow::Result<()> {
    anyhow::ensure!(
        args.sparsity < 1.0,
        "--sparsity must be in [0, 1), got {}",
        args.sparsity
    );
    let dense = bench_train(spec, args.batch, 0.0, args.seconds, args.device)?;
    let masked = bench_train(spec, args.batch, args.sparsity, args.seconds, args.device)?;
    let speedup = dense.ms_per_batch / masked.ms_per_batch;
    if args.json {
        let v = serde_json::json!({ "dense": dense, "masked": masked, "speedup": speedup });
        println!("{}", serde_json::to_string_pretty(&v)?);
    } else {
        println!("dense:  {}", describe(&dense));
        println!("masked: {}", describe(&masked));
        println!(
            "masked step at sparsity {}: {speedup:.2}x the dense step",
            args.sparsity
        );
    }
    Ok(())
}

/// `sculpt bench infer`: one table row per (sparsity, runner).
fn infer(args: &BenchArgs, spec: &ModelSpec) -> anyhow::Result<()> {
    let options = InferBenchOptions {
        threads: rayon::current_num_threads(),
        seconds: args.seconds,
        int8: true,
    };
    let mut all: Vec<InferBench> = Vec::new();
    if !args.json {
        println!(
            "{} inference, latency at batch 1 on 1 thread, throughput on {} threads",
            args.model, options.threads
        );
        println!(
            "{:>8}  {:<24} {:>10} {:>12} {:>12} {:>10}  {:>10}  {:>14} {:>14} {:>8}",
            "sparsity",
            "runner",
            "bytes",
            "latency ms",
            "images/s",
            "vs tract",
            "(latency)",
            format!("b{} 1t img/s", crate::compile::bench::BATCH),
            format!(
                "b{} {}t img/s",
                crate::compile::bench::BATCH,
                options.threads
            ),
            "speedup"
        );
    }
    for &s in &args.sparsities {
        let graph = synthetic_graph(spec, s, 0)?;
        let calibration = random_images(&graph, 32, 7);
        let r = bench_graph(&args.model, s, graph, &calibration, &options)?;
        if !args.json {
            let base = &r.runners[0];
            for f in r.runners.iter().chain(&r.onnxruntime) {
                let batch = match (f.batch_images_per_s_1t, f.batch_images_per_s) {
                    (Some(one), Some(all)) => {
                        format!("  {one:>14.1} {all:>14.1} {:>7.2}x", all / one)
                    }
                    _ => String::new(),
                };
                println!(
                    "{:>7.1}%  {:<24} {:>10} {:>12.4} {:>12.1} {:>9.2}x  {:>9.2}x{batch}",
                    100.0 * s,
                    f.runner,
                    f.bytes,
                    f.latency_ms,
                    f.images_per_s,
                    f.images_per_s / base.images_per_s,
                    base.latency_ms / f.latency_ms
                );
            }
            if let Some(why) = &r.onnxruntime_unavailable {
                println!("{:>7.1}%  ONNX Runtime did not run: {why}", 100.0 * s);
            }
            println!("{:>7.1}%  latency ratios: {}", 100.0 * s, ratios(&r.ratios));
        }
        all.push(r);
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(&all)?);
    }
    Ok(())
}

/// `int8/f32 0.52x, f32/ORT 0.61x, ...`; a ratio whose runner did not run reads `n/a`.
fn ratios(r: &crate::compile::bench::Ratios) -> String {
    [
        ("f32/ORT", r.f32_over_ort),
        ("int8/ORT", r.int8_over_ort),
        ("int8/f32", r.int8_over_f32),
        ("f32/tract", r.f32_over_tract),
    ]
    .iter()
    .map(|(name, v)| match v {
        Some(v) => format!("{name} {v:.2}x"),
        None => format!("{name} n/a"),
    })
    .collect::<Vec<_>>()
    .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn input_shapes_parse() {
        assert_eq!(parse_input("3, 32,32").unwrap(), [3, 32, 32]);
        assert!(parse_input("3,32").is_err());
        assert!(parse_input("0,32,32").is_err());
        assert!(parse_input("a,b,c").is_err());
        assert_eq!(default_input("lenet5"), [1, 28, 28]);
        assert_eq!(default_input("resnet20"), [3, 32, 32]);
    }
}
