//! Dense training: one cycle of the recipe's schedule, no masks.

use super::{Method, MethodCtx, Phase};
use crate::engine::Network;
use crate::error::{Error, Result};

/// One phase of the base schedule, then done.
#[derive(Debug, Default)]
pub struct Dense {
    started: bool,
}

impl Method for Dense {
    fn next_phase(&mut self, _net: &mut dyn Network, ctx: &mut MethodCtx) -> Result<Option<Phase>> {
        if self.started {
            return Ok(None);
        }
        self.started = true;
        Ok(Some(Phase {
            label: "dense".into(),
            epochs: ctx.epochs,
            schedule: ctx.schedule.clone(),
            reset_optimizer: true,
        }))
    }

    fn state(&self) -> serde_json::Value {
        serde_json::json!({ "started": self.started })
    }

    fn restore(
        &mut self,
        state: &serde_json::Value,
        _tensors: Vec<(String, ndarray::ArrayD<f32>)>,
    ) -> Result<()> {
        self.started = state
            .get("started")
            .and_then(|v| v.as_bool())
            .ok_or_else(|| Error::Invalid("dense method state lacks 'started'".into()))?;
        Ok(())
    }
}
