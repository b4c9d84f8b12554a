//! Throughput measurements of an engine on its device, comparable with `shared/bench/torch_reference.py`: random inputs
//! from a fixed seed, a warm-up, then the median over several repetitions.

use std::time::Instant;

use ndarray::Array4;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::StandardNormal;
use serde::Serialize;

use crate::engine::Device;
use crate::error::Result;
use crate::nn::loss::cross_entropy;
use crate::nn::ModelSpec;
use crate::optim::SgdConfig;

/// Repetitions whose median is reported.
const REPS: usize = 5;

/// One benchmark result.
#[derive(Debug, Clone, Serialize)]
pub struct BenchReport {
    pub engine: String,
    /// The device, as `--device` names it.
    pub device: String,
    /// `train` (forward, cross-entropy, backward, SGD step) or `infer` (eval-mode forward).
    pub mode: String,
    pub model: String,
    pub batch: usize,
    pub threads: usize,
    /// Median time of one batch.
    pub ms_per_batch: f64,
    pub images_per_s: f64,
    /// Useful FLOP/s: `3 · 2 · MACs · batch` per train step, `2 · MACs · batch` per inference.
    pub gflops: f64,
    /// Fastest and slowest repetition, ms per batch.
    pub spread_ms: [f64; 2],
    pub reps: usize,
}

fn random_batch(spec: &ModelSpec, batch: usize) -> (Array4<f32>, Vec<u32>) {
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    let [c, h, w] = spec.input;
    let x = Array4::from_shape_simple_fn((batch, c, h, w), || rng.sample(StandardNormal));
    let y = (0..batch)
        .map(|_| rng.gen_range(0..spec.classes as u32))
        .collect();
    (x, y)
}

/// Times `step` for about `seconds` in all: a warm-up of a fifth of the time (at least one call), then
/// [`REPS`] repetitions of at least one call each. Returns seconds per call of every repetition.
fn time_reps(seconds: f64, mut step: impl FnMut()) -> Vec<f64> {
    let warm = Instant::now();
    step();
    while warm.elapsed().as_secs_f64() < seconds * 0.2 {
        step();
    }
    let per_rep = seconds * 0.8 / REPS as f64;
    (0..REPS)
        .map(|_| {
            let t0 = Instant::now();
            let mut n = 0;
            loop {
                step();
                n += 1;
                let dt = t0.elapsed().as_secs_f64();
                if dt >= per_rep {
                    break dt / n as f64;
                }
            }
        })
        .collect()
}

fn report(
    device: Device,
    spec: &ModelSpec,
    mode: &str,
    batch: usize,
    flop_per_batch: f64,
    times: &[f64],
) -> BenchReport {
    let mut sorted = times.to_vec();
    sorted.sort_by(f64::total_cmp);
    let med = sorted[sorted.len() / 2];
    BenchReport {
        engine: device.engine().into(),
        device: device.to_string(),
        mode: mode.into(),
        model: spec.name(),
        batch,
        threads: rayon::current_num_threads(),
        ms_per_batch: med * 1e3,
        images_per_s: batch as f64 / med,
        gflops: flop_per_batch / med / 1e9,
        spread_ms: [sorted[0] * 1e3, sorted[sorted.len() - 1] * 1e3],
        reps: sorted.len(),
    }
}

fn macs(spec: &ModelSpec) -> f64 {
    spec.graph().map(|g| g.forward_macs() as f64).unwrap_or(0.0)
}

/// Train-step throughput (forward, cross-entropy, backward, SGD with momentum 0.9, lr 0.01, no weight decay)
/// on random data, on `device` (the CPU engines in the current rayon pool). Each step ends with
/// [`Device::synchronize`], so queued GPU work is inside the measurement. Panics if `batch` is zero.
pub fn bench_train(
    spec: &ModelSpec,
    batch: usize,
    seconds: f64,
    device: Device,
) -> Result<BenchReport> {
    let mut net = device.network(spec, 0)?;
    let (x, y) = random_batch(spec, batch);
    let cfg = SgdConfig {
        momentum: 0.9,
        nesterov: false,
        weight_decay: 0.0,
        decay_bn_and_bias: true,
    };
    let objective = |logits: ndarray::ArrayView2<f32>| cross_entropy(logits, &y, 0.0);
    net.forward_backward(x.view(), true, &objective)?;
    let times = time_reps(seconds, || {
        net.forward_backward(x.view(), true, &objective)
            .expect("the bench batch was accepted before");
        net.sgd_step(&cfg, 0.01);
        device.synchronize();
    });
    Ok(report(
        device,
        spec,
        "train",
        batch,
        6.0 * macs(spec) * batch as f64,
        &times,
    ))
}

/// Eval-mode inference throughput on random data, on `device` (the CPU engines in the current rayon pool).
/// Panics if `batch` is zero.
pub fn bench_infer(
    spec: &ModelSpec,
    batch: usize,
    seconds: f64,
    device: Device,
) -> Result<BenchReport> {
    let mut net = device.network(spec, 0)?;
    let (x, _) = random_batch(spec, batch);
    net.predict(x.view())?;
    let times = time_reps(seconds, || {
        net.predict(x.view())
            .expect("the bench batch was accepted before");
    });
    Ok(report(
        device,
        spec,
        "infer",
        batch,
        2.0 * macs(spec) * batch as f64,
        &times,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reports_are_consistent() {
        let spec = ModelSpec::from_name("mlp", [1, 28, 28], 10).unwrap();
        let r = bench_train(&spec, 8, 0.05, Device::Cpu).unwrap();
        assert_eq!(
            (r.engine.as_str(), r.device.as_str()),
            ("sculpt-cpu", "cpu")
        );
        assert!(r.images_per_s > 0.0 && r.gflops > 0.0);
        assert!((r.images_per_s * r.ms_per_batch / 1e3 - 8.0).abs() < 1e-6);
        assert!(r.spread_ms[0] <= r.ms_per_batch && r.ms_per_batch <= r.spread_ms[1]);
        let r = bench_infer(&spec, 4, 0.05, Device::Cpu).unwrap();
        assert_eq!(r.mode, "infer");
        assert!(r.images_per_s > 0.0);
    }
}
