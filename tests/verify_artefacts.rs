//! `verify` on real artefacts: every format agrees on the embedded test set; a swapped artefact is caught.

mod compile_util;

use compile_util::*;
use sculpt::compile::emit::onnx::{emit, Variant};
use sculpt::compile::pipeline::{compile, CompileOptions};
use sculpt::data::{load, DataSource};
use sculpt::verify::{verify, VerifyOptions};

#[test]
fn every_artefact_agrees_and_a_swapped_one_is_caught() {
    let dir = tempfile::tempdir().unwrap();
    let ck = write_checkpoint(dir.path(), "lenet", &lenet5(), 0.9, 12);
    let out = dir.path().join("art");
    let opts = CompileOptions {
        calibration_samples: 128,
        ..CompileOptions::default()
    };
    compile(&ck, &out, None, &opts).unwrap();
    let test = load(&DataSource::Embedded).unwrap().test;
    let vo = VerifyOptions {
        limit: Some(300),
        ..VerifyOptions::default()
    };
    let r = verify(&out, &test, &vo).unwrap();
    println!("{}", r.table());
    assert!(r.passed);
    assert_eq!(r.samples, 300);
    let formats: Vec<&str> = r.rows.iter().map(|r| r.format.as_str()).collect();
    for f in [
        "int8-reference",
        "onnx",
        "onnx-sparse",
        "scb",
        "c",
        "scb-int8",
        "c-int8",
    ] {
        assert!(formats.contains(&f), "{f} missing from {formats:?}");
    }
    for row in &r.rows {
        assert_eq!(
            row.artefact.is_some(),
            !matches!(row.format.as_str(), "int8-reference" | "probe")
                && !row.format.starts_with("pass "),
            "{}",
            row.format
        );
        if row.artefact.is_some_and(|a| a.int8()) {
            assert_eq!(row.max_abs_dlogit, Some(0.0), "{}", row.format);
        }
    }
    assert!(r
        .rows
        .iter()
        .all(|x| x.passed != matches!(x.outcome, sculpt::verify::Outcome::Failed { .. })));
    let json = serde_json::to_string(&r).unwrap();
    assert!(json.contains("\"top1_agreement\""));

    // replace the sparse ONNX file by another model's: verify must report the disagreement
    let other = graph(&lenet5(), 0.9, 99);
    std::fs::write(
        out.join("model.sparse.onnx"),
        emit(&other, Variant::Sparse, None).unwrap(),
    )
    .unwrap();
    let r = verify(&out, &test, &vo).unwrap();
    println!("{}", r.table());
    assert!(!r.passed);
    let bad = r.rows.iter().find(|r| r.format == "onnx-sparse").unwrap();
    assert!(!bad.passed);
    assert!(
        matches!(
            bad.outcome,
            sculpt::verify::Outcome::Failed {
                max_abs_dlogit: Some(d),
                ..
            } if d > 0.0
        ),
        "{:?}",
        bad.outcome
    );
}
