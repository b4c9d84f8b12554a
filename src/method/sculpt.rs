//! SCULPT-ing (Gadhikar et al.): PaI at a low sparsity s0, C cycles of cyclic training, one global magnitude
//! prune from s0 straight to the target (no rewinding), then one more cycle. Every cycle has a fresh optimiser.

use serde::{Deserialize, Serialize};

use super::common::{check_target, from_state, layers, phase, to_state};
use super::{Method, MethodCtx, Phase};
use crate::engine::Network;
use crate::error::{Error, Result};
use crate::sparsity::pai::{global_magnitude_prune, PaiConfig};
use crate::sparsity::Scope;

/// `kind = "sculpt"`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SculptConfig {
    /// Target sparsity after the prune.
    pub sparsity: f64,
    /// Sparsity of the initial PaI mask (at most the target).
    pub initial_sparsity: f64,
    /// Cycles before the prune (one more follows it).
    pub cycles: usize,
    #[serde(default)]
    pub pai: PaiConfig,
    #[serde(default)]
    pub scope: Scope,
}

impl SculptConfig {
    pub fn validate(&self) -> Result<()> {
        check_target(self.sparsity)?;
        crate::sparsity::maskset::check_sparsity("method.initial_sparsity", self.initial_sparsity)?;
        if self.initial_sparsity > self.sparsity {
            return Err(Error::Recipe(format!(
                "method.initial_sparsity ({}) is above the target sparsity ({})",
                self.initial_sparsity, self.sparsity
            )));
        }
        if self.cycles == 0 {
            return Err(Error::Recipe("method.cycles must be at least 1".into()));
        }
        self.pai.validate()
    }
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct State {
    cycle: usize,
}

/// The SCULPT state machine.
pub struct Sculpt {
    cfg: SculptConfig,
    st: State,
}

impl Sculpt {
    pub fn new(cfg: SculptConfig) -> Self {
        Sculpt {
            cfg,
            st: State::default(),
        }
    }
}

impl Method for Sculpt {
    fn next_phase(&mut self, net: &mut dyn Network, ctx: &mut MethodCtx) -> Result<Option<Phase>> {
        let c = self.cfg.cycles;
        if self.st.cycle > c {
            return Ok(None);
        }
        let l = layers(net, &self.cfg.scope)?;
        let label = if self.st.cycle == 0 {
            self.cfg
                .pai
                .prune(net, &l, 1.0 - self.cfg.initial_sparsity, ctx)?;
            "cycle 1".to_string()
        } else if self.st.cycle == c {
            global_magnitude_prune(net, &l, 1.0 - self.cfg.sparsity)?;
            "after prune".to_string()
        } else {
            format!("cycle {}", self.st.cycle + 1)
        };
        self.st.cycle += 1;
        net.reset_optimizer();
        Ok(Some(phase(label, ctx.epochs, ctx, true)))
    }

    fn state(&self) -> serde_json::Value {
        to_state(&self.st)
    }

    fn restore(
        &mut self,
        state: &serde_json::Value,
        _t: Vec<(String, ndarray::ArrayD<f32>)>,
    ) -> Result<()> {
        self.st = from_state("sculpt", state)?;
        Ok(())
    }
}
