//! Checks at every stage: the pass driver names a failing pass and node, a faulty pass is caught by the
//! per-pass probe checks, a checkpoint's altered probe fails, an artefact folder moved elsewhere still
//! verifies, and manifests cannot point outside their folder.

mod compile_util;

use std::path::Path;

use compile_util::*;
use sculpt::compile::ir::{Bias, Op};
use sculpt::compile::passes::driver::{self, Pass};
use sculpt::compile::passes::layout::Objective;
use sculpt::compile::pipeline::{
    build_with, compile, dump_ir, read_manifest, stages, target_formats, CompileOptions,
};
use sculpt::data::{load, DataSource};
use sculpt::verify::{verify, verify_with, VerifyOptions, VerifyReport};

fn opts(int8: bool) -> CompileOptions {
    CompileOptions {
        calibration_samples: 64,
        int8,
        ..CompileOptions::default()
    }
}

fn vo() -> VerifyOptions {
    VerifyOptions {
        limit: Some(60),
        ..VerifyOptions::default()
    }
}

fn probed_lenet(dir: &Path) -> std::path::PathBuf {
    let spec = lenet5();
    let probe = engine_probe(&spec, 0.8, 3, 6);
    write_checkpoint_probed(dir, "lenet", &spec, 0.8, 3, Some(&probe))
}

fn row<'a>(r: &'a VerifyReport, format: &str) -> &'a sculpt::verify::FormatResult {
    r.rows
        .iter()
        .find(|x| x.format == format)
        .unwrap_or_else(|| panic!("no row {format} in\n{}", r.table()))
}

#[test]
fn every_stage_is_checked_and_a_faulty_pass_is_caught_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let ck = probed_lenet(dir.path());
    let out = dir.path().join("art");
    compile(&ck, &out, None, &opts(true)).unwrap();
    let test = load(&DataSource::Embedded).unwrap().test;
    let r = verify(&out, &test, &vo()).unwrap();
    println!("{}", r.table());
    assert!(r.passed);
    let p = row(&r, "probe");
    assert!(p.passed && p.bound.contains("trainer"), "{p:?}");
    for pass in ["fold_bn", "fuse", "layout", "quantize", "layout_int8"] {
        assert!(row(&r, &format!("pass {pass}")).passed, "{pass}");
    }
    assert_eq!(row(&r, "pass layout_int8").max_abs_dlogit, Some(0.0));

    // fuse, broken: it also shifts one logit's bias
    let mut passes = driver::standard();
    passes.iter_mut().find(|p| p.name == "fuse").unwrap().run = |g, _| {
        let mut g = sculpt::compile::passes::fuse::fuse(g)?;
        let last = g.nodes.len() - 1;
        if let Op::Gemm {
            bias: Some(Bias::F32(b)),
            ..
        } = &mut g.nodes[last].op
        {
            b[0] += 0.5;
        }
        Ok(g)
    };
    let r = verify_with(&out, &test, &vo(), &passes).unwrap();
    println!("{}", r.table());
    assert!(!r.passed);
    assert!(row(&r, "pass fold_bn").passed);
    let first_bad = r.rows.iter().find(|x| !x.passed).unwrap();
    assert_eq!(first_bad.format, "pass fuse");
    assert!(first_bad.note.as_deref().unwrap().contains("pass fuse"));
}

#[test]
fn a_pass_that_breaks_the_graph_is_named_with_the_node() {
    let source = graph(&lenet5(), 0.5, 8);
    let mut passes: Vec<Pass> = driver::standard();
    passes.iter_mut().find(|p| p.name == "fuse").unwrap().run = |g, _| {
        let mut g = sculpt::compile::passes::fuse::fuse(g)?;
        g.nodes[2].shape.push(1);
        Ok(g)
    };
    let fused = sculpt::compile::passes::fuse::fuse(
        sculpt::compile::passes::fold_bn::fold_bn(source.clone()).unwrap(),
    )
    .unwrap();
    let e = build_with(
        source,
        &passes,
        &target_formats(None),
        None,
        Objective::Size,
    )
    .unwrap_err();
    assert_eq!(e.pass(), Some("fuse"));
    assert_eq!(e.node(), Some(fused.nodes[2].name.as_str()));
    let msg = e.to_string();
    assert!(
        msg.starts_with("pass fuse: ir: node '") && msg.contains("inferred"),
        "{msg}"
    );
}

#[test]
fn an_altered_probe_fails_verification() {
    let dir = tempfile::tempdir().unwrap();
    let spec = lenet5();
    let mut probe = engine_probe(&spec, 0.8, 3, 6);
    let ck = write_checkpoint_probed(dir.path(), "lenet", &spec, 0.8, 3, Some(&probe));
    let out = dir.path().join("art");
    compile(&ck, &out, None, &opts(false)).unwrap();
    let test = load(&DataSource::Embedded).unwrap().test;
    assert!(verify(&out, &test, &vo()).unwrap().passed);
    // the same checkpoint with one probe logit moved by 0.2, written over the folder's copy
    probe.2[7] += 0.2;
    let m = read_manifest(&out).unwrap();
    let copy = out.join(&m.source);
    let stem = copy.file_name().unwrap().to_str().unwrap().to_string();
    let redo = write_checkpoint_probed(
        copy.parent().unwrap(),
        stem.trim_end_matches(".safetensors"),
        &spec,
        0.8,
        3,
        Some(&probe),
    );
    assert_eq!(redo.with_extension("safetensors"), copy);
    let r = verify(&out, &test, &vo()).unwrap();
    println!("{}", r.table());
    assert!(!r.passed);
    let p = row(&r, "probe");
    assert!(!p.passed);
    assert!(p.max_abs_dlogit.unwrap() > 0.19, "{p:?}");
    assert!(r
        .rows
        .iter()
        .filter(|x| x.format != "probe")
        .all(|x| x.passed));
}

#[test]
fn a_moved_artefact_folder_verifies_and_paths_cannot_escape() {
    let dir = tempfile::tempdir().unwrap();
    let ckdir = dir.path().join("run");
    std::fs::create_dir(&ckdir).unwrap();
    let ck = probed_lenet(&ckdir);
    let out = dir.path().join("art");
    compile(&ck, &out, None, &opts(true)).unwrap();
    let moved = dir.path().join("elsewhere").join("copy");
    std::fs::create_dir_all(moved.parent().unwrap()).unwrap();
    std::fs::rename(&out, &moved).unwrap();
    std::fs::remove_dir_all(&ckdir).unwrap();
    let m = read_manifest(&moved).unwrap();
    assert!(m.source.is_relative() && m.files.iter().all(|f| !f.file.contains("..")));
    let test = load(&DataSource::Embedded).unwrap().test;
    let r = verify(&moved, &test, &vo()).unwrap();
    println!("{}", r.table());
    assert!(r.passed);
    assert!(row(&r, "probe").passed);

    let text = std::fs::read_to_string(moved.join("manifest.json")).unwrap();
    let mut v: serde_json::Value = serde_json::from_str(&text).unwrap();
    v["files"][0]["file"] = "../../etc/passwd".into();
    std::fs::write(moved.join("manifest.json"), v.to_string()).unwrap();
    let e = read_manifest(&moved).unwrap_err().to_string();
    assert!(e.contains("leaves the artefact folder"), "{e}");
    let mut v: serde_json::Value = serde_json::from_str(&text).unwrap();
    v["source"] = ck.display().to_string().into();
    std::fs::write(moved.join("manifest.json"), v.to_string()).unwrap();
    let e = verify(&moved, &test, &vo()).unwrap_err().to_string();
    assert!(e.contains("leaves the artefact folder"), "{e}");
}

#[test]
fn stop_after_and_dump_ir_show_each_stage() {
    let dir = tempfile::tempdir().unwrap();
    let ck = write_checkpoint(dir.path(), "r", &resnet_small(), 0.5, 4);
    let o = CompileOptions {
        calibration_data: DataSource::Embedded,
        ..opts(false)
    };
    let st = stages(&ck, None, &o, Some("fuse")).unwrap();
    let names: Vec<&str> = st.0.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["source", "fold_bn", "fuse"]);
    let e = stages(&ck, None, &o, Some("fold")).unwrap_err().to_string();
    assert!(
        e.contains("fold_bn, fuse, layout, quantize, layout_int8"),
        "{e}"
    );
    let e = stages(&ck, None, &o, Some("quantize"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("int8"), "{e}");
    let files = dump_ir(&st, &dir.path().join("ir")).unwrap();
    let read = |i: usize| std::fs::read_to_string(&files[i]).unwrap();
    assert!(files[1].ends_with("01-fold_bn.ir"));
    assert!(read(0).contains("= batchnorm(%"));
    assert!(!read(1).contains("batchnorm"));
    assert!(read(1).lines().count() < read(0).lines().count());
    assert!(read(2).contains(" relu "), "{}", read(2));

    let bin = env!("CARGO_BIN_EXE_sculpt");
    let out = std::process::Command::new(bin)
        .args([
            "compile",
            ck.to_str().unwrap(),
            "--no-int8",
            "--stop-after",
            "fold_bn",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        text.starts_with("sculpt-ir v1") && !text.contains("batchnorm"),
        "{text}"
    );
    let out = std::process::Command::new(bin)
        .args([
            "compile",
            ck.to_str().unwrap(),
            "--no-int8",
            "--stop-after",
            "nope",
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no such pass"));
}
