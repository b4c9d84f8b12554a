//! The main job end to end: SCULPT training on the embedded digits, compilation for a Cortex-M4F class target,
//! and verification of every artefact.

use std::process::Command;

#[test]
fn pipeline_trains_compiles_and_verifies_every_format() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_sculpt"))
        .args([
            "--threads",
            "2",
            "pipeline",
            "--quiet",
            "--require-all",
            "--out",
        ])
        .arg(dir.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "pipeline failed:\n{stdout}\n{stderr}");
    for format in ["onnx ", "onnx-sparse", "scb ", "c ", "scb-int8", "c-int8"] {
        let row = stdout
            .lines()
            .find(|l| l.starts_with(format))
            .unwrap_or_else(|| panic!("no row for {format} in\n{stdout}"));
        assert!(row.contains(" ok "), "{row}");
    }
    assert!(stdout.contains("all artefacts agree"), "{stdout}");
    let acc: f64 = stdout
        .lines()
        .find_map(|l| l.strip_prefix("trained model: "))
        .and_then(|l| l.split('%').next())
        .and_then(|v| v.trim().parse().ok())
        .expect("trained accuracy line");
    assert!(acc >= 95.0, "sparse LeNet-5 reached only {acc}%");
    for f in [
        "model.onnx",
        "model.sparse.onnx",
        "model.scb",
        "model.int8.scb",
        "model.c",
        "model.h",
    ] {
        assert!(dir.path().join("artefacts").join(f).exists(), "{f} missing");
    }
    let density: f64 = serde_json::from_str::<serde_json::Value>(
        &std::fs::read_to_string(dir.path().join("run/summary.json")).unwrap(),
    )
    .unwrap()["density"]
        .as_f64()
        .unwrap();
    assert!((density - 0.1).abs() < 1e-3, "density {density}");
}
