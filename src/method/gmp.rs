//! Gradual magnitude pruning (Zhu & Gupta): one schedule; every `frequency` steps between `start` and `end` the
//! active weights are pruned by one global magnitude threshold to s(t) = s_f − (s_f − s_i)(1 − (t − t0)/(t1 − t0))³.
//! Pruned weights never return; the optimiser state is kept.

use serde::{Deserialize, Serialize};

use super::common::{check_target, from_state, layers, phase, to_state};
use super::{Method, MethodCtx, Phase};
use crate::engine::Network;
use crate::error::{Error, Result};
use crate::sparsity::pai::global_magnitude_prune;
use crate::sparsity::{MaskSet, Scope};

fn d_start() -> f64 {
    0.0
}
fn d_end() -> f64 {
    0.75
}
fn d_freq() -> usize {
    100
}
fn d_exp() -> f64 {
    3.0
}

/// `kind = "gmp"`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GmpConfig {
    /// Final sparsity s_f.
    pub sparsity: f64,
    /// Sparsity s_i of the first prune.
    #[serde(default)]
    pub initial_sparsity: f64,
    /// First prune, as a fraction of the run's steps.
    #[serde(default = "d_start")]
    pub start: f64,
    /// Last prune (reaching s_f), as a fraction of the run's steps.
    #[serde(default = "d_end")]
    pub end: f64,
    /// Steps between prunes.
    #[serde(default = "d_freq")]
    pub frequency: usize,
    #[serde(default = "d_exp")]
    pub exponent: f64,
    #[serde(default)]
    pub scope: Scope,
}

impl GmpConfig {
    pub fn validate(&self) -> Result<()> {
        check_target(self.sparsity)?;
        crate::sparsity::maskset::check_sparsity("method.initial_sparsity", self.initial_sparsity)?;
        if self.initial_sparsity > self.sparsity {
            return Err(Error::Recipe(
                "method.initial_sparsity is above the target sparsity".into(),
            ));
        }
        if !(0.0 <= self.start && self.start <= self.end && self.end <= 1.0) {
            return Err(Error::Recipe(
                "method.start and method.end must satisfy 0 <= start <= end <= 1".into(),
            ));
        }
        if self.frequency == 0 || self.exponent.is_nan() || self.exponent <= 0.0 {
            return Err(Error::Recipe(
                "method.frequency and method.exponent must be positive".into(),
            ));
        }
        Ok(())
    }

    /// The sparsity s(t) at step `t` for prunes between steps `t0` and `t1`.
    pub fn sparsity_at(&self, t: usize, t0: usize, t1: usize) -> f64 {
        let x = if t1 > t0 {
            ((t.saturating_sub(t0)) as f64 / (t1 - t0) as f64).min(1.0)
        } else {
            1.0
        };
        self.sparsity - (self.sparsity - self.initial_sparsity) * (1.0 - x).powf(self.exponent)
    }
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct State {
    started: bool,
}

/// The GMP state machine.
pub struct Gmp {
    cfg: GmpConfig,
    st: State,
}

impl Gmp {
    pub fn new(cfg: GmpConfig) -> Self {
        Gmp {
            cfg,
            st: State::default(),
        }
    }

    fn window(&self, total: usize) -> (usize, usize) {
        let last = total.saturating_sub(1) as f64;
        (
            (self.cfg.start * last).round() as usize,
            (self.cfg.end * last).round() as usize,
        )
    }
}

impl Method for Gmp {
    fn next_phase(&mut self, net: &mut dyn Network, ctx: &mut MethodCtx) -> Result<Option<Phase>> {
        if self.st.started {
            return Ok(None);
        }
        let l = layers(net, &self.cfg.scope)?;
        MaskSet::dense(&l).apply(net)?;
        self.st.started = true;
        Ok(Some(phase("gmp", ctx.epochs, ctx, true)))
    }

    fn after_step(
        &mut self,
        net: &mut dyn Network,
        step: usize,
        ctx: &mut MethodCtx,
    ) -> Result<()> {
        let total = ctx.steps_per_epoch * ctx.epochs;
        let (t0, t1) = self.window(total);
        let due = step >= t0 && step <= t1 && ((step - t0) % self.cfg.frequency == 0 || step == t1);
        if !due {
            return Ok(());
        }
        let l = layers(net, &self.cfg.scope)?;
        let s = self.cfg.sparsity_at(step, t0, t1);
        if total == 0 {
            return Err(Error::Invalid("gmp: a run without steps".into()));
        }
        global_magnitude_prune(net, &l, 1.0 - s)?;
        Ok(())
    }

    fn state(&self) -> serde_json::Value {
        to_state(&self.st)
    }

    fn restore(
        &mut self,
        state: &serde_json::Value,
        _t: Vec<(String, ndarray::ArrayD<f32>)>,
    ) -> Result<()> {
        self.st = from_state("gmp", state)?;
        Ok(())
    }
}
