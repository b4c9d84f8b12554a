//! Inputs made to hurt, one class of failure per test: sizes that used to panic, tiny files that declare huge
//! allocations, malformed files that used to be accepted silently, and third-party runtimes that panic. Each
//! must end in a clear error that names the file (and the field), without a panic and without allocating what
//! the file declares.

mod compile_util;

use std::io::Write;
use std::path::Path;

use compile_util::*;
use onnx_protobuf::{
    tensor_proto::DataType, tensor_shape_proto, type_proto, AttributeProto, GraphProto, ModelProto,
    NodeProto, OperatorSetIdProto, SparseTensorProto, StringStringEntryProto, TensorProto,
    TensorShapeProto, TypeProto, ValueInfoProto,
};
use protobuf::Message;
use sculpt::budget::Budget;
use sculpt::compile::emit::onnx::{emit, Variant, GRAPH_SHA256};
use sculpt::compile::import::checkpoint::parse_meta;
use sculpt::compile::import::onnx::{import_bytes, import_bytes_within};
use sculpt::compile::lower;
use sculpt::compile::pipeline::{build, target_formats};
use sculpt::train::recipe::Recipe;
use sculpt::verify::runners;

// ---------- an independent ONNX writer ----------

fn value_info(name: &str, dims: &[i64]) -> ValueInfoProto {
    let mut shape = TensorShapeProto::new();
    for (k, &d) in dims.iter().enumerate() {
        let mut dim = tensor_shape_proto::Dimension::new();
        dim.value = Some(if k == 0 {
            tensor_shape_proto::dimension::Value::DimParam("N".into())
        } else {
            tensor_shape_proto::dimension::Value::DimValue(d)
        });
        shape.dim.push(dim);
    }
    let mut tt = type_proto::Tensor::new();
    tt.elem_type = DataType::FLOAT as i32;
    tt.shape = protobuf::MessageField::some(shape);
    let mut ty = TypeProto::new();
    ty.value = Some(type_proto::Value::TensorType(tt));
    let mut v = ValueInfoProto::new();
    v.name = name.into();
    v.type_ = protobuf::MessageField::some(ty);
    v
}

fn int64s(name: &str, v: &[i64]) -> TensorProto {
    let mut t = TensorProto::new();
    t.name = name.into();
    t.data_type = DataType::INT64 as i32;
    t.dims = vec![v.len() as i64];
    t.int64_data = v.to_vec();
    t
}

fn node(op: &str, inputs: &[&str], output: &str) -> NodeProto {
    let mut n = NodeProto::new();
    n.op_type = op.into();
    n.name = format!("{op}-{output}");
    n.input = inputs.iter().map(|s| s.to_string()).collect();
    n.output = vec![output.into()];
    n
}

fn ints_attr(name: &str, v: &[i64]) -> AttributeProto {
    let mut a = AttributeProto::new();
    a.name = name.into();
    a.ints = v.to_vec();
    a
}

/// A model with input `x` of `dims` (batch symbolic), the initializers and nodes given, output `out`.
fn model(dims: &[i64], inits: Vec<TensorProto>, nodes: Vec<NodeProto>, out: &str) -> ModelProto {
    let mut g = GraphProto::new();
    g.input.push(value_info("x", dims));
    g.initializer = inits;
    g.node = nodes;
    g.output.push(value_info(out, &[1, 1]));
    let mut m = ModelProto::new();
    m.ir_version = 8;
    let mut op = OperatorSetIdProto::new();
    op.version = 13;
    m.opset_import.push(op);
    m.graph = protobuf::MessageField::some(g);
    m
}

fn bytes(m: &ModelProto) -> Vec<u8> {
    m.write_to_bytes().unwrap()
}

fn import_error(b: &[u8], file: &str) -> String {
    let e = import_bytes(b, Path::new(file)).unwrap_err().to_string();
    assert!(e.contains(file), "error does not name {file}: {e}");
    e
}

fn assert_all(e: &str, needles: &[&str]) {
    for n in needles {
        assert!(e.contains(n), "'{e}' lacks '{n}'");
    }
}

// ---------- panics on input ----------

#[test]
fn absurd_onnx_sizes_are_errors_not_panics() {
    let flat = || vec![node("Flatten", &["x"], "y")];
    let e = import_error(
        &bytes(&model(&[1, 3, 1 << 40, 2], vec![], flat(), "y")),
        "h.onnx",
    );
    assert_all(&e, &["input 'x'", "too large"]);
    let e = import_error(
        &bytes(&model(&[1, 1, 1 << 20, 1 << 12], vec![], flat(), "y")),
        "w.onnx",
    );
    assert_all(&e, &["too large"]);
    let e = import_error(&bytes(&model(&[1, 0, 4, 4], vec![], flat(), "y")), "z.onnx");
    assert_all(&e, &["known positive C, H, W", "[?, 0, 4, 4]"]);
    let mut w = TensorProto::new();
    w.name = "w".into();
    w.data_type = DataType::FLOAT as i32;
    w.dims = vec![1, 1, 1, 1];
    w.float_data = vec![1.0];
    let mut conv = node("Conv", &["x", "w"], "y");
    conv.attribute
        .push(ints_attr("kernel_shape", &[1 << 40, 1 << 40]));
    let e = import_error(
        &bytes(&model(&[1, 1, 4, 4], vec![w], vec![conv], "y")),
        "k.onnx",
    );
    assert_all(&e, &["kernel_shape"]);
}

/// tract divides by zero while optimising a Slice with a step of 2^62, which sculpt's importer accepts (the
/// slice keeps row and column 0): the boundary turns the panic into an error naming the file.
#[test]
fn a_panic_inside_tract_is_an_error() {
    let inits = vec![
        int64s("s", &[0, 0]),
        int64s("e", &[i64::MAX, i64::MAX]),
        int64s("a", &[2, 3]),
        int64s("k", &[1 << 62, 1 << 62]),
    ];
    let nodes = vec![
        node("Slice", &["x", "s", "e", "a", "k"], "y"),
        node("Flatten", &["y"], "z"),
    ];
    let b = bytes(&model(&[1, 2, 8, 8], inits, nodes, "z"));
    let g = import_bytes(&b, Path::new("step.onnx")).unwrap();
    assert_eq!(g.nodes[1].shape, [2, 1, 1]);
    let e = runners::tract(Path::new("step.onnx"), &b, &g, &[0.5; 128])
        .unwrap_err()
        .to_string();
    assert_all(
        &e,
        &["step.onnx", "tract failed internally", "divide by zero"],
    );
    let e = runners::tract(Path::new("step.onnx"), &b, &g, &[0.5; 100])
        .unwrap_err()
        .to_string();
    assert_all(&e, &["step.onnx", "2x8x8 = 128 values", "100 values"]);
}

#[test]
fn absurd_model_sizes_in_a_checkpoint_are_errors() {
    let meta =
        |model: &str| format!(r#"{{"format":"sculpt-checkpoint","version":1,"model":{model}}}"#);
    let p = Path::new("big.json");
    let cases = [
        (
            r#"{"arch":"mlp","hidden":[16],"input":[1,4294967296,4294967296],"classes":10}"#,
            "input shape",
        ),
        (
            r#"{"arch":"mlp","hidden":[1099511627776],"input":[1,4,4],"classes":10}"#,
            "hidden layer 0",
        ),
        (
            r#"{"arch":"resnet_cifar","depth":6000000002,"shortcut":"identity","input":[3,32,32],"classes":10}"#,
            "depth",
        ),
        (
            r#"{"arch":"lenet5","variant":"classic","input":[1,28,28],"classes":0}"#,
            "classes",
        ),
    ];
    for (model, needle) in cases {
        let e = parse_meta(p, &meta(model)).unwrap_err().to_string();
        assert_all(&e, &["big.json", needle]);
    }
    let e = parse_meta(p, r#"{"format":"sculpt-checkpoint","version":"one"}"#)
        .unwrap_err()
        .to_string();
    assert_all(&e, &["`version` is '\"one\"'"]);
    assert!(!e.contains("Some("), "{e}");
}

// ---------- allocation bombs ----------

fn constant_of_shape(output: &str, dims: &str) -> NodeProto {
    node("ConstantOfShape", &[dims], output)
}

#[test]
fn a_few_bytes_declaring_gigabytes_are_refused_before_allocating() {
    // one fold of 2^31 elements: refused by the default budget without allocating 8 GiB
    let m = model(
        &[1, 1, 2, 2],
        vec![int64s("dims", &[1 << 15, 1 << 16])],
        vec![
            constant_of_shape("big", "dims"),
            node("Flatten", &["x"], "y"),
        ],
        "y",
    );
    let e = import_error(&bytes(&m), "fold.onnx");
    assert_all(&e, &["ConstantOfShape-big", "memory limit", "--max-memory"]);
    // the budget is a total: three folds of 2^21 elements (16 MiB charged each) in a 40 MiB budget
    let m = model(
        &[1, 1, 2, 2],
        vec![int64s("dims", &[1 << 21])],
        vec![
            constant_of_shape("a", "dims"),
            constant_of_shape("b", "dims"),
            constant_of_shape("c", "dims"),
            node("Flatten", &["x"], "y"),
        ],
        "y",
    );
    let budget = Budget::new(40 << 20);
    let e = import_bytes_within(&bytes(&m), Path::new("total.onnx"), &budget)
        .unwrap_err()
        .to_string();
    assert_all(&e, &["total.onnx", "ConstantOfShape-c", "already used"]);
    assert!(import_bytes_within(&bytes(&m), Path::new("t.onnx"), &Budget::new(64 << 20)).is_ok());
    // a sparse initializer of 2^31 elements with one stored value
    let mut s = SparseTensorProto::new();
    let mut v = TensorProto::new();
    v.name = "sw".into();
    v.data_type = DataType::FLOAT as i32;
    v.dims = vec![1];
    v.float_data = vec![1.0];
    s.values = protobuf::MessageField::some(v);
    s.indices = protobuf::MessageField::some(int64s("si", &[7]));
    s.dims = vec![1 << 16, 1 << 15];
    let mut m = model(
        &[1, 1, 2, 2],
        vec![],
        vec![node("Flatten", &["x"], "y")],
        "y",
    );
    m.graph.as_mut().unwrap().sparse_initializer.push(s);
    let e = import_error(&bytes(&m), "sparse.onnx");
    assert_all(&e, &["sparse initializer 'sw'", "memory limit"]);
}

/// A valid `.scb` whose header declares a 3.5 GiB arena (header CRC recomputed): the runner refuses to
/// allocate it and names the file.
#[test]
fn an_scb_header_declaring_a_huge_arena_is_refused() {
    let g = build(graph(&lenet5(), 0.9, 1), &target_formats(None), None).unwrap();
    let mut scb = lower::scb(&g.float, g.hash).unwrap();
    scb[64..68].copy_from_slice(&0xE000_0000u32.to_le_bytes());
    let crc = sculpt_runtime::crc::crc32(&scb[..92]);
    scb[92..96].copy_from_slice(&crc.to_le_bytes());
    let m = sculpt_runtime::Model::parse(&scb).unwrap();
    assert_eq!(m.arena_size(), 0xE000_0000);
    let xs = inputs(&lenet5(), 1, 2);
    let e = runners::runtime(Path::new("arena.scb"), &scb, &xs)
        .unwrap_err()
        .to_string();
    assert_all(&e, &["arena.scb", "arena", "memory limit"]);
}

fn gz(bytes: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    e.write_all(bytes).unwrap();
    e.finish().unwrap()
}

fn idx(dims: &[u32], fill: u8) -> Vec<u8> {
    let mut v = vec![0u8, 0, 0x08, dims.len() as u8];
    for d in dims {
        v.extend_from_slice(&d.to_be_bytes());
    }
    let n: u32 = dims.iter().product();
    v.extend(std::iter::repeat_n(fill, n as usize));
    v
}

/// A label file whose header declares 6 labels but whose gzip member chain inflates to 32 MiB: reading stops
/// at the size the header declares.
#[test]
fn a_gzip_member_chain_inflates_no_further_than_its_header() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let put = |name: &str, b: &[u8]| std::fs::write(d.join(name), b).unwrap();
    put("train-images-idx3-ubyte", &idx(&[6, 2, 2], 9));
    put("t10k-images-idx3-ubyte", &idx(&[6, 2, 2], 9));
    put("t10k-labels-idx1-ubyte", &idx(&[6], 1));
    let zeros = gz(&vec![1u8; 1 << 20]);
    let mut chain = gz(&idx(&[6], 1));
    for _ in 0..32 {
        chain.extend_from_slice(&zeros);
    }
    put("train-labels-idx1-ubyte.gz", &chain);
    let e = sculpt::data::idx::load_dir(d).unwrap_err().to_string();
    assert_all(
        &e,
        &[
            "train-labels-idx1-ubyte.gz",
            "more than the 14 bytes its header describes",
        ],
    );
}

// ---------- silent acceptance ----------

fn lenet5_onnx() -> Vec<u8> {
    let g = graph(&lenet5(), 0.5, 3);
    emit(&g, Variant::Dense, Some(&[7; 32])).unwrap()
}

/// Every prefix of the file that ends between two metadata entries parses as protobuf; each must be refused.
#[test]
fn a_file_cut_inside_its_metadata_is_refused() {
    let full = lenet5_onnx();
    let m = ModelProto::parse_from_bytes(&full).unwrap();
    assert_eq!(m.metadata_props.last().unwrap().key, GRAPH_SHA256);
    for keep in 0..m.metadata_props.len() {
        let mut cut = m.clone();
        cut.metadata_props.truncate(keep);
        let b = bytes(&cut);
        assert!(
            full.starts_with(&b),
            "metadata entries are not the file's tail"
        );
        let e = import_error(&b, "cut.onnx");
        assert_all(&e, &["lacks its integrity record", GRAPH_SHA256]);
    }
}

#[test]
fn malformed_metadata_is_an_error_naming_the_key() {
    let full = lenet5_onnx();
    let edit = |key: &str, value: Option<&str>| {
        let mut m = ModelProto::parse_from_bytes(&full).unwrap();
        m.metadata_props.retain(|e| e.key != key);
        if let Some(v) = value {
            let mut e = StringStringEntryProto::new();
            e.key = key.into();
            e.value = v.into();
            m.metadata_props.insert(0, e);
        }
        bytes(&m)
    };
    let std = "sculpt.normalization.std";
    let mean = "sculpt.normalization.mean";
    for (b, needle) in [
        (edit(std, Some("[-0.5]")), std),
        (edit(std, Some("[0.3, 0.3]")), std),
        (edit(mean, Some("{\"mean\": 0.1}")), mean),
        (edit(mean, Some("[1e39]")), mean),
        (edit(mean, None), "must be given together"),
        (edit("sculpt.model_hash", Some("xyz")), "64 lower-case hex"),
    ] {
        let e = import_error(&b, "meta.onnx");
        assert_all(&e, &[needle]);
    }
    let mut twice = ModelProto::parse_from_bytes(&full).unwrap();
    let first = twice.metadata_props[0].clone();
    twice.metadata_props.push(first);
    assert_all(
        &import_error(&bytes(&twice), "dup.onnx"),
        &["appears twice"],
    );
}

#[test]
fn a_value_with_two_producers_is_refused() {
    let inits = vec![int64s("zero", &[0])];
    let nodes = vec![
        node("Relu", &["x"], "a"),
        node("Relu", &["a"], "b"),
        node("Relu", &["a"], "b"),
        node("Flatten", &["b"], "y"),
    ];
    let e = import_error(
        &bytes(&model(&[1, 1, 2, 2], inits.clone(), nodes, "y")),
        "two.onnx",
    );
    assert_all(&e, &["'b'", "already produced"]);
    let nodes = vec![
        node("Relu", &["x"], "zero"),
        node("Flatten", &["zero"], "y"),
    ];
    let e = import_error(
        &bytes(&model(&[1, 1, 2, 2], inits.clone(), nodes, "y")),
        "init.onnx",
    );
    assert_all(&e, &["'zero'", "already produced"]);
    let mut m = model(
        &[1, 1, 2, 2],
        inits,
        vec![node("Flatten", &["x"], "y")],
        "y",
    );
    let again = int64s("zero", &[1]);
    m.graph.as_mut().unwrap().initializer.push(again);
    assert_all(&import_error(&bytes(&m), "twice.onnx"), &["defined twice"]);
}

#[test]
fn verify_of_a_manifest_without_artefacts_fails() {
    let dir = tempfile::tempdir().unwrap();
    let ck = write_checkpoint(dir.path(), "ck", &lenet5(), 0.0, 1);
    let manifest = serde_json::json!({
        "format": "sculpt-artefacts", "version": 1, "source": ck, "model_hash": "00",
        "target": null,
        "options": { "calibration_data": { "kind": "embedded" }, "calibration_samples": 8, "int8": false },
        "index_formats": [], "files": []
    });
    let out = dir.path().join("artefacts");
    std::fs::create_dir_all(&out).unwrap();
    std::fs::write(out.join("manifest.json"), manifest.to_string()).unwrap();
    let test = sculpt::data::load(&sculpt::data::DataSource::Embedded)
        .unwrap()
        .test;
    let e = sculpt::verify::verify(&out, &test, &Default::default())
        .unwrap_err()
        .to_string();
    assert_all(&e, &["manifest.json", "lists no artefacts"]);
}

#[test]
fn recipes_out_of_the_documented_ranges_are_refused() {
    let cases = [
        (
            "[schedule]\nshape = \"multi_step\"\nmilestones = [0.5]\ngamma = 1.5\n",
            "schedule.gamma",
        ),
        (
            "[schedule]\nshape = \"multi_step\"\nmilestones = [0.6, 0.3]\ngamma = 0.2\n",
            "strictly increasing",
        ),
        (
            "[schedule]\nshape = \"multi_step\"\nmilestones = [0.0, 0.5]\ngamma = 0.2\n",
            "schedule.milestones",
        ),
        (
            "[schedule]\nlr = 0.1\nshape = \"cosine\"\nmin_lr = 0.5\n",
            "schedule.min_lr",
        ),
        (
            "[data]\naugment = { crop_padding = 500, hflip = true }\n",
            "crop_padding",
        ),
        (
            "[data]\nsource = { kind = \"cifar10\", dir = \"d\", coarse = true }\n",
            "coarse",
        ),
        (
            "[data]\nsource = { kind = \"embedded\", path = \"x\" }\n",
            "path",
        ),
    ];
    for (text, needle) in cases {
        let e = Recipe::from_toml_str(text, "hostile.toml")
            .unwrap_err()
            .to_string();
        assert_all(&e, &["hostile.toml", needle]);
    }
}

// ---------- the binary: messages, shapes, pipes ----------

fn sculpt(args: &[&str]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_sculpt"))
        .args(args)
        .output()
        .unwrap()
}

fn fails_with(args: &[&str], needles: &[&str]) -> String {
    let o = sculpt(args);
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    assert_eq!(o.status.code(), Some(1), "{args:?}: {err}");
    assert!(!err.contains("panicked"), "{err}");
    assert_all(&err, needles);
    err
}

#[test]
fn run_names_the_file_in_words_and_checks_shapes_first() {
    let dir = tempfile::tempdir().unwrap();
    let p = |n: &str| dir.path().join(n).display().to_string();
    let mut scb = sculpt_runtime::format::MAGIC.to_vec();
    scb.extend_from_slice(&[1, 0, 0, 0]);
    std::fs::write(p("bad.scb"), &scb).unwrap();
    let err = fails_with(
        &["run", &p("bad.scb")],
        &["bad.scb", "truncated: 96 bytes are needed, 12"],
    );
    assert!(
        !err.contains("Truncated {") && !err.contains("needed:"),
        "{err}"
    );
    // a model for 1x14x14 images: 784 = 4 x 196, so the sizes divide; it must not run on image fragments
    let small = ModelSpec {
        arch: Arch::Mlp { hidden: vec![8] },
        input: [1, 14, 14],
        classes: 10,
    };
    let g = build(graph(&small, 0.0, 4), &target_formats(None), None).unwrap();
    std::fs::write(
        p("small.onnx"),
        emit(&g.float, Variant::Dense, Some(&g.hash)).unwrap(),
    )
    .unwrap();
    std::fs::write(p("small.scb"), lower::scb(&g.float, g.hash).unwrap()).unwrap();
    let ck = write_checkpoint(dir.path(), "small", &small, 0.0, 4);
    for f in [p("small.onnx"), p("small.scb"), ck.display().to_string()] {
        fails_with(
            &["run", &f, "-n", "3"],
            &["small", "takes images of 1x14x14", "1x28x28"],
        );
    }
    let long = format!("[model]\nname = \"{}\"\n", "q".repeat(900_000));
    std::fs::write(p("long.toml"), long).unwrap();
    let err = fails_with(
        &["train", "--recipe", &p("long.toml"), "--out", &p("run")],
        &["long.toml", "model.name", "more characters"],
    );
    assert!(err.len() < 4000, "{} bytes of error", err.len());
    let far = format!(
        "[data]\nsource = {{ kind = \"idx\", dir = \"{}\" }}\n",
        "d".repeat(100_000)
    );
    std::fs::write(p("far.toml"), far).unwrap();
    let err = fails_with(
        &["train", "--recipe", &p("far.toml"), "--out", &p("run")],
        &["ddd", "more characters", "not a directory"],
    );
    assert!(err.len() < 4000, "{} bytes of error", err.len());
    let huge = format!("# {}\n", "z".repeat(2 << 20));
    std::fs::write(p("huge.toml"), huge).unwrap();
    fails_with(
        &["train", "--recipe", &p("huge.toml"), "--out", &p("run")],
        &["huge.toml", "1.0 MiB"],
    );
}

use sculpt::nn::spec::{Arch, ModelSpec};

#[test]
fn run_opens_what_compile_writes_with_the_umask_and_survives_a_closed_pipe() {
    let dir = tempfile::tempdir().unwrap();
    let ck = write_checkpoint(dir.path(), "ck", &lenet5(), 0.9, 6);
    let out = dir.path().join("art");
    let o = sculpt(&[
        "compile",
        &ck.display().to_string(),
        "--out",
        &out.display().to_string(),
        "--no-int8",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    for f in ["model.onnx", "model.sparse.onnx", "model.scb"] {
        let o = sculpt(&["run", &out.join(f).display().to_string(), "-n", "4"]);
        let stdout = String::from_utf8_lossy(&o.stdout);
        assert!(
            o.status.success(),
            "{f}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        assert!(
            stdout.contains("accuracy") && stdout.lines().count() == 5,
            "{f}: {stdout}"
        );
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        let plain = dir.path().join("plain");
        std::fs::write(&plain, b"x").unwrap();
        for f in ["model.onnx", "model.scb", "manifest.json"] {
            assert_eq!(mode(&out.join(f)), mode(&plain), "{f}");
        }
    }
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_sculpt"))
        .args([
            "run",
            &out.join("model.scb").display().to_string(),
            "-n",
            "1996",
            "--logits",
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let mut first = [0u8; 16];
    std::io::Read::read_exact(&mut stdout, &mut first).unwrap();
    drop(stdout);
    let o = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!err.contains("panicked"), "{err}");
    assert_ne!(o.status.code(), Some(101), "{err}");
}

#[test]
fn max_memory_lowers_and_raises_the_limit() {
    let dir = tempfile::tempdir().unwrap();
    let g = build(graph(&lenet5(), 0.9, 1), &target_formats(None), None).unwrap();
    let f = dir.path().join("m.scb");
    std::fs::write(&f, lower::scb(&g.float, g.hash).unwrap()).unwrap();
    let f = f.display().to_string();
    fails_with(
        &["--max-memory", "16K", "run", &f, "-n", "2"],
        &["m.scb", "memory limit of 16.0 KiB", "--max-memory"],
    );
    let o = sculpt(&["--max-memory", "1G", "run", &f, "-n", "2"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let o = sculpt(&["--max-memory", "lots", "run", &f]);
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("'lots' is not a memory size"));
}
