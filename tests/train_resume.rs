//! Resume: a run stopped after any epoch (mid-phase, at a phase boundary, inside a multi-phase method with
//! masks, rewinding and its own random stream) and resumed ends with bit-identical weights; bad resumes are
//! clear errors.

use std::path::Path;

use ndarray::ArrayD;
use rand::Rng;
use sculpt::engine::{Device, Network};
use sculpt::error::{Error, Result};
use sculpt::method::{Method, MethodCtx, Phase};
use sculpt::optim::Schedule;
use sculpt::sparsity::Mask;
use sculpt::train::{self, load_checkpoint, read_metrics, Override, Recipe, Run, RunSummary};

fn tiny_recipe() -> Recipe {
    Recipe::load(
        None,
        &[
            Override::parse("model.name=lenet5").unwrap(),
            Override::parse("train.epochs=2").unwrap(),
            Override::parse("train.batch_size=64").unwrap(),
            Override::parse("train.seed=11").unwrap(),
            Override::parse("data.train_limit=384").unwrap(),
            Override::parse("data.test_limit=200").unwrap(),
            Override::parse("data.validation=0.02").unwrap(),
            Override::parse("data.augment={ crop_padding = 2, hflip = false }").unwrap(),
            Override::parse("schedule.lr=0.05").unwrap(),
        ],
    )
    .unwrap()
}

/// A two-phase procedure in the manner of rewinding methods: remember the weights at the start, train,
/// prune half of every weight (magnitude plus noise from the method's random stream), rewind the survivors to
/// the remembered weights, train again with a different schedule and the momentum carried over; counts steps.
#[derive(Default)]
struct PruneRewind {
    phase: usize,
    steps: usize,
    theta0: Vec<(String, ArrayD<f32>)>,
}

impl Method for PruneRewind {
    fn next_phase(&mut self, net: &mut dyn Network, ctx: &mut MethodCtx) -> Result<Option<Phase>> {
        self.phase += 1;
        match self.phase {
            1 => {
                for t in net.tensors().to_vec().iter().filter(|t| t.is_prunable()) {
                    self.theta0.push((t.path.clone(), net.read(&t.path)?));
                }
                Ok(Some(Phase {
                    label: "train".into(),
                    epochs: ctx.epochs,
                    schedule: ctx.schedule.clone(),
                    reset_optimizer: true,
                }))
            }
            2 => {
                let (x, _) = (ctx.sample_batch)(8);
                assert_eq!(x.dim().0, 8);
                for (path, w0) in &self.theta0 {
                    let w = net.read(path)?;
                    let scores: Vec<f32> = w
                        .iter()
                        .map(|v| v.abs() + 1e-3 * ctx.rng.gen::<f32>())
                        .collect();
                    let mut sorted = scores.clone();
                    sorted.sort_by(|a, b| a.total_cmp(b));
                    let cut = sorted[sorted.len() / 2];
                    let keep: Vec<bool> = scores.iter().map(|&s| s >= cut).collect();
                    net.set_mask(path, Some(&Mask::from_keep(w.shape(), &keep)))?;
                    net.write(path, w0.view())?;
                }
                Ok(Some(Phase {
                    label: "retrain".into(),
                    epochs: 2,
                    schedule: Schedule::constant(0.02),
                    reset_optimizer: false,
                }))
            }
            _ => Ok(None),
        }
    }

    fn after_step(
        &mut self,
        _net: &mut dyn Network,
        _step: usize,
        _ctx: &mut MethodCtx,
    ) -> Result<()> {
        self.steps += 1;
        Ok(())
    }

    fn state(&self) -> serde_json::Value {
        serde_json::json!({ "phase": self.phase, "steps": self.steps })
    }

    fn tensors(&self) -> Vec<(String, ArrayD<f32>)> {
        self.theta0
            .iter()
            .map(|(p, a)| (format!("theta0.{p}"), a.clone()))
            .collect()
    }

    fn restore(
        &mut self,
        state: &serde_json::Value,
        tensors: Vec<(String, ArrayD<f32>)>,
    ) -> Result<()> {
        let get = |k: &str| {
            state[k]
                .as_u64()
                .ok_or_else(|| Error::Invalid(format!("state lacks {k}")))
        };
        self.phase = get("phase")? as usize;
        self.steps = get("steps")? as usize;
        self.theta0 = tensors
            .into_iter()
            .map(|(n, a)| (n.strip_prefix("theta0.").unwrap().to_string(), a))
            .collect();
        Ok(())
    }
}

/// Trains `recipe` with [`PruneRewind`] in `out` (resuming the run there when `resume`), for at most `stop`
/// epochs of this invocation (then dropped, as if killed).
fn run_custom(recipe: &Recipe, out: &Path, resume: bool, stop: Option<usize>) -> RunSummary {
    let method = Box::new(PruneRewind::default()) as Box<dyn Method>;
    let run = if resume {
        Run::resume_with(out, Device::Cpu, method)
    } else {
        Run::start_with(recipe, Device::Cpu, out, method)
    };
    stop_after(run.unwrap().quiet(true), stop).unwrap()
}

/// Runs to the end, or for at most `stop` epochs.
fn stop_after(mut run: Run, stop: Option<usize>) -> Result<RunSummary> {
    match stop {
        None => run.run_to_end(),
        Some(k) => {
            for _ in 0..k {
                if run.run_epoch()?.is_none() {
                    break;
                }
            }
            run.finish()
        }
    }
}

fn final_bytes(out: &Path) -> Vec<u8> {
    std::fs::read(out.join("final.safetensors")).unwrap()
}

fn train_losses(out: &Path) -> Vec<(usize, u64)> {
    read_metrics(&out.join("metrics.jsonl"))
        .unwrap()
        .iter()
        .map(|m| (m.global_epoch, m.train_loss.to_bits()))
        .collect()
}

#[test]
fn multi_phase_method_resumes_bit_identically() {
    let recipe = tiny_recipe();
    let root = tempfile::tempdir().unwrap();

    let full = root.path().join("full");
    let s = run_custom(&recipe, &full, false, None);
    assert!(s.completed);
    assert_eq!(s.total_epochs, 4);
    assert!((s.density - 0.5).abs() < 0.01, "density {}", s.density);
    let reference = final_bytes(&full);
    let ck = load_checkpoint(&full.join("final.safetensors")).unwrap();
    let ts = ck.meta.training.unwrap();
    assert_eq!(ts.method_state["steps"], serde_json::json!(s.total_steps));
    assert!(ck
        .method_tensors
        .iter()
        .any(|(n, _)| n == "theta0.conv1.weight"));
    assert_eq!(ck.masks.len(), 5);

    // Stopped mid-phase (after 1 epoch), then inside phase 2 (after 3), then to the end.
    let a = root.path().join("a");
    let s1 = run_custom(&recipe, &a, false, Some(1));
    assert!(!s1.completed && s1.total_epochs == 1 && s1.final_test_acc.is_none());
    assert!(!a.join("final.safetensors").exists());
    let s2 = run_custom(&recipe, &a, true, Some(2));
    assert_eq!((s2.epochs_run, s2.total_epochs), (2, 3));
    let s3 = run_custom(&recipe, &a, true, None);
    assert!(s3.completed && s3.epochs_run == 1 && s3.total_epochs == 4);
    assert!(
        final_bytes(&a) == reference,
        "weights differ after resuming mid-phase"
    );
    assert_eq!(s3.final_test_acc, s.final_test_acc);
    assert_eq!(train_losses(&a), train_losses(&full));

    // Stopped exactly at the phase boundary, where the method prunes and rewinds on resume.
    let b = root.path().join("b");
    run_custom(&recipe, &b, false, Some(2));
    let ck = load_checkpoint(&b.join("checkpoint")).unwrap();
    assert_eq!(ck.masks.len(), 0, "no masks before the prune");
    let s = run_custom(&recipe, &b, true, None);
    assert!(s.completed);
    assert!(
        final_bytes(&b) == reference,
        "weights differ after resuming at a phase boundary"
    );

    // A metrics line written after the last checkpoint (a kill between the two) is dropped on resume.
    let c = root.path().join("c");
    run_custom(&recipe, &c, false, Some(1));
    let mut log = std::fs::read_to_string(c.join("metrics.jsonl")).unwrap();
    let first = log
        .lines()
        .next()
        .unwrap()
        .replace("\"global_epoch\":1", "\"global_epoch\":2");
    log.push_str(&first);
    log.push('\n');
    std::fs::write(c.join("metrics.jsonl"), log).unwrap();
    run_custom(&recipe, &c, true, None);
    assert_eq!(train_losses(&c), train_losses(&full));
}

#[test]
fn dense_recipe_resumes_through_the_public_entry_points() {
    let recipe = tiny_recipe();
    let root = tempfile::tempdir().unwrap();
    let full = root.path().join("full");
    let s = Run::start(&recipe, Device::Cpu, &full)
        .unwrap()
        .quiet(true)
        .run_to_end()
        .unwrap();
    assert!(s.completed && s.total_epochs == 2);
    assert_eq!(s.final_checkpoint, full.join("final.safetensors"));

    let part = root.path().join("part");
    let run = Run::start(&recipe, Device::Cpu, &part).unwrap().quiet(true);
    let s1 = stop_after(run, Some(1)).unwrap();
    assert!(!s1.completed);
    assert_eq!(train::resume_recipe(&part).unwrap(), recipe);
    let resume = || Run::resume(&part, Device::Cpu).unwrap().quiet(true);
    assert_eq!(resume().recipe(), &recipe);
    assert_eq!(resume().state().global_epoch, 1);
    let s2 = resume().run_to_end().unwrap();
    assert!(s2.completed && s2.epochs_run == 1);
    assert!(final_bytes(&part) == final_bytes(&full));
    assert_eq!(s2.final_test_acc, s.final_test_acc);
    assert_eq!(s2.best_val_acc, s.best_val_acc);

    // Resuming a finished run trains nothing more.
    let mut done = resume();
    assert!(done.is_complete());
    assert!(done.run_epoch().unwrap().is_none());
    let s3 = done.finish().unwrap();
    assert!(s3.completed && s3.epochs_run == 0);
    assert!(final_bytes(&part) == final_bytes(&full));

    // start_or_resume continues the stopped run, and starts afresh where there is none.
    let other = root.path().join("other");
    stop_after(
        Run::start(&recipe, Device::Cpu, &other)
            .unwrap()
            .quiet(true),
        Some(1),
    )
    .unwrap();
    let s4 = Run::start_or_resume(&recipe, Device::Cpu, &other)
        .unwrap()
        .quiet(true)
        .run_to_end()
        .unwrap();
    assert_eq!(s4.epochs_run, 1);
    assert!(final_bytes(&other) == final_bytes(&full));
    let fresh = root.path().join("fresh");
    let s5 = Run::start_or_resume(&recipe, Device::Cpu, &fresh)
        .unwrap()
        .quiet(true);
    assert_eq!(s5.state().global_epoch, 0);
}

#[test]
fn bad_resumes_are_clear_errors() {
    let root = tempfile::tempdir().unwrap();
    let err = |r: Result<Run>| match r {
        Err(e) => e.to_string(),
        Ok(_) => panic!("the resume succeeded"),
    };
    let e = err(Run::resume(&root.path().join("absent"), Device::Cpu));
    assert!(
        e.contains("absent") && e.contains("no such directory"),
        "{e}"
    );
    let empty = root.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    let e = err(Run::resume(&empty, Device::Cpu));
    assert!(e.contains("no checkpoint"), "{e}");

    let recipe = tiny_recipe();
    let out = root.path().join("run");
    stop_after(
        Run::start(&recipe, Device::Cpu, &out).unwrap().quiet(true),
        Some(1),
    )
    .unwrap();

    // Another model, another recipe for the same model: the stored recipe differs.
    let mut other = recipe.clone();
    other.model.name = "lenet300".into();
    let e = err(Run::start_or_resume(&other, Device::Cpu, &out));
    assert!(
        e.contains("different recipe") && e.contains("checkpoint.json"),
        "{e}"
    );
    let mut other = recipe.clone();
    other.train.seed = 99;
    let e = err(Run::start_or_resume(&other, Device::Cpu, &out));
    assert!(e.contains("different recipe"), "{e}");

    // A checkpoint of another model does not load into this run's network.
    let ck = load_checkpoint(&out.join("checkpoint")).unwrap();
    let spec = sculpt::nn::ModelSpec::from_name("lenet300", [1, 28, 28], 10).unwrap();
    let mut net = Device::Cpu.network(&spec, 0).unwrap();
    let e = ck
        .apply_to(net.as_mut(), &out.join("checkpoint.json"))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("model") && e.contains("lenet5") && e.contains("checkpoint.json"),
        "{e}"
    );

    // A corrupt checkpoint.
    let st = out.join("checkpoint.safetensors");
    let bytes = std::fs::read(&st).unwrap();
    std::fs::write(&st, &bytes[..bytes.len() - 100]).unwrap();
    let e = err(Run::resume(&out, Device::Cpu));
    assert!(e.contains("checkpoint.safetensors"), "{e}");
}

/// Every file of a run directory by name, except the summary (which names its own directory).
fn run_files(out: &Path) -> Vec<(String, Vec<u8>)> {
    let mut files: Vec<(String, Vec<u8>)> = std::fs::read_dir(out)
        .unwrap()
        .map(|e| e.unwrap())
        .filter(|e| e.file_name() != "summary.json")
        .map(|e| {
            let bytes = std::fs::read(e.path()).unwrap();
            (e.file_name().to_string_lossy().into_owned(), bytes)
        })
        .collect();
    files.sort();
    files
}

/// The summary without the fields that name the directory or time or count this invocation's epochs.
fn comparable(mut s: RunSummary) -> RunSummary {
    s.final_checkpoint = Default::default();
    s.metrics = Default::default();
    s.epochs_run = 0;
    s.mean_epoch_seconds = 0.0;
    s
}

#[test]
fn a_kill_at_any_write_resumes_to_the_same_bytes() {
    use sculpt::fsio::fault;
    let recipe = tiny_recipe();
    let root = tempfile::tempdir().unwrap();
    let full = root.path().join("full");
    fault::count();
    let reference = comparable(run_custom(&recipe, &full, false, None));
    let steps = fault::steps();
    assert!(steps > 40, "only {steps} write steps in a four-epoch run");
    let metrics_without_timings = |out: &Path| -> Vec<String> {
        read_metrics(&out.join("metrics.jsonl"))
            .unwrap()
            .into_iter()
            .map(|mut m| {
                m.seconds = 0.0;
                m.images_per_s = 0.0;
                m.gflops = 0.0;
                serde_json::to_string(&m).unwrap()
            })
            .collect()
    };
    let mut expected = run_files(&full);
    expected.retain(|(n, _)| n != "metrics.jsonl");

    for k in 0..steps {
        let out = root.path().join(format!("kill-{k}"));
        fault::arm(k);
        let method = Box::new(PruneRewind::default()) as Box<dyn Method>;
        let killed = Run::start_with(&recipe, Device::Cpu, &out, method)
            .and_then(|run| run.quiet(true).run_to_end());
        assert!(killed.is_err(), "write step {k} was not killed");
        fault::count();
        let method = Box::new(PruneRewind::default()) as Box<dyn Method>;
        let resumed = if out.join("checkpoint.safetensors").is_file() {
            Run::resume_with(&out, Device::Cpu, method)
        } else {
            Run::start_with(&recipe, Device::Cpu, &out, method)
        };
        let s = resumed
            .and_then(|run| run.quiet(true).run_to_end())
            .unwrap_or_else(|e| panic!("resume after a kill at write step {k}: {e}"));
        assert_eq!(comparable(s), reference, "summary after a kill at step {k}");
        let mut files = run_files(&out);
        files.retain(|(n, _)| n != "metrics.jsonl");
        let names = |f: &[(String, Vec<u8>)]| f.iter().map(|(n, _)| n.clone()).collect::<Vec<_>>();
        assert_eq!(
            names(&files),
            names(&expected),
            "files after a kill at step {k}"
        );
        for ((name, got), (_, want)) in files.iter().zip(&expected) {
            assert!(got == want, "{name} differs after a kill at write step {k}");
        }
        assert_eq!(
            metrics_without_timings(&out),
            metrics_without_timings(&full),
            "metrics after a kill at step {k}"
        );
    }

    // Resuming the complete run writes nothing at all.
    let before = run_files(&full);
    let summary_before = std::fs::read(full.join("summary.json")).unwrap();
    fault::count();
    let s = run_custom(&recipe, &full, true, None);
    assert_eq!(
        fault::steps(),
        0,
        "the resume of a finished run wrote files"
    );
    assert!(s.completed && s.epochs_run == 0);
    assert_eq!(comparable(s), reference);
    assert!(run_files(&full) == before);
    assert_eq!(
        std::fs::read(full.join("summary.json")).unwrap(),
        summary_before
    );
}

#[test]
fn stale_temporaries_are_removed_and_a_stale_metadata_copy_repaired() {
    let recipe = tiny_recipe();
    let root = tempfile::tempdir().unwrap();
    let out = root.path().join("run");
    run_custom(&recipe, &out, false, Some(1));
    let junk = out.join(".sculpt-tmpAbC123");
    std::fs::write(&junk, vec![0u8; 4096]).unwrap();
    let kept = out.join("notes.txt");
    std::fs::write(&kept, b"mine").unwrap();
    let json = out.join("checkpoint.json");
    let good = std::fs::read(&json).unwrap();
    std::fs::write(&json, b"{ \"format\": \"stale\" }").unwrap();

    let run = Run::resume_with(&out, Device::Cpu, Box::new(PruneRewind::default())).unwrap();
    assert!(!junk.exists(), "the stale temporary file is still there");
    assert_eq!(std::fs::read(&kept).unwrap(), b"mine");
    assert_eq!(std::fs::read(&json).unwrap(), good);
    assert_eq!(run.state().global_epoch, 1);
}

#[test]
fn training_state_is_covered_by_the_digest_and_range_checked() {
    let recipe = tiny_recipe();
    let root = tempfile::tempdir().unwrap();
    let out = root.path().join("run");
    run_custom(&recipe, &out, false, Some(1));
    let st = out.join("checkpoint.safetensors");
    let bytes = std::fs::read(&st).unwrap();

    // The epoch counter inside the header, changed in place: the digest no longer matches.
    let key = b"\\\"global_epoch\\\":";
    let at = bytes
        .windows(key.len())
        .position(|w| w == key)
        .expect("the embedded metadata holds global_epoch");
    let mut tampered = bytes.clone();
    let digit = at + key.len();
    assert_eq!(tampered[digit], b'1');
    tampered[digit] = b'7';
    std::fs::write(&st, &tampered).unwrap();
    let e = load_checkpoint(&st).unwrap_err().to_string();
    assert!(
        e.contains("checkpoint.safetensors") && e.contains("digest"),
        "{e}"
    );

    // Out-of-range counters, written with a valid digest, are refused by the range check.
    std::fs::write(&st, &bytes).unwrap();
    let mut ck = load_checkpoint(&st).unwrap();
    let state = ck.meta.training.as_mut().unwrap();
    state.epoch_in_phase = 9;
    let forged = root.path().join("forged");
    ck.save(&forged).unwrap();
    let e = load_checkpoint(&forged).unwrap_err().to_string();
    assert!(e.contains("epoch_in_phase 9"), "{e}");

    let mut ck = load_checkpoint(&st).unwrap();
    ck.meta.training.as_mut().unwrap().global_step += 1;
    ck.save(&forged).unwrap();
    let e = load_checkpoint(&forged).unwrap_err().to_string();
    assert!(e.contains("global_step"), "{e}");

    // A non-finite optimiser buffer is refused as a non-finite weight is.
    let mut ck = load_checkpoint(&st).unwrap();
    assert!(!ck.momentum.is_empty());
    ck.momentum[0].1.as_slice_mut().unwrap()[3] = f32::INFINITY;
    ck.save(&forged).unwrap();
    let e = load_checkpoint(&forged).unwrap_err().to_string();
    assert!(e.contains("momentum") && e.contains("inf"), "{e}");
}
