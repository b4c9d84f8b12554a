//! The datasets of a run, derived from the recipe alone, and the fixed batches methods score with.

use ndarray::Array4;

use crate::data::{self, Dataset, Normalization};
use crate::error::{Error, Result};
use crate::train::recipe::Recipe;

/// The training, validation and test splits of a run, and the normalisation the training split gives.
#[derive(Debug, Clone)]
pub struct RunData {
    pub train: Dataset,
    pub val: Option<Dataset>,
    pub test: Dataset,
    pub norm: Normalization,
}

impl RunData {
    /// Loads the recipe's dataset, holds out the validation split (seeded by `train.seed`), applies the limits,
    /// and checks that a batch fits in the training split.
    pub fn load(recipe: &Recipe) -> Result<Self> {
        let splits = data::load(&recipe.data.source)?;
        let seed = recipe.train.seed;
        let (mut train, val) = if recipe.data.validation > 0.0 {
            let (t, v) = splits
                .train
                .split_validation(recipe.data.validation, seed)?;
            (t, Some(v))
        } else {
            (splits.train, None)
        };
        if let Some(n) = recipe.data.train_limit {
            if n < train.len() {
                train = train.subset(&(0..n).collect::<Vec<_>>());
            }
        }
        let mut test = splits.test;
        if let Some(n) = recipe.data.test_limit {
            if n < test.len() {
                test = test.subset(&(0..n).collect::<Vec<_>>());
            }
        }
        if train.len() < recipe.train.batch_size {
            return Err(Error::Recipe(format!(
                "train.batch_size {} exceeds the {} training images",
                recipe.train.batch_size,
                train.len()
            )));
        }
        let norm = Normalization::from_dataset(&train);
        Ok(RunData {
            train,
            val,
            test,
            norm,
        })
    }
}

/// The batches methods compute scores on: `sampler(n)` is the first `n` images of a fixed order of the training
/// split seeded by `seed` (cycling when `n` exceeds the split), normalised with `norm`, unaugmented.
pub fn score_sampler<'a>(
    train: &'a Dataset,
    norm: &'a Normalization,
    seed: u64,
) -> impl FnMut(usize) -> (Array4<f32>, Vec<u32>) + 'a {
    move |size| {
        let order = data::epoch_order(train.len(), seed ^ 0x5ca1_ab1e_0000_0000, u64::MAX >> 2);
        let idx: Vec<usize> = (0..size).map(|i| order[i % order.len()]).collect();
        data::make_batch(train, &idx, norm, None, 0)
    }
}
