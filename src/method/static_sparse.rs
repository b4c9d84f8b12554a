//! Static sparse training: a mask chosen once at initialisation (any PaI score and allocation), then one cycle
//! (optionally `epochs_scale` times the recipe's epochs: the "one long cycle" control and extended training).

use serde::{Deserialize, Serialize};

use super::common::{check_target, from_state, layers, phase, to_state};
use super::{Method, MethodCtx, Phase};
use crate::engine::Network;
use crate::error::{Error, Result};
use crate::sparsity::pai::PaiConfig;
use crate::sparsity::Scope;

fn one() -> usize {
    1
}

/// `kind = "static"`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StaticConfig {
    /// Target sparsity of the masked layers.
    pub sparsity: f64,
    #[serde(default)]
    pub pai: PaiConfig,
    #[serde(default)]
    pub scope: Scope,
    /// The single cycle lasts `epochs_scale` × the recipe's epochs.
    #[serde(default = "one")]
    pub epochs_scale: usize,
}

impl StaticConfig {
    pub fn validate(&self) -> Result<()> {
        check_target(self.sparsity)?;
        self.pai.validate()?;
        if self.epochs_scale == 0 {
            return Err(Error::Recipe(
                "method.epochs_scale must be at least 1".into(),
            ));
        }
        Ok(())
    }
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct State {
    started: bool,
}

/// The static-mask state machine.
pub struct Static {
    cfg: StaticConfig,
    st: State,
}

impl Static {
    pub fn new(cfg: StaticConfig) -> Self {
        Static {
            cfg,
            st: State::default(),
        }
    }
}

impl Method for Static {
    fn next_phase(&mut self, net: &mut dyn Network, ctx: &mut MethodCtx) -> Result<Option<Phase>> {
        if self.st.started {
            return Ok(None);
        }
        let l = layers(net, &self.cfg.scope)?;
        self.cfg.pai.prune(net, &l, 1.0 - self.cfg.sparsity, ctx)?;
        self.st.started = true;
        Ok(Some(phase(
            "static",
            ctx.epochs * self.cfg.epochs_scale,
            ctx,
            true,
        )))
    }

    fn state(&self) -> serde_json::Value {
        to_state(&self.st)
    }

    fn restore(
        &mut self,
        state: &serde_json::Value,
        _t: Vec<(String, ndarray::ArrayD<f32>)>,
    ) -> Result<()> {
        self.st = from_state("static", state)?;
        Ok(())
    }
}
