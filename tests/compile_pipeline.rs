//! Lowering to `.scb` and C against the interpreter, and the whole pipeline: files, shared model hash, budget.

mod compile_util;

use std::path::Path;

use compile_util::*;
use sculpt::compile::emit::binary::IndexEncoding;
use sculpt::compile::interp;
use sculpt::compile::lower;
use sculpt::compile::pipeline::{build, compile, target_formats, CompileOptions};
use sculpt::compile::target::Target;
use sculpt::nn::spec::ModelSpec;
use sculpt::verify::runners;

fn graphs(spec: &ModelSpec, sp: f64) -> sculpt::compile::pipeline::Graphs {
    let calib = inputs(spec, 16, 77);
    build(graph(spec, sp, 5), &target_formats(None), Some(&calib)).unwrap()
}

#[test]
fn scb_through_the_runtime_matches_the_interpreter() {
    for (spec, sp) in [
        (lenet5(), 0.0),
        (lenet5(), 0.95),
        (resnet_small(), 0.0),
        (resnet_small(), 0.95),
    ] {
        let g = graphs(&spec, sp);
        let xs = inputs(&spec, 4, 9);
        let f = lower::scb(&g.float, g.hash).unwrap();
        let want = interp::run_batch(&g.float, &xs).unwrap();
        let got = runners::runtime(Path::new("model.scb"), &f, &xs).unwrap();
        let d = max_abs_diff(&want, &got);
        assert!(
            d <= 1e-5 * max_abs(&want).max(1.0),
            "{} f32 at {sp}: {d}",
            spec.name()
        );
        let q = g.int8.as_ref().unwrap();
        let qb = lower::scb(q, g.hash).unwrap();
        let want = interp::run_batch(q, &xs).unwrap();
        let got = runners::runtime(Path::new("model.int8.scb"), &qb, &xs).unwrap();
        assert_eq!(want, got, "{} int8 at {sp} must be bit-exact", spec.name());
        let m = sculpt_runtime::Model::parse(&qb).unwrap();
        assert_eq!(m.model_hash(), g.hash);
    }
}

#[test]
fn c_matches_the_interpreter() {
    let cc = std::env::var("CC").unwrap_or_else(|_| "cc".into());
    for (spec, sp) in [(lenet5(), 0.95), (resnet_small(), 0.5)] {
        let g = graphs(&spec, sp);
        let xs = inputs(&spec, 3, 10);
        let dir = tempfile::tempdir().unwrap();
        for (graph, exact) in [(&g.float, false), (g.int8.as_ref().unwrap(), true)] {
            let c = lower::c(graph, g.hash).unwrap();
            std::fs::write(dir.path().join("model.c"), &c.source).unwrap();
            std::fs::write(dir.path().join("model.h"), &c.header).unwrap();
            let got = runners::c(dir.path(), &cc, &xs).unwrap();
            let want = interp::run_batch(graph, &xs).unwrap();
            if exact {
                assert_eq!(want, got, "{} int8 C must be bit-exact", spec.name());
            } else {
                assert!(max_abs_diff(&want, &got) <= 1e-5 * max_abs(&want).max(1.0));
            }
        }
    }
}

fn target(flash: u64, ram: u64) -> Target {
    let mut t: Target =
        toml::from_str(&std::fs::read_to_string("targets/cortex-m7.toml").unwrap()).unwrap();
    t.name = "tiny".into();
    t.flash_bytes = flash;
    t.ram_bytes = ram;
    t
}

#[test]
fn pipeline_writes_every_artefact_with_one_hash_and_checks_the_budget() {
    let dir = tempfile::tempdir().unwrap();
    let ck = write_checkpoint(dir.path(), "lenet", &lenet5(), 0.9, 3);
    let out = dir.path().join("out");
    let opts = CompileOptions {
        calibration_samples: 64,
        ..CompileOptions::default()
    };
    let a = compile(&ck, &out, Some(&target(2 << 20, 512 << 10)), &opts).unwrap();
    println!("{}", a.report);
    for f in [
        "model.onnx",
        "model.sparse.onnx",
        "model.scb",
        "model.int8.scb",
        "model.c",
        "model.h",
        "int8/model.c",
        "int8/model.h",
        "manifest.json",
    ] {
        assert!(out.join(f).is_file(), "{f} missing");
    }
    let hash = &a.manifest.model_hash;
    for f in ["model.scb", "model.int8.scb"] {
        let b = std::fs::read(out.join(f)).unwrap();
        let m = sculpt_runtime::Model::parse(&b).unwrap();
        assert_eq!(&sculpt::compile::emit::onnx::hex(&m.model_hash()), hash);
    }
    for f in ["model.onnx", "model.sparse.onnx"] {
        use protobuf::Message;
        let m = onnx_protobuf::ModelProto::parse_from_bytes(&std::fs::read(out.join(f)).unwrap())
            .unwrap();
        assert!(m
            .metadata_props
            .iter()
            .any(|e| e.key == "sculpt.model_hash" && &e.value == hash));
    }
    assert!(std::fs::read_to_string(out.join("model.c"))
        .unwrap()
        .contains(hash.as_str()));
    let scb = std::fs::metadata(out.join("model.scb")).unwrap().len();
    let onnx = std::fs::metadata(out.join("model.onnx")).unwrap().len();
    assert!(scb * 5 < onnx, "sparse f32 .scb {scb} vs dense ONNX {onnx}");

    // budget overflow is reported with the amount
    let e = compile(
        &ck,
        &dir.path().join("o2"),
        Some(&target(10_000, 512 << 10)),
        &opts,
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("tiny") && e.contains("over by"), "{e}");
    let e = compile(
        &ck,
        &dir.path().join("o3"),
        Some(&target(2 << 20, 1000)),
        &opts,
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("RAM") && e.contains("over by"), "{e}");
    // a target allowing only some index encodings gets only those
    let mut t = target(2 << 20, 512 << 10);
    t.index_encodings = vec![IndexEncoding::CsrIdx16];
    let a = compile(&ck, &dir.path().join("o4"), Some(&t), &opts).unwrap();
    for n in &a.float.nodes {
        if let Some(sculpt::compile::ir::Storage::Csr { index, .. }) =
            n.op.weight().map(|w| &w.storage)
        {
            assert_eq!(*index, sculpt::compile::ir::IndexEncoding::CsrIdx16);
        }
    }
}
