//! IMP with weight rewinding (Frankle et al. 2020): rewind to the weights, BN state and optimiser state saved at
//! the end of epoch k of level 0; the schedule restarts for a full cycle (as the authors' harness does).

use serde::{Deserialize, Serialize};

use super::imp::{ImpConfig, Iterative, Rewind};
use crate::error::{Error, Result};
use crate::sparsity::Scope;

fn default_rate() -> f64 {
    0.2
}
fn default_epoch() -> usize {
    1
}

/// `kind = "wr"`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WrConfig {
    pub sparsity: f64,
    #[serde(default = "default_rate")]
    pub prune_rate: f64,
    /// Rewind point: the end of this epoch (1-based) of level 0; must not exceed the recipe's epochs.
    #[serde(default = "default_epoch")]
    pub rewind_epoch: usize,
    #[serde(default)]
    pub scope: Scope,
}

impl WrConfig {
    fn imp(&self) -> ImpConfig {
        ImpConfig {
            sparsity: self.sparsity,
            prune_rate: self.prune_rate,
            scope: self.scope,
        }
    }

    pub fn validate(&self) -> Result<()> {
        self.imp().validate()?;
        if self.rewind_epoch == 0 {
            return Err(Error::Recipe(
                "method.rewind_epoch must be at least 1 (0 would be IMP)".into(),
            ));
        }
        Ok(())
    }

    pub fn build(&self) -> Iterative {
        Iterative::new("wr", self.imp(), Rewind::Epoch(self.rewind_epoch))
    }
}
