//! Every IR op through every executor: for each `ir::Op`, a small graph that uses it is compiled and run by
//! the interpreter, tract (dense ONNX), ONNX Runtime (sparse ONNX, when installed), tract on the densified
//! sparse ONNX, the runtime (f32 and int8) and the C compiler (f32 and int8), so an op cannot be
//! half-supported. Float executors agree with the interpreter to 1e-3 relative; int8 ones bit for bit.

use std::path::Path;

use rand::{Rng, SeedableRng};
use sculpt::compile::emit::onnx::{emit, Variant};
use sculpt::compile::interp;
use sculpt::compile::ir::{Bias, Graph, InputSpec, Op, Weight};
use sculpt::compile::lower;
use sculpt::compile::pipeline::{build, target_formats};
use sculpt::error::Error;
use sculpt::verify::runners;

fn weight(rng: &mut rand_chacha::ChaCha8Rng, shape: Vec<usize>) -> Weight {
    let n: usize = shape.iter().product();
    let v = (0..n)
        .map(|_| {
            let x: f32 = rng.gen_range(-0.5..0.5);
            if rng.gen_bool(0.5) {
                0.0
            } else {
                x
            }
        })
        .collect();
    Weight::dense(shape, v)
}

fn conv(rng: &mut rand_chacha::ChaCha8Rng, ci: usize, co: usize, padding: usize) -> Op {
    Op::Conv {
        weight: weight(rng, vec![co, ci, 3, 3]),
        bias: Some(Bias::F32((0..co).map(|i| 0.05 * i as f32).collect())),
        stride: 1,
        padding,
        relu: false,
    }
}

/// A graph whose body uses `kind`, ending in logits.
fn graph_with(kind: &str) -> Graph {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(kind.len() as u64);
    let mut g = Graph::new(InputSpec {
        shape: [2, 8, 8],
        mean: vec![0.4, 0.5],
        std: vec![0.3, 0.25],
    });
    let c = g.push("conv", conv(&mut rng, 2, 4, 1), vec![0]).unwrap();
    let body = match kind {
        "conv" | "gemm" => c,
        "batchnorm" => {
            let bn = Op::BatchNorm {
                gamma: vec![0.9, 1.1, 1.0, 0.8],
                beta: vec![0.1, -0.1, 0.0, 0.05],
                mean: vec![0.02, -0.01, 0.0, 0.03],
                var: vec![0.7, 1.2, 0.9, 1.0],
                eps: 1e-5,
            };
            g.push("bn", bn, vec![c]).unwrap()
        }
        "relu" => {
            let p = g
                .push(
                    "pool",
                    Op::MaxPool {
                        kernel: 2,
                        stride: 2,
                    },
                    vec![c],
                )
                .unwrap();
            g.push("relu", Op::Relu, vec![p]).unwrap()
        }
        "maxpool" => g
            .push(
                "pool",
                Op::MaxPool {
                    kernel: 2,
                    stride: 2,
                },
                vec![c],
            )
            .unwrap(),
        "avgpool" => g
            .push(
                "pool",
                Op::AvgPool {
                    kernel: 2,
                    stride: 2,
                },
                vec![c],
            )
            .unwrap(),
        "globalavgpool" => g.push("gap", Op::GlobalAvgPool, vec![c]).unwrap(),
        "flatten" => {
            let p = g
                .push(
                    "pool",
                    Op::AvgPool {
                        kernel: 8,
                        stride: 8,
                    },
                    vec![c],
                )
                .unwrap();
            g.push("flatten", Op::Flatten, vec![p]).unwrap();
            return g;
        }
        "add" => {
            let d = g.push("conv_b", conv(&mut rng, 2, 4, 1), vec![0]).unwrap();
            g.push("add", Op::Add { relu: false }, vec![c, d]).unwrap()
        }
        "subsamplepad" => g
            .push(
                "shortcut",
                Op::SubsamplePad {
                    stride: 2,
                    pad_before: 2,
                    pad_after: 2,
                },
                vec![c],
            )
            .unwrap(),
        other => panic!("no graph for {other}"),
    };
    let n: usize = g.nodes[body].shape.iter().product();
    let fc = Op::Gemm {
        weight: weight(&mut rng, vec![5, n]),
        bias: Some(Bias::F32(vec![0.1, 0.0, -0.1, 0.2, 0.0])),
        relu: false,
    };
    g.push("fc", fc, vec![body]).unwrap();
    g
}

/// Every op kind; a new `ir::Op` fails to compile here until it is listed.
fn kinds() -> Vec<&'static str> {
    let all = [
        Op::Input,
        Op::Relu,
        Op::GlobalAvgPool,
        Op::Flatten,
        Op::Add { relu: false },
        Op::MaxPool {
            kernel: 1,
            stride: 1,
        },
        Op::AvgPool {
            kernel: 1,
            stride: 1,
        },
        Op::SubsamplePad {
            stride: 1,
            pad_before: 0,
            pad_after: 0,
        },
        Op::BatchNorm {
            gamma: vec![],
            beta: vec![],
            mean: vec![],
            var: vec![],
            eps: 0.0,
        },
        Op::Gemm {
            weight: Weight::dense(vec![1, 1], vec![0.0]),
            bias: None,
            relu: false,
        },
        Op::Conv {
            weight: Weight::dense(vec![1, 1, 1, 1], vec![0.0]),
            bias: None,
            stride: 1,
            padding: 0,
            relu: false,
        },
    ];
    for op in &all {
        // exhaustive: adding a variant to ir::Op breaks this match
        match op {
            Op::Input
            | Op::Relu
            | Op::GlobalAvgPool
            | Op::Flatten
            | Op::Add { .. }
            | Op::MaxPool { .. }
            | Op::AvgPool { .. }
            | Op::SubsamplePad { .. }
            | Op::BatchNorm { .. }
            | Op::Gemm { .. }
            | Op::Conv { .. } => {}
        }
    }
    all.iter().map(Op::kind).filter(|k| *k != "input").collect()
}

fn max_abs(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

#[test]
fn every_op_runs_through_every_executor() {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
    let xs: Vec<f32> = (0..3 * 128).map(|_| rng.gen::<f32>()).collect();
    let calib: Vec<f32> = (0..16 * 128).map(|_| rng.gen::<f32>()).collect();
    let cc = std::env::var("CC").unwrap_or_else(|_| "cc".into());
    let ort = runners::ort_init().is_ok();
    for kind in kinds() {
        let source = graph_with(kind);
        assert!(
            source.nodes.iter().any(|n| n.op.kind() == kind),
            "{kind}: the test graph lacks the op"
        );
        let want = interp::run_batch(&source, &xs).unwrap();
        let bound = 1e-3 * want.iter().fold(1.0f32, |m, v| m.max(v.abs()));
        let g = build(source, &target_formats(None), Some(&calib)).unwrap();
        let q = g.int8.as_ref().unwrap();
        let want8 = interp::run_batch(q, &xs).unwrap();
        let dense = emit(&g.float, Variant::Dense, None).unwrap();
        let sparse = emit(&g.float, Variant::Sparse, None).unwrap();
        let p = Path::new("m.onnx");
        let mut float_runs = vec![
            (
                "interpreter (after the passes)",
                interp::run_batch(&g.float, &xs).unwrap(),
            ),
            ("tract", runners::tract(p, &dense, &g.float, &xs).unwrap()),
            (
                "tract (densified)",
                runners::tract_densified(p, &sparse, &g.float, &xs).unwrap(),
            ),
            (
                "runtime f32",
                runners::runtime(p, &lower::scb(&g.float, g.hash).unwrap(), &xs).unwrap(),
            ),
        ];
        if ort {
            float_runs.push((
                "ONNX Runtime",
                runners::onnxruntime(p, &sparse, &g.float, &xs).unwrap(),
            ));
        }
        let dir = tempfile::tempdir().unwrap();
        let c_run = |graph: &Graph| -> Option<Vec<f32>> {
            let c = lower::c(graph, g.hash).unwrap();
            std::fs::write(dir.path().join("model.c"), &c.source).unwrap();
            std::fs::write(dir.path().join("model.h"), &c.header).unwrap();
            match runners::c(dir.path(), &cc, &xs) {
                Ok(v) => Some(v),
                Err(Error::Unavailable { .. }) => None,
                Err(e) => panic!("{kind}: C: {e}"),
            }
        };
        if let Some(v) = c_run(&g.float) {
            float_runs.push(("C f32", v));
        }
        for (who, got) in &float_runs {
            let d = max_abs(&want, got);
            assert!(d <= bound, "{kind}: {who} differs by {d} (bound {bound})");
        }
        let mut int8_runs = vec![(
            "runtime int8",
            runners::runtime(p, &lower::scb(q, g.hash).unwrap(), &xs).unwrap(),
        )];
        if let Some(v) = c_run(q) {
            int8_runs.push(("C int8", v));
        }
        for (who, got) in &int8_runs {
            assert_eq!(
                &want8, got,
                "{kind}: {who} is not bit-identical to the int8 interpreter"
            );
        }
        println!(
            "{kind}: {} float executors, {} int8 executors agree",
            float_runs.len(),
            int8_runs.len()
        );
    }
}
