//! The ONNX files sculpt writes against the reference checker (`onnx.checker` of the `onnx` Python package,
//! installed by scripts/install-test-deps.sh): the dense file passes the full check (with shape inference),
//! the sparse file the structural check, as formats/onnx.md states.

mod compile_util;

use std::process::Command;

use compile_util::*;
use sculpt::compile::emit::onnx::{emit, Variant};

const CHECK: &str = r#"
import sys, onnx
m = onnx.load(sys.argv[1])
onnx.checker.check_model(m)
print("structural ok")
try:
    onnx.checker.check_model(m, full_check=True)
    print("full ok")
except Exception as e:
    print("full failed:", str(e).splitlines()[0])
"#;

fn python() -> String {
    std::env::var("SCULPT_PYTHON").unwrap_or_else(|_| "python3".into())
}

fn have_onnx() -> bool {
    Command::new(python())
        .args(["-c", "import onnx"])
        .status()
        .is_ok_and(|s| s.success())
}

fn check(path: &std::path::Path) -> String {
    let out = Command::new(python())
        .args(["-c", CHECK])
        .arg(path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{} fails onnx.checker.check_model: {}",
        path.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn sparse_file_passes_the_structural_check_and_dense_the_full_one() {
    if !have_onnx() {
        assert!(
            std::env::var_os("CI").is_none(),
            "the onnx Python package is missing (scripts/install-test-deps.sh installs it)"
        );
        println!("SKIPPED: the onnx Python package is not installed");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let g = sculpt::compile::pipeline::build(
        graph(&resnet_small(), 0.9, 3),
        &sculpt::compile::pipeline::target_formats(None),
        None,
    )
    .unwrap();
    for (v, name) in [
        (Variant::Dense, "dense.onnx"),
        (Variant::Sparse, "sparse.onnx"),
    ] {
        let p = dir.path().join(name);
        std::fs::write(&p, emit(&g.float, v, None).unwrap()).unwrap();
        let r = check(&p);
        println!("{name}: {r}");
        assert!(r.contains("structural ok"));
        if v == Variant::Dense {
            assert!(r.contains("full ok"), "{r}");
        }
    }
}
