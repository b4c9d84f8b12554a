//! Inference benchmarks of the compiled artefacts: the `.scb` model run by the runtime crate (f32 and int8)
//! against the dense ONNX model run by tract and by ONNX Runtime (when its library can be loaded), on the same
//! model, inputs and thread count.
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
use crate::verify::runners::{ort_init, Tract};

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
    /// tract, runtime f32, then runtime int8 (when built).
    pub runners: Vec<RunnerFigures>,
    /// ONNX Runtime (one intra-op thread per session) on the dense ONNX; `None` when it is unavailable.
    pub onnxruntime: Option<RunnerFigures>,
    /// Why ONNX Runtime did not run, when it did not.
    pub onnxruntime_unavailable: Option<String>,
    /// Latency ratios between the runners that ran.
    pub ratios: Ratios,
}

/// Batch-1 latency ratios (smaller is faster for the numerator); `None` where a runner did not run.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Ratios {
    pub f32_over_ort: Option<f64>,
    pub int8_over_ort: Option<f64>,
    pub int8_over_f32: Option<f64>,
    pub f32_over_tract: Option<f64>,
}

impl Ratios {
    /// The ratios of `runners` (tract, f32, int8 as in [`InferBench::runners`]) and `ort`.
    pub fn of(runners: &[RunnerFigures], ort: Option<&RunnerFigures>) -> Self {
        let find = |name: &str| {
            runners
                .iter()
                .find(|f| f.runner == name)
                .map(|f| f.latency_ms)
        };
        let (tract, f32, int8) = (
            find(TRACT),
            find("runtime (scb f32)"),
            find("runtime (scb int8)"),
        );
        let ort = ort.map(|f| f.latency_ms);
        let over = |a: Option<f64>, b: Option<f64>| Some(a? / b?);
        Ratios {
            f32_over_ort: over(f32, ort),
            int8_over_ort: over(int8, ort),
            int8_over_f32: over(int8, f32),
            f32_over_tract: over(f32, tract),
        }
    }
}

const TRACT: &str = "tract (dense onnx)";

/// Name of the ONNX Runtime runner.
pub const ORT_RUNNER: &str = "onnxruntime (dense onnx)";

/// An ONNX Runtime session on one intra-op thread, fed already normalised batch-1 inputs.
struct OrtRunner {
    session: ort::session::Session,
    shape: [usize; 4],
}

impl OrtRunner {
    fn load(bytes: &[u8], graph: &Graph) -> Result<Self> {
        let fail = |what: &str, e: ort::Error| Error::Invalid(format!("ONNX Runtime {what}: {e}"));
        let session = ort::session::Session::builder()
            .and_then(|b| b.with_intra_threads(1))
            .and_then(|b| b.commit_from_memory(bytes))
            .map_err(|e| fail("cannot load the model", e))?;
        let [c, h, w] = graph.input.shape;
        Ok(OrtRunner {
            session,
            shape: [1, c, h, w],
        })
    }

    fn run_normalised(&mut self, x: &[f32]) -> Result<Vec<f32>> {
        let fail = |what: &str, e: ort::Error| Error::Invalid(format!("ONNX Runtime {what}: {e}"));
        let input = ort::value::Tensor::from_array((self.shape, x.to_vec()))
            .map_err(|e| fail("input", e))?;
        let outputs = self
            .session
            .run(ort::inputs![onnx::INPUT => input])
            .map_err(|e| fail("run", e))?;
        let (_, data) = outputs[onnx::OUTPUT]
            .try_extract_tensor::<f32>()
            .map_err(|e| fail("output", e))?;
        Ok(data.to_vec())
    }
}

/// ONNX Runtime's figures on the dense ONNX `bytes`: latency on one session, throughput on one session per
/// worker. Errors (library missing, model rejected, outputs not agreeing with tract) are returned as text.
fn bench_ort(
    bytes: &[u8],
    graph: &Graph,
    normalised: &[Vec<f32>],
    reference: &[f32],
    options: &InferBenchOptions,
) -> std::result::Result<RunnerFigures, String> {
    ort_init().map_err(|e| e.to_string())?;
    let threads = options.threads.max(1);
    let mut sessions = (0..threads)
        .map(|_| OrtRunner::load(bytes, graph))
        .collect::<Result<Vec<_>>>()
        .map_err(|e| e.to_string())?;
    let first = sessions[0]
        .run_normalised(&normalised[0])
        .map_err(|e| e.to_string())?;
    let worst = first
        .iter()
        .zip(reference)
        .map(|(a, b)| (a - b).abs() / (1.0 + b.abs()))
        .fold(0.0f32, f32::max);
    if first.len() != reference.len() || worst > 1e-3 {
        return Err(format!(
            "ONNX Runtime's logits differ from tract's (relative difference {worst})"
        ));
    }
    let (latency, spread) = measure_latency(options.seconds, |i| {
        sessions[0]
            .run_normalised(&normalised[i % normalised.len()])
            .map(|_| ())
    })
    .map_err(|e| e.to_string())?;
    let pool: Vec<std::sync::Mutex<OrtRunner>> =
        sessions.into_iter().map(std::sync::Mutex::new).collect();
    let next = std::sync::atomic::AtomicUsize::new(0);
    let rate = throughput(threads, options.seconds, || {
        let slot = &pool[next.fetch_add(1, std::sync::atomic::Ordering::Relaxed) % pool.len()];
        let mut i = 0usize;
        move || {
            i += 1;
            let mut s = slot
                .lock()
                .map_err(|_| Error::Invalid("an ONNX Runtime worker panicked".into()))?;
            s.run_normalised(&normalised[i % normalised.len()])
                .map(|_| ())
        }
    })
    .map_err(|e| e.to_string())?;
    Ok(RunnerFigures {
        runner: ORT_RUNNER.into(),
        bytes: bytes.len(),
        latency_ms: latency,
        latency_spread_ms: spread,
        images_per_s: rate,
        batch_images_per_s_1t: None,
        batch_images_per_s: None,
    })
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
    let reference = tract.run_normalised(&normalised[0])?;
    let (onnxruntime, onnxruntime_unavailable) =
        match bench_ort(&onnx_bytes, &g.float, normalised, &reference, options) {
            Ok(f) => (Some(f), None),
            Err(why) => (None, Some(why)),
        };
    runners.push(RunnerFigures {
        runner: TRACT.into(),
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
    let ratios = Ratios::of(&runners, onnxruntime.as_ref());
    Ok(InferBench {
        model: model.into(),
        sparsity,
        threads: options.threads,
        runners,
        onnxruntime,
        onnxruntime_unavailable,
        ratios,
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

    #[test]
    fn onnxruntime_runs_beside_tract_or_says_why_not() {
        let spec = ModelSpec::from_name("lenet5", [1, 28, 28], 10).unwrap();
        let g = synthetic_graph(&spec, 0.9, 1).unwrap();
        let calibration = random_images(&g, 8, 7);
        let options = InferBenchOptions {
            threads: 2,
            seconds: 0.05,
            int8: true,
        };
        let r = bench_graph("lenet5", 0.9, g, &calibration, &options).unwrap();
        assert_eq!(r.runners.len(), 3);
        let lat = |i: usize| r.runners[i].latency_ms;
        assert_eq!(r.ratios.int8_over_f32, Some(lat(2) / lat(1)));
        assert_eq!(r.ratios.f32_over_tract, Some(lat(1) / lat(0)));
        match (&r.onnxruntime, &r.onnxruntime_unavailable) {
            (Some(f), None) => {
                assert_eq!(f.runner, ORT_RUNNER);
                assert!(f.latency_ms > 0.0 && f.images_per_s > 0.0);
                assert_eq!(r.ratios.f32_over_ort, Some(lat(1) / f.latency_ms));
                assert_eq!(r.ratios.int8_over_ort, Some(lat(2) / f.latency_ms));
            }
            (None, Some(why)) => {
                assert!(why.contains("ONNX Runtime"), "{why}");
                assert_eq!(r.ratios.f32_over_ort, None);
                assert_eq!(r.ratios.int8_over_ort, None);
            }
            other => panic!("exactly one of figures and reason expected: {other:?}"),
        }
    }
}
