//! ONNX files exported by PyTorch (tests/fixtures, made by scripts/torch-fixtures.py), 90% of every conv and
//! linear weight zeroed: a LeNet-5 and a ResNet-8 with option-A shortcuts (strided Slices and a Pad whose
//! amounts a small constant subgraph computes). The importer must read them, store the zeros sparsely after
//! the passes, and reproduce the logits PyTorch computed, through the interpreter, the `.scb` runtime and
//! tract. The dynamo-* files come from the default exporter of current PyTorch.

use std::path::Path;

use sculpt::compile::import;
use sculpt::compile::interp;
use sculpt::compile::ir::Storage;
use sculpt::compile::lower;
use sculpt::compile::pipeline::{build, target_formats};
use sculpt::verify::runners;

struct Fixture {
    inputs: Vec<f32>,
    logits: Vec<f32>,
}

fn fixture(name: &str) -> Fixture {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("tests/fixtures/{name}.json"));
    let v: serde_json::Value = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
    let floats = |k: &str| -> Vec<f32> {
        v[k].as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_f64().unwrap() as f32)
            .collect()
    };
    Fixture {
        inputs: floats("inputs"),
        logits: floats("logits"),
    }
}

fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

fn check(name: &str, weights: usize) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("tests/fixtures/{name}.onnx"));
    let f = fixture(name);
    let source = import::import(&path).unwrap_or_else(|e| panic!("{name}: {e}"));
    let want = &f.logits;
    let got = interp::run_batch(&source, &f.inputs).unwrap();
    let d = max_abs_diff(&got, want);
    assert!(d < 1e-4, "{name}: interpreter vs PyTorch max |Δ| {d}");

    let g = build(source, &target_formats(None), None).unwrap();
    let mut sparse = 0;
    for node in &g.float.nodes {
        if let Some(w) = node.op.weight() {
            let n = w.rows() * w.cols();
            let zeros = n - w.nnz();
            assert!(
                zeros >= n * 9 / 10,
                "{name}: {} has {zeros} zeros of {n}, fewer than the ⌊90%⌋ pruned",
                node.name
            );
            if matches!(w.storage, Storage::Csr { .. }) {
                sparse += 1;
            }
        }
    }
    assert_eq!(sparse, weights, "{name}: every weight stored sparsely");

    let scb = lower::scb(&g.float, g.hash).unwrap();
    let got = runners::runtime(Path::new("model.scb"), &scb, &f.inputs).unwrap();
    let d = max_abs_diff(&got, want);
    assert!(d < 1e-4, "{name}: runtime vs PyTorch max |Δ| {d}");

    let onnx = std::fs::read(&path).unwrap();
    // tract 0.23 cannot plan some unoptimised dynamo exports at batch 1; ONNX Runtime runs those
    let got = runners::tract(Path::new("model.onnx"), &onnx, &g.float, &f.inputs)
        .or_else(|e| {
            println!("{name}: tract: {e}; running ONNX Runtime");
            runners::onnxruntime(Path::new("model.onnx"), &onnx, &g.float, &f.inputs)
        })
        .unwrap();
    let d = max_abs_diff(&got, want);
    assert!(d < 1e-4, "{name}: the source file vs PyTorch max |Δ| {d}");
}

#[test]
fn pytorch_lenet5_export_imports_and_matches_pytorch() {
    check("torch-lenet5", 5);
}

#[test]
fn pytorch_resnet8_export_imports_and_matches_pytorch() {
    check("torch-resnet8", 8);
}

/// Files from PyTorch's default exporter (dynamo, opset 18+): with and without its optimisation, static and
/// dynamic batch, `x.view(x.size(0), -1)`, ReduceMean pooling, option-A and option-B shortcuts, ResNet-18.
#[test]
fn pytorch_dynamo_exports_import_and_match_pytorch() {
    for (name, weights) in [
        ("dynamo-lenet5-view", 5),
        ("dynamo-lenet5", 5),
        ("dynamo-resnet8a", 8),
        ("dynamo-resnet8a-opt", 8),
        ("dynamo-resnet8b", 10),
        ("dynamo-resnet8b-opt", 10),
        ("dynamo-resnet18-narrow", 21),
    ] {
        check(name, weights);
    }
}

#[test]
fn training_mode_batch_norm_and_integer_inputs_are_refused_at_import() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let e = import::import(&dir.join("torch-bn-train.onnx"))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("BatchNormalization") && e.contains("training"),
        "{e}"
    );

    use protobuf::Message;
    let bytes = std::fs::read(dir.join("torch-lenet5.onnx")).unwrap();
    let mut m = onnx_protobuf::ModelProto::parse_from_bytes(&bytes).unwrap();
    let g = m.graph.as_mut().unwrap();
    if let Some(onnx_protobuf::type_proto::Value::TensorType(t)) =
        g.input[0].type_.as_mut().unwrap().value.as_mut()
    {
        t.elem_type = onnx_protobuf::tensor_proto::DataType::UINT8 as i32;
    }
    let tmp = tempfile::tempdir().unwrap();
    let p = tmp.path().join("u8.onnx");
    std::fs::write(&p, m.write_to_bytes().unwrap()).unwrap();
    let e = import::import(&p).unwrap_err().to_string();
    assert!(e.contains("element type") && e.contains("UINT8"), "{e}");
}
