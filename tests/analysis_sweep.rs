//! `sculpt sweep` end to end on tiny real runs: every point trained once, results table and aggregates consistent
//! with the per-run rows, plots written, finished points skipped on a re-run, an interrupted point resumed, and
//! bad sweep files rejected with a message.

use std::cell::Cell;
use std::path::Path;

use sculpt::analysis::sweep::{aggregate, run_sweep, ResultRow, SweepSpec};
use sculpt::engine::Device;
use sculpt::error::Result;
use sculpt::train::{Recipe, Run, RunSummary};

const SWEEP: &str = r#"
title = "tiny"
out = "out"
seeds = [0, 1]
sparsities = [0.8]

[base]
model = { name = "lenet300" }
data = { source = { kind = "embedded" }, validation = 0.1, train_limit = 512, test_limit = 256 }
train = { epochs = 1, batch_size = 64, seed = 0 }
schedule = { lr = 0.05, shape = "constant" }
method = { kind = "dense" }

[[run]]
name = "static"
group = "g"
method = { kind = "static", pai = { score = "random", allocation = "erk" } }

[[run]]
name = "cyclic"
group = "g"
method = { kind = "cyclic", cycles = 2, split = "constant", pai = { score = "random", allocation = "erk" } }
sparsities = [0.8, 0.9]

[[claim]]
text = "cyclic not worse"
better = "cyclic"
worse = "static"
relation = "not_worse"
sparsities = [0.8, 0.5]
"#;

fn write(dir: &Path, text: &str) -> std::path::PathBuf {
    let p = dir.join("sweep.toml");
    std::fs::write(&p, text).unwrap();
    p
}

/// Runs the sweep in `file`; with `stop_after`, every point trains at most that many epochs (as if the process
/// were killed then) and is left unfinished.
fn sweep(
    file: &Path,
    report: Option<&Path>,
    calls: &Cell<usize>,
    stop_after: Option<usize>,
) -> Result<Vec<ResultRow>> {
    let (spec, root) = SweepSpec::load(file)?;
    let train = |r: &Recipe, d: &Path| -> Result<RunSummary> {
        calls.set(calls.get() + 1);
        let mut run = Run::start_or_resume(r, Device::Cpu, d)?.quiet(true);
        match stop_after {
            None => run.run_to_end(),
            Some(k) => {
                for _ in 0..k {
                    run.run_epoch()?;
                }
                run.finish()
            }
        }
    };
    run_sweep(&spec, &root, report, &train, &mut |_| {}, "sculpt sweep")
}

#[test]
fn sweep_trains_each_point_once_and_writes_consistent_outputs() {
    let dir = tempfile::tempdir().unwrap();
    let file = write(dir.path(), SWEEP);
    let report = dir.path().join("docs/report.md");
    let calls = Cell::new(0);
    let rows = sweep(&file, Some(&report), &calls, None).unwrap();
    assert_eq!(calls.get(), 6, "2 seeds x (1 + 2) sparsities");
    assert_eq!(rows.len(), 6);
    for r in &rows {
        let want = 1.0 - r.sparsity;
        assert!(
            (r.density - want).abs() < 0.01,
            "{} density {}",
            r.name,
            r.density
        );
        assert!(
            r.test_acc > 0.3 && r.test_acc <= 1.0,
            "{} acc {}",
            r.name,
            r.test_acc
        );
    }
    let cyclic: Vec<&ResultRow> = rows.iter().filter(|r| r.name == "cyclic").collect();
    assert!(cyclic
        .iter()
        .all(|r| r.epochs == 2 && r.train_loss.len() == 2));

    let aggs = aggregate(&rows);
    assert_eq!(aggs.len(), 3);
    let a = aggs.iter().find(|a| a.name == "static").unwrap();
    let accs: Vec<f64> = rows
        .iter()
        .filter(|r| r.name == "static")
        .map(|r| r.test_acc)
        .collect();
    let mean = (accs[0] + accs[1]) / 2.0;
    let std = ((accs[0] - mean).powi(2) + (accs[1] - mean).powi(2)).sqrt();
    assert!((a.test_acc_mean - mean).abs() < 1e-12 && (a.test_acc_std - std).abs() < 1e-12);

    let out = dir.path().join("out");
    let csv = std::fs::read_to_string(out.join("results.csv")).unwrap();
    assert_eq!(csv.lines().count(), 7, "header + 6 rows");
    let json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("results.json")).unwrap()).unwrap();
    assert_eq!(json["rows"].as_array().unwrap().len(), 6);
    assert_eq!(json["aggregates"].as_array().unwrap().len(), 3);
    let md = std::fs::read_to_string(&report).unwrap();
    assert!(md.contains("static") && md.contains("cyclic") && md.contains("±"));
    assert!(md.contains("## Which orderings hold here"), "{md}");
    assert!(
        md.contains("| 50% |") && md.contains("no result"),
        "a sparsity without results"
    );
    assert!(md.contains("of 1 checks hold"), "{md}");
    let docs = report.parent().unwrap();
    let mut png = 0;
    let mut svg = 0;
    for e in std::fs::read_dir(docs).unwrap() {
        let p = e.unwrap().path();
        let bytes = std::fs::read(&p).unwrap();
        match p.extension().and_then(|e| e.to_str()) {
            Some("png") => {
                assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n", "{}", p.display());
                png += 1;
            }
            Some("svg") => {
                assert!(
                    String::from_utf8_lossy(&bytes).contains("<svg"),
                    "{}",
                    p.display()
                );
                svg += 1;
            }
            _ => {}
        }
    }
    assert!(
        png >= 2 && svg >= 2,
        "accuracy and loss plots as PNG and SVG ({png} png, {svg} svg)"
    );

    let again = Cell::new(0);
    let rows2 = sweep(&file, Some(&report), &again, None).unwrap();
    assert_eq!(again.get(), 0, "finished points are not trained again");
    assert_eq!(rows2, rows);
}

#[test]
fn an_interrupted_point_is_resumed_to_the_same_result() {
    let dir = tempfile::tempdir().unwrap();
    let text = SWEEP
        .replace("seeds = [0, 1]", "seeds = [3]")
        .replace("sparsities = [0.8, 0.9]", "sparsities = [0.9]")
        .replace("epochs = 1,", "epochs = 2,");
    let file = write(dir.path(), &text);
    let calls = Cell::new(0);
    let err = sweep(&file, None, &calls, Some(1)).unwrap_err();
    assert!(
        err.to_string().contains("stopped before completing"),
        "{err}"
    );
    let resumed = sweep(&file, None, &calls, None).unwrap();

    let fresh_dir = tempfile::tempdir().unwrap();
    let fresh_file = write(fresh_dir.path(), &text);
    let fresh = sweep(&fresh_file, None, &Cell::new(0), None).unwrap();
    assert_eq!(resumed.len(), fresh.len());
    for (a, b) in resumed.iter().zip(&fresh) {
        assert_eq!(
            (a.test_acc, a.final_train_loss),
            (b.test_acc, b.final_train_loss)
        );
    }
}

#[test]
fn bad_sweep_files_are_rejected_with_a_message() {
    let dir = tempfile::tempdir().unwrap();
    for (edit, needle) in [
        (SWEEP.replace("title =", "colour = 1\ntitle ="), "colour"),
        (
            SWEEP.replace("name = \"cyclic\"", "name = \"static\""),
            "twice",
        ),
        (
            SWEEP.replace("sparsities = [0.8, 0.9]", "sparsities = [0.8, 1.0]"),
            "sparsity",
        ),
        (SWEEP.replace("seeds = [0, 1]", "seeds = []"), "seeds"),
        (
            SWEEP.replace("kind = \"cyclic\"", "kind = \"cyclical\""),
            "cyclical",
        ),
        (
            SWEEP.replace("name = \"static\"", "name = \"../x\""),
            "plain directory",
        ),
        (
            SWEEP.replace("worse = \"static\"", "worse = \"statik\""),
            "statik",
        ),
        (
            SWEEP.replace("relation = \"not_worse\"", "relation = \"sideways\""),
            "sideways",
        ),
    ] {
        let file = write(dir.path(), &edit);
        let err = SweepSpec::load(&file)
            .and_then(|(s, root)| s.points(&root).map(|_| ()))
            .unwrap_err()
            .to_string();
        assert!(err.contains(needle), "expected '{needle}' in: {err}");
    }
}

/// Trains the points of `shard` of the sweep in `file`, counting the trainings of each point directory in
/// `counts`.
fn train_shard_counting(
    file: &Path,
    shard: &str,
    counts: &std::sync::Mutex<std::collections::BTreeMap<std::path::PathBuf, usize>>,
) -> sculpt::analysis::sweep::SweepOutcome {
    use sculpt::analysis::sweep::{train_shard, Participation};
    let (spec, root) = SweepSpec::load(file).unwrap();
    let train = |r: &Recipe, d: &Path| -> Result<RunSummary> {
        *counts.lock().unwrap().entry(d.to_path_buf()).or_default() += 1;
        Run::start_or_resume(r, Device::Cpu, d)?
            .quiet(true)
            .run_to_end()
    };
    let how = Participation {
        shard: shard.parse().unwrap(),
        ..Participation::default()
    };
    train_shard(&spec, &root, how, &train, &mut |_| {}).unwrap()
}

#[test]
fn processes_sharing_a_folder_train_each_point_exactly_once() {
    use sculpt::analysis::sweep::collect;
    let dir = tempfile::tempdir().unwrap();
    let file = write(dir.path(), SWEEP);
    let (spec, root) = SweepSpec::load(&file).unwrap();
    let points = spec.points(&root).unwrap();
    let counts = std::sync::Mutex::new(std::collections::BTreeMap::new());

    // Two processes over the whole sweep at once: the leases split the points between them.
    let (a, b) = std::thread::scope(|s| {
        let a = s.spawn(|| train_shard_counting(&file, "1/1", &counts));
        let b = s.spawn(|| train_shard_counting(&file, "1/1", &counts));
        (a.join().unwrap(), b.join().unwrap())
    });
    let counts = counts.into_inner().unwrap();
    assert_eq!(counts.len(), points.len(), "{counts:?}");
    assert!(counts.values().all(|&n| n == 1), "{counts:?}");
    // Each reports the points it found finished or trained, and leaves to the other those it holds.
    assert!(a.rows.len() + b.rows.len() >= 6 && a.busy + b.busy <= points.len());
    let (rows, missing) = collect(&spec, &root, None, "test").unwrap();
    assert!(missing.is_empty());
    assert_eq!(rows.len(), 6);
    for p in &points {
        assert!(!p.dir.join("lease").exists(), "a lease was left behind");
    }
}

#[test]
fn shards_partition_the_points_and_a_dead_holder_s_lease_is_taken_over() {
    use sculpt::analysis::sweep::{collect, Shard};
    let dir = tempfile::tempdir().unwrap();
    let file = write(dir.path(), SWEEP);
    let (spec, root) = SweepSpec::load(&file).unwrap();
    let points = spec.points(&root).unwrap();
    assert_eq!(points.len(), 6, "2 seeds x (1 + 2) sparsities");

    // A lease left by a killed process an hour ago on the first point of shard 2.
    let first_of_two = &points[1];
    std::fs::create_dir_all(&first_of_two.dir).unwrap();
    let lease = first_of_two.dir.join("lease");
    std::fs::write(&lease, "lost-node pid 4242 token 0").unwrap();
    std::fs::File::options()
        .write(true)
        .open(&lease)
        .unwrap()
        .set_modified(std::time::SystemTime::now() - std::time::Duration::from_secs(3600))
        .unwrap();

    let counts = std::sync::Mutex::new(std::collections::BTreeMap::new());
    let one = train_shard_counting(&file, "1/2", &counts);
    let (partial, missing) = collect(&spec, &root, None, "test").unwrap();
    assert_eq!(missing.len(), 3, "shard 2 has not run yet");
    assert_eq!(partial.len(), one.rows.len());
    let two = train_shard_counting(&file, "2/2", &counts);
    assert_eq!((one.busy, two.busy), (0, 0));
    let counts = counts.into_inner().unwrap();
    let shard = |s: &str| s.parse::<Shard>().unwrap();
    for (i, p) in points.iter().enumerate() {
        assert_eq!(counts.get(&p.dir), Some(&1), "point {i}");
        assert_eq!(shard("1/2").owns(i), i % 2 == 0);
    }
    assert_eq!(one.rows.len() + two.rows.len(), 6);
    assert!(!lease.exists());
    let (rows, missing) = collect(&spec, &root, None, "test").unwrap();
    assert!(missing.is_empty() && rows.len() == 6);

    for bad in ["0/2", "3/2", "2", "a/b", "1/0"] {
        assert!(bad.parse::<Shard>().is_err(), "{bad}");
    }
}

#[test]
fn cli_shards_started_together_then_collected() {
    let dir = tempfile::tempdir().unwrap();
    let file = write(dir.path(), SWEEP);
    let shard = |k: &str| {
        std::process::Command::new(env!("CARGO_BIN_EXE_sculpt"))
            .args([
                "--threads",
                "1",
                "sweep",
                file.to_str().unwrap(),
                "--quiet",
                "--shard",
                k,
            ])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap()
    };
    let (a, b) = (shard("1/2"), shard("2/2"));
    for child in [a, b] {
        let o = child.wait_with_output().unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        assert!(String::from_utf8_lossy(&o.stdout).contains("--collect"));
    }
    assert!(
        !dir.path().join("out/results.csv").exists(),
        "a shard wrote the tables"
    );
    let report = dir.path().join("report.md");
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_sculpt"))
        .args(["sweep", file.to_str().unwrap(), "--collect", "--report"])
        .arg(&report)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let csv = std::fs::read_to_string(dir.path().join("out/results.csv")).unwrap();
    assert_eq!(csv.lines().count(), 7, "header + 6 rows:\n{csv}");
    assert!(std::fs::read_to_string(&report).unwrap().contains("cyclic"));
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_sculpt"))
        .args(["sweep", file.to_str().unwrap(), "--shard", "3/2"])
        .output()
        .unwrap();
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("K/N"));
}
