//! AC/DC (Peste et al. 2021): one schedule split into a dense warm-up, alternating compressed phases (one global
//! magnitude prune to the target, then a fixed mask) and decompressed phases (every pruned weight returns at
//! zero, momentum reset), and a final compressed phase that also serves as fine-tuning.

use serde::{Deserialize, Serialize};

use super::common::{check_target, from_state, layers, phase, to_state};
use super::{Method, MethodCtx, Phase};
use crate::engine::Network;
use crate::error::{Error, Result};
use crate::sparsity::pai::global_magnitude_prune;
use crate::sparsity::{MaskSet, Scope};

fn d_warmup() -> f64 {
    0.1
}
fn d_phase() -> f64 {
    0.05
}
fn d_final() -> f64 {
    0.15
}

/// `kind = "acdc"`. Lengths are fractions of the run's epochs (defaults: the 100-epoch ImageNet plan,
/// 10 dense, alternating 5-epoch phases, 15 final sparse epochs).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AcdcConfig {
    pub sparsity: f64,
    #[serde(default = "d_warmup")]
    pub warmup: f64,
    #[serde(default = "d_phase")]
    pub phase: f64,
    #[serde(default = "d_final")]
    pub final_sparse: f64,
    #[serde(default)]
    pub scope: Scope,
}

impl AcdcConfig {
    pub fn validate(&self) -> Result<()> {
        check_target(self.sparsity)?;
        let ok = |x: f64| (0.0..1.0).contains(&x);
        if !(ok(self.warmup) && self.phase > 0.0 && self.phase < 1.0 && ok(self.final_sparse))
            || self.warmup + self.final_sparse > 1.0
        {
            return Err(Error::Recipe(
                "method.warmup, method.phase and method.final_sparse must be fractions with warmup + final_sparse <= 1"
                    .into(),
            ));
        }
        Ok(())
    }

    /// Whether epoch `e` (0-based) of an `epochs`-epoch run is compressed.
    pub fn is_sparse(&self, e: usize, epochs: usize) -> bool {
        let n = epochs as f64;
        let w = (self.warmup * n).round() as usize;
        let p = ((self.phase * n).round() as usize).max(1);
        let f = epochs - ((self.final_sparse * n).round() as usize).min(epochs);
        if e >= f {
            return true;
        }
        if e < w {
            return false;
        }
        let j = (e - w) / p;
        j % 2 == 0 && w + j * p + 2 * p <= f
    }
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct State {
    started: bool,
}

/// The AC/DC state machine.
pub struct Acdc {
    cfg: AcdcConfig,
    st: State,
}

impl Acdc {
    pub fn new(cfg: AcdcConfig) -> Self {
        Acdc {
            cfg,
            st: State::default(),
        }
    }

    fn enter(&self, net: &mut dyn Network, e: usize, epochs: usize) -> Result<()> {
        let l = layers(net, &self.cfg.scope)?;
        let now = self.cfg.is_sparse(e, epochs);
        let before = e > 0 && self.cfg.is_sparse(e - 1, epochs);
        if now && !before {
            MaskSet::dense(&l).apply(net)?;
            global_magnitude_prune(net, &l, 1.0 - self.cfg.sparsity)?;
        } else if !now && before {
            MaskSet::dense(&l).apply(net)?;
            net.reset_optimizer();
        }
        Ok(())
    }
}

impl Method for Acdc {
    fn next_phase(&mut self, net: &mut dyn Network, ctx: &mut MethodCtx) -> Result<Option<Phase>> {
        if self.st.started {
            return Ok(None);
        }
        let l = layers(net, &self.cfg.scope)?;
        MaskSet::dense(&l).apply(net)?;
        self.enter(net, 0, ctx.epochs)?;
        self.st.started = true;
        Ok(Some(phase("acdc", ctx.epochs, ctx, true)))
    }

    fn after_epoch(
        &mut self,
        net: &mut dyn Network,
        epoch: usize,
        ctx: &mut MethodCtx,
    ) -> Result<()> {
        if epoch + 1 < ctx.epochs {
            self.enter(net, epoch + 1, ctx.epochs)?;
        }
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
        self.st = from_state("acdc", state)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reproduces_the_hundred_epoch_plan() {
        let cfg = AcdcConfig {
            sparsity: 0.9,
            warmup: 0.1,
            phase: 0.05,
            final_sparse: 0.15,
            scope: Scope::default(),
        };
        let sparse: Vec<usize> = (0..100).filter(|&e| cfg.is_sparse(e, 100)).collect();
        let mut want: Vec<usize> = Vec::new();
        for s in (10..=70).step_by(10) {
            want.extend(s..s + 5);
        }
        want.extend(85..100);
        assert_eq!(sparse, want);
    }
}
