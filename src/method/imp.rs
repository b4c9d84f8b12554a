//! Iterative magnitude pruning and its rewinding variants. Level 0 trains the dense model; each later level
//! prunes `prune_rate` of the remaining weights by one global magnitude prune (the last level lands exactly on
//! the target), then rewinds and retrains a full cycle:
//! - IMP (Frankle & Carbin): weights, biases, BN parameters and statistics rewound to θ0; fresh optimiser;
//! - WR (weight rewinding): everything rewound to the end of epoch k of level 0, optimiser state restored too;
//! - LRR (learning-rate rewinding): weights kept, schedule restarted, fresh optimiser.

use ndarray::ArrayD;
use serde::{Deserialize, Serialize};

use super::common::{
    all_tensors, check_target, from_state, layers, phase, prefixed, take_prefixed, to_state,
    write_all,
};
use super::{Method, MethodCtx, Phase};
use crate::engine::Network;
use crate::error::{Error, Result};
use crate::sparsity::pai::global_magnitude_prune;
use crate::sparsity::{MaskSet, Scope};

fn default_rate() -> f64 {
    0.2
}

/// `kind = "imp"` and `kind = "lrr"`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImpConfig {
    /// Final sparsity.
    pub sparsity: f64,
    /// Fraction of the remaining weights pruned per level.
    #[serde(default = "default_rate")]
    pub prune_rate: f64,
    #[serde(default)]
    pub scope: Scope,
}

impl ImpConfig {
    pub fn validate(&self) -> Result<()> {
        check_target(self.sparsity)?;
        if !(self.prune_rate > 0.0 && self.prune_rate < 1.0) {
            return Err(Error::Recipe(format!(
                "method.prune_rate must be in (0, 1), got {}",
                self.prune_rate
            )));
        }
        Ok(())
    }

    /// Density after each pruning level: (1 − rate)^i, the last one clamped to the target.
    pub fn level_densities(&self) -> Vec<f64> {
        level_densities(self.prune_rate, 1.0 - self.sparsity)
    }
}

/// Densities (1 − rate)^i for i = 1, 2, … until the target density, the last clamped to it exactly.
pub fn level_densities(rate: f64, target: f64) -> Vec<f64> {
    let mut out = Vec::new();
    let mut d = 1.0;
    while d > target * (1.0 + 1e-9) {
        d *= 1.0 - rate;
        out.push(d.max(target));
    }
    out
}

/// What a level rewinds to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Rewind {
    /// θ0, fresh optimiser.
    Init,
    /// The end of epoch `k` (1-based) of level 0, with its optimiser state.
    Epoch(usize),
    /// No rewinding: trained weights kept, fresh optimiser.
    LearningRate,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct State {
    /// Phases handed out so far (level = phases − 1).
    phases: usize,
}

/// The iterative-pruning state machine shared by IMP, WR and LRR.
pub struct Iterative {
    name: &'static str,
    cfg: ImpConfig,
    rewind: Rewind,
    st: State,
    rewind_point: Vec<(String, ArrayD<f32>)>,
    rewind_opt: Vec<(String, ArrayD<f32>)>,
}

impl Iterative {
    pub fn new(name: &'static str, cfg: ImpConfig, rewind: Rewind) -> Self {
        Iterative {
            name,
            cfg,
            rewind,
            st: State::default(),
            rewind_point: Vec::new(),
            rewind_opt: Vec::new(),
        }
    }

    /// IMP with rewinding to θ0.
    pub fn imp(cfg: ImpConfig) -> Self {
        Self::new("imp", cfg, Rewind::Init)
    }
}

impl Method for Iterative {
    fn next_phase(&mut self, net: &mut dyn Network, ctx: &mut MethodCtx) -> Result<Option<Phase>> {
        let densities = self.cfg.level_densities();
        let level = self.st.phases;
        if level > densities.len() {
            return Ok(None);
        }
        let l = layers(net, &self.cfg.scope)?;
        if level == 0 {
            MaskSet::dense(&l).apply(net)?;
            if self.rewind == Rewind::Init {
                self.rewind_point = all_tensors(net)?;
                self.rewind_opt.clear();
            }
            self.st.phases = 1;
            return Ok(Some(phase("level 0", ctx.epochs, ctx, true)));
        }
        if self.rewind != Rewind::LearningRate && self.rewind_point.is_empty() {
            return Err(Error::Invalid(format!(
                "{}: no rewind point was saved during level 0 (rewind epoch beyond the recipe's epochs?)",
                self.name
            )));
        }
        global_magnitude_prune(net, &l, densities[level - 1])?;
        let reset = match self.rewind {
            Rewind::Init | Rewind::LearningRate => {
                if self.rewind == Rewind::Init {
                    write_all(net, &self.rewind_point)?;
                }
                net.reset_optimizer();
                true
            }
            Rewind::Epoch(_) => {
                write_all(net, &self.rewind_point)?;
                net.reset_optimizer();
                net.set_optimizer_state(&self.rewind_opt)?;
                false
            }
        };
        self.st.phases += 1;
        Ok(Some(phase(
            format!("level {level}"),
            ctx.epochs,
            ctx,
            reset,
        )))
    }

    fn after_epoch(
        &mut self,
        net: &mut dyn Network,
        epoch: usize,
        _ctx: &mut MethodCtx,
    ) -> Result<()> {
        if let Rewind::Epoch(k) = self.rewind {
            if self.st.phases == 1 && epoch + 1 == k {
                self.rewind_point = all_tensors(net)?;
                self.rewind_opt = net.optimizer_state();
            }
        }
        Ok(())
    }

    fn state(&self) -> serde_json::Value {
        to_state(&self.st)
    }

    fn tensors(&self) -> Vec<(String, ArrayD<f32>)> {
        let mut t = prefixed("rewind", &self.rewind_point);
        t.extend(prefixed("rewind_opt", &self.rewind_opt));
        t
    }

    fn restore(
        &mut self,
        state: &serde_json::Value,
        tensors: Vec<(String, ArrayD<f32>)>,
    ) -> Result<()> {
        self.st = from_state(self.name, state)?;
        self.rewind_point = take_prefixed("rewind", &tensors);
        self.rewind_opt = take_prefixed("rewind_opt", &tensors);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_follow_the_geometric_schedule() {
        let d = level_densities(0.2, 1.0 - 0.8);
        assert_eq!(d.len(), 8);
        assert!((d[0] - 0.8).abs() < 1e-12 && (d[1] - 0.64).abs() < 1e-12);
        assert!((d[7] - 0.2).abs() < 1e-12);
        assert!(level_densities(0.2, 1.0).is_empty());
        assert_eq!(level_densities(0.2, 0.64).len(), 2);
    }
}
