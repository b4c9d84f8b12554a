//! Pruning at initialisation (and one-shot pruning in general): a score, a layer-wise allocation and a density
//! give a mask set. Only entries active in the network's current masks can be kept.

use serde::{Deserialize, Serialize};

use super::allocation::Allocation;
use super::maskset::{kept_count, Layer, MaskSet};
use super::scores;
use super::select::{global_top_k, restrict, top_k};
use crate::engine::Network;
use crate::error::{Error, Result};
use crate::method::MethodCtx;

/// The score a one-shot prune ranks weights by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PaiScore {
    Random,
    Magnitude,
    Snip,
    Synflow,
    Grasp,
}

fn default_score() -> PaiScore {
    PaiScore::Random
}
fn default_rounds() -> usize {
    1
}
fn default_batch() -> usize {
    256
}
fn default_temperature() -> f32 {
    200.0
}

/// How a mask is chosen at initialisation. In a recipe: `[method.pai]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PaiConfig {
    /// The score (default `random`).
    #[serde(default = "default_score")]
    pub score: PaiScore,
    /// Layer-wise allocation; default ERK for `random`, global for every other score.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allocation: Option<Allocation>,
    /// SynFlow rounds: 1 = one-shot; n > 1 prunes to density d^(i/n) in round i (the exponential schedule).
    #[serde(default = "default_rounds")]
    pub rounds: usize,
    /// Batch size of the one batch SNIP and GraSP score on.
    #[serde(default = "default_batch")]
    pub batch: usize,
    /// GraSP temperature.
    #[serde(default = "default_temperature")]
    pub temperature: f32,
}

impl Default for PaiConfig {
    fn default() -> Self {
        PaiConfig {
            score: default_score(),
            allocation: None,
            rounds: default_rounds(),
            batch: default_batch(),
            temperature: default_temperature(),
        }
    }
}

impl PaiConfig {
    /// The allocation in effect.
    pub fn allocation(&self) -> Allocation {
        self.allocation.unwrap_or(match self.score {
            PaiScore::Random => Allocation::Erk,
            _ => Allocation::Global,
        })
    }

    pub fn validate(&self) -> Result<()> {
        if self.rounds == 0 {
            return Err(Error::Recipe("pai.rounds must be at least 1".into()));
        }
        if self.batch == 0 {
            return Err(Error::Recipe("pai.batch must be at least 1".into()));
        }
        if !(self.temperature.is_finite() && self.temperature > 0.0) {
            return Err(Error::Recipe(format!(
                "pai.temperature must be positive, got {}",
                self.temperature
            )));
        }
        if self.rounds > 1 && self.score != PaiScore::Synflow {
            return Err(Error::Recipe(
                "pai.rounds > 1 is only defined for synflow".into(),
            ));
        }
        Ok(())
    }

    /// Computes the masks at `density` and sets them on `net`.
    pub fn prune(
        &self,
        net: &mut dyn Network,
        layers: &[Layer],
        density: f64,
        ctx: &mut MethodCtx,
    ) -> Result<MaskSet> {
        let alloc = self.allocation();
        let masks = match self.score {
            PaiScore::Synflow => {
                let final_counts = alloc.counts(layers, density);
                let mut current = MaskSet::from_net(net, layers);
                for i in 1..=self.rounds {
                    let frac = i as f64 / self.rounds as f64;
                    let s = scores::synflow(net, layers)?;
                    let targets = final_counts.as_ref().map(|c| {
                        layers
                            .iter()
                            .zip(c)
                            .map(|(l, &k)| {
                                kept_count(l.len(), (k as f64 / l.len() as f64).powf(frac)).max(k)
                            })
                            .collect::<Vec<_>>()
                    });
                    current = select(layers, &current, &s, targets, density.powf(frac))?;
                    current.apply(net)?;
                }
                current
            }
            other => {
                let s = match other {
                    PaiScore::Random => scores::random(ctx.rng, layers),
                    PaiScore::Magnitude => scores::magnitude(net, layers)?,
                    PaiScore::Snip => {
                        let (x, y) = (ctx.sample_batch)(self.batch);
                        scores::snip(net, layers, &x, &y, ctx.label_smoothing)?
                    }
                    PaiScore::Grasp => {
                        let (x, y) = (ctx.sample_batch)(self.batch);
                        scores::grasp(net, layers, &x, &y, self.temperature)?
                    }
                    PaiScore::Synflow => unreachable!("handled above"),
                };
                let current = MaskSet::from_net(net, layers);
                select(layers, &current, &s, alloc.counts(layers, density), density)?
            }
        };
        masks.apply(net)?;
        Ok(masks)
    }
}

/// Keeps the highest scores among the entries active in `current`: per layer with `counts`, or globally
/// `round(density·N)` entries when `counts` is `None` (never more than are active).
pub fn select(
    layers: &[Layer],
    current: &MaskSet,
    scores: &[Vec<f32>],
    counts: Option<Vec<usize>>,
    density: f64,
) -> Result<MaskSet> {
    let keep = current.flags(layers)?;
    let restricted: Vec<Vec<f32>> = scores
        .iter()
        .zip(&keep)
        .map(|(s, k)| restrict(s, k))
        .collect();
    let active: Vec<usize> = keep
        .iter()
        .map(|k| k.iter().filter(|&&b| b).count())
        .collect();
    let flags = match counts {
        Some(c) => restricted
            .iter()
            .zip(c)
            .zip(&active)
            .map(|((s, k), &a)| top_k(s, k.min(a)))
            .collect::<Vec<_>>(),
        None => {
            let total: usize = layers.iter().map(Layer::len).sum();
            global_top_k(
                &restricted,
                kept_count(total, density).min(active.iter().sum()),
            )
        }
    };
    Ok(MaskSet::from_flags(layers, &flags))
}

/// One-shot global magnitude prune of the active weights to `density` (IMP, LRR, SCULPT, GMP, AC/DC); sets the
/// masks on `net`.
pub fn global_magnitude_prune(
    net: &mut dyn Network,
    layers: &[Layer],
    density: f64,
) -> Result<MaskSet> {
    let s = scores::magnitude(net, layers)?;
    let current = MaskSet::from_net(net, layers);
    let masks = select(layers, &current, &s, None, density)?;
    masks.apply(net)?;
    Ok(masks)
}
