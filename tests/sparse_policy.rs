//! Forcing the kernel choice: a network built with `SparsePolicy::Never` and one built with `Always` both train
//! a masked model to the same weights (within rounding) as each other, and `--sparse-kernels` on the command
//! line reaches the engine of `train` and `bench train` and rejects unknown policies.

use std::process::{Command, Output};

use ndarray::Array4;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use sculpt::engine::cpu::cost::SparsePolicy;
use sculpt::engine::cpu::{CpuNetwork, CpuOptions};
use sculpt::engine::Network;
use sculpt::nn::ModelSpec;
use sculpt::optim::SgdConfig;
use sculpt::sparsity::Mask;

fn built_with(spec: &ModelSpec, policy: SparsePolicy) -> CpuNetwork {
    let options = CpuOptions {
        sparse_policy: policy,
    };
    let mut net = CpuNetwork::with_options(spec, 4, options).unwrap();
    let mut rng = ChaCha8Rng::seed_from_u64(9);
    let prunable: Vec<_> = net
        .tensors()
        .iter()
        .filter(|t| t.is_prunable())
        .cloned()
        .collect();
    for t in prunable {
        let n: usize = t.shape.iter().product();
        let keep: Vec<bool> = (0..n).map(|_| rng.gen_bool(0.1)).collect();
        net.set_mask(&t.path, Some(&Mask::from_keep(&t.shape, &keep)))
            .unwrap();
    }
    net
}

/// Eight SGD steps on one fixed batch; the losses of every step.
fn train(net: &mut CpuNetwork, spec: &ModelSpec) -> Vec<f64> {
    let mut rng = ChaCha8Rng::seed_from_u64(2);
    let [c, h, w] = spec.input;
    let x = Array4::from_shape_fn((16, c, h, w), |_| rng.gen_range(-1.0f32..1.0));
    let y: Vec<u32> = (0..16).map(|i| i % spec.classes as u32).collect();
    let cfg = SgdConfig::default();
    (0..8)
        .map(|_| {
            let s = net.train_batch(x.view(), &y, 0.0).unwrap();
            net.sgd_step(&cfg, 0.05);
            s.loss
        })
        .collect()
}

#[test]
fn never_and_always_train_to_the_same_masked_weights() {
    for spec in [
        ModelSpec::from_name("resnet20", [3, 8, 8], 10).unwrap(),
        ModelSpec::from_name("lenet5", [1, 28, 28], 10).unwrap(),
        ModelSpec::from_name("mlp", [1, 8, 8], 4).unwrap(),
    ] {
        let mut dense = built_with(&spec, SparsePolicy::Never);
        let mut sparse = built_with(&spec, SparsePolicy::Always);
        assert_eq!(dense.graph_network().sparse_policy(), SparsePolicy::Never);
        assert!(dense.graph_network().sparse_layers().is_empty());
        let masked = dense.tensors().iter().filter(|t| t.is_prunable()).count();
        assert_eq!(sparse.graph_network().sparse_layers().len(), masked);
        let (ld, ls) = (train(&mut dense, &spec), train(&mut sparse, &spec));
        assert!(ld[7] < ld[0], "{}: dense masked loss {ld:?}", spec.name());
        for (a, b) in ld.iter().zip(&ls) {
            assert!((a - b).abs() <= 1e-3 * (1.0 + a.abs()), "{ld:?} vs {ls:?}");
        }
        for t in dense.tensors().iter().filter(|t| t.is_param()) {
            let (a, b) = (dense.read(&t.path).unwrap(), sparse.read(&t.path).unwrap());
            let scale = a.iter().map(|v| v.abs()).fold(0.0f32, f32::max);
            for (u, v) in a.iter().zip(&b) {
                assert!((u - v).abs() <= 1e-3 * (scale + 1e-3), "{}", t.path);
            }
            if let Some(mask) = dense.mask(&t.path) {
                for (v, k) in b.iter().zip(mask.keep_flags()) {
                    assert!(k || *v == 0.0, "{}: a masked weight moved", t.path);
                }
            }
        }
    }
}

fn sculpt(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_sculpt"))
        .args(args)
        .output()
        .expect("the sculpt binary runs")
}

/// `bench train --sparsity 0.9 --json` under `--sparse-kernels policy`: the masked report.
fn bench_masked(policy: &str) -> serde_json::Value {
    let o = sculpt(&[
        "--threads",
        "1",
        "--sparse-kernels",
        policy,
        "bench",
        "train",
        "--model",
        "mlp",
        "--batch",
        "8",
        "--sparsity",
        "0.9",
        "--seconds",
        "0.05",
        "--json",
    ]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{err}");
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    v["masked"].clone()
}

#[test]
fn the_command_line_switch_reaches_the_engine() {
    assert_eq!(bench_masked("never")["sparse_layers"], 0);
    assert!(bench_masked("always")["sparse_layers"].as_u64().unwrap() > 0);
    let o = sculpt(&["--sparse-kernels", "sometimes", "bench", "train"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success() && !err.contains("panicked"), "{err}");
    assert!(
        err.contains("sometimes") && err.contains("auto, always, never"),
        "{err}"
    );
}

/// A short static-sparse `train` run under `--sparse-kernels policy`: its JSON summary.
fn short_run(policy: &str, out: &std::path::Path) -> serde_json::Value {
    let o = sculpt(&[
        "--threads",
        "1",
        "--sparse-kernels",
        policy,
        "train",
        "--model",
        "lenet300",
        "--method",
        "static",
        "--set",
        "method.sparsity=0.9",
        "--epochs",
        "1",
        "--set",
        "data.train_limit=512",
        "--set",
        "data.test_limit=200",
        "--out",
        out.to_str().unwrap(),
        "--quiet",
        "--json",
    ]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{err}");
    serde_json::from_slice(&o.stdout).unwrap()
}

#[test]
fn train_runs_with_kernels_forced_either_way_agree() {
    let dir = tempfile::tempdir().unwrap();
    let never = short_run("never", &dir.path().join("never"));
    let always = short_run("always", &dir.path().join("always"));
    for s in [&never, &always] {
        assert_eq!(s["completed"], true);
        assert!((s["density"].as_f64().unwrap() - 0.1).abs() < 0.02, "{s}");
    }
    let loss = |s: &serde_json::Value| s["final_test_loss"].as_f64().unwrap();
    let (a, b) = (loss(&never), loss(&always));
    assert!((a - b).abs() <= 1e-3 * (1.0 + a), "never {a}, always {b}");
}
