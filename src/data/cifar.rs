//! CIFAR-10 and CIFAR-100 in their binary distributions: fixed-size records of label byte(s) followed by
//! 3072 pixel bytes (1024 red, 1024 green, 1024 blue, each 32×32 row-major), i.e. already C×H×W.

use std::path::Path;

use super::dataset::{Dataset, Splits};
use super::file;
use crate::budget::Budget;
use crate::error::{Error, Result};

/// Pixel bytes in one CIFAR image.
pub const IMAGE_BYTES: usize = 3 * 32 * 32;

pub const CIFAR10_TRAIN: [&str; 5] = [
    "data_batch_1.bin",
    "data_batch_2.bin",
    "data_batch_3.bin",
    "data_batch_4.bin",
    "data_batch_5.bin",
];
pub const CIFAR10_TEST: &str = "test_batch.bin";
pub const CIFAR100_TRAIN: &str = "train.bin";
pub const CIFAR100_TEST: &str = "test.bin";

/// Record layout of one CIFAR variant.
#[derive(Clone, Copy, Debug)]
pub struct Layout {
    /// Label bytes before the pixels.
    pub label_bytes: usize,
    /// Which of the label bytes is the label used.
    pub label_index: usize,
    pub classes: usize,
}

impl Layout {
    pub const CIFAR10: Layout = Layout {
        label_bytes: 1,
        label_index: 0,
        classes: 10,
    };
    /// CIFAR-100 with the 20 coarse (superclass) labels: the first label byte.
    pub const CIFAR100_COARSE: Layout = Layout {
        label_bytes: 2,
        label_index: 0,
        classes: 20,
    };
    /// CIFAR-100 with the 100 fine labels: the second label byte.
    pub const CIFAR100_FINE: Layout = Layout {
        label_bytes: 2,
        label_index: 1,
        classes: 100,
    };

    fn record(&self) -> usize {
        self.label_bytes + IMAGE_BYTES
    }
}

/// Appends the records of one file to `images` and `labels`. Errors (naming `path`): empty file, a partial last
/// record (truncated), a label out of range.
pub fn parse_records(
    path: &Path,
    bytes: &[u8],
    layout: Layout,
    images: &mut Vec<u8>,
    labels: &mut Vec<u32>,
) -> Result<()> {
    let rec = layout.record();
    if bytes.is_empty() {
        return Err(Error::format(path, "empty file: no CIFAR records"));
    }
    if bytes.len() % rec != 0 {
        return Err(Error::format(
            path,
            format!(
                "truncated: {} bytes is not a whole number of {rec}-byte records ({} full records and {} bytes over)",
                bytes.len(),
                bytes.len() / rec,
                bytes.len() % rec
            ),
        ));
    }
    images.reserve(bytes.len() / rec * IMAGE_BYTES);
    labels.reserve(bytes.len() / rec);
    for (i, r) in bytes.chunks_exact(rec).enumerate() {
        let label = r[layout.label_index];
        if label as usize >= layout.classes {
            return Err(Error::format(
                path,
                format!(
                    "label {label} of record {i} is out of range ({} classes)",
                    layout.classes
                ),
            ));
        }
        labels.push(u32::from(label));
        images.extend_from_slice(&r[layout.label_bytes..]);
    }
    Ok(())
}

fn load_files(
    root: &Path,
    names: &[&str],
    layout: Layout,
    name: &str,
    budget: &Budget,
) -> Result<Dataset> {
    let mut images = Vec::new();
    let mut labels = Vec::new();
    for f in names {
        let (path, bytes) = file::read(root, f, budget)?;
        budget
            .charge("the images", bytes.len() as u64)
            .map_err(|e| Error::budget(&path, e))?;
        parse_records(&path, &bytes, layout, &mut images, &mut labels)?;
    }
    Ok(Dataset {
        name: name.to_string(),
        shape: [3, 32, 32],
        classes: layout.classes,
        images,
        labels,
    })
}

/// Loads CIFAR-10 from `dir` or `dir/cifar-10-batches-bin` (each file plain or `.gz`).
pub fn load_cifar10(dir: &Path) -> Result<Splits> {
    let root = file::resolve_dir(
        dir,
        &["cifar-10-batches-bin"],
        CIFAR10_TRAIN[0],
        "CIFAR-10 binary",
    )?;
    let budget = Budget::default();
    Ok(Splits {
        train: load_files(&root, &CIFAR10_TRAIN, Layout::CIFAR10, "cifar10", &budget)?,
        test: load_files(&root, &[CIFAR10_TEST], Layout::CIFAR10, "cifar10", &budget)?,
    })
}

/// Loads CIFAR-100 from `dir` or `dir/cifar-100-binary` with the 20 coarse or the 100 fine labels.
pub fn load_cifar100(dir: &Path, coarse: bool) -> Result<Splits> {
    let root = file::resolve_dir(
        dir,
        &["cifar-100-binary"],
        CIFAR100_TRAIN,
        "CIFAR-100 binary",
    )?;
    let (layout, name) = if coarse {
        (Layout::CIFAR100_COARSE, "cifar100-coarse")
    } else {
        (Layout::CIFAR100_FINE, "cifar100")
    };
    let budget = Budget::default();
    Ok(Splits {
        train: load_files(&root, &[CIFAR100_TRAIN], layout, name, &budget)?,
        test: load_files(&root, &[CIFAR100_TEST], layout, name, &budget)?,
    })
}
