//! Learning-rate rewinding (Renda et al. 2020): IMP's levels without rewinding the weights; each level restarts
//! the schedule with a fresh optimiser, i.e. cyclic training where each cycle starts with a magnitude prune.

use super::imp::{ImpConfig, Iterative, Rewind};

/// LRR over an [`ImpConfig`] (`kind = "lrr"`).
pub fn build(cfg: ImpConfig) -> Iterative {
    Iterative::new("lrr", cfg, Rewind::LearningRate)
}
