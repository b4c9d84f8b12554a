//! Dynamic sparse training (SET / RigL style, with the pruning criteria of Nowak et al. 2023). An ERK random mask
//! at the target density; every `update_period` steps each layer independently prunes k = ⌈r_t·n_active⌉ active
//! weights by the criterion and grows k inactive ones (random: uniformly chosen, exactly k; gradient: the k
//! largest |g| of the current mini-batch). Grown weights start at zero; r_t decays by a cosine from
//! `prune_fraction` to `min_prune_fraction` over the run. The update happens after the optimiser step for
//! magnitude, SET and random, and before it for gradient-based criteria.

use rand::seq::index::sample;
use serde::{Deserialize, Serialize};

use super::common::{check_target, from_state, layers, phase, to_state};
use super::{Method, MethodCtx, Phase};
use crate::engine::{GradientMode, Network};
use crate::error::{Error, Result};
use crate::sparsity::criteria::{cosine_prune_fraction, Criterion, OptOrder};
use crate::sparsity::maskset::{read_grads, read_weights};
use crate::sparsity::pai::{PaiConfig, PaiScore};
use crate::sparsity::select::grow_highest;
use crate::sparsity::{Allocation, Layer, Mask, Scope};

/// How DST regrows connections.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Growth {
    /// SET: uniformly random among inactive positions.
    #[default]
    Random,
    /// RigL: largest gradient magnitude among inactive positions.
    Gradient,
}

fn d_crit() -> Criterion {
    Criterion::Magnitude
}
fn d_gamma() -> f32 {
    1.0
}
fn d_r0() -> f64 {
    0.5
}
fn d_rmin() -> f64 {
    0.005
}
fn d_period() -> usize {
    800
}

/// `kind = "dst"`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DstConfig {
    pub sparsity: f64,
    #[serde(default = "d_crit")]
    pub criterion: Criterion,
    #[serde(default)]
    pub growth: Growth,
    /// MEST's γ.
    #[serde(default = "d_gamma")]
    pub gamma: f32,
    /// Initial prune fraction r_0.
    #[serde(default = "d_r0")]
    pub prune_fraction: f64,
    /// Final prune fraction of the cosine decay.
    #[serde(default = "d_rmin")]
    pub min_prune_fraction: f64,
    /// Steps between connectivity updates ΔT.
    #[serde(default = "d_period")]
    pub update_period: usize,
    /// Layer-wise allocation of the random initial mask (default ERK).
    #[serde(default)]
    pub allocation: Allocation,
    #[serde(default)]
    pub scope: Scope,
    /// Override the criterion's update order.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub opt_order: Option<OptOrder>,
}

impl DstConfig {
    pub fn validate(&self) -> Result<()> {
        check_target(self.sparsity)?;
        let frac = |x: f64| (0.0..=1.0).contains(&x);
        if !(frac(self.prune_fraction) && frac(self.min_prune_fraction)) {
            return Err(Error::Recipe(
                "method.prune_fraction and min_prune_fraction must be in [0, 1]".into(),
            ));
        }
        if self.update_period == 0 {
            return Err(Error::Recipe(
                "method.update_period must be at least 1".into(),
            ));
        }
        if !(self.gamma.is_finite() && self.gamma >= 0.0) {
            return Err(Error::Recipe(
                "method.gamma must be finite and non-negative".into(),
            ));
        }
        Ok(())
    }

    pub fn opt_order(&self) -> OptOrder {
        self.opt_order.unwrap_or(self.criterion.opt_order())
    }
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct State {
    started: bool,
    updates: usize,
}

/// The DST state machine.
pub struct Dst {
    cfg: DstConfig,
    st: State,
}

impl Dst {
    pub fn new(cfg: DstConfig) -> Self {
        Dst {
            cfg,
            st: State::default(),
        }
    }

    /// One connectivity update of every layer with prune fraction `r`.
    pub fn update(
        &mut self,
        net: &mut dyn Network,
        layers: &[Layer],
        r: f64,
        ctx: &mut MethodCtx,
    ) -> Result<()> {
        let weights = read_weights(net, layers)?;
        let grads = read_grads(net, layers)?;
        for ((l, w), g) in layers.iter().zip(&weights).zip(&grads) {
            let keep = net
                .mask(&l.path)
                .unwrap_or_else(|| Mask::dense(&l.shape))
                .keep_flags();
            let active = keep.iter().filter(|&&b| b).count();
            let k = (r * active as f64).ceil() as usize;
            if k == 0 {
                continue;
            }
            let pruned = self
                .cfg
                .criterion
                .prune(w, g, &keep, k, self.cfg.gamma, ctx.rng);
            let removed = active - pruned.iter().filter(|&&b| b).count();
            let grown = match self.cfg.growth {
                Growth::Gradient => {
                    let s: Vec<f32> = g.iter().map(|x| x.abs()).collect();
                    grow_highest(&pruned, &s, removed)
                }
                Growth::Random => {
                    let inactive: Vec<usize> = (0..pruned.len()).filter(|&i| !pruned[i]).collect();
                    let mut out = pruned.clone();
                    for j in
                        sample(ctx.rng, inactive.len(), removed.min(inactive.len())).into_iter()
                    {
                        out[inactive[j]] = true;
                    }
                    out
                }
            };
            net.set_mask(&l.path, Some(&Mask::from_keep(&l.shape, &pruned)))?;
            net.set_mask(&l.path, Some(&Mask::from_keep(&l.shape, &grown)))?;
        }
        self.st.updates += 1;
        Ok(())
    }

    fn maybe_update(
        &mut self,
        net: &mut dyn Network,
        step: usize,
        ctx: &mut MethodCtx,
    ) -> Result<()> {
        if (step + 1) % self.cfg.update_period != 0 {
            return Ok(());
        }
        let total = ctx.steps_per_epoch * ctx.epochs;
        let r = cosine_prune_fraction(
            self.cfg.prune_fraction,
            self.cfg.min_prune_fraction,
            step,
            total,
        );
        let l = layers(net, &self.cfg.scope)?;
        self.update(net, &l, r, ctx)
    }

    /// Connectivity updates done so far.
    pub fn updates(&self) -> usize {
        self.st.updates
    }
}

impl Method for Dst {
    /// Dense gradients on the steps whose connectivity update grows by gradient (RigL), kept ones otherwise.
    fn gradient_mode(&self, step: usize) -> GradientMode {
        if self.cfg.growth == Growth::Gradient && (step + 1) % self.cfg.update_period == 0 {
            GradientMode::Dense
        } else {
            GradientMode::Kept
        }
    }

    fn next_phase(&mut self, net: &mut dyn Network, ctx: &mut MethodCtx) -> Result<Option<Phase>> {
        if self.st.started {
            return Ok(None);
        }
        let l = layers(net, &self.cfg.scope)?;
        let pai = PaiConfig {
            score: PaiScore::Random,
            allocation: Some(self.cfg.allocation),
            ..PaiConfig::default()
        };
        pai.prune(net, &l, 1.0 - self.cfg.sparsity, ctx)?;
        self.st.started = true;
        Ok(Some(phase("dst", ctx.epochs, ctx, true)))
    }

    fn after_backward(
        &mut self,
        net: &mut dyn Network,
        step: usize,
        ctx: &mut MethodCtx,
    ) -> Result<()> {
        if self.cfg.opt_order() == OptOrder::After {
            self.maybe_update(net, step, ctx)?;
        }
        Ok(())
    }

    fn after_step(
        &mut self,
        net: &mut dyn Network,
        step: usize,
        ctx: &mut MethodCtx,
    ) -> Result<()> {
        if self.cfg.opt_order() == OptOrder::Before {
            self.maybe_update(net, step, ctx)?;
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
        self.st = from_state("dst", state)?;
        Ok(())
    }
}
