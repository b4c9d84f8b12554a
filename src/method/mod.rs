//! Training procedures. Each method is a small state machine that the trainer drives: it hands out training
//! phases (a cycle with its schedule) and, between them or at hook points, reads weights and gradients and changes
//! masks, weights and optimiser state through the [`Network`]. A method never touches kernels.

pub mod dense;

use ndarray::{Array4, ArrayD};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::engine::Network;
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

    fn after_backward(&mut self, _net: &mut dyn Network, _step: usize, _ctx: &mut MethodCtx) -> Result<()> {
        Ok(())
    }

    fn after_step(&mut self, _net: &mut dyn Network, _step: usize, _ctx: &mut MethodCtx) -> Result<()> {
        Ok(())
    }

    fn after_epoch(&mut self, _net: &mut dyn Network, _epoch: usize, _ctx: &mut MethodCtx) -> Result<()> {
        Ok(())
    }

    /// The method's state for checkpoints (counters, flags) ...
    fn state(&self) -> serde_json::Value;

    /// ... and its tensors (e.g. the rewind point θ0 or θk), saved under `method.<name>`.
    fn tensors(&self) -> Vec<(String, ArrayD<f32>)> {
        Vec::new()
    }

    /// Restores what `state` and `tensors` saved.
    fn restore(&mut self, state: &serde_json::Value, tensors: Vec<(String, ArrayD<f32>)>) -> Result<()>;
}

/// The method section of a recipe: a tagged enum, `kind = "..."`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum MethodConfig {
    /// Dense training: one cycle.
    Dense,
}

impl MethodConfig {
    /// Checks the configuration.
    pub fn validate(&self) -> Result<()> {
        match self {
            MethodConfig::Dense => Ok(()),
        }
    }

    /// Builds the state machine.
    pub fn build(&self) -> Box<dyn Method> {
        match self {
            MethodConfig::Dense => Box::new(dense::Dense::default()),
        }
    }
}
