//! The fuzz corpora on the stable toolchain: every seed in `fuzz/seeds/<target>/` and every past crash in
//! `fuzz/regressions/<target>/` goes through the same entry point as the fuzz target (`sculpt::fuzz`), which must
//! return, not panic. Seeds named `valid-*` must be accepted and `invalid-*` rejected, so a reader that starts
//! refusing good files (or accepting bad ones) fails here too.
//!
//! `cargo test --test fuzz_replay -- --ignored regenerate` rewrites the seeds from the compiler and the writers
//! below (run it after a format changes).

mod compile_util;

use std::io::Write;
use std::path::{Path, PathBuf};

use sculpt::compile::emit::onnx::{self, Variant};
use sculpt::compile::ir::{Bias, Graph, InputSpec, Op, Weight};
use sculpt::compile::lower;
use sculpt::compile::pipeline::{build, target_formats};
use sculpt::fuzz::{self, TARGETS};
use sculpt::nn::spec::{Arch, ModelSpec};

fn corpus(kind: &str, target: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz")
        .join(kind)
        .join(target)
}

fn files(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = match std::fs::read_dir(dir) {
        Ok(rd) => rd.filter_map(|e| e.ok().map(|e| e.path())).collect(),
        Err(_) => vec![],
    };
    v.retain(|p| p.is_file());
    v.sort();
    v
}

#[test]
fn seeds_and_past_crashes_replay_through_every_target() {
    for t in TARGETS {
        let seeds = files(&corpus("seeds", t));
        assert!(
            seeds.len() >= 3,
            "fuzz/seeds/{t} has {} seeds, expected at least 3",
            seeds.len()
        );
        for f in &seeds {
            let bytes = std::fs::read(f).unwrap();
            let accepted = fuzz::run(t, &bytes).unwrap();
            let name = f.file_name().unwrap().to_string_lossy();
            if name.starts_with("valid-") {
                assert!(accepted, "{t}: seed {name} is rejected");
            } else if name.starts_with("invalid-") {
                assert!(!accepted, "{t}: seed {name} is accepted");
            }
        }
        for f in files(&corpus("regressions", t)) {
            let bytes = std::fs::read(&f).unwrap();
            fuzz::run(t, &bytes).unwrap();
        }
    }
}

// ---------- seed writers ----------

/// A small graph that uses every IR op kind: conv + BN + ReLU, a residual add, the option-A shortcut, max and
/// average pooling, global average pooling, flatten and a gemm; half of the conv and gemm weights are zero.
fn every_op_graph() -> Graph {
    let w = |shape: Vec<usize>, seed: usize| {
        let n: usize = shape.iter().product();
        let v = (0..n)
            .map(|i| {
                let k = (i * 7 + seed * 13) % 17;
                if k % 2 == 0 {
                    0.0
                } else {
                    (k as f32 - 8.0) / 20.0
                }
            })
            .collect();
        Weight::dense(shape, v)
    };
    let mut g = Graph::new(InputSpec {
        shape: [2, 8, 8],
        mean: vec![0.1, 0.2],
        std: vec![0.3, 0.4],
    });
    let conv = |weight, stride, padding| Op::Conv {
        weight,
        bias: Some(Bias::F32(vec![0.05, -0.05, 0.1, 0.0])),
        stride,
        padding,
        relu: false,
    };
    let c1 = g
        .push("conv1", conv(w(vec![4, 2, 3, 3], 1), 1, 1), vec![0])
        .unwrap();
    let bn = g
        .push(
            "bn1",
            Op::BatchNorm {
                gamma: vec![1.0, 0.9, 1.1, 1.2],
                beta: vec![0.0, 0.1, -0.1, 0.05],
                mean: vec![0.01, -0.02, 0.03, 0.0],
                var: vec![1.0, 0.8, 1.3, 0.9],
                eps: 1e-5,
            },
            vec![c1],
        )
        .unwrap();
    let r1 = g.push("relu1", Op::Relu, vec![bn]).unwrap();
    let c2 = g
        .push("conv2", conv(w(vec![4, 4, 3, 3], 2), 1, 1), vec![r1])
        .unwrap();
    let add = g
        .push("add", Op::Add { relu: false }, vec![c2, r1])
        .unwrap();
    let r2 = g.push("relu2", Op::Relu, vec![add]).unwrap();
    let sp = g
        .push(
            "shortcut",
            Op::SubsamplePad {
                stride: 2,
                pad_before: 2,
                pad_after: 2,
            },
            vec![r2],
        )
        .unwrap();
    let mp = g
        .push(
            "pool",
            Op::MaxPool {
                kernel: 2,
                stride: 1,
            },
            vec![sp],
        )
        .unwrap();
    let ap = g
        .push(
            "avg",
            Op::AvgPool {
                kernel: 2,
                stride: 1,
            },
            vec![mp],
        )
        .unwrap();
    let gp = g.push("gap", Op::GlobalAvgPool, vec![ap]).unwrap();
    let fl = g.push("flatten", Op::Flatten, vec![gp]).unwrap();
    g.push(
        "fc",
        Op::Gemm {
            weight: w(vec![3, 8], 3),
            bias: Some(Bias::F32(vec![0.1, 0.0, -0.1])),
            relu: false,
        },
        vec![fl],
    )
    .unwrap();
    g
}

fn tiny_mlp() -> ModelSpec {
    ModelSpec {
        arch: Arch::Mlp { hidden: vec![6] },
        input: [1, 4, 4],
        classes: 3,
    }
}

/// The checkpoint pair of `spec` packed as the checkpoint target reads it.
fn packed_checkpoint(spec: &ModelSpec, sparsity: f64) -> Vec<u8> {
    let dir = tempfile::tempdir().unwrap();
    let base = compile_util::write_checkpoint(dir.path(), "ck", spec, sparsity, 3);
    let json = std::fs::read(base.with_extension("json")).unwrap();
    let st = std::fs::read(base.with_extension("safetensors")).unwrap();
    let mut v = (json.len() as u32).to_le_bytes().to_vec();
    v.extend_from_slice(&json);
    v.extend_from_slice(&st);
    v
}

fn gz(bytes: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(bytes).unwrap();
    e.finish().unwrap()
}

fn idx_file(dims: &[u32], fill: impl Fn(usize) -> u8) -> Vec<u8> {
    let mut v = vec![0u8, 0, 0x08, dims.len() as u8];
    for d in dims {
        v.extend_from_slice(&d.to_be_bytes());
    }
    let n: u32 = dims.iter().product();
    v.extend((0..n as usize).map(fill));
    v
}

fn with_selector(sel: u8, bytes: &[u8]) -> Vec<u8> {
    let mut v = vec![sel];
    v.extend_from_slice(bytes);
    v
}

fn cifar_records(label_bytes: usize, labels: &[u8]) -> Vec<u8> {
    let mut v = Vec::new();
    for (i, &l) in labels.iter().enumerate() {
        v.extend(std::iter::repeat_n(l, label_bytes));
        v.extend((0..3072).map(|p| ((p + i * 31) % 251) as u8));
    }
    v
}

fn write_seeds(target: &str, seeds: &[(&str, Vec<u8>)]) {
    let dir = corpus("seeds", target);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    for (name, bytes) in seeds {
        std::fs::write(dir.join(name), bytes).unwrap();
    }
}

#[test]
#[ignore = "rewrites fuzz/seeds; run after a format change"]
fn regenerate_seed_corpora() {
    let source = every_op_graph();
    let calib: Vec<f32> = (0..8 * 128).map(|i| (i % 11) as f32 / 11.0).collect();
    let g = build(source, &target_formats(None), Some(&calib)).unwrap();
    let scb = lower::scb(&g.float, g.hash).unwrap();
    let scb8 = lower::scb(g.int8.as_ref().unwrap(), g.hash).unwrap();
    write_seeds(
        "scb",
        &[
            ("valid-every-op.scb", scb.clone()),
            ("valid-every-op.int8.scb", scb8.clone()),
            ("invalid-truncated.scb", scb[..scb.len() / 2].to_vec()),
        ],
    );
    let dense = onnx::emit(&g.float, Variant::Dense, Some(&g.hash)).unwrap();
    let sparse = onnx::emit(&g.float, Variant::Sparse, Some(&g.hash)).unwrap();
    write_seeds(
        "onnx",
        &[
            ("valid-every-op.onnx", dense.clone()),
            ("valid-every-op.sparse.onnx", sparse),
            ("invalid-truncated.onnx", dense[..dense.len() - 30].to_vec()),
        ],
    );
    let ck = packed_checkpoint(&tiny_mlp(), 0.0);
    write_seeds(
        "checkpoint",
        &[
            ("valid-mlp", ck.clone()),
            ("valid-mlp-masked", packed_checkpoint(&tiny_mlp(), 0.5)),
            ("invalid-truncated", ck[..ck.len() - 8].to_vec()),
        ],
    );
    let images = idx_file(&[3, 4, 4], |i| (i * 37 % 256) as u8);
    let labels = idx_file(&[5], |i| (i % 10) as u8);
    write_seeds(
        "idx",
        &[
            ("valid-images", with_selector(1, &images)),
            ("valid-images-gz", with_selector(1, &gz(&images))),
            ("valid-labels", with_selector(0, &labels)),
            ("valid-labels-gz", with_selector(0, &gz(&labels))),
            (
                "invalid-label-11",
                with_selector(0, &idx_file(&[2], |i| 10 + i as u8)),
            ),
        ],
    );
    write_seeds(
        "cifar",
        &[
            (
                "valid-cifar10",
                with_selector(0, &cifar_records(1, &[3, 9])),
            ),
            (
                "valid-cifar10-gz",
                with_selector(0, &gz(&cifar_records(1, &[0]))),
            ),
            (
                "valid-cifar100-fine",
                with_selector(2, &cifar_records(2, &[19, 99])),
            ),
            (
                "invalid-cifar10-label",
                with_selector(0, &cifar_records(1, &[10])),
            ),
        ],
    );
    let recipe = |p: &str| {
        std::fs::read(
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("recipes")
                .join(p),
        )
        .unwrap()
    };
    let mut overridden = recipe("mnist/dense.toml");
    overridden.extend_from_slice(b"\0train.epochs=3\0schedule.lr=0.1");
    write_seeds(
        "recipe",
        &[
            ("valid-mnist-dense.toml", recipe("mnist/dense.toml")),
            ("valid-cifar10-sculpt.toml", recipe("cifar10/sculpt.toml")),
            ("valid-cifar10-rigl.toml", recipe("cifar10/rigl.toml")),
            ("valid-with-overrides", overridden),
            (
                "invalid-gamma.toml",
                b"[schedule]\nshape = \"multi_step\"\nmilestones = [0.5]\ngamma = -1.0\n".to_vec(),
            ),
        ],
    );
}
