//! Training procedures. Each method is a small state machine that the trainer drives: it hands out training
//! phases (a cycle with its schedule) and, between them or at hook points, reads weights and gradients and changes
//! masks, weights and optimiser state through the [`Network`]. A method never touches kernels.

pub mod acdc;
pub mod common;
pub mod cyclic;
pub mod dense;
pub mod dst;
pub mod gmp;
pub mod imp;
pub mod lrr;
pub mod sculpt;
pub mod static_sparse;
pub mod wr;

use ndarray::{Array4, ArrayD};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::engine::{GradientMode, Network};
use crate::error::Result;
use crate::optim::Schedule;

/// One run of the learning-rate schedule, asked for by a method.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Phase {
    /// A label for logs and metrics, e.g. `"cycle 2"` or `"level 3"`.
    pub label: String,
    pub epochs: usize,
    pub schedule: Schedule,
    /// Start the phase with a fresh optimiser (zero momentum).
    pub reset_optimizer: bool,
}

/// What a method may use besides the network.
pub struct MethodCtx<'a> {
    pub steps_per_epoch: usize,
    /// The recipe's base schedule for one cycle.
    pub schedule: &'a Schedule,
    /// The recipe's epochs per cycle.
    pub epochs: usize,
    /// Label smoothing of the training loss.
    pub label_smoothing: f32,
    /// A deterministic training batch of the given size (normalised, no augmentation), for score computations.
    pub sample_batch: &'a mut dyn FnMut(usize) -> (Array4<f32>, Vec<u32>),
    /// The method's random stream (seeded from the recipe; saved in checkpoints by the trainer).
    pub rng: &'a mut ChaCha8Rng,
}

/// A training procedure. The trainer calls `next_phase` at the start and after each phase until it returns
/// `None`; inside a phase it calls `after_backward` before and `after_step` after every optimiser step, and
/// `after_epoch` at the end of every epoch. Steps and epochs are counted within the phase.
pub trait Method: Send {
    /// Changes masks or weights as the procedure requires and returns the next phase, or `None` when done.
    fn next_phase(&mut self, net: &mut dyn Network, ctx: &mut MethodCtx) -> Result<Option<Phase>>;

    /// The gradients the backward pass of phase step `step` must compute: [`GradientMode::Kept`] unless the
    /// method reads gradients at masked positions in that step's `after_backward` or `after_step`.
    fn gradient_mode(&self, _step: usize) -> GradientMode {
        GradientMode::Kept
    }

    fn after_backward(
        &mut self,
        _net: &mut dyn Network,
        _step: usize,
        _ctx: &mut MethodCtx,
    ) -> Result<()> {
        Ok(())
    }

    fn after_step(
        &mut self,
        _net: &mut dyn Network,
        _step: usize,
        _ctx: &mut MethodCtx,
    ) -> Result<()> {
        Ok(())
    }

    fn after_epoch(
        &mut self,
        _net: &mut dyn Network,
        _epoch: usize,
        _ctx: &mut MethodCtx,
    ) -> Result<()> {
        Ok(())
    }

    /// The method's state for checkpoints (counters, flags) ...
    fn state(&self) -> serde_json::Value;

    /// ... and its tensors (e.g. the rewind point θ0 or θk), saved under `method.<name>`.
    fn tensors(&self) -> Vec<(String, ArrayD<f32>)> {
        Vec::new()
    }

    /// Restores what `state` and `tensors` saved.
    fn restore(
        &mut self,
        state: &serde_json::Value,
        tensors: Vec<(String, ArrayD<f32>)>,
    ) -> Result<()>;
}

/// The method section of a recipe: a tagged enum, `kind = "..."`. Unknown kinds and unknown keys (including any
/// key besides `kind` for `dense`) are errors.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(
    tag = "kind",
    rename_all = "snake_case",
    try_from = "serde_json::Value"
)]
pub enum MethodConfig {
    /// Dense training: one cycle.
    Dense,
    /// A PaI mask, one cycle.
    Static(static_sparse::StaticConfig),
    /// A PaI mask, C cycles with fresh optimiser and schedule.
    Cyclic(cyclic::CyclicConfig),
    /// Iterative magnitude pruning with rewinding to θ0.
    Imp(imp::ImpConfig),
    /// IMP with weight rewinding to epoch k of level 0.
    Wr(wr::WrConfig),
    /// IMP with learning-rate rewinding.
    Lrr(imp::ImpConfig),
    /// PaI at low sparsity, C cycles, one global magnitude prune, one more cycle.
    Sculpt(sculpt::SculptConfig),
    /// Gradual magnitude pruning.
    Gmp(gmp::GmpConfig),
    /// Alternating compressed / decompressed training.
    Acdc(acdc::AcdcConfig),
    /// Dynamic sparse training (SET / RigL growth, any pruning criterion).
    Dst(dst::DstConfig),
}

/// The deserialisation form of [`MethodConfig`] (serde drops unknown keys of unit variants of internally tagged
/// enums, so `dense` is checked separately).
#[derive(Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
enum MethodRepr {
    Dense,
    Static(static_sparse::StaticConfig),
    Cyclic(cyclic::CyclicConfig),
    Imp(imp::ImpConfig),
    Wr(wr::WrConfig),
    Lrr(imp::ImpConfig),
    Sculpt(sculpt::SculptConfig),
    Gmp(gmp::GmpConfig),
    Acdc(acdc::AcdcConfig),
    Dst(dst::DstConfig),
}

impl TryFrom<serde_json::Value> for MethodConfig {
    type Error = String;

    fn try_from(v: serde_json::Value) -> std::result::Result<Self, String> {
        if let Some(map) = v.as_object() {
            if map.get("kind").and_then(|k| k.as_str()) == Some("dense") {
                if let Some(extra) = map.keys().find(|k| *k != "kind") {
                    return Err(format!(
                        "unknown field `{extra}` for method kind `dense` (it takes no options)"
                    ));
                }
            }
        }
        let r: MethodRepr = serde_json::from_value(v).map_err(|e| e.to_string())?;
        Ok(match r {
            MethodRepr::Dense => MethodConfig::Dense,
            MethodRepr::Static(c) => MethodConfig::Static(c),
            MethodRepr::Cyclic(c) => MethodConfig::Cyclic(c),
            MethodRepr::Imp(c) => MethodConfig::Imp(c),
            MethodRepr::Wr(c) => MethodConfig::Wr(c),
            MethodRepr::Lrr(c) => MethodConfig::Lrr(c),
            MethodRepr::Sculpt(c) => MethodConfig::Sculpt(c),
            MethodRepr::Gmp(c) => MethodConfig::Gmp(c),
            MethodRepr::Acdc(c) => MethodConfig::Acdc(c),
            MethodRepr::Dst(c) => MethodConfig::Dst(c),
        })
    }
}

impl MethodConfig {
    /// Checks the configuration.
    pub fn validate(&self) -> Result<()> {
        match self {
            MethodConfig::Dense => Ok(()),
            MethodConfig::Static(c) => c.validate(),
            MethodConfig::Cyclic(c) => c.validate(),
            MethodConfig::Imp(c) | MethodConfig::Lrr(c) => c.validate(),
            MethodConfig::Wr(c) => c.validate(),
            MethodConfig::Sculpt(c) => c.validate(),
            MethodConfig::Gmp(c) => c.validate(),
            MethodConfig::Acdc(c) => c.validate(),
            MethodConfig::Dst(c) => c.validate(),
        }
    }

    /// Builds the state machine.
    pub fn build(&self) -> Box<dyn Method> {
        match self {
            MethodConfig::Dense => Box::new(dense::Dense::default()),
            MethodConfig::Static(c) => Box::new(static_sparse::Static::new(c.clone())),
            MethodConfig::Cyclic(c) => Box::new(cyclic::Cyclic::new(c.clone())),
            MethodConfig::Imp(c) => Box::new(imp::Iterative::imp(c.clone())),
            MethodConfig::Wr(c) => Box::new(c.build()),
            MethodConfig::Lrr(c) => Box::new(lrr::build(c.clone())),
            MethodConfig::Sculpt(c) => Box::new(sculpt::Sculpt::new(c.clone())),
            MethodConfig::Gmp(c) => Box::new(gmp::Gmp::new(c.clone())),
            MethodConfig::Acdc(c) => Box::new(acdc::Acdc::new(c.clone())),
            MethodConfig::Dst(c) => Box::new(dst::Dst::new(c.clone())),
        }
    }

    /// The `kind` tag.
    pub fn kind(&self) -> &'static str {
        match self {
            MethodConfig::Dense => "dense",
            MethodConfig::Static(_) => "static",
            MethodConfig::Cyclic(_) => "cyclic",
            MethodConfig::Imp(_) => "imp",
            MethodConfig::Wr(_) => "wr",
            MethodConfig::Lrr(_) => "lrr",
            MethodConfig::Sculpt(_) => "sculpt",
            MethodConfig::Gmp(_) => "gmp",
            MethodConfig::Acdc(_) => "acdc",
            MethodConfig::Dst(_) => "dst",
        }
    }

    /// The target sparsity (0 for dense).
    pub fn sparsity(&self) -> f64 {
        match self {
            MethodConfig::Dense => 0.0,
            MethodConfig::Static(c) => c.sparsity,
            MethodConfig::Cyclic(c) => c.sparsity,
            MethodConfig::Imp(c) | MethodConfig::Lrr(c) => c.sparsity,
            MethodConfig::Wr(c) => c.sparsity,
            MethodConfig::Sculpt(c) => c.sparsity,
            MethodConfig::Gmp(c) => c.sparsity,
            MethodConfig::Acdc(c) => c.sparsity,
            MethodConfig::Dst(c) => c.sparsity,
        }
    }

    /// The same method with another target sparsity (dense stays dense).
    pub fn with_sparsity(&self, s: f64) -> MethodConfig {
        let mut m = self.clone();
        match &mut m {
            MethodConfig::Dense => {}
            MethodConfig::Static(c) => c.sparsity = s,
            MethodConfig::Cyclic(c) => c.sparsity = s,
            MethodConfig::Imp(c) | MethodConfig::Lrr(c) => c.sparsity = s,
            MethodConfig::Wr(c) => c.sparsity = s,
            MethodConfig::Sculpt(c) => c.sparsity = s,
            MethodConfig::Gmp(c) => c.sparsity = s,
            MethodConfig::Acdc(c) => c.sparsity = s,
            MethodConfig::Dst(c) => c.sparsity = s,
        }
        m
    }
}
