//! Tiny models for compiler tests, built without the trainer: `ModelSpec::graph` + Kaiming init, random BN
//! statistics, magnitude sparsity (optionally recorded as masks), serialised as a real checkpoint.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use ndarray::ArrayD;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use safetensors::tensor::{Dtype, TensorView};
use sculpt::compile::import::checkpoint::{graph_from_tensors, Meta};
use sculpt::compile::ir::Graph;
use sculpt::nn::init::kaiming_init;
use sculpt::nn::spec::{Arch, LeNet5Variant, ModelSpec, Shortcut, TensorRole};

pub fn lenet5() -> ModelSpec {
    ModelSpec {
        arch: Arch::LeNet5 {
            variant: LeNet5Variant::Classic,
        },
        input: [1, 28, 28],
        classes: 10,
    }
}

/// ResNet-8 (the ResNet-20 structure with one block per stage) on 3×12×12 inputs, option-A shortcuts.
pub fn resnet_small() -> ModelSpec {
    ModelSpec {
        arch: Arch::ResNetCifar {
            depth: 8,
            shortcut: Shortcut::Identity,
        },
        input: [3, 12, 12],
        classes: 10,
    }
}

/// ResNet-20 on 3×16×16 inputs (option A).
pub fn resnet20() -> ModelSpec {
    ModelSpec {
        arch: Arch::ResNetCifar {
            depth: 20,
            shortcut: Shortcut::Identity,
        },
        input: [3, 16, 16],
        classes: 10,
    }
}

/// A CSR mask: parameter path, row pointers, column indices.
pub type CsrMask = (String, Vec<i64>, Vec<i64>);

/// Named tensors of `spec`: Kaiming weights with `sparsity` of each weight zeroed by magnitude, small random
/// biases and BN parameters, and the CSR masks of the pruned weights.
pub fn tensors(
    spec: &ModelSpec,
    sparsity: f64,
    seed: u64,
) -> (Vec<(String, ArrayD<f32>)>, Vec<CsrMask>) {
    let g = spec.graph().unwrap();
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut out = Vec::new();
    let mut masks = Vec::new();
    for (info, mut a) in kaiming_init(&g, &mut rng) {
        match info.role {
            TensorRole::Weight if sparsity > 0.0 => {
                let mut mags: Vec<f32> = a.iter().map(|v| v.abs()).collect();
                mags.sort_by(|x, y| x.partial_cmp(y).unwrap());
                let k = ((mags.len() as f64) * sparsity).floor() as usize;
                let thr = if k == 0 { -1.0 } else { mags[k - 1] };
                a.mapv_inplace(|v| if v.abs() <= thr { 0.0 } else { v });
                let rows = info.shape[0];
                let cols: usize = info.shape[1..].iter().product();
                let flat: Vec<f32> = a.iter().copied().collect();
                let mut indptr = vec![0i64];
                let mut indices = Vec::new();
                for r in 0..rows {
                    for c in 0..cols {
                        if flat[r * cols + c] != 0.0 {
                            indices.push(c as i64);
                        }
                    }
                    indptr.push(indices.len() as i64);
                }
                masks.push((info.path.clone(), indptr, indices));
            }
            TensorRole::Bias | TensorRole::BnBias | TensorRole::RunningMean => {
                a.mapv_inplace(|_| rng.gen_range(-0.2..0.2));
            }
            TensorRole::BnWeight | TensorRole::RunningVar => {
                a.mapv_inplace(|_| rng.gen_range(0.5..1.5));
            }
            _ => {}
        }
        out.push((info.path.clone(), a));
    }
    (out, masks)
}

/// safetensors bytes of the tensors (and masks when `with_masks`).
pub fn safetensors_bytes(
    t: &[(String, ArrayD<f32>)],
    masks: &[(String, Vec<i64>, Vec<i64>)],
    with_masks: bool,
) -> Vec<u8> {
    let mut data: Vec<(String, Dtype, Vec<usize>, Vec<u8>)> = t
        .iter()
        .map(|(n, a)| {
            (
                n.clone(),
                Dtype::F32,
                a.shape().to_vec(),
                a.iter().flat_map(|v| v.to_le_bytes()).collect(),
            )
        })
        .collect();
    if with_masks {
        for (p, ip, ix) in masks {
            data.push((
                format!("mask.{p}.indptr"),
                Dtype::I64,
                vec![ip.len()],
                ip.iter().flat_map(|v| v.to_le_bytes()).collect(),
            ));
            data.push((
                format!("mask.{p}.indices"),
                Dtype::I64,
                vec![ix.len()],
                ix.iter().flat_map(|v| v.to_le_bytes()).collect(),
            ));
        }
    }
    let views: BTreeMap<String, TensorView> = data
        .iter()
        .map(|(n, d, s, b)| (n.clone(), TensorView::new(*d, s.clone(), b).unwrap()))
        .collect();
    safetensors::serialize(views, &None).unwrap()
}

pub fn meta(spec: &ModelSpec) -> Meta {
    let c = spec.input[0];
    Meta {
        model: spec.clone(),
        mean: (0..c).map(|i| 0.1 + 0.1 * i as f32).collect(),
        std: (0..c).map(|i| 0.3 + 0.05 * i as f32).collect(),
    }
}

/// The imported IR of a random model.
pub fn graph(spec: &ModelSpec, sparsity: f64, seed: u64) -> Graph {
    let (t, m) = tensors(spec, sparsity, seed);
    graph_from_tensors(
        &meta(spec),
        &safetensors_bytes(&t, &m, sparsity > 0.0),
        Path::new("test.safetensors"),
    )
    .unwrap()
}

/// Writes a checkpoint pair `dir/NAME.{json,safetensors}` and returns the base path.
pub fn write_checkpoint(
    dir: &Path,
    name: &str,
    spec: &ModelSpec,
    sparsity: f64,
    seed: u64,
) -> PathBuf {
    write_checkpoint_probed(dir, name, spec, sparsity, seed, None)
}

/// A probe: sample count, [0, 1] images (concatenated) and logits (concatenated).
pub type ProbeData = (usize, Vec<f32>, Vec<f32>);

/// The CPU engine's eval-mode logits for `n` seeded images on the tensors of [`tensors`]`(spec, sparsity,
/// seed)`, normalised as [`meta`] says: the probe a trainer would store.
pub fn engine_probe(spec: &ModelSpec, sparsity: f64, seed: u64, n: usize) -> ProbeData {
    use sculpt::engine::Device;
    let (t, _) = tensors(spec, sparsity, seed);
    let mut net = Device::Cpu.network(spec, 0).unwrap();
    for (p, a) in &t {
        net.write(p, a.view()).unwrap();
    }
    let xs = inputs(spec, n, seed ^ 0x9e);
    let md = meta(spec);
    let [c, h, w] = spec.input;
    let norm: Vec<f32> = xs
        .iter()
        .enumerate()
        .map(|(i, v)| {
            let ch = (i / (h * w)) % c;
            (v - md.mean[ch]) / md.std[ch]
        })
        .collect();
    let x = ndarray::Array4::from_shape_vec((n, c, h, w), norm).unwrap();
    let logits = net.predict(x.view()).unwrap();
    (n, xs, logits.iter().copied().collect())
}

/// [`write_checkpoint`] with a probe stored as the tensors `probe.inputs` and `probe.logits`.
pub fn write_checkpoint_probed(
    dir: &Path,
    name: &str,
    spec: &ModelSpec,
    sparsity: f64,
    seed: u64,
    probe: Option<&ProbeData>,
) -> PathBuf {
    let (mut t, m) = tensors(spec, sparsity, seed);
    if let Some((n, xs, logits)) = probe {
        let [c, h, w] = spec.input;
        t.push((
            "probe.inputs".into(),
            ArrayD::from_shape_vec(ndarray::IxDyn(&[*n, c, h, w]), xs.clone()).unwrap(),
        ));
        t.push((
            "probe.logits".into(),
            ArrayD::from_shape_vec(ndarray::IxDyn(&[*n, spec.classes]), logits.clone()).unwrap(),
        ));
    }
    let base = dir.join(name);
    std::fs::write(
        base.with_extension("safetensors"),
        safetensors_bytes(&t, &m, sparsity > 0.0),
    )
    .unwrap();
    let md = meta(spec);
    let mut model = serde_json::to_value(spec).unwrap();
    if let serde_json::Value::Object(o) = &mut model {
        o.insert("input".into(), serde_json::json!(spec.input));
        o.insert("classes".into(), serde_json::json!(spec.classes));
    }
    let json = serde_json::json!({
        "format": "sculpt-checkpoint", "version": 1, "model": model,
        "normalization": { "mean": md.mean, "std": md.std }
    });
    std::fs::write(
        base.with_extension("json"),
        serde_json::to_vec_pretty(&json).unwrap(),
    )
    .unwrap();
    base
}

/// `n` seeded random images in [0, 1], concatenated.
pub fn inputs(spec: &ModelSpec, n: usize, seed: u64) -> Vec<f32> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    (0..n * spec.input.iter().product::<usize>())
        .map(|_| rng.gen::<f32>())
        .collect()
}

pub fn argmax(v: &[f32]) -> usize {
    let mut best = 0;
    for (i, x) in v.iter().enumerate() {
        if *x > v[best] {
            best = i;
        }
    }
    best
}

pub fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

pub fn max_abs(a: &[f32]) -> f32 {
    a.iter().fold(0.0, |m, v| m.max(v.abs()))
}
