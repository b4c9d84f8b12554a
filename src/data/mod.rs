//! Datasets: readers for the MNIST-family IDX files, CIFAR-10/100 binaries and the embedded default (mnist10k);
//! validation splits; seeded epoch orders; augmentation; normalisation; batch assembly.
//!
//! Every reader returns a clear [`crate::Error`] naming the file and the problem for bad input; nothing read from
//! disk can make it panic. Every random choice is a pure function of a seed (and the epoch or batch index).

pub mod augment;
pub mod batch;
pub mod cifar;
pub mod dataset;
pub mod embedded;
pub mod file;
pub mod idx;
pub mod normalize;
pub mod order;

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

pub use augment::{Augment, Draw};
pub use batch::{fill_batch, make_batch, make_batch_part};
pub use dataset::{Dataset, Splits};
pub use normalize::Normalization;
pub use order::{batch_seed, epoch_order};

use crate::error::Result;

/// Where the images come from. Read through [`DataSourceRepr`], so that a key the chosen kind does not have
/// is an error for every kind (serde accepts any key beside the tag of a unit variant).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(
    tag = "kind",
    rename_all = "snake_case",
    deny_unknown_fields,
    from = "DataSourceRepr"
)]
pub enum DataSource {
    /// The embedded mnist10k set (8004 train, 1996 test real MNIST digits).
    #[default]
    Embedded,
    /// An MNIST-family dataset (MNIST, Fashion-MNIST, KMNIST) as the four standard IDX files, plain or `.gz`, in
    /// `dir` or `dir/raw`.
    Idx { dir: PathBuf },
    /// CIFAR-10 binary batches in `dir` or `dir/cifar-10-batches-bin`.
    Cifar10 { dir: PathBuf },
    /// CIFAR-100 binary files in `dir` or `dir/cifar-100-binary`, with the 100 fine or the 20 coarse labels.
    Cifar100 {
        dir: PathBuf,
        #[serde(default)]
        coarse: bool,
    },
}

/// The serde form of [`DataSource`] with every kind a struct, so that unknown keys are rejected.
#[derive(Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
enum DataSourceRepr {
    Embedded {},
    Idx {
        dir: PathBuf,
    },
    Cifar10 {
        dir: PathBuf,
    },
    Cifar100 {
        dir: PathBuf,
        #[serde(default)]
        coarse: bool,
    },
}

impl From<DataSourceRepr> for DataSource {
    fn from(r: DataSourceRepr) -> Self {
        match r {
            DataSourceRepr::Embedded {} => DataSource::Embedded,
            DataSourceRepr::Idx { dir } => DataSource::Idx { dir },
            DataSourceRepr::Cifar10 { dir } => DataSource::Cifar10 { dir },
            DataSourceRepr::Cifar100 { dir, coarse } => DataSource::Cifar100 { dir, coarse },
        }
    }
}

/// Reads the training and test splits of `source`.
pub fn load(source: &DataSource) -> Result<Splits> {
    match source {
        DataSource::Embedded => embedded::load(),
        DataSource::Idx { dir } => idx::load_dir(dir),
        DataSource::Cifar10 { dir } => cifar::load_cifar10(dir),
        DataSource::Cifar100 { dir, coarse } => cifar::load_cifar100(dir, *coarse),
    }
}

impl std::fmt::Display for DataSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DataSource::Embedded => write!(f, "embedded {}", embedded::NAME),
            DataSource::Idx { dir } => write!(f, "IDX files in {}", dir.display()),
            DataSource::Cifar10 { dir } => write!(f, "CIFAR-10 in {}", dir.display()),
            DataSource::Cifar100 { dir, coarse } => write!(
                f,
                "CIFAR-100 ({} labels) in {}",
                if *coarse { "coarse" } else { "fine" },
                dir.display()
            ),
        }
    }
}
