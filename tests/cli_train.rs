//! The `sculpt` binary: help, recipe flags, a short real run, resume, bench, and clear failures on bad input.

use std::path::Path;
use std::process::{Command, Output};

fn sculpt(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_sculpt"))
        .args(args)
        .output()
        .expect("the sculpt binary runs")
}

fn text(o: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

fn fails_with(args: &[&str], needles: &[&str]) {
    let o = sculpt(args);
    let (out, err) = text(&o);
    assert!(!o.status.success(), "{args:?} succeeded: {out}");
    assert!(!err.contains("panicked"), "{args:?} panicked: {err}");
    for n in needles {
        assert!(err.contains(n), "{args:?}: stderr lacks {n:?}: {err}");
    }
}

#[test]
fn help_lists_the_commands_and_flags() {
    let o = sculpt(&["--help"]);
    assert!(o.status.success());
    let (out, _) = text(&o);
    assert!(
        out.contains("train") && out.contains("bench") && out.contains("--threads"),
        "{out}"
    );
    let o = sculpt(&["train", "--help"]);
    assert!(o.status.success());
    let (out, _) = text(&o);
    for flag in [
        "--recipe",
        "--resume",
        "--model",
        "--epochs",
        "--batch-size",
        "--lr",
        "--seed",
        "--data",
        "--set",
    ] {
        assert!(out.contains(flag), "train --help lacks {flag}: {out}");
    }
}

#[test]
fn bad_input_fails_cleanly() {
    fails_with(&["train", "--recipe", "missing.toml"], &["missing.toml"]);
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, "[train]\nepochs = 2\nbatchsize = 3\n").unwrap();
    fails_with(
        &["train", "--recipe", bad.to_str().unwrap()],
        &["bad.toml", "batchsize"],
    );
    std::fs::write(&bad, "[train\n").unwrap();
    fails_with(&["train", "--recipe", bad.to_str().unwrap()], &["bad.toml"]);
    fails_with(
        &["train", "--model", "alexnet", "--print-recipe"],
        &["alexnet"],
    );
    fails_with(
        &["train", "--batch-size", "0", "--print-recipe"],
        &["batch_size"],
    );
    fails_with(
        &["train", "--method", "telepathy", "--print-recipe"],
        &["telepathy"],
    );
    fails_with(
        &["train", "--set", "train.epochs", "--print-recipe"],
        &["key=value"],
    );
    let out = dir.path().join("o");
    fails_with(
        &[
            "train",
            "--data",
            "idx:/nonexistent/mnist",
            "--out",
            out.to_str().unwrap(),
            "--quiet",
        ],
        &["/nonexistent/mnist"],
    );
    fails_with(
        &["train", "--resume", dir.path().to_str().unwrap()],
        &["no checkpoint"],
    );
    fails_with(&["--threads", "0", "train", "--print-recipe"], &["threads"]);
}

#[test]
fn flags_override_the_recipe() {
    let o = sculpt(&[
        "train",
        "--model",
        "resnet20",
        "--epochs",
        "7",
        "--lr",
        "0.2",
        "--data",
        "cifar100-coarse:/data/c100",
        "--hflip",
        "--crop-padding",
        "4",
        "--set",
        "schedule.min_lr=0.001",
        "--print-recipe",
    ]);
    let (out, err) = text(&o);
    assert!(o.status.success(), "{err}");
    let r = sculpt::train::Recipe::from_toml_str(&out, "printed").unwrap();
    assert_eq!(r.model.name, "resnet20");
    assert_eq!(r.train.epochs, 7);
    assert_eq!(r.schedule.lr, 0.2);
    assert_eq!(
        r.schedule.shape,
        sculpt::optim::schedule::Shape::Cosine { min_lr: 0.001 }
    );
    assert_eq!(
        r.data.source,
        sculpt::data::DataSource::Cifar100 {
            dir: "/data/c100".into(),
            coarse: true
        }
    );
    assert!(r.data.augment.hflip && r.data.augment.crop_padding == 4);
}

#[test]
fn a_short_run_trains_and_resumes_nothing_more() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run");
    let args = [
        "--threads",
        "1",
        "train",
        "--epochs",
        "1",
        "--set",
        "data.train_limit=256",
        "--set",
        "data.test_limit=100",
        "--out",
        out.to_str().unwrap(),
        "--quiet",
        "--json",
    ];
    let o = sculpt(&args);
    let (stdout, err) = text(&o);
    assert!(o.status.success(), "{err}");
    let s: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(s["completed"], true);
    assert_eq!(s["total_epochs"], 1);
    for f in [
        "metrics.jsonl",
        "checkpoint.json",
        "checkpoint.safetensors",
        "final.json",
        "final.safetensors",
        "recipe.toml",
    ] {
        assert!(Path::new(&out).join(f).is_file(), "{f} missing");
    }
    let o = sculpt(&[
        "train",
        "--resume",
        out.to_str().unwrap(),
        "--quiet",
        "--json",
    ]);
    let (stdout, err) = text(&o);
    assert!(o.status.success(), "{err}");
    let s: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(s["epochs_run"], 0);
    fails_with(
        &["train", "--resume", out.to_str().unwrap(), "--epochs", "3"],
        &["--resume"],
    );
}

#[test]
fn bench_reports_throughput() {
    let o = sculpt(&[
        "bench",
        "train",
        "--model",
        "lenet5",
        "--batch",
        "8",
        "--seconds",
        "0.2",
        "--json",
    ]);
    let (stdout, err) = text(&o);
    assert!(o.status.success(), "{err}");
    let r: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert!(r["images_per_s"].as_f64().unwrap() > 0.0);
    assert!(r["gflops"].as_f64().unwrap() > 0.0);
    let o = sculpt(&[
        "bench",
        "forward",
        "--model",
        "lenet5",
        "--batch",
        "8",
        "--seconds",
        "0.2",
    ]);
    let (stdout, err) = text(&o);
    assert!(o.status.success(), "{err}");
    assert!(
        stdout.contains("images/s") && stdout.contains("GFLOP/s"),
        "{stdout}"
    );
    let o = sculpt(&[
        "bench",
        "infer",
        "--model",
        "lenet5",
        "--sparsities",
        "0,0.95",
        "--seconds",
        "0.1",
        "--json",
    ]);
    let (stdout, err) = text(&o);
    assert!(o.status.success(), "{err}");
    let r: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    let rows = r.as_array().unwrap();
    assert_eq!(rows.len(), 2);
    for (row, sparsity) in rows.iter().zip([0.0, 0.95]) {
        assert_eq!(row["sparsity"].as_f64().unwrap(), sparsity);
        let runners = row["runners"].as_array().unwrap();
        assert_eq!(runners.len(), 3, "tract, runtime f32, runtime int8");
        for f in runners {
            assert!(f["latency_ms"].as_f64().unwrap() > 0.0);
            assert!(f["images_per_s"].as_f64().unwrap() > 0.0);
        }
        let bytes = |i: usize| runners[i]["bytes"].as_u64().unwrap();
        if sparsity > 0.9 {
            assert!(
                bytes(1) * 5 < bytes(0),
                "sparse .scb much smaller than the dense ONNX"
            );
        }
    }
    fails_with(
        &["bench", "infer", "--model", "lenet5", "--sparsities", "1.0"],
        &["sparsity"],
    );
    fails_with(
        &["bench", "train", "--model", "lenet5", "--batch", "0"],
        &["--batch"],
    );
    fails_with(
        &["bench", "train", "--model", "lenet5", "--input", "1,28"],
        &["C,H,W"],
    );
}

#[test]
fn a_killed_run_resumes_bit_identically() {
    let dir = tempfile::tempdir().unwrap();
    let (full, killed) = (dir.path().join("full"), dir.path().join("killed"));
    let args = |out: &Path| -> Vec<String> {
        [
            "--threads",
            "1",
            "train",
            "--epochs",
            "3",
            "--set",
            "data.train_limit=2000",
            "--set",
            "data.test_limit=200",
            "--quiet",
            "--out",
        ]
        .iter()
        .map(|s| s.to_string())
        .chain([out.to_str().unwrap().to_string()])
        .collect()
    };
    let o = Command::new(env!("CARGO_BIN_EXE_sculpt"))
        .args(args(&full))
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o).1);

    let mut child = Command::new(env!("CARGO_BIN_EXE_sculpt"))
        .args(args(&killed))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let t0 = std::time::Instant::now();
    while !killed.join("checkpoint.json").exists() {
        assert!(t0.elapsed().as_secs() < 120, "no checkpoint appeared");
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let o = sculpt(&[
        "--threads",
        "1",
        "train",
        "--resume",
        killed.to_str().unwrap(),
        "--quiet",
    ]);
    assert!(o.status.success(), "{}", text(&o).1);
    let a = std::fs::read(full.join("final.safetensors")).unwrap();
    let b = std::fs::read(killed.join("final.safetensors")).unwrap();
    assert!(a == b, "final weights differ after kill and resume");
    let lines = std::fs::read_to_string(killed.join("metrics.jsonl")).unwrap();
    assert_eq!(lines.lines().count(), 3);
}

/// Without the `tch` feature, every way of asking for a libtorch device (flag or recipe key, on each command
/// that trains or evaluates) exits non-zero with the build instructions, and writes nothing.
#[cfg(not(feature = "tch"))]
#[test]
fn libtorch_devices_without_the_feature_say_how_to_build_it() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run");
    let out = out.to_str().unwrap();
    let build = ["--features tch", "scripts/libtorch.sh"];
    for device in ["cuda", "cuda:1", "tch-cpu"] {
        let mut needles = vec![device];
        needles.extend(build);
        fails_with(&["train", "--device", device, "--out", out], &needles);
        let key = format!("train.device=\"{device}\"");
        fails_with(&["train", "--set", &key, "--out", out], &needles);
        fails_with(
            &[
                "bench",
                "train",
                "--model",
                "mlp",
                "--device",
                device,
                "--seconds",
                "0.1",
            ],
            &needles,
        );
    }
    fails_with(
        &["train", "--device", "cuda"],
        &["cuda:0", "--features tch"],
    );
    assert!(!Path::new(out).exists(), "a failed start wrote {out}");
    fails_with(
        &["train", "--device", "gpu"],
        &["unknown device", "tch-cpu"],
    );
}

#[test]
fn checkpoints_record_the_kernel_path_and_a_resume_on_another_warns() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run");
    let meta = train_one_tiny_epoch(&out, ("SCULPT_KERNEL_PATH", "portable"), &[]);
    assert_eq!(meta["kernel_path"], "portable");

    let resume = |path: &str| resume_tiny(&out, ("SCULPT_KERNEL_PATH", path), &[]);
    assert!(!resume("portable").contains("warning"));
    #[cfg(target_arch = "x86_64")]
    if std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma") {
        let err = resume("avx2");
        assert!(
            err.contains("warning")
                && err.contains("portable kernel path")
                && err.contains("SCULPT_KERNEL_PATH=portable"),
            "{err}"
        );
    }
}

#[test]
fn checkpoints_record_the_sparse_kernel_policy_and_a_resume_under_another_warns() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run");
    let meta = train_one_tiny_epoch(&out, NO_ENV, &["--sparse-kernels", "never"]);
    assert_eq!(meta["sparse_kernels"], "never");

    let resume = |policy: &str| resume_tiny(&out, NO_ENV, &["--sparse-kernels", policy]);
    assert!(!resume("never").contains("warning"));
    let err = resume("always");
    assert!(
        err.contains("warning")
            && err.contains("--sparse-kernels never")
            && err.contains("uses always"),
        "{err}"
    );
}

/// An environment variable that changes nothing, for [`train_one_tiny_epoch`] and [`resume_tiny`].
const NO_ENV: (&str, &str) = ("SCULPT_TEST_UNUSED", "");

/// Trains one epoch on 256 images into `out` with one thread, `env` set and the global flags `global`;
/// returns the checkpoint's metadata.
fn train_one_tiny_epoch(out: &Path, env: (&str, &str), global: &[&str]) -> serde_json::Value {
    let o = Command::new(env!("CARGO_BIN_EXE_sculpt"))
        .env(env.0, env.1)
        .args(["--threads", "1"])
        .args(global)
        .args(["train", "--epochs", "1", "--quiet"])
        .args([
            "--set",
            "data.train_limit=256",
            "--set",
            "data.test_limit=100",
        ])
        .arg("--out")
        .arg(out)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o).1);
    serde_json::from_slice(&std::fs::read(out.join("checkpoint.json")).unwrap()).unwrap()
}

/// Resumes the run in `out` like [`train_one_tiny_epoch`] started it; returns its stderr.
fn resume_tiny(out: &Path, env: (&str, &str), global: &[&str]) -> String {
    let o = Command::new(env!("CARGO_BIN_EXE_sculpt"))
        .env(env.0, env.1)
        .args(["--threads", "1"])
        .args(global)
        .args(["train", "--quiet", "--resume"])
        .arg(out)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o).1);
    text(&o).1
}
