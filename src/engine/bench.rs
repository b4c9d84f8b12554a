//! Throughput measurements of an engine on its device, comparable with `shared/bench/torch_reference.py`: random inputs
//! from a fixed seed, a warm-up, then the median over several repetitions.

use std::time::Instant;

use ndarray::Array4;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::StandardNormal;
use serde::Serialize;

use rand::seq::index::sample;

use crate::engine::cpu::CpuNetwork;
use crate::engine::{Device, GradientMode, Network};
use crate::error::Result;
use crate::nn::loss::cross_entropy;
use crate::nn::{ModelSpec, Op, TensorInfo};
use crate::optim::SgdConfig;
use crate::sparsity::Mask;

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
    /// Sparsity of the masked layers ([`inner_layers`]: every convolution and linear layer but the first
    /// convolution and the last linear layer); 0 = dense.
    pub sparsity: f64,
    /// Kernel path of sculpt's CPU engine (`libtorch` for the libtorch engine).
    pub kernel_path: String,
    /// Layers that ran on sculpt's sparse kernels.
    pub sparse_layers: usize,
    /// Median time of one batch.
    pub ms_per_batch: f64,
    pub images_per_s: f64,
    /// Useful FLOP/s: `3 · 2 · MACs · batch` per train step, `2 · MACs · batch` per inference, with the MACs
    /// of kept weights only ([`useful_macs`]).
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

/// The network under measurement and what the report says about it.
struct Subject {
    net: Box<dyn Network>,
    device: Device,
    sparsity: f64,
    kernel_path: String,
    sparse_layers: usize,
}

/// The network of `spec` on `device`, seed 0, masked at `sparsity` by [`mask_uniform`], for batches of `batch`.
fn subject(spec: &ModelSpec, device: Device, sparsity: f64, batch: usize) -> Result<Subject> {
    let (net, kernel_path, sparse_layers): (Box<dyn Network>, String, usize) =
        if device == Device::Cpu {
            let mut net = CpuNetwork::new(spec, 0)?;
            mask_uniform(&mut net, sparsity)?;
            let path = net.kernel_path().name().to_string();
            let sparse = net.graph_network().sparse_layers_at(batch).len();
            (Box::new(net), path, sparse)
        } else {
            let mut net = device.network(spec, 0)?;
            mask_uniform(net.as_mut(), sparsity)?;
            (net, device.engine().to_string(), 0)
        };
    Ok(Subject {
        net,
        device,
        sparsity,
        kernel_path,
        sparse_layers,
    })
}

fn report(
    s: &Subject,
    mode: &str,
    batch: usize,
    flop_per_batch: f64,
    times: &[f64],
) -> BenchReport {
    let mut sorted = times.to_vec();
    sorted.sort_by(f64::total_cmp);
    let med = sorted[sorted.len() / 2];
    BenchReport {
        engine: s.device.engine().into(),
        device: s.device.to_string(),
        mode: mode.into(),
        model: s.net.spec().name(),
        batch,
        threads: rayon::current_num_threads(),
        sparsity: s.sparsity,
        kernel_path: s.kernel_path.clone(),
        sparse_layers: s.sparse_layers,
        ms_per_batch: med * 1e3,
        images_per_s: batch as f64 / med,
        gflops: flop_per_batch / med / 1e9,
        spread_ms: [sorted[0] * 1e3, sorted[sorted.len() - 1] * 1e3],
        reps: sorted.len(),
    }
}

/// Multiply-adds of one sample's forward pass through the kept weights: every convolution and linear layer's
/// dense MACs scaled by the density of its weight's mask.
pub fn useful_macs(net: &dyn Network) -> f64 {
    let Ok(graph) = net.spec().graph() else {
        return 0.0;
    };
    graph
        .nodes
        .iter()
        .enumerate()
        .map(|(i, n)| {
            let dense = match &n.op {
                Op::Conv2d {
                    in_channels,
                    kernel,
                    ..
                } => {
                    (graph.shapes[i].iter().product::<usize>() * in_channels * kernel * kernel)
                        as f64
                }
                Op::Linear {
                    in_features,
                    out_features,
                    ..
                } => (in_features * out_features) as f64,
                _ => return 0.0,
            };
            match net.mask(&format!("{}.weight", n.name)) {
                Some(m) => dense * m.nnz() as f64 / m.len().max(1) as f64,
                None => dense,
            }
        })
        .sum()
}

/// Masks the layers of `shared/bench/torch_reference.py`'s policy `inner` at `sparsity`, uniformly at random
/// (a fixed seed): every convolution and linear weight except the first convolution's and the last linear
/// layer's, so a network without convolutions has every linear layer but the last masked. Each masked weight
/// of `n` entries keeps `n - round(sparsity · n)` of them (ties to even, as Python's `round`). Does nothing at
/// sparsity 0.
pub fn mask_uniform(net: &mut dyn Network, sparsity: f64) -> crate::error::Result<()> {
    if sparsity <= 0.0 {
        return Ok(());
    }
    let mut rng = ChaCha8Rng::seed_from_u64(2);
    for t in inner_layers(net) {
        let n: usize = t.shape.iter().product();
        let zeros = ((sparsity * n as f64).round_ties_even() as usize).min(n);
        let mut keep = vec![false; n];
        for i in sample(&mut rng, n, n - zeros) {
            keep[i] = true;
        }
        net.set_mask(&t.path, Some(&Mask::from_keep(&t.shape, &keep)))?;
    }
    Ok(())
}

/// The weights that policy `inner` masks, in the network's order: every convolution and linear weight but the
/// first convolution's and the last linear layer's.
pub fn inner_layers(net: &dyn Network) -> Vec<TensorInfo> {
    let weights: Vec<_> = net
        .tensors()
        .iter()
        .filter(|t| t.is_prunable())
        .cloned()
        .collect();
    let is_conv = |t: &TensorInfo| t.shape.len() == 4;
    let first_conv = weights.iter().position(is_conv);
    let last_linear = weights.iter().rposition(|t| !is_conv(t));
    weights
        .into_iter()
        .enumerate()
        .filter(|(i, _)| Some(*i) != first_conv && Some(*i) != last_linear)
        .map(|(_, t)| t)
        .collect()
}

/// Train-step throughput (forward, cross-entropy, backward, SGD with momentum 0.9, lr 0.01, no weight decay)
/// on random data, on `device` (the CPU engines in the current rayon pool), with the layers masked at `sparsity`
/// by [`mask_uniform`] and gradients at kept positions only. Each step ends with [`Device::synchronize`], so
/// queued GPU work is inside the measurement. Panics if `batch` is zero.
pub fn bench_train(
    spec: &ModelSpec,
    batch: usize,
    sparsity: f64,
    seconds: f64,
    device: Device,
) -> Result<BenchReport> {
    let mut s = subject(spec, device, sparsity, batch)?;
    s.net.set_gradient_mode(GradientMode::Kept);
    let (x, y) = random_batch(spec, batch);
    let cfg = SgdConfig {
        momentum: 0.9,
        nesterov: false,
        weight_decay: 0.0,
        decay_bn_and_bias: true,
    };
    let objective = |logits: ndarray::ArrayView2<f32>| cross_entropy(logits, &y, 0.0);
    s.net.forward_backward(x.view(), true, &objective)?;
    let net = &mut s.net;
    let times = time_reps(seconds, || {
        net.forward_backward(x.view(), true, &objective)
            .expect("the bench batch was accepted before");
        net.sgd_step(&cfg, 0.01);
        device.synchronize();
    });
    let flops = 6.0 * useful_macs(s.net.as_ref()) * batch as f64;
    Ok(report(&s, "train", batch, flops, &times))
}

/// Eval-mode inference throughput on random data, on `device` (the CPU engines in the current rayon pool).
/// Panics if `batch` is zero.
pub fn bench_infer(
    spec: &ModelSpec,
    batch: usize,
    seconds: f64,
    device: Device,
) -> Result<BenchReport> {
    let mut s = subject(spec, device, 0.0, batch)?;
    let (x, _) = random_batch(spec, batch);
    s.net.predict(x.view())?;
    let net = &mut s.net;
    let times = time_reps(seconds, || {
        net.predict(x.view())
            .expect("the bench batch was accepted before");
        device.synchronize();
    });
    let flops = 2.0 * useful_macs(s.net.as_ref()) * batch as f64;
    Ok(report(&s, "infer", batch, flops, &times))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reports_are_consistent() {
        let spec = ModelSpec::from_name("mlp", [1, 28, 28], 10).unwrap();
        let r = bench_train(&spec, 8, 0.0, 0.05, Device::Cpu).unwrap();
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

    /// Policy `inner` of `torch_reference.py`: every conv and linear weight but the first conv's and the last
    /// linear's, so LeNet-300-100 (no conv) has `fc1` and `fc2` masked.
    #[test]
    fn uniform_masks_follow_the_inner_policy() {
        let cases: [(&str, [usize; 3], &[&str], usize); 4] = [
            ("mlp", [1, 28, 28], &["fc3.weight"], 2),
            ("lenet5", [1, 28, 28], &["conv1.weight", "fc3.weight"], 3),
            ("resnet20", [3, 32, 32], &["conv1.weight", "fc.weight"], 18),
            ("resnet20b", [3, 32, 32], &["conv1.weight", "fc.weight"], 20),
        ];
        for (model, input, dense_paths, masked) in cases {
            let spec = ModelSpec::from_name(model, input, 10).unwrap();
            let mut net = CpuNetwork::new(&spec, 0).unwrap();
            mask_uniform(&mut net, 0.9).unwrap();
            let mut n_masked = 0;
            for t in net.tensors().iter().filter(|t| t.is_prunable()) {
                let m = net.mask(&t.path);
                if dense_paths.contains(&t.path.as_str()) {
                    assert!(m.is_none(), "{model}: {} stays dense", t.path);
                    continue;
                }
                let m = m.unwrap_or_else(|| panic!("{model}: {} is masked", t.path));
                let zeros = (0.9 * m.len() as f64).round_ties_even() as usize;
                assert_eq!(m.nnz(), m.len() - zeros, "{model}: {}", t.path);
                n_masked += 1;
            }
            assert_eq!(n_masked, masked, "{model}");
            assert_eq!(inner_layers(&net).len(), masked, "{model}");
        }
    }

    #[test]
    fn useful_macs_count_kept_weights_only() {
        let spec = ModelSpec::from_name("lenet5", [1, 28, 28], 10).unwrap();
        let mut net = CpuNetwork::new(&spec, 0).unwrap();
        let dense = useful_macs(&net);
        assert_eq!(dense, spec.graph().unwrap().forward_macs() as f64);
        mask_uniform(&mut net, 0.9).unwrap();
        let graph = spec.graph().unwrap();
        let mut masked_macs = 0.0;
        for t in inner_layers(&net) {
            let m = net.mask(&t.path).unwrap();
            let node = graph
                .nodes
                .iter()
                .position(|n| format!("{}.weight", n.name) == t.path)
                .unwrap();
            let one = spec_macs_of(&graph, node);
            masked_macs += one * (1.0 - m.nnz() as f64 / m.len() as f64);
        }
        let want = dense - masked_macs;
        assert!(
            (useful_macs(&net) - want).abs() < 1e-6 * dense,
            "{} vs {want}",
            useful_macs(&net)
        );
        let r = bench_train(&spec, 4, 0.9, 0.05, Device::Cpu).unwrap();
        assert_eq!(r.sparsity, 0.9);
        assert!(r.gflops > 0.0);
    }

    fn spec_macs_of(graph: &crate::nn::Graph, node: usize) -> f64 {
        let sub = crate::nn::Graph {
            nodes: vec![graph.nodes[node].clone()],
            shapes: vec![graph.shapes[node].clone()],
        };
        sub.forward_macs() as f64
    }
}
