//! Inference benchmarks of the compiled artefacts: the `.scb` model run by the runtime crate (f32 and int8)
//! against the dense ONNX model run by tract, on the same model, inputs and thread count.
//!
//! Latency is the median of single-image runs on one thread. Throughput runs `threads` workers for a fixed
//! time, each with its own model state (runtime arena or tract plan state), each on batch-1 inputs, and counts
//! the images finished by all of them. Batch throughput (runtime only) runs batches of [`BATCH`] images through
//! [`run_batch`], on one thread and split across `threads`. tract gets its inputs already normalised (the ONNX model expects them
//! so); the runtime normalises inside its timed run.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Instant;

use ndarray::ArrayD;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use safetensors::tensor::{Dtype, TensorView};
use serde::Serialize;

use crate::compile::batch::{run_batch, AlignedArena};
use crate::compile::emit::onnx::{self, Variant};
use crate::compile::import::checkpoint::{graph_from_tensors, Meta};
use crate::compile::interp::normalize;
use crate::compile::ir::Graph;
use crate::compile::lower;
use crate::compile::passes::layout::Objective;
use crate::compile::pipeline::{build_for, target_formats, Graphs};
use crate::error::{Error, Result};
use crate::nn::init::kaiming_init;
use crate::nn::{ModelSpec, TensorRole};
use crate::verify::runners::Tract;

/// What the inference benchmark runs.
#[derive(Debug, Clone, PartialEq)]
pub struct InferBenchOptions {
    /// Threads for the throughput measurement (latency always uses one).
    pub threads: usize,
    /// Seconds per latency measurement and per throughput measurement.
    pub seconds: f64,
    /// Also run the int8 `.scb`.
    pub int8: bool,
}

/// One runner's figures on one model.
#[derive(Debug, Clone, Serialize)]
pub struct RunnerFigures {
    /// `tract (dense onnx)`, `runtime (scb f32)` or `runtime (scb int8)`.
    pub runner: String,
    /// Size of the artefact the runner executes.
    pub bytes: usize,
    /// Median single-image latency on one thread, milliseconds.
    pub latency_ms: f64,
    /// Fastest and slowest latency repetition, milliseconds.
    pub latency_spread_ms: [f64; 2],
    /// Images per second with `threads` workers.
    pub images_per_s: f64,
    /// Images per second of batches of [`BATCH`] images on one thread (runtime runners only).
    pub batch_images_per_s_1t: Option<f64>,
    /// Images per second of batches of [`BATCH`] images split across `threads` threads (runtime runners only).
    pub batch_images_per_s: Option<f64>,
}

/// Images per batch of the batch throughput measurement.
pub const BATCH: usize = 64;

/// The figures of every runner on one model at one sparsity.
#[derive(Debug, Clone, Serialize)]
pub struct InferBench {
    pub model: String,
    /// Fraction of zeros in every prunable weight.
    pub sparsity: f64,
    pub threads: usize,
    pub runners: Vec<RunnerFigures>,
}

const REPS: usize = 7;

/// The model of `spec` with Kaiming weights (seeded) in which every prunable weight has exactly
/// `⌊sparsity · n⌋` zeros (its smallest magnitudes, ties broken by position), BN at its initial state, inputs
/// normalised with mean 0.5 and standard deviation 0.25 per channel.
pub fn synthetic_graph(spec: &ModelSpec, sparsity: f64, seed: u64) -> Result<Graph> {
    if !(0.0..1.0).contains(&sparsity) {
        return Err(Error::Invalid(format!(
            "sparsity {sparsity} is outside [0, 1)"
        )));
    }
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let tensors: Vec<(String, ArrayD<f32>)> = kaiming_init(&spec.graph()?, &mut rng)
        .into_iter()
        .map(|(info, mut a)| {
            if info.role == TensorRole::Weight {
                prune_smallest(&mut a, sparsity);
            }
            (info.path, a)
        })
        .collect();
    let bytes: Vec<(String, Vec<usize>, Vec<u8>)> = tensors
        .iter()
        .map(|(p, a)| {
            (
                p.clone(),
                a.shape().to_vec(),
                a.iter().flat_map(|v| v.to_le_bytes()).collect(),
            )
        })
        .collect();
    let views = bytes
        .iter()
        .map(|(p, s, b)| {
            TensorView::new(Dtype::F32, s.clone(), b)
                .map(|v| (p.clone(), v))
                .map_err(|e| Error::Invalid(format!("tensor {p}: {e:?}")))
        })
        .collect::<Result<BTreeMap<_, _>>>()?;
    let st = safetensors::serialize(views, &None)
        .map_err(|e| Error::Invalid(format!("safetensors: {e:?}")))?;
    let c = spec.input[0];
    let meta = Meta {
        model: spec.clone(),
        mean: vec![0.5; c],
        std: vec![0.25; c],
    };
    graph_from_tensors(&meta, &st, Path::new("synthetic.safetensors"))
}

/// Zeroes the `⌊sparsity · n⌋` smallest magnitudes of `a` (ties by position).
fn prune_smallest(a: &mut ArrayD<f32>, sparsity: f64) {
    let n = a.len();
    let k = ((n as f64) * sparsity).floor() as usize;
    let mut order: Vec<usize> = (0..n).collect();
    let flat: Vec<f32> = a.iter().copied().collect();
    order.sort_by(|&i, &j| flat[i].abs().total_cmp(&flat[j].abs()).then(i.cmp(&j)));
    let mut zero = vec![false; n];
    for &i in &order[..k] {
        zero[i] = true;
    }
    for (v, z) in a.iter_mut().zip(zero) {
        if z {
            *v = 0.0;
        }
    }
}

/// `n` seeded random images in [0, 1] for `graph`, concatenated.
pub fn random_images(graph: &Graph, n: usize, seed: u64) -> Vec<f32> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    (0..n * graph.input.shape.iter().product::<usize>())
        .map(|_| rng.gen::<f32>())
        .collect()
}

/// Compiles `graph` (BN folding, ReLU fusion, layout over every index format, int8 calibrated on `calibration`)
/// and measures every runner.
pub fn bench_graph(
    model: &str,
    sparsity: f64,
    graph: Graph,
    calibration: &[f32],
    options: &InferBenchOptions,
) -> Result<InferBench> {
    let g: Graphs = build_for(
        graph,
        &target_formats(None),
        options.int8.then_some(calibration),
        Objective::Speed,
    )?;
    let per: usize = g.float.input.shape.iter().product();
    let images = random_images(&g.float, 16, 3);
    let mut runners = Vec::new();

    let onnx_bytes = onnx::emit(&g.float, Variant::Dense, Some(&g.hash))?;
    let tract = Tract::load(&onnx_bytes, &g.float)?;
    let normalised: Vec<Vec<f32>> = images.chunks(per).map(|x| normalize(&g.float, x)).collect();
    let (latency, spread) = measure_latency(options.seconds, |i| {
        tract
            .run_normalised(&normalised[i % normalised.len()])
            .map(|_| ())
    })?;
    let (tract, normalised) = (&tract, &normalised);
    let rate = throughput(options.threads, options.seconds, || {
        let mut i = 0usize;
        move || {
            i += 1;
            tract
                .run_normalised(&normalised[i % normalised.len()])
                .map(|_| ())
        }
    })?;
    runners.push(RunnerFigures {
        runner: "tract (dense onnx)".into(),
        bytes: onnx_bytes.len(),
        latency_ms: latency,
        latency_spread_ms: spread,
        images_per_s: rate,
        batch_images_per_s_1t: None,
        batch_images_per_s: None,
    });

    let mut scbs = vec![("runtime (scb f32)", lower::scb(&g.float, g.hash)?)];
    if let Some(q) = &g.int8 {
        scbs.push(("runtime (scb int8)", lower::scb(q, g.hash)?));
    }
    for (name, bytes) in scbs {
        let model = sculpt_runtime::Model::parse(&bytes)
            .map_err(|e| Error::Invalid(format!("the runtime rejects the .scb: {e:?}")))?;
        let run_with = |arena: &mut AlignedArena, out: &mut [f32], i: usize| {
            let x = &images[(i % 16) * per..(i % 16 + 1) * per];
            model
                .run(x, arena.bytes(), out)
                .map_err(|e| Error::Invalid(format!("runtime run: {e:?}")))
        };
        let mut arena = AlignedArena::new(model.arena_size());
        let mut out = vec![0.0f32; model.output_len()];
        let (latency, spread) =
            measure_latency(options.seconds, |i| run_with(&mut arena, &mut out, i))?;
        let rate = throughput(options.threads, options.seconds, || {
            let mut arena = AlignedArena::new(model.arena_size());
            let mut out = vec![0.0f32; model.output_len()];
            let mut i = 0usize;
            move || {
                i += 1;
                run_with(&mut arena, &mut out, i)
            }
        })?;
        let batch: Vec<f32> = (0..BATCH)
            .flat_map(|i| images[(i % 16) * per..(i % 16 + 1) * per].iter().copied())
            .collect();
        let mut logits = vec![0.0f32; BATCH * model.output_len()];
        let mut batch_rate = |threads: usize| {
            measure_latency(options.seconds / 2.0, |_| {
                run_batch(&model, &batch, &mut logits, threads)
                    .map_err(|e| Error::Invalid(format!("runtime run: {e:?}")))
            })
            .map(|(ms, _)| BATCH as f64 * 1e3 / ms)
        };
        let batch_1t = batch_rate(1)?;
        let batch_nt = batch_rate(options.threads)?;
        runners.push(RunnerFigures {
            runner: name.into(),
            bytes: bytes.len(),
            latency_ms: latency,
            latency_spread_ms: spread,
            images_per_s: rate,
            batch_images_per_s_1t: Some(batch_1t),
            batch_images_per_s: Some(batch_nt),
        });
    }
    Ok(InferBench {
        model: model.into(),
        sparsity,
        threads: options.threads,
        runners,
    })
}

/// Median, fastest and slowest of [`REPS`] repetitions of single runs (ms), after a warm-up; about `seconds`
/// in all. `run` gets a running index.
fn measure_latency(
    seconds: f64,
    mut run: impl FnMut(usize) -> Result<()>,
) -> Result<(f64, [f64; 2])> {
    let mut i = 0;
    let warm = Instant::now();
    while i == 0 || warm.elapsed().as_secs_f64() < seconds * 0.2 {
        run(i)?;
        i += 1;
    }
    let per_rep = seconds * 0.8 / REPS as f64;
    let mut reps = Vec::with_capacity(REPS);
    for _ in 0..REPS {
        let t0 = Instant::now();
        let mut n = 0usize;
        while n == 0 || t0.elapsed().as_secs_f64() < per_rep {
            run(i)?;
            i += 1;
            n += 1;
        }
        reps.push(t0.elapsed().as_secs_f64() * 1e3 / n as f64);
    }
    reps.sort_by(f64::total_cmp);
    Ok((reps[REPS / 2], [reps[0], reps[REPS - 1]]))
}

/// Images per second of `threads` workers, each made by `worker` and called until `seconds` have passed.
fn throughput<F, W>(threads: usize, seconds: f64, worker: W) -> Result<f64>
where
    W: Fn() -> F + Sync,
    F: FnMut() -> Result<()>,
{
    let threads = threads.max(1);
    let t0 = Instant::now();
    let counts: Vec<Result<usize>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|_| {
                s.spawn(|| {
                    let mut step = worker();
                    let mut n = 0usize;
                    while n == 0 || t0.elapsed().as_secs_f64() < seconds {
                        step()?;
                        n += 1;
                    }
                    Ok(n)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err(Error::Invalid("a benchmark worker panicked".into())))
            })
            .collect()
    });
    let elapsed = t0.elapsed().as_secs_f64();
    let mut total = 0usize;
    for c in counts {
        total += c?;
    }
    Ok(total as f64 / elapsed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compile::ir::Op;

    #[test]
    fn synthetic_weights_have_the_exact_sparsity() {
        let spec = ModelSpec::from_name("lenet5", [1, 28, 28], 10).unwrap();
        let g = synthetic_graph(&spec, 0.9, 1).unwrap();
        let mut checked = 0;
        for node in &g.nodes {
            if let Some(w) = node.op.weight() {
                let d = w.to_dense();
                let zeros = d.iter().filter(|v| **v == 0.0).count();
                assert_eq!(
                    zeros,
                    (d.len() as f64 * 0.9).floor() as usize,
                    "{}",
                    node.name
                );
                checked += 1;
            }
            if let Op::Conv { .. } | Op::Gemm { .. } = node.op {
                assert!(node.op.weight().is_some());
            }
        }
        assert_eq!(checked, 5);
        assert!(synthetic_graph(&spec, 1.0, 1).is_err());
    }
}
