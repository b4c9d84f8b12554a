//! The embedded default dataset: mnist10k, 10,000 real MNIST digits (8004 train, 1996 test) compiled into the
//! binary as gzipped IDX files, so `sculpt` trains on real data with no download.

use std::path::PathBuf;

use super::dataset::Splits;
use super::idx;
use crate::budget::Budget;
use crate::error::Result;

/// Name of the embedded dataset.
pub const NAME: &str = "mnist10k";

macro_rules! embed {
    ($file:literal) => {
        (
            $file,
            include_bytes!(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/data/mnist10k/",
                $file
            )) as &[u8],
        )
    };
}

const TRAIN_IMAGES: (&str, &[u8]) = embed!("train-images-idx3-ubyte.gz");
const TRAIN_LABELS: (&str, &[u8]) = embed!("train-labels-idx1-ubyte.gz");
const TEST_IMAGES: (&str, &[u8]) = embed!("t10k-images-idx3-ubyte.gz");
const TEST_LABELS: (&str, &[u8]) = embed!("t10k-labels-idx1-ubyte.gz");

/// The pseudo-path that names an embedded file in errors.
fn path(name: &str) -> PathBuf {
    PathBuf::from(format!("<embedded>/{NAME}/{name}"))
}

fn decoded((name, bytes): (&str, &[u8]), ndims: u8, budget: &Budget) -> Result<(PathBuf, Vec<u8>)> {
    let p = path(name);
    let raw = idx::inflate(&p, bytes.to_vec(), ndims, budget)?;
    Ok((p, raw))
}

/// Decodes the embedded dataset (built into the binary, so trusted: no memory limit applies).
pub fn load() -> Result<Splits> {
    let budget = Budget::new(u64::MAX);
    let split = |images, labels| -> Result<_> {
        let (ip, ib) = decoded(images, 3, &budget)?;
        let (lp, lb) = decoded(labels, 1, &budget)?;
        idx::split_from_bytes(NAME, (&ip, ib), (&lp, lb))
    };
    let train = split(TRAIN_IMAGES, TRAIN_LABELS)?;
    let test = split(TEST_IMAGES, TEST_LABELS)?;
    idx::check_same_shape(&train, &test, &path(TEST_IMAGES.0))?;
    Ok(Splits { train, test })
}
