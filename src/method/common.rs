//! Pieces shared by the methods: layer lists, weight snapshots, phases, state (de)serialisation helpers.

use ndarray::ArrayD;
use serde::{de::DeserializeOwned, Serialize};

use super::{MethodCtx, Phase};
use crate::engine::Network;
use crate::error::{Error, Result};
use crate::sparsity::{Layer, Scope};

/// The maskable layers of `net` under `scope`; an error when there are none.
pub fn layers(net: &dyn Network, scope: &Scope) -> Result<Vec<Layer>> {
    let l = scope.layers(net.tensors());
    if l.is_empty() {
        return Err(Error::Invalid(
            "the model has no prunable layer in the method's scope".into(),
        ));
    }
    Ok(l)
}

/// A phase of `epochs` epochs of the recipe's base schedule.
pub fn phase(
    label: impl Into<String>,
    epochs: usize,
    ctx: &MethodCtx,
    reset_optimizer: bool,
) -> Phase {
    Phase {
        label: label.into(),
        epochs,
        schedule: ctx.schedule.clone(),
        reset_optimizer,
    }
}

/// Copies of every tensor (parameters and BN buffers) of `net`.
pub fn all_tensors(net: &dyn Network) -> Result<Vec<(String, ArrayD<f32>)>> {
    crate::sparsity::scores::snapshot(net)
}

/// Writes back tensors saved with [`all_tensors`]; masked weights are re-masked by the network.
pub fn write_all(net: &mut dyn Network, saved: &[(String, ArrayD<f32>)]) -> Result<()> {
    crate::sparsity::scores::restore(net, saved)
}

/// Serialises a method's state struct.
pub fn to_state<T: Serialize>(s: &T) -> serde_json::Value {
    serde_json::to_value(s).expect("method state serialises")
}

/// Restores a method's state struct, naming the method on failure.
pub fn from_state<T: DeserializeOwned>(method: &str, v: &serde_json::Value) -> Result<T> {
    serde_json::from_value(v.clone())
        .map_err(|e| Error::Invalid(format!("{method} method state: {e}")))
}

/// Prefixes tensor names (`prefix.path`) for the checkpoint.
pub fn prefixed(prefix: &str, t: &[(String, ArrayD<f32>)]) -> Vec<(String, ArrayD<f32>)> {
    t.iter()
        .map(|(p, v)| (format!("{prefix}.{p}"), v.clone()))
        .collect()
}

/// Takes the tensors whose names start with `prefix.`, stripping it.
pub fn take_prefixed(prefix: &str, t: &[(String, ArrayD<f32>)]) -> Vec<(String, ArrayD<f32>)> {
    let p = format!("{prefix}.");
    t.iter()
        .filter_map(|(n, v)| n.strip_prefix(&p).map(|s| (s.to_string(), v.clone())))
        .collect()
}

/// Checks a target sparsity from a recipe.
pub fn check_target(s: f64) -> Result<()> {
    crate::sparsity::maskset::check_sparsity("method.sparsity", s)
}
