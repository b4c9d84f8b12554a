//! The training loop: drives a [`Method`] over a [`Network`], phase by phase and epoch by epoch, evaluates,
//! logs metrics as JSON lines and writes a checkpoint at the end of every epoch, from which a run resumes
//! bit-identically.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::time::Instant;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use ndarray::{Array4, ArrayD};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::Serialize;

use crate::data::{self, Dataset, Normalization};
use crate::engine::bench::useful_macs;
use crate::engine::cpu::CpuNetwork;
use crate::engine::{GradientMode, Network};
use crate::error::{Error, Result};
use crate::method::{Method, MethodCtx, Phase};
use crate::nn::loss::{count_correct, cross_entropy};
use crate::nn::ModelSpec;
use crate::train::checkpoint::{
    checkpoint_paths, load_checkpoint, write_atomic, Checkpoint, CheckpointMeta, RngState,
    TrainState, FORMAT, VERSION,
};
use crate::train::metrics::{EpochMetrics, MetricsLog};
use crate::train::recipe::Recipe;

/// File stem of the checkpoint rewritten after every epoch.
pub const CHECKPOINT: &str = "checkpoint";
/// File stem of the checkpoint written when the run completes.
pub const FINAL: &str = "final";
/// The metrics log.
pub const METRICS: &str = "metrics.jsonl";

/// How to run (not what to train: that is the recipe).
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// No progress bar and no per-epoch lines on stderr.
    pub quiet: bool,
    /// Continue from `OUT/checkpoint.*` instead of starting afresh.
    pub resume: bool,
    /// Stop (as if killed) after this many epochs of this invocation, leaving the per-epoch checkpoint; for tests.
    pub stop_after_epochs: Option<usize>,
}

/// What a run achieved.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RunSummary {
    /// Test accuracy and loss of the final weights (`None` when the run stopped before completing).
    pub final_test_acc: Option<f64>,
    pub final_test_loss: Option<f64>,
    /// Validation accuracy of the final weights, when there is a validation split and the run completed.
    pub final_val_acc: Option<f64>,
    /// Best validation accuracy over all evaluations and the global epoch (1-based) it was reached at.
    pub best_val_acc: Option<f64>,
    pub best_val_epoch: Option<usize>,
    /// The last evaluated test accuracy (also set when the run stopped early).
    pub last_test_acc: Option<f64>,
    /// `OUT/final.safetensors` when the run completed, else the per-epoch checkpoint.
    pub final_checkpoint: PathBuf,
    /// Epochs trained by this invocation.
    pub epochs_run: usize,
    /// Epochs trained over the whole run, including before a resume.
    pub total_epochs: usize,
    pub total_steps: usize,
    /// The method handed out no further phase.
    pub completed: bool,
    /// Fraction of prunable weights that are kept.
    pub density: f64,
    /// Mean training time of one epoch of this invocation (evaluation excluded), seconds.
    pub mean_epoch_seconds: f64,
    pub metrics: PathBuf,
}

/// Builds the network a run trains: the model and the seed of its initialisation.
pub type NetFactory<'a> = dyn Fn(&ModelSpec, u64) -> Result<Box<dyn Network>> + 'a;

/// Trains `recipe` with the CPU engine, writing metrics and checkpoints into `out_dir`.
pub fn run(recipe: &Recipe, out_dir: &Path, opts: &RunOptions) -> Result<RunSummary> {
    run_with(recipe, out_dir, opts, &|spec, seed| {
        Ok(Box::new(CpuNetwork::new(spec, seed)?) as Box<dyn Network>)
    })
}

/// Continues the run in `out_dir` with the recipe stored in its checkpoint.
pub fn resume(out_dir: &Path, opts: &RunOptions) -> Result<RunSummary> {
    let recipe = resume_recipe(out_dir)?;
    run(
        &recipe,
        out_dir,
        &RunOptions {
            resume: true,
            ..opts.clone()
        },
    )
}

/// The recipe stored in the per-epoch checkpoint of `out_dir`.
pub fn resume_recipe(out_dir: &Path) -> Result<Recipe> {
    let ckpt = resume_checkpoint(out_dir)?;
    let (_, json) = checkpoint_paths(&out_dir.join(CHECKPOINT));
    ckpt.meta.recipe.ok_or_else(|| Error::Checkpoint {
        path: json,
        msg: "holds no recipe, so it cannot be resumed".into(),
    })
}

fn resume_checkpoint(out_dir: &Path) -> Result<Checkpoint> {
    let (st, json) = checkpoint_paths(&out_dir.join(CHECKPOINT));
    if !out_dir.is_dir() {
        return Err(Error::Checkpoint {
            path: out_dir.to_path_buf(),
            msg: "cannot resume: no such directory".into(),
        });
    }
    if !st.is_file() || !json.is_file() {
        return Err(Error::Checkpoint {
            path: out_dir.to_path_buf(),
            msg: format!(
                "cannot resume: the directory holds no checkpoint ({} and {})",
                st.display(),
                json.display()
            ),
        });
    }
    load_checkpoint(&st)
}

/// The datasets and preprocessing of a run, derived from the recipe alone.
struct RunData {
    train: Dataset,
    val: Option<Dataset>,
    test: Dataset,
    norm: Normalization,
}

fn prepare_data(recipe: &Recipe) -> Result<RunData> {
    let splits = data::load(&recipe.data.source)?;
    let seed = recipe.train.seed;
    let (mut train, val) = if recipe.data.validation > 0.0 {
        let (t, v) = splits
            .train
            .split_validation(recipe.data.validation, seed)?;
        (t, Some(v))
    } else {
        (splits.train, None)
    };
    if let Some(n) = recipe.data.train_limit {
        if n < train.len() {
            train = train.subset(&(0..n).collect::<Vec<_>>());
        }
    }
    let mut test = splits.test;
    if let Some(n) = recipe.data.test_limit {
        if n < test.len() {
            test = test.subset(&(0..n).collect::<Vec<_>>());
        }
    }
    if train.len() < recipe.train.batch_size {
        return Err(Error::Recipe(format!(
            "train.batch_size {} exceeds the {} training images",
            recipe.train.batch_size,
            train.len()
        )));
    }
    let norm = Normalization::from_dataset(&train);
    Ok(RunData {
        train,
        val,
        test,
        norm,
    })
}

/// Mean loss (no label smoothing) and accuracy of the network's eval-mode predictions on `ds`.
pub fn evaluate(
    net: &mut dyn Network,
    ds: &Dataset,
    norm: &Normalization,
    batch: usize,
) -> Result<(f64, f64)> {
    if ds.is_empty() {
        return Ok((0.0, 0.0));
    }
    let mut loss = 0.0;
    let mut correct = 0usize;
    let idx: Vec<usize> = (0..ds.len()).collect();
    for chunk in idx.chunks(batch.max(1)) {
        let (x, y) = data::make_batch(ds, chunk, norm, None, 0);
        let logits = net.predict(x.view())?;
        loss += cross_entropy(logits.view(), &y, 0.0).0 * chunk.len() as f64;
        correct += count_correct(logits.view(), &y);
    }
    Ok((loss / ds.len() as f64, correct as f64 / ds.len() as f64))
}

/// Fraction of prunable weights kept by the masks (1 when there are none).
pub fn density(net: &dyn Network) -> f64 {
    let (mut kept, mut total) = (0usize, 0usize);
    for t in net.tensors().iter().filter(|t| t.is_prunable()) {
        let n: usize = t.shape.iter().product();
        total += n;
        kept += net.mask(&t.path).map_or(n, |m| m.nnz());
    }
    if total == 0 {
        1.0
    } else {
        kept as f64 / total as f64
    }
}

/// The method's random stream for a run seeded with `seed`.
fn method_rng(seed: u64) -> ChaCha8Rng {
    ChaCha8Rng::seed_from_u64(seed ^ 0x6d65_7468_6f64_5f72)
}

/// A deterministic, unaugmented batch of `size` training images for methods' score computations: the first
/// `size` images of a fixed seeded order (cycling when `size` exceeds the training set).
fn sample_batch(
    train: &Dataset,
    norm: &Normalization,
    seed: u64,
    size: usize,
) -> (Array4<f32>, Vec<u32>) {
    let order = data::epoch_order(train.len(), seed ^ 0x5ca1_ab1e_0000_0000, u64::MAX >> 2);
    let idx: Vec<usize> = (0..size).map(|i| order[i % order.len()]).collect();
    data::make_batch(train, &idx, norm, None, 0)
}

fn method_kind(recipe: &Recipe) -> Option<String> {
    serde_json::to_value(&recipe.method)
        .ok()
        .and_then(|v| v.get("kind").and_then(|k| k.as_str()).map(str::to_string))
}

/// Builds the method a run drives (normally [`crate::method::MethodConfig::build`] of the recipe's method).
pub type MethodFactory<'a> = dyn Fn(&Recipe) -> Box<dyn Method> + 'a;

/// Like [`run`], with the network built by `make_net` (another engine, or a test double).
pub fn run_with(
    recipe: &Recipe,
    out_dir: &Path,
    opts: &RunOptions,
    make_net: &NetFactory,
) -> Result<RunSummary> {
    run_custom(recipe, out_dir, opts, make_net, &|r: &Recipe| {
        r.method.build()
    })
}

/// Like [`run_with`], with the method built by `make_method` (for procedures outside the recipe schema, and
/// for tests of the loop itself).
pub fn run_custom(
    recipe: &Recipe,
    out_dir: &Path,
    opts: &RunOptions,
    make_net: &NetFactory,
    make_method: &MethodFactory,
) -> Result<RunSummary> {
    recipe.validate()?;
    let resumed = if opts.resume {
        Some(resume_checkpoint(out_dir)?)
    } else {
        None
    };
    std::fs::create_dir_all(out_dir).map_err(|e| Error::io(out_dir, e))?;
    let ckpt_path = out_dir.join(CHECKPOINT);
    let (_, ckpt_json) = checkpoint_paths(&ckpt_path);

    let rd = prepare_data(recipe)?;
    let seed = recipe.train.seed;
    let spec = recipe.model_spec(rd.train.shape, rd.train.classes)?;
    let mut net = make_net(&spec, seed)?;
    let mut method: Box<dyn Method> = make_method(recipe);
    let mut rng = method_rng(seed);
    let bs = recipe.train.batch_size;
    let spe = rd.train.len() / bs;
    let mut norm = rd.norm.clone();

    let mut state = TrainState {
        phase_index: 0,
        phase: None,
        epoch_in_phase: 0,
        global_epoch: 0,
        global_step: 0,
        steps_per_epoch: spe,
        finished: false,
        method_state: serde_json::Value::Null,
        rng: RngState::capture(&rng),
        best_val: None,
        last_val_acc: None,
        last_test_acc: None,
    };

    let metrics_path = out_dir.join(METRICS);
    let mut log = match &resumed {
        Some(ckpt) => {
            ckpt.apply_to(net.as_mut(), &ckpt_json)?;
            if ckpt.meta.recipe.as_ref() != Some(recipe) {
                return Err(Error::Checkpoint {
                    path: ckpt_json.clone(),
                    msg: "was written by a different recipe; resume with the recipe stored in the checkpoint".into(),
                });
            }
            let ts = ckpt
                .meta
                .training
                .clone()
                .ok_or_else(|| Error::Checkpoint {
                    path: ckpt_json.clone(),
                    msg: "holds no training state".into(),
                })?;
            if ts.steps_per_epoch != spe {
                return Err(Error::Checkpoint {
                    path: ckpt_json.clone(),
                    msg: format!(
                        "was written with {} steps per epoch but the data now gives {spe}; the dataset changed",
                        ts.steps_per_epoch
                    ),
                });
            }
            method.restore(&ts.method_state, ckpt.method_tensors.clone())?;
            rng = ts.rng.restore(&ckpt_json)?;
            norm = ckpt.meta.normalization.clone();
            state = ts;
            MetricsLog::resume(&metrics_path, state.global_epoch)?
        }
        None => MetricsLog::create(&metrics_path)?,
    };
    if !opts.resume {
        for stale in [
            "checkpoint.json",
            "checkpoint.safetensors",
            "final.safetensors",
            "final.json",
            "summary.json",
        ] {
            let p = out_dir.join(stale);
            if p.exists() {
                std::fs::remove_file(&p).map_err(|e| Error::io(&p, e))?;
            }
        }
        let toml = recipe.to_toml()?;
        write_atomic(&out_dir.join("recipe.toml"), toml.as_bytes())?;
    }

    let show = !opts.quiet && std::io::stderr().is_terminal();
    let sampler_train = &rd.train;
    let sampler_norm = norm.clone();
    let mut sampler = move |n: usize| sample_batch(sampler_train, &sampler_norm, seed, n);
    macro_rules! ctx {
        () => {
            &mut MethodCtx {
                steps_per_epoch: spe,
                schedule: &recipe.schedule,
                epochs: recipe.train.epochs,
                label_smoothing: recipe.train.label_smoothing,
                sample_batch: &mut sampler,
                rng: &mut rng,
            }
        };
    }

    let meta_for = |state: &TrainState| CheckpointMeta {
        format: FORMAT.into(),
        version: VERSION,
        model: spec.clone(),
        normalization: norm.clone(),
        recipe: Some(recipe.clone()),
        method: method_kind(recipe),
        training: Some(state.clone()),
        tensors_sha256: None,
    };

    let mut epochs_run = 0usize;
    let mut train_seconds_run = 0.0f64;
    loop {
        if state.finished {
            break;
        }
        if opts.stop_after_epochs.is_some_and(|k| epochs_run >= k) {
            break;
        }
        let need_phase = state
            .phase
            .as_ref()
            .is_none_or(|p| state.epoch_in_phase >= p.epochs);
        if need_phase {
            match method.next_phase(net.as_mut(), ctx!())? {
                None => {
                    state.finished = true;
                    continue;
                }
                Some(p) => {
                    if p.epochs == 0 {
                        return Err(Error::Invalid(format!(
                            "method asked for phase '{}' of zero epochs",
                            p.label
                        )));
                    }
                    if let Err(m) = p.schedule.validate() {
                        return Err(Error::Invalid(format!("phase '{}': {m}", p.label)));
                    }
                    if state.phase.is_some() {
                        state.phase_index += 1;
                    }
                    if p.reset_optimizer {
                        net.reset_optimizer();
                    }
                    state.epoch_in_phase = 0;
                    state.phase = Some(p);
                }
            }
        }
        let phase = state.phase.clone().expect("a phase is active");
        let t0 = Instant::now();
        let (train_loss, train_acc, lr) = train_epoch(
            net.as_mut(),
            method.as_mut(),
            &rd.train,
            &norm,
            recipe,
            &phase,
            &mut state,
            spe,
            show,
            ctx!(),
        )?;
        let train_seconds = t0.elapsed().as_secs_f64();
        train_seconds_run += train_seconds;
        state.epoch_in_phase += 1;
        state.global_epoch += 1;
        epochs_run += 1;
        method.after_epoch(net.as_mut(), state.epoch_in_phase - 1, ctx!())?;

        let eval_now = state.epoch_in_phase % recipe.train.eval_every == 0
            || state.epoch_in_phase == phase.epochs;
        let (mut val, mut test) = (None, None);
        if eval_now {
            let eb = recipe.train.eval_batch_size;
            if let Some(v) = &rd.val {
                let r = evaluate(net.as_mut(), v, &norm, eb)?;
                if state.best_val.is_none_or(|(b, _)| r.1 > b) {
                    state.best_val = Some((r.1, state.global_epoch));
                }
                state.last_val_acc = Some(r.1);
                val = Some(r);
            }
            let r = evaluate(net.as_mut(), &rd.test, &norm, eb)?;
            state.last_test_acc = Some(r.1);
            test = Some(r);
        }
        let m = EpochMetrics {
            phase: phase.label.clone(),
            phase_index: state.phase_index,
            epoch: state.epoch_in_phase,
            global_epoch: state.global_epoch,
            step: state.global_step,
            lr,
            train_loss,
            train_acc,
            val_loss: val.map(|v| v.0),
            val_acc: val.map(|v| v.1),
            test_loss: test.map(|v| v.0),
            test_acc: test.map(|v| v.1),
            density: density(net.as_ref()),
            images_per_s: (spe * bs) as f64 / train_seconds.max(1e-9),
            gflops: 6.0 * useful_macs(net.as_ref()) * (spe * bs) as f64
                / train_seconds.max(1e-9)
                / 1e9,
            seconds: t0.elapsed().as_secs_f64(),
        };
        log.append(&m)?;
        if !opts.quiet {
            eprintln!("{}", m.summary_line());
        }

        state.method_state = method.state();
        state.rng = RngState::capture(&rng);
        Checkpoint::capture(net.as_ref(), meta_for(&state), method.tensors())?.save(&ckpt_path)?;
    }

    let mut summary = RunSummary {
        final_test_acc: None,
        final_test_loss: None,
        final_val_acc: None,
        best_val_acc: state.best_val.map(|b| b.0),
        best_val_epoch: state.best_val.map(|b| b.1),
        last_test_acc: state.last_test_acc,
        final_checkpoint: checkpoint_paths(&ckpt_path).0,
        epochs_run,
        total_epochs: state.global_epoch,
        total_steps: state.global_step,
        completed: state.finished,
        density: density(net.as_ref()),
        mean_epoch_seconds: train_seconds_run / epochs_run.max(1) as f64,
        metrics: metrics_path,
    };
    if state.finished {
        let eb = recipe.train.eval_batch_size;
        let (tl, ta) = evaluate(net.as_mut(), &rd.test, &norm, eb)?;
        summary.final_test_acc = Some(ta);
        summary.final_test_loss = Some(tl);
        if let Some(v) = &rd.val {
            summary.final_val_acc = Some(evaluate(net.as_mut(), v, &norm, eb)?.1);
        }
        state.method_state = method.state();
        state.rng = RngState::capture(&rng);
        let ckpt = Checkpoint::capture(net.as_ref(), meta_for(&state), method.tensors())?;
        ckpt.save(&ckpt_path)?;
        summary.final_checkpoint = ckpt.save(&out_dir.join(FINAL))?;
        let json = serde_json::to_vec_pretty(&summary)
            .map_err(|e| Error::Invalid(format!("summary: {e}")))?;
        write_atomic(&out_dir.join("summary.json"), &json)?;
    }
    Ok(summary)
}

/// One epoch of phase `phase`; returns mean train loss, train accuracy and the last learning rate.
#[allow(clippy::too_many_arguments)]
fn train_epoch(
    net: &mut dyn Network,
    method: &mut dyn Method,
    train: &Dataset,
    norm: &Normalization,
    recipe: &Recipe,
    phase: &Phase,
    state: &mut TrainState,
    spe: usize,
    show: bool,
    ctx: &mut MethodCtx,
) -> Result<(f64, f64, f64)> {
    let seed = recipe.train.seed;
    let bs = recipe.train.batch_size;
    let epoch = state.global_epoch as u64;
    let order = data::epoch_order(train.len(), seed, epoch);
    let augment = &recipe.data.augment;
    let augment = (augment.crop_padding > 0 || augment.hflip).then_some(augment);
    let total_steps = phase.epochs * spe;
    let ls = recipe.train.label_smoothing;

    let bar = progress_bar(show, spe, phase, state.epoch_in_phase);
    let t0 = Instant::now();
    let (mut loss_sum, mut correct, mut seen, mut lr) = (0.0f64, 0usize, 0usize, 0.0f64);
    for b in 0..spe {
        let idx = &order[b * bs..(b + 1) * bs];
        let (x, y) = data::make_batch(
            train,
            idx,
            norm,
            augment,
            data::batch_seed(seed, epoch, b as u64),
        );
        let objective = |logits: ndarray::ArrayView2<f32>| cross_entropy(logits, &y, ls);
        let step = state.epoch_in_phase * spe + b;
        net.set_gradient_mode(method.gradient_mode(step));
        let (loss, logits) = net.forward_backward(x.view(), true, &objective)?;
        if !loss.is_finite() {
            return Err(Error::Invalid(format!(
                "training diverged: loss is {loss} at epoch {} step {b} of phase '{}' (lower schedule.lr?)",
                state.epoch_in_phase + 1,
                phase.label
            )));
        }
        method.after_backward(net, step, ctx)?;
        lr = phase.schedule.lr(step, total_steps);
        net.sgd_step(&recipe.optimizer, lr as f32);
        method.after_step(net, step, ctx)?;
        state.global_step += 1;

        loss_sum += loss * y.len() as f64;
        correct += count_correct(logits.view(), &y);
        seen += y.len();
        if let Some(bar) = &bar {
            let ips = seen as f64 / t0.elapsed().as_secs_f64().max(1e-9);
            bar.set_message(format!(
                "loss {:.4} acc {:.2}% {:.0} img/s",
                loss_sum / seen as f64,
                100.0 * correct as f64 / seen as f64,
                ips
            ));
            bar.inc(1);
        }
    }
    net.set_gradient_mode(GradientMode::Dense);
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    Ok((
        loss_sum / seen.max(1) as f64,
        correct as f64 / seen.max(1) as f64,
        lr,
    ))
}

fn progress_bar(show: bool, steps: usize, phase: &Phase, epoch: usize) -> Option<ProgressBar> {
    if !show {
        return None;
    }
    let bar = ProgressBar::with_draw_target(Some(steps as u64), ProgressDrawTarget::stderr());
    let style = ProgressStyle::with_template("{prefix} [{wide_bar}] {pos}/{len} {msg}")
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> ");
    bar.set_style(style);
    bar.set_prefix(format!(
        "{} epoch {}/{}",
        phase.label,
        epoch + 1,
        phase.epochs
    ));
    Some(bar)
}

/// Reads the weights of a checkpoint as `(path, tensor)` pairs; a convenience for analyses.
pub fn checkpoint_weights(path: &Path) -> Result<Vec<(String, ArrayD<f32>)>> {
    Ok(load_checkpoint(path)?.tensors)
}
