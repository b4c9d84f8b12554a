//! A training run: [`Run`] drives a [`Method`] over a [`Network`] on a [`Device`], phase by phase and epoch by
//! epoch, evaluates, logs metrics as JSON lines and writes a checkpoint at the end of every epoch, from which a
//! run resumes bit-identically on the same device and thread count (and to rounding on another engine).

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use ndarray::ArrayD;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::data::{self, Normalization};
use crate::distributed::{self, summed_over_ranks, Collective, GradientBuckets};
use crate::engine::bench::useful_macs;
use crate::engine::{Device, GradientMode, Network};
use crate::error::{Error, Result};
use crate::fsio;
use crate::method::{Method, MethodCtx, Phase};
use crate::nn::loss::{count_correct, cross_entropy_part};
use crate::nn::ModelSpec;
use crate::train::checkpoint::{
    checkpoint_paths, load_checkpoint, repair_metadata_copy, write_atomic, Checkpoint,
    CheckpointMeta, RngState, TrainState, FORMAT, VERSION,
};
use crate::train::evaluate::{density, evaluate_split};
use crate::train::metrics::{EpochMetrics, MetricsLog};
use crate::train::probe::Probe;
use crate::train::progress::epoch_bar;
use crate::train::recipe::Recipe;
use crate::train::run_data::{score_sampler, RunData};

/// File stem of the checkpoint rewritten after every epoch.
pub const CHECKPOINT: &str = "checkpoint";
/// File stem of the checkpoint written when the run completes.
pub const FINAL: &str = "final";
/// The metrics log.
pub const METRICS: &str = "metrics.jsonl";

/// What a run achieved.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
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
    #[serde(default)]
    pub mean_epoch_seconds: f64,
    pub metrics: PathBuf,
}

/// One training run in its output directory. It owns the data, the network on its device, the method, the
/// method's random stream, the metrics log and the checkpoints; [`Run::run_epoch`] is the loop body and
/// [`Run::finish`] writes the final checkpoint and summary.
///
/// Stopping a run is dropping it: the per-epoch checkpoint of the last completed epoch stays, and
/// [`Run::resume`] continues from it.
///
/// Data-parallel: a run is one rank of its [`Collective`] (the process's [`distributed::world`], which under
/// `mpirun` is the MPI world). Every rank holds the whole model and state; each computes its
/// [`distributed::shard`] of every global batch (same data order and augmentation as one process), the
/// gradients and batch-norm statistics are summed over the ranks in rank order, and so every rank takes the
/// same step and every method the same decisions. Only rank 0 writes files. With one rank nothing changes.
pub struct Run {
    /// The recipe as stored in checkpoints (`train.device` is the device in use).
    recipe: Recipe,
    out: PathBuf,
    data: RunData,
    norm: Normalization,
    spec: ModelSpec,
    net: Box<dyn Network>,
    method: Box<dyn Method>,
    rng: ChaCha8Rng,
    state: TrainState,
    /// The metrics log (rank 0 only).
    log: Option<MetricsLog>,
    comm: Arc<dyn Collective>,
    /// Flat gradient buffer of the blocking data-parallel sum, reused across steps.
    grad_buf: Vec<f32>,
    /// Size of the buckets of the data-parallel gradient sum that overlaps the backward pass; 0 sums all
    /// gradients in one blocking exchange after it.
    bucket_bytes: usize,
    quiet: bool,
    epochs_run: usize,
    /// Training time of this invocation's epochs (evaluation excluded), seconds.
    train_seconds_run: f64,
    /// Resumed from a checkpoint of a complete run: [`Run::finish`] rewrites nothing that is already there.
    resumed_complete: bool,
}

impl Run {
    /// A fresh run of `recipe` on `device` in `out` (created if needed; the files of an earlier run there are
    /// replaced), with the recipe's method.
    pub fn start(recipe: &Recipe, device: Device, out: &Path) -> Result<Self> {
        Self::start_with(recipe, device, out, recipe.method.build())
    }

    /// Like [`Run::start`], driving `method` instead of the recipe's (procedures outside the recipe schema).
    pub fn start_with(
        recipe: &Recipe,
        device: Device,
        out: &Path,
        method: Box<dyn Method>,
    ) -> Result<Self> {
        Self::start_in(recipe, device, out, method, distributed::world())
    }

    /// Like [`Run::start_with`], as one rank of `comm` (every rank of the group calls it with the same
    /// arguments).
    pub fn start_in(
        recipe: &Recipe,
        device: Device,
        out: &Path,
        method: Box<dyn Method>,
        comm: Arc<dyn Collective>,
    ) -> Result<Self> {
        recipe.validate()?;
        check_split(recipe, comm.as_ref())?;
        let mut recipe = recipe.clone();
        recipe.train.device = device;
        let data = RunData::load(&recipe)?;
        let spec = recipe.model_spec(data.train.shape, data.train.classes)?;
        let net = device.network(&spec, recipe.train.seed)?;
        let log = if comm.rank() == 0 {
            std::fs::create_dir_all(out).map_err(|e| Error::io(out, e))?;
            fsio::remove_stale_temps(out)?;
            for stale in [
                "checkpoint.json",
                "checkpoint.safetensors",
                "final.safetensors",
                "final.json",
                "summary.json",
            ] {
                let p = out.join(stale);
                if p.exists() {
                    std::fs::remove_file(&p).map_err(|e| Error::io(&p, e))?;
                }
            }
            write_atomic(&out.join("recipe.toml"), recipe.to_toml()?.as_bytes())?;
            Some(MetricsLog::create(&out.join(METRICS))?)
        } else {
            None
        };
        comm.barrier();
        let rng = method_rng(recipe.train.seed);
        let state = TrainState {
            phase_index: 0,
            phase: None,
            epoch_in_phase: 0,
            global_epoch: 0,
            global_step: 0,
            steps_per_epoch: data.train.len() / recipe.train.batch_size,
            finished: false,
            method_state: serde_json::Value::Null,
            rng: RngState::capture(&rng),
            best_val: None,
            last_val_acc: None,
            last_test_acc: None,
        };
        Ok(Run {
            log,
            comm,
            grad_buf: Vec::new(),
            bucket_bytes: distributed::bucket_bytes_from_env().map_err(Error::Invalid)?,
            norm: data.norm.clone(),
            recipe,
            out: out.to_path_buf(),
            data,
            spec,
            net,
            method,
            rng,
            state,
            quiet: false,
            epochs_run: 0,
            train_seconds_run: 0.0,
            resumed_complete: false,
        })
    }

    /// Continues the run stopped in `out` on `device` (which may differ from the one it was trained on), with
    /// the recipe stored in its checkpoint.
    pub fn resume(out: &Path, device: Device) -> Result<Self> {
        let ckpt = resume_checkpoint(out)?;
        let recipe = stored_recipe(&ckpt, out)?;
        let method = recipe.method.build();
        Self::resume_from(ckpt, recipe, device, out, method, distributed::world())
    }

    /// Like [`Run::resume_with`], as one rank of `comm` (every rank of the group calls it).
    pub fn resume_in(
        out: &Path,
        device: Device,
        method: Box<dyn Method>,
        comm: Arc<dyn Collective>,
    ) -> Result<Self> {
        let ckpt = resume_checkpoint(out)?;
        let recipe = stored_recipe(&ckpt, out)?;
        Self::resume_from(ckpt, recipe, device, out, method, comm)
    }

    /// Like [`Run::resume`], driving `method` (which restores its state from the checkpoint).
    pub fn resume_with(out: &Path, device: Device, method: Box<dyn Method>) -> Result<Self> {
        let ckpt = resume_checkpoint(out)?;
        let recipe = stored_recipe(&ckpt, out)?;
        Self::resume_from(ckpt, recipe, device, out, method, distributed::world())
    }

    /// Resumes the run in `out` when it holds a per-epoch checkpoint, which must have been written by `recipe`
    /// (on any device), and starts afresh otherwise.
    pub fn start_or_resume(recipe: &Recipe, device: Device, out: &Path) -> Result<Self> {
        let (st, json) = checkpoint_paths(&out.join(CHECKPOINT));
        if !st.is_file() {
            return Self::start(recipe, device, out);
        }
        let ckpt = resume_checkpoint(out)?;
        let stored = stored_recipe(&ckpt, out)?;
        let mut given = recipe.clone();
        given.train.device = stored.train.device;
        if given != stored {
            return Err(Error::Checkpoint {
                path: json,
                msg: "was written by a different recipe; resume with the recipe stored in the checkpoint"
                    .into(),
            });
        }
        Self::resume_from(
            ckpt,
            stored,
            device,
            out,
            recipe.method.build(),
            distributed::world(),
        )
    }

    fn resume_from(
        ckpt: Checkpoint,
        mut recipe: Recipe,
        device: Device,
        out: &Path,
        mut method: Box<dyn Method>,
        comm: Arc<dyn Collective>,
    ) -> Result<Self> {
        let (_, json) = checkpoint_paths(&out.join(CHECKPOINT));
        recipe.validate().map_err(|e| Error::Checkpoint {
            path: json.clone(),
            msg: format!("holds an invalid recipe: {e}"),
        })?;
        check_split(&recipe, comm.as_ref())?;
        recipe.train.device = device;
        let data = RunData::load(&recipe)?;
        let spec = recipe.model_spec(data.train.shape, data.train.classes)?;
        let mut net = device.network(&spec, recipe.train.seed)?;
        ckpt.apply_to(net.as_mut(), &json)?;
        let state = ckpt
            .meta
            .training
            .clone()
            .ok_or_else(|| Error::Checkpoint {
                path: json.clone(),
                msg: "holds no training state".into(),
            })?;
        // Every rank has read the checkpoint before rank 0 tidies the directory.
        comm.barrier();
        if comm.rank() == 0 {
            fsio::remove_stale_temps(out)?;
            repair_metadata_copy(&out.join(CHECKPOINT))?;
        }
        let spe = data.train.len() / recipe.train.batch_size;
        if state.steps_per_epoch != spe {
            return Err(Error::Checkpoint {
                path: json,
                msg: format!(
                    "was written with {} steps per epoch but the data now gives {spe}; the dataset changed",
                    state.steps_per_epoch
                ),
            });
        }
        let rank0 = comm.rank() == 0;
        let changes = [
            path_change(ckpt.meta.kernel_path.as_deref(), net.kernel_path_name()),
            policy_change(
                ckpt.meta.sparse_kernels.as_deref(),
                net.sparse_policy_name(),
            ),
        ];
        for warning in changes.into_iter().flatten().filter(|_| rank0) {
            eprintln!("warning: {}: {warning}", json.display());
        }
        method.restore(&state.method_state, ckpt.method_tensors.clone())?;
        let rng = state.rng.restore(&json)?;
        let log = match rank0 {
            true => Some(MetricsLog::resume(&out.join(METRICS), state.global_epoch)?),
            false => None,
        };
        Ok(Run {
            log,
            comm,
            grad_buf: Vec::new(),
            bucket_bytes: distributed::bucket_bytes_from_env().map_err(Error::Invalid)?,
            norm: ckpt.meta.normalization.clone(),
            recipe,
            out: out.to_path_buf(),
            data,
            spec,
            net,
            method,
            rng,
            resumed_complete: state.finished,
            state,
            quiet: false,
            epochs_run: 0,
            train_seconds_run: 0.0,
        })
    }

    /// Sums the gradients of a data-parallel run in buckets of `bytes` started during the backward pass
    /// (`0`: one blocking sum after it). The results are bit-identical for every size; the default is
    /// [`distributed::BUCKET_ENV`] or else [`distributed::DEFAULT_BUCKET_BYTES`].
    pub fn gradient_buckets(mut self, bytes: usize) -> Self {
        self.bucket_bytes = bytes;
        self
    }

    /// No progress bar and no per-epoch lines on stderr.
    pub fn quiet(mut self, quiet: bool) -> Self {
        self.quiet = quiet;
        self
    }

    /// The recipe as the run stores it (its `train.device` is the device in use).
    pub fn recipe(&self) -> &Recipe {
        &self.recipe
    }

    /// The device the run trains on.
    pub fn device(&self) -> Device {
        self.recipe.train.device
    }

    /// The network being trained.
    pub fn network(&self) -> &dyn Network {
        self.net.as_ref()
    }

    /// Where training stands.
    pub fn state(&self) -> &TrainState {
        &self.state
    }

    /// The method handed out no further phase.
    pub fn is_complete(&self) -> bool {
        self.state.finished
    }

    /// Trains one epoch (asking the method for the next phase when the current one is over), evaluates when
    /// due, logs the epoch and rewrites the per-epoch checkpoint. Returns the epoch's metrics, or `None` when
    /// the method has no further phase: the run is complete and [`Run::finish`] writes its results.
    pub fn run_epoch(&mut self) -> Result<Option<EpochMetrics>> {
        if self.state.finished {
            return Ok(None);
        }
        let Some(phase) = self.current_phase()? else {
            self.state.finished = true;
            return Ok(None);
        };
        let t0 = Instant::now();
        let comm0 = self.comm.comm_seconds();
        let (train_loss, train_acc, lr) = self.train_epoch(&phase)?;
        let train_seconds = t0.elapsed().as_secs_f64();
        let comm_seconds = self.comm.comm_seconds() - comm0;
        self.train_seconds_run += train_seconds;
        self.state.epoch_in_phase += 1;
        self.state.global_epoch += 1;
        self.epochs_run += 1;
        {
            let seed = self.recipe.train.seed;
            let mut sampler = score_sampler(&self.data.train, &self.norm, seed);
            let mut ctx = method_ctx(
                &self.recipe,
                self.state.steps_per_epoch,
                &mut sampler,
                &mut self.rng,
            );
            self.method
                .after_epoch(self.net.as_mut(), self.state.epoch_in_phase - 1, &mut ctx)?;
        }
        let (val, test) = if self.state.epoch_in_phase % self.recipe.train.eval_every == 0
            || self.state.epoch_in_phase == phase.epochs
        {
            self.evaluate_now()?
        } else {
            (None, None)
        };
        let images = self.state.steps_per_epoch * self.recipe.train.batch_size;
        let m = EpochMetrics {
            phase: phase.label.clone(),
            phase_index: self.state.phase_index,
            epoch: self.state.epoch_in_phase,
            global_epoch: self.state.global_epoch,
            step: self.state.global_step,
            lr,
            train_loss,
            train_acc,
            val_loss: val.map(|v| v.0),
            val_acc: val.map(|v| v.1),
            test_loss: test.map(|v| v.0),
            test_acc: test.map(|v| v.1),
            density: density(self.net.as_ref()),
            images_per_s: images as f64 / train_seconds.max(1e-9),
            gflops: 6.0 * useful_macs(self.net.as_ref()) * images as f64
                / train_seconds.max(1e-9)
                / 1e9,
            seconds: t0.elapsed().as_secs_f64(),
            ranks: self.comm.size(),
            comm_share: comm_seconds / train_seconds.max(1e-9),
        };
        if let Some(log) = &mut self.log {
            log.append(&m)?;
        }
        if !self.quiet && self.comm.rank() == 0 {
            eprintln!("{}", m.summary_line());
        }
        self.save(&self.out.join(CHECKPOINT))?;
        Ok(Some(m))
    }

    /// Trains to the end ([`Run::run_epoch`] until the method is done), then [`Run::finish`].
    pub fn run_to_end(mut self) -> Result<RunSummary> {
        while self.run_epoch()?.is_some() {}
        self.finish()
    }

    /// The summary of the run so far. When the run is complete, also evaluates the final weights, writes
    /// `OUT/final.{safetensors,json}` and `OUT/summary.json`, and rewrites the per-epoch checkpoint.
    pub fn finish(mut self) -> Result<RunSummary> {
        let ckpt = self.out.join(CHECKPOINT);
        let mut summary = RunSummary {
            final_test_acc: None,
            final_test_loss: None,
            final_val_acc: None,
            best_val_acc: self.state.best_val.map(|b| b.0),
            best_val_epoch: self.state.best_val.map(|b| b.1),
            last_test_acc: self.state.last_test_acc,
            final_checkpoint: checkpoint_paths(&ckpt).0,
            epochs_run: self.epochs_run,
            total_epochs: self.state.global_epoch,
            total_steps: self.state.global_step,
            completed: self.state.finished,
            density: density(self.net.as_ref()),
            mean_epoch_seconds: self.train_seconds_run / self.epochs_run.max(1) as f64,
            metrics: self.out.join(METRICS),
        };
        if !self.state.finished {
            return Ok(summary);
        }
        if self.resumed_complete {
            if let Some(stored) = self.stored_summary() {
                return Ok(RunSummary {
                    epochs_run: 0,
                    ..stored
                });
            }
        }
        let test = self.evaluate_on(Split::Test)?;
        summary.final_test_loss = test.map(|r| r.0);
        summary.final_test_acc = test.map(|r| r.1);
        summary.final_val_acc = self.evaluate_on(Split::Val)?.map(|r| r.1);
        self.save(&ckpt)?;
        summary.final_checkpoint = self.save(&self.out.join(FINAL))?;
        if self.comm.rank() == 0 {
            let json = serde_json::to_vec_pretty(&summary)
                .map_err(|e| Error::Invalid(format!("summary: {e}")))?;
            write_atomic(&self.out.join("summary.json"), &json)?;
        }
        Ok(summary)
    }

    /// The summary a complete run left in `OUT/summary.json`, when it and the final checkpoint are intact.
    fn stored_summary(&self) -> Option<RunSummary> {
        let text = std::fs::read(self.out.join("summary.json")).ok()?;
        let stored: RunSummary = serde_json::from_slice(&text).ok()?;
        load_checkpoint(&self.out.join(FINAL)).ok()?;
        Some(stored)
    }

    /// The phase to train next: the current one, or the method's next when it is over (`None` when done).
    fn current_phase(&mut self) -> Result<Option<Phase>> {
        let over = self
            .state
            .phase
            .as_ref()
            .is_none_or(|p| self.state.epoch_in_phase >= p.epochs);
        if !over {
            return Ok(self.state.phase.clone());
        }
        let seed = self.recipe.train.seed;
        let mut sampler = score_sampler(&self.data.train, &self.norm, seed);
        let mut ctx = method_ctx(
            &self.recipe,
            self.state.steps_per_epoch,
            &mut sampler,
            &mut self.rng,
        );
        let Some(p) = self.method.next_phase(self.net.as_mut(), &mut ctx)? else {
            return Ok(None);
        };
        if p.epochs == 0 {
            return Err(Error::Invalid(format!(
                "method asked for phase '{}' of zero epochs",
                p.label
            )));
        }
        if let Err(m) = p.schedule.validate() {
            return Err(Error::Invalid(format!("phase '{}': {m}", p.label)));
        }
        if self.state.phase.is_some() {
            self.state.phase_index += 1;
        }
        if p.reset_optimizer {
            self.net.reset_optimizer();
        }
        self.state.epoch_in_phase = 0;
        self.state.phase = Some(p.clone());
        Ok(Some(p))
    }

    /// One epoch of `phase`; returns the mean train loss, the train accuracy and the last learning rate.
    fn train_epoch(&mut self, phase: &Phase) -> Result<(f64, f64, f64)> {
        let seed = self.recipe.train.seed;
        let bs = self.recipe.train.batch_size;
        let epoch = self.state.global_epoch as u64;
        let order = data::epoch_order(self.data.train.len(), seed, epoch);
        let augment = &self.recipe.data.augment;
        let augment = (augment.crop_padding > 0 || augment.hflip).then(|| augment.clone());
        let total_steps = phase.epochs * self.state.steps_per_epoch;
        let ls = self.recipe.train.label_smoothing;
        let parallel = self.comm.size() > 1;
        let part = distributed::shard(bs, self.comm.rank(), self.comm.size());
        if parallel {
            let comm = self.comm.clone();
            self.net
                .set_batch_stats_reducer(Some(Arc::new(move |b: &mut [f64]| comm.sum_f64(b))))?;
        }
        let r = self.train_steps(phase, &order, part, augment.as_ref(), total_steps, ls);
        self.net.set_gradient_mode(GradientMode::Dense);
        if parallel {
            self.net.set_batch_stats_reducer(None)?;
        }
        r
    }

    /// The steps of [`Run::train_epoch`]: this rank computes the samples `part` of every batch.
    fn train_steps(
        &mut self,
        phase: &Phase,
        order: &[usize],
        part: std::ops::Range<usize>,
        augment: Option<&crate::data::Augment>,
        total_steps: usize,
        ls: f32,
    ) -> Result<(f64, f64, f64)> {
        let seed = self.recipe.train.seed;
        let bs = self.recipe.train.batch_size;
        let spe = self.state.steps_per_epoch;
        let epoch = self.state.global_epoch as u64;
        let parallel = self.comm.size() > 1;
        let show = !self.quiet && self.comm.rank() == 0 && std::io::stderr().is_terminal();
        let bar = epoch_bar(show, spe, phase, self.state.epoch_in_phase);

        let mut sampler = score_sampler(&self.data.train, &self.norm, seed);
        let mut ctx = method_ctx(&self.recipe, spe, &mut sampler, &mut self.rng);
        let t0 = Instant::now();
        let (mut loss_sum, mut correct, mut seen, mut lr) = (0.0f64, 0usize, 0usize, 0.0f64);
        for b in 0..spe {
            let idx = &order[b * bs..(b + 1) * bs];
            let (x, y) = data::make_batch_part(
                &self.data.train,
                idx,
                part.clone(),
                &self.norm,
                augment,
                data::batch_seed(seed, epoch, b as u64),
            );
            let objective =
                |logits: ndarray::ArrayView2<f32>| cross_entropy_part(logits, &y, ls, bs);
            let step = self.state.epoch_in_phase * spe + b;
            self.net.set_gradient_mode(self.method.gradient_mode(step));
            let (mut loss, logits) = forward_backward_summed(
                self.net.as_mut(),
                &self.comm,
                self.bucket_bytes,
                &mut self.grad_buf,
                x.view(),
                &objective,
            )?;
            let mut batch_correct = count_correct(logits.view(), &y);
            if parallel {
                let mut totals = [loss, batch_correct as f64];
                self.comm.sum_f64(&mut totals);
                loss = totals[0];
                batch_correct = totals[1] as usize;
            }
            if !loss.is_finite() {
                return Err(Error::Invalid(format!(
                    "training diverged: loss is {loss} at epoch {} step {b} of phase '{}' (lower schedule.lr?)",
                    self.state.epoch_in_phase + 1,
                    phase.label
                )));
            }
            self.method
                .after_backward(self.net.as_mut(), step, &mut ctx)?;
            lr = phase.schedule.lr(step, total_steps);
            self.net.sgd_step(&self.recipe.optimizer, lr as f32);
            self.method.after_step(self.net.as_mut(), step, &mut ctx)?;
            self.state.global_step += 1;

            loss_sum += loss * bs as f64;
            correct += batch_correct;
            seen += bs;
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
        if let Some(bar) = bar {
            bar.finish_and_clear();
        }
        Ok((
            loss_sum / seen.max(1) as f64,
            correct as f64 / seen.max(1) as f64,
            lr,
        ))
    }

    /// Loss and accuracy of the current weights on `split`, the batches shared among the ranks (`None` for
    /// the validation split of a run without one).
    fn evaluate_on(&mut self, split: Split) -> Result<Option<(f64, f64)>> {
        let ds = match split {
            Split::Val => match &self.data.val {
                Some(v) => v,
                None => return Ok(None),
            },
            Split::Test => &self.data.test,
        };
        let eb = self.recipe.train.eval_batch_size;
        evaluate_split(self.net.as_mut(), ds, &self.norm, eb, self.comm.as_ref()).map(Some)
    }

    /// Validation and test loss and accuracy of the current weights; updates the best and last accuracies.
    #[allow(clippy::type_complexity)]
    fn evaluate_now(&mut self) -> Result<(Option<(f64, f64)>, Option<(f64, f64)>)> {
        let val = self.evaluate_on(Split::Val)?;
        if let Some(r) = val {
            if self.state.best_val.is_none_or(|(b, _)| r.1 > b) {
                self.state.best_val = Some((r.1, self.state.global_epoch));
            }
            self.state.last_val_acc = Some(r.1);
        }
        let test = self.evaluate_on(Split::Test)?;
        self.state.last_test_acc = test.map(|r| r.1);
        Ok((val, test))
    }

    /// Writes a checkpoint of everything (network, method, training state, RNG) under the stem `path`;
    /// returns the safetensors path.
    fn save(&mut self, path: &Path) -> Result<PathBuf> {
        self.state.method_state = self.method.state();
        self.state.rng = RngState::capture(&self.rng);
        if self.comm.rank() != 0 {
            return Ok(checkpoint_paths(path).0);
        }
        let meta = CheckpointMeta {
            format: FORMAT.into(),
            version: VERSION,
            model: self.spec.clone(),
            normalization: self.norm.clone(),
            recipe: Some(self.recipe.clone()),
            method: Some(self.recipe.method.kind().to_string()),
            training: Some(self.state.clone()),
            kernel_path: self.net.kernel_path_name().map(str::to_string),
            sparse_kernels: self.net.sparse_policy_name().map(str::to_string),
            tensors_sha256: None,
        };
        let mut ck = Checkpoint::capture(self.net.as_ref(), meta, self.method.tensors())?;
        ck.probe = Probe::capture(self.net.as_mut(), &self.data.train, &self.norm)?;
        ck.save(path)
    }
}

/// What a method may use besides the network, for a run of `recipe` with `steps_per_epoch` steps per epoch.
fn method_ctx<'a>(
    recipe: &'a Recipe,
    steps_per_epoch: usize,
    sample_batch: &'a mut dyn FnMut(usize) -> (ndarray::Array4<f32>, Vec<u32>),
    rng: &'a mut ChaCha8Rng,
) -> MethodCtx<'a> {
    MethodCtx {
        steps_per_epoch,
        schedule: &recipe.schedule,
        epochs: recipe.train.epochs,
        label_smoothing: recipe.train.label_smoothing,
        sample_batch,
        rng,
    }
}

/// What a resume on kernel path `now` of a checkpoint written on path `then` changes, when they differ.
fn path_change(then: Option<&str>, now: Option<&str>) -> Option<String> {
    match (then, now) {
        (Some(then), Some(now)) if then != now => Some(format!(
            "was written on the {then} kernel path and this run uses {now}: it continues with results that \
             differ from an uninterrupted run in rounding (run with {}={then} to continue bit-identically)",
            crate::engine::cpu::simd::PATH_ENV
        )),
        _ => None,
    }
}

/// The warning for a resume under sparse-kernel policy `now` of a checkpoint written under `then`.
fn policy_change(then: Option<&str>, now: Option<&str>) -> Option<String> {
    match (then, now) {
        (Some(then), Some(now)) if then != now => Some(format!(
            "was written with --sparse-kernels {then} and this run uses {now}: it continues with results that \
             differ from an uninterrupted run in rounding (run with --sparse-kernels {then} to continue \
             bit-identically)"
        )),
        _ => None,
    }
}

/// Train-mode forward and backward pass of `net` on this rank's share of the batch; in a data-parallel run
/// the [`summed_over_ranks`] gradients are then summed over the ranks of `comm`, in buckets of
/// `bucket_bytes` that overlap the backward pass ([`Network::forward_backward_streaming`]), or with
/// `bucket_bytes == 0` in one blocking exchange after it (through `buf`). Both give the same bits.
fn forward_backward_summed(
    net: &mut dyn Network,
    comm: &Arc<dyn Collective>,
    bucket_bytes: usize,
    buf: &mut Vec<f32>,
    x: ndarray::ArrayView4<f32>,
    objective: &crate::engine::Objective,
) -> Result<(f64, ndarray::Array2<f32>)> {
    if comm.size() == 1 {
        return net.forward_backward(x, true, objective);
    }
    if bucket_bytes == 0 {
        let out = net.forward_backward(x, true, objective)?;
        sum_gradients(net, comm.as_ref(), buf)?;
        return Ok(out);
    }
    let mut buckets = GradientBuckets::new(comm.pending_sums(), bucket_bytes);
    let out = net.forward_backward_streaming(x, true, objective, &mut |info, g| {
        if summed_over_ranks(info) {
            buckets.add(&info.path, g);
        }
    })?;
    buckets.finish()?.write_to(net)?;
    Ok(out)
}

/// An evaluation split.
#[derive(Debug, Clone, Copy)]
enum Split {
    Val,
    Test,
}

/// Sums the [`summed_over_ranks`] gradients of the last backward pass of `net` over the ranks of `comm` in one
/// blocking exchange (through `buf`, reused).
fn sum_gradients(net: &mut dyn Network, comm: &dyn Collective, buf: &mut Vec<f32>) -> Result<()> {
    buf.clear();
    net.visit_gradients(&mut |i, g| {
        if summed_over_ranks(i) {
            buf.extend_from_slice(g);
        }
    })?;
    comm.sum_f32(buf);
    let mut at = 0;
    net.visit_gradients(&mut |i, g| {
        if summed_over_ranks(i) {
            g.copy_from_slice(&buf[at..at + g.len()]);
            at += g.len();
        }
    })
}

/// An error unless every rank of `comm` gets at least one sample of each batch of `recipe`.
fn check_split(recipe: &Recipe, comm: &dyn Collective) -> Result<()> {
    if recipe.train.batch_size < comm.size() {
        return Err(Error::Invalid(format!(
            "train.batch_size {} is smaller than the {} ranks it is split across",
            recipe.train.batch_size,
            comm.size()
        )));
    }
    Ok(())
}

/// The method's random stream for a run seeded with `seed`.
fn method_rng(seed: u64) -> ChaCha8Rng {
    ChaCha8Rng::seed_from_u64(seed ^ 0x6d65_7468_6f64_5f72)
}

/// The recipe stored in the per-epoch checkpoint of `out_dir`.
pub fn resume_recipe(out_dir: &Path) -> Result<Recipe> {
    stored_recipe(&resume_checkpoint(out_dir)?, out_dir)
}

fn stored_recipe(ckpt: &Checkpoint, out_dir: &Path) -> Result<Recipe> {
    let (_, json) = checkpoint_paths(&out_dir.join(CHECKPOINT));
    ckpt.meta.recipe.clone().ok_or_else(|| Error::Checkpoint {
        path: json,
        msg: "holds no recipe, so it cannot be resumed".into(),
    })
}

fn resume_checkpoint(out_dir: &Path) -> Result<Checkpoint> {
    let (st, _) = checkpoint_paths(&out_dir.join(CHECKPOINT));
    if !out_dir.is_dir() {
        return Err(Error::Checkpoint {
            path: out_dir.to_path_buf(),
            msg: "cannot resume: no such directory".into(),
        });
    }
    if !st.is_file() {
        return Err(Error::Checkpoint {
            path: out_dir.to_path_buf(),
            msg: format!(
                "cannot resume: the directory holds no checkpoint ({})",
                st.display()
            ),
        });
    }
    load_checkpoint(&st)
}

/// Reads the weights of a checkpoint as `(path, tensor)` pairs; a convenience for analyses.
pub fn checkpoint_weights(path: &Path) -> Result<Vec<(String, ArrayD<f32>)>> {
    Ok(load_checkpoint(path)?.tensors)
}
