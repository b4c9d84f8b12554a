//! Cyclic sparse training (Gadhikar et al.): a PaI mask trained for C cycles, each with a fresh optimiser and the
//! schedule restarted; weights carry over, the mask never changes.

use serde::{Deserialize, Serialize};

use super::common::{check_target, from_state, layers, phase, to_state};
use super::{Method, MethodCtx, Phase};
use crate::engine::Network;
use crate::error::{Error, Result};
use crate::sparsity::pai::PaiConfig;
use crate::sparsity::Scope;

/// How the budget of C × (recipe epochs) is split over the cycles.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Split {
    /// Every cycle has the recipe's epochs.
    #[default]
    Constant,
    /// Cycle c (1-based) gets a share ∝ c.
    Increasing,
    /// Cycle c gets a share ∝ C + 1 − c.
    Decreasing,
}

/// Epochs of each of `cycles` cycles for a total of `total` epochs: shares ∝ the split's weights, rounded by
/// largest remainder (ties to the earlier cycle); a cycle rounded to zero gets one epoch, taken from the longest.
/// Needs `total >= cycles`.
pub fn split_epochs(split: Split, cycles: usize, total: usize) -> Vec<usize> {
    assert!(
        cycles > 0 && total >= cycles,
        "need at least one epoch per cycle"
    );
    let weights: Vec<f64> = (1..=cycles)
        .map(|c| match split {
            Split::Constant => 1.0,
            Split::Increasing => c as f64,
            Split::Decreasing => (cycles + 1 - c) as f64,
        })
        .collect();
    let sum: f64 = weights.iter().sum();
    let exact: Vec<f64> = weights.iter().map(|w| w / sum * total as f64).collect();
    let mut out: Vec<usize> = exact.iter().map(|e| e.floor() as usize).collect();
    let mut rem: Vec<(f64, usize)> = exact
        .iter()
        .enumerate()
        .map(|(i, e)| (e - e.floor(), i))
        .collect();
    rem.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
    let missing = total - out.iter().sum::<usize>();
    for &(_, i) in rem.iter().take(missing) {
        out[i] += 1;
    }
    while let Some(z) = out.iter().position(|&e| e == 0) {
        let longest = (0..cycles)
            .max_by(|&a, &b| out[a].cmp(&out[b]).then(b.cmp(&a)))
            .expect("cycles > 0");
        out[longest] -= 1;
        out[z] = 1;
    }
    out
}

/// `kind = "cyclic"`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CyclicConfig {
    pub sparsity: f64,
    pub cycles: usize,
    #[serde(default)]
    pub split: Split,
    #[serde(default)]
    pub pai: PaiConfig,
    #[serde(default)]
    pub scope: Scope,
}

impl CyclicConfig {
    pub fn validate(&self) -> Result<()> {
        check_target(self.sparsity)?;
        self.pai.validate()?;
        if self.cycles == 0 {
            return Err(Error::Recipe("method.cycles must be at least 1".into()));
        }
        Ok(())
    }
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct State {
    cycle: usize,
}

/// The cyclic state machine.
pub struct Cyclic {
    cfg: CyclicConfig,
    st: State,
}

impl Cyclic {
    pub fn new(cfg: CyclicConfig) -> Self {
        Cyclic {
            cfg,
            st: State::default(),
        }
    }
}

impl Method for Cyclic {
    fn next_phase(&mut self, net: &mut dyn Network, ctx: &mut MethodCtx) -> Result<Option<Phase>> {
        let c = self.cfg.cycles;
        if self.st.cycle >= c {
            return Ok(None);
        }
        if ctx.epochs == 0 {
            return Err(Error::Recipe(
                "cyclic training needs at least one epoch per cycle".into(),
            ));
        }
        if self.st.cycle == 0 {
            let l = layers(net, &self.cfg.scope)?;
            self.cfg.pai.prune(net, &l, 1.0 - self.cfg.sparsity, ctx)?;
        }
        let epochs = split_epochs(self.cfg.split, c, ctx.epochs * c)[self.st.cycle];
        self.st.cycle += 1;
        net.reset_optimizer();
        Ok(Some(phase(
            format!("cycle {}", self.st.cycle),
            epochs,
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
        self.st = from_state("cyclic", state)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_sum_to_the_budget() {
        assert_eq!(split_epochs(Split::Constant, 3, 9), vec![3, 3, 3]);
        assert_eq!(split_epochs(Split::Increasing, 3, 12), vec![2, 4, 6]);
        assert_eq!(split_epochs(Split::Decreasing, 3, 12), vec![6, 4, 2]);
        for s in [Split::Constant, Split::Increasing, Split::Decreasing] {
            let e = split_epochs(s, 4, 10);
            assert_eq!(e.iter().sum::<usize>(), 10);
            assert!(e.iter().all(|&x| x >= 1));
        }
    }
}
