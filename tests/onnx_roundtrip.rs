//! ONNX export and import: round trips (same weights, same interpreter outputs), tract and ONNX Runtime
//! agreement with the interpreter, and rejection of malformed or inconsistent files.

mod compile_util;

use std::path::Path;

use compile_util::*;
use onnx_protobuf::{ModelProto, NodeProto};
use protobuf::Message;
use sculpt::compile::emit::onnx::{emit, Variant};
use sculpt::compile::import::onnx::import_bytes;
use sculpt::compile::interp;
use sculpt::compile::ir::{Graph, Storage};
use sculpt::compile::passes::{fold_bn::fold_bn, fuse::fuse};
use sculpt::nn::spec::ModelSpec;
use sculpt::verify::runners;

fn compiled(spec: &ModelSpec, sparsity: f64) -> Graph {
    fuse(fold_bn(graph(spec, sparsity, 42)).unwrap()).unwrap()
}

fn same_weights(a: &Graph, b: &Graph) {
    let wa: Vec<_> = a.nodes.iter().filter_map(|n| n.op.weight()).collect();
    let wb: Vec<_> = b.nodes.iter().filter_map(|n| n.op.weight()).collect();
    assert_eq!(wa.len(), wb.len());
    for (x, y) in wa.iter().zip(&wb) {
        assert_eq!(x.shape, y.shape);
        assert_eq!(x.to_dense(), y.to_dense());
    }
    let ba: Vec<_> = a.nodes.iter().map(|n| n.op.bias().cloned()).collect();
    let bb: Vec<_> = b.nodes.iter().map(|n| n.op.bias().cloned()).collect();
    assert_eq!(ba.iter().flatten().count(), bb.iter().flatten().count());
    assert_eq!(a.input, b.input);
}

fn same_outputs(a: &Graph, b: &Graph, spec: &ModelSpec) {
    let xs = inputs(spec, 3, 8);
    for x in xs.chunks(spec.input.iter().product()) {
        assert_eq!(interp::run(a, x).unwrap(), interp::run(b, x).unwrap());
    }
}

#[test]
fn dense_and_sparse_round_trips() {
    for (spec, sp) in [
        (lenet5(), 0.0),
        (lenet5(), 0.95),
        (resnet_small(), 0.0),
        (resnet_small(), 0.95),
    ] {
        let g = compiled(&spec, sp);
        for variant in [Variant::Dense, Variant::Sparse] {
            let bytes = emit(&g, variant, None).unwrap();
            let back = import_bytes(&bytes, Path::new("mem.onnx")).unwrap();
            same_weights(&g, &back);
            same_outputs(&g, &back, &spec);
            if variant == Variant::Sparse && sp > 0.0 {
                assert!(back.nodes.iter().any(|n| matches!(
                    n.op.weight().map(|w| &w.storage),
                    Some(Storage::Csr { .. })
                )));
                let dense_len = emit(&g, Variant::Dense, None).unwrap().len();
                assert!(
                    bytes.len() * 3 < dense_len,
                    "sparse {} vs dense {dense_len}",
                    bytes.len()
                );
            }
        }
        // the unfolded graph (BatchNormalization, standalone Relu, Flatten) round-trips too
        let raw = graph(&spec, sp, 42);
        let back = import_bytes(
            &emit(&raw, Variant::Dense, None).unwrap(),
            Path::new("raw.onnx"),
        )
        .unwrap();
        same_outputs(&raw, &back, &spec);
    }
}

#[test]
fn tract_agrees_with_the_interpreter() {
    for (spec, sp) in [
        (lenet5(), 0.0),
        (lenet5(), 0.95),
        (resnet20(), 0.0),
        (resnet20(), 0.95),
    ] {
        let g = compiled(&spec, sp);
        let bytes = emit(&g, Variant::Dense, None).unwrap();
        let xs = inputs(&spec, 4, 3);
        let want = interp::run_batch(&g, &xs).unwrap();
        let got = runners::tract(Path::new("model.onnx"), &bytes, &g, &xs).unwrap();
        let d = max_abs_diff(&want, &got);
        println!("tract {} at {sp}: max |Δ| = {d:e}", spec.name());
        assert!(
            d <= 1e-3 * max_abs(&want).max(1.0),
            "{} at {sp}: {d}",
            spec.name()
        );
        for (a, b) in want.chunks(10).zip(got.chunks(10)) {
            assert_eq!(argmax(a), argmax(b));
        }
    }
}

#[test]
fn onnxruntime_accepts_the_sparse_file_and_agrees() {
    if let Err(e) = runners::ort_init() {
        println!("SKIPPED: {e}");
        return;
    }
    for (spec, sp) in [(lenet5(), 0.95), (resnet20(), 0.95), (resnet_small(), 0.0)] {
        let g = compiled(&spec, sp);
        let bytes = emit(&g, Variant::Sparse, None).unwrap();
        let m = ModelProto::parse_from_bytes(&bytes).unwrap();
        // sparse_initializer only where it is smaller than the dense tensor: never for a dense model
        assert_eq!(m.graph.sparse_initializer.is_empty(), sp == 0.0);
        let xs = inputs(&spec, 5, 4);
        let want = interp::run_batch(&g, &xs).unwrap();
        let got = runners::onnxruntime(Path::new("model.sparse.onnx"), &bytes, &g, &xs).unwrap();
        let d = max_abs_diff(&want, &got);
        println!("onnxruntime {} at {sp}: max |Δ| = {d:e}", spec.name());
        assert!(d <= 1e-3 * max_abs(&want).max(1.0));
    }
}

fn reject(bytes: &[u8], needle: &str) {
    let e = import_bytes(bytes, Path::new("bad.onnx"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("bad.onnx"), "error does not name the file: {e}");
    assert!(
        e.contains(needle),
        "error '{e}' does not mention '{needle}'"
    );
}

#[test]
fn importer_rejects_bad_files() {
    let g = compiled(&lenet5(), 0.5);
    let bytes = emit(&g, Variant::Dense, None).unwrap();
    // truncation anywhere is an error or, if the prefix happens to parse, still never a panic
    let mut errors = 0;
    for cut in (1..bytes.len()).step_by(bytes.len() / 97 + 1) {
        if import_bytes(&bytes[..cut], Path::new("t.onnx")).is_err() {
            errors += 1;
        }
    }
    assert!(errors > 90, "only {errors} truncations rejected");
    reject(&bytes[..bytes.len() / 2], "onnx");
    // bit flips: never a panic; most are rejected
    let mut rejected = 0;
    for i in 0..200usize {
        let mut b = bytes.clone();
        let at = (i * 7919) % b.len();
        b[at] ^= 1 << (i % 8);
        if import_bytes(&b, Path::new("f.onnx")).is_err() {
            rejected += 1;
        }
    }
    println!("bit flips rejected: {rejected}/200");
    assert!(rejected >= 195, "only {rejected}/200 bit flips rejected");
    reject(
        &{
            let mut b = bytes.clone();
            let n = b.len();
            b[n / 2] ^= 0x10;
            b
        },
        "onnx",
    );
    reject(b"\xff\xff\xff\xff\x0f garbage", "malformed protobuf");

    // a sculpt file without its integrity record is reported as such
    let mut stripped = ModelProto::parse_from_bytes(&bytes).unwrap();
    stripped
        .metadata_props
        .retain(|e| e.key != sculpt::compile::emit::onnx::GRAPH_SHA256);
    reject(&stripped.write_to_bytes().unwrap(), "integrity record");
    // edits below are made to a file that looks third-party: no sculpt metadata, another producer
    let mut base = ModelProto::parse_from_bytes(&bytes).unwrap();
    base.metadata_props.clear();
    base.producer_name = "another-exporter".into();
    import_bytes(&base.write_to_bytes().unwrap(), Path::new("ok.onnx")).unwrap();
    // missing initializer
    let mut m = base.clone();
    m.graph
        .as_mut()
        .unwrap()
        .initializer
        .retain(|t| t.name != "conv2.weight");
    reject(&m.write_to_bytes().unwrap(), "conv2.weight");
    // wrong shape
    let mut m = base.clone();
    let t = m
        .graph
        .as_mut()
        .unwrap()
        .initializer
        .iter_mut()
        .find(|t| t.name == "fc1.weight")
        .unwrap();
    t.dims = vec![t.dims[0] + 1, t.dims[1]];
    reject(&m.write_to_bytes().unwrap(), "fc1.weight");
    // data length inconsistent with dims
    let mut m = base.clone();
    let t = m
        .graph
        .as_mut()
        .unwrap()
        .initializer
        .iter_mut()
        .find(|t| t.name == "conv1.bias")
        .unwrap();
    t.raw_data.truncate(8);
    reject(&m.write_to_bytes().unwrap(), "conv1.bias");
    // unsupported op named
    let mut m = base.clone();
    let gr = m.graph.as_mut().unwrap();
    let mut n = NodeProto::new();
    n.op_type = "Softmax".into();
    n.name = "probs".into();
    n.input = vec!["logits".into()];
    n.output = vec!["p".into()];
    gr.node.push(n);
    gr.output[0].name = "p".into();
    reject(&m.write_to_bytes().unwrap(), "Softmax");
    // no graph
    let mut m = base.clone();
    m.graph = protobuf::MessageField::none();
    reject(&m.write_to_bytes().unwrap(), "no graph");
    // inconsistent conv attributes
    let mut m = base;
    let conv = m
        .graph
        .as_mut()
        .unwrap()
        .node
        .iter_mut()
        .find(|n| n.op_type == "Conv")
        .unwrap();
    conv.attribute
        .iter_mut()
        .find(|a| a.name == "kernel_shape")
        .unwrap()
        .ints = vec![5, 3];
    reject(&m.write_to_bytes().unwrap(), "kernel_shape");
}
