//! The analyses applied to checkpoint files: linear mode connectivity, sign flips and sparsity tables.

use std::path::Path;

use super::lmc::{linear_mode_connectivity, LmcResult};
use super::signs::{sign_flips, SignRow};
use super::table::{sparsity_table, SparsityRow};
use super::State;
use crate::data::{self, DataSource};
use crate::engine::{Device, Network};
use crate::error::{Error, Result};
use crate::nn::ModelSpec;
use crate::train::{evaluate, load_checkpoint, Checkpoint};

/// A checkpoint as an analysis [`State`].
pub fn state_of(c: &Checkpoint) -> State {
    State::new(c.tensors.clone(), c.masks.clone())
}

fn load_pair(a: &Path, b: &Path) -> Result<(Checkpoint, Checkpoint)> {
    let ca = load_checkpoint(a)?;
    let cb = load_checkpoint(b)?;
    if ca.meta.model != cb.meta.model {
        return Err(Error::Checkpoint {
            path: b.to_path_buf(),
            msg: format!(
                "holds a {} but {} holds a {}",
                cb.meta.model.name(),
                a.display(),
                ca.meta.model.name()
            ),
        });
    }
    Ok((ca, cb))
}

fn weight_paths(spec: &ModelSpec) -> Result<Vec<String>> {
    Ok(spec
        .graph()?
        .tensors()
        .into_iter()
        .filter(|t| t.is_prunable())
        .map(|t| t.path)
        .collect())
}

/// Sign flips per prunable layer between checkpoints `a` and `b`.
pub fn signs(a: &Path, b: &Path) -> Result<Vec<SignRow>> {
    let (ca, cb) = load_pair(a, b)?;
    sign_flips(
        &state_of(&ca),
        &state_of(&cb),
        &weight_paths(&ca.meta.model)?,
    )
}

/// The per-layer sparsity table of a checkpoint.
pub fn sparsity(path: &Path) -> Result<Vec<SparsityRow>> {
    let c = load_checkpoint(path)?;
    Ok(sparsity_table(
        &state_of(&c),
        &c.meta.model.graph()?.tensors(),
    ))
}

/// Options of the LMC analysis.
#[derive(Debug, Clone)]
pub struct LmcOptions {
    /// The dataset; default: the one in checkpoint `a`'s recipe.
    pub data: Option<DataSource>,
    /// Training images used to re-estimate BN statistics at each α (all when `None`).
    pub bn_images: Option<usize>,
    /// Test images evaluated (all when `None`).
    pub test_images: Option<usize>,
    pub batch: usize,
    pub alphas: Vec<f64>,
    /// Where the interpolated networks are evaluated.
    pub device: Device,
}

/// Linear mode connectivity between checkpoints `a` (α = 1) and `b` (α = 0), evaluated on `opts.device`.
pub fn lmc(a: &Path, b: &Path, opts: &LmcOptions) -> Result<LmcResult> {
    let (ca, cb) = load_pair(a, b)?;
    let source = match (&opts.data, ca.meta.recipe.as_ref()) {
        (Some(d), _) => d.clone(),
        (None, Some(r)) => r.data.source.clone(),
        (None, None) => {
            return Err(Error::Checkpoint {
                path: a.to_path_buf(),
                msg: "holds no recipe; name the dataset explicitly".into(),
            })
        }
    };
    let splits = data::load(&source)?;
    let norm = ca.meta.normalization.clone();
    let limit = |ds: &data::Dataset, n: Option<usize>| match n {
        Some(n) if n < ds.len() => ds.subset(&(0..n).collect::<Vec<_>>()),
        _ => ds.clone(),
    };
    let train = limit(&splits.train, opts.bn_images);
    let test = limit(&splits.test, opts.test_images);
    let mut net = opts.device.network(&ca.meta.model, 0)?;
    let batch = opts.batch.max(1);
    let mut bn_pass = |n: &mut dyn Network| -> Result<()> {
        let idx: Vec<usize> = (0..train.len()).collect();
        for chunk in idx.chunks(batch) {
            let (x, _) = data::make_batch(&train, chunk, &norm, None, 0);
            n.forward_train(x.view())?;
        }
        Ok(())
    };
    let mut eval = |n: &mut dyn Network| evaluate(n, &test, &norm, batch);
    linear_mode_connectivity(
        net.as_mut(),
        &state_of(&ca),
        &state_of(&cb),
        &opts.alphas,
        &mut bn_pass,
        &mut eval,
    )
}
