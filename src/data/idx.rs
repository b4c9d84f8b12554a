//! The IDX format of the MNIST family (MNIST, Fashion-MNIST, KMNIST): a big-endian header (two zero bytes, a
//! type byte, the number of dimensions, then one u32 per dimension) followed by the values.

use std::path::{Path, PathBuf};

use super::dataset::{Dataset, Splits};
use super::file;
use crate::budget::Budget;
use crate::error::{Error, Result};

/// The IDX type byte of unsigned 8-bit values, the only type the MNIST family uses.
const U8_TYPE: u8 = 0x08;
/// Number of classes of every MNIST-family dataset.
pub const CLASSES: usize = 10;

pub const TRAIN_IMAGES: &str = "train-images-idx3-ubyte";
pub const TRAIN_LABELS: &str = "train-labels-idx1-ubyte";
pub const TEST_IMAGES: &str = "t10k-images-idx3-ubyte";
pub const TEST_LABELS: &str = "t10k-labels-idx1-ubyte";

/// Subdirectories searched when the named directory lacks the files (torchvision's layout).
const SUBDIRS: &[&str] = &["raw"];

/// Parses an IDX file of u8 values with exactly `ndims` dimensions; returns the dimensions and the values.
/// Errors (naming `path`): truncated header or data, wrong magic, a zero dimension, trailing bytes.
pub fn parse(path: &Path, mut bytes: Vec<u8>, ndims: u8) -> Result<(Vec<usize>, Vec<u8>)> {
    let expected_magic = u32::from_be_bytes([0, 0, U8_TYPE, ndims]);
    if bytes.len() < 4 {
        return Err(Error::format(
            path,
            format!(
                "truncated IDX header: {} bytes, expected at least 4",
                bytes.len()
            ),
        ));
    }
    let magic = u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]);
    if magic != expected_magic {
        return Err(Error::format(
            path,
            format!("wrong magic number 0x{magic:08x}, expected 0x{expected_magic:08x} (u8 values, {ndims} dimensions)"),
        ));
    }
    let header = 4 + 4 * ndims as usize;
    if bytes.len() < header {
        return Err(Error::format(
            path,
            format!(
                "truncated IDX header: {} bytes, expected {header}",
                bytes.len()
            ),
        ));
    }
    let dims: Vec<usize> = bytes[4..header]
        .chunks_exact(4)
        .map(|c| u32::from_be_bytes([c[0], c[1], c[2], c[3]]) as usize)
        .collect();
    if let Some(d) = dims.iter().position(|&d| d == 0) {
        return Err(Error::format(
            path,
            format!("wrong dims {dims:?}: dimension {d} is zero"),
        ));
    }
    let count = dims
        .iter()
        .try_fold(1usize, |acc, &d| acc.checked_mul(d))
        .ok_or_else(|| Error::format(path, format!("wrong dims {dims:?}: too many values")))?;
    let have = bytes.len() - header;
    if have < count {
        return Err(Error::format(
            path,
            format!(
                "truncated: header says {dims:?} = {count} values, file has {have} bytes of data"
            ),
        ));
    }
    if have > count {
        return Err(Error::format(
            path,
            format!(
                "{} trailing bytes after the {count} values the header {dims:?} describes",
                have - count
            ),
        ));
    }
    bytes.drain(..header);
    Ok((dims, bytes))
}

/// The size in bytes (header and values) that a well-formed IDX header with `ndims` dimensions at the start of
/// `head` declares; `None` when `head` holds no such header or the size overflows.
fn declared_len(head: &[u8], ndims: u8) -> Option<u64> {
    let header = 4 + 4 * ndims as usize;
    if head.len() < header || head[..4] != [0, 0, U8_TYPE, ndims] {
        return None;
    }
    head[4..header]
        .chunks_exact(4)
        .map(|c| u64::from(u32::from_be_bytes([c[0], c[1], c[2], c[3]])))
        .try_fold(1u64, |acc, d| acc.checked_mul(d))
        .and_then(|n| n.checked_add(header as u64))
}

/// Decompresses an IDX file with `ndims` dimensions (plain or gzip) no further than the size its header
/// declares, charging the inflated bytes to `budget`; a header that cannot be read is reported as
/// [`parse`] reports it.
pub fn inflate(path: &Path, raw: Vec<u8>, ndims: u8, budget: &Budget) -> Result<Vec<u8>> {
    let header = 4 + 4 * ndims as usize;
    let head = file::peek(&raw, header);
    match declared_len(&head, ndims) {
        Some(total) => file::decode(path, raw, budget, Some(total)),
        None => Err(parse(path, head, ndims)
            .err()
            .unwrap_or_else(|| Error::format(path, "unreadable IDX header"))),
    }
}

/// Parses an image file (3 dimensions: count, rows, columns); returns `(count, rows, cols, pixels)`.
pub fn parse_images(path: &Path, bytes: Vec<u8>) -> Result<(usize, usize, usize, Vec<u8>)> {
    let (dims, pixels) = parse(path, bytes, 3)?;
    Ok((dims[0], dims[1], dims[2], pixels))
}

/// Parses a label file (1 dimension) and checks every label is below `classes`.
pub fn parse_labels(path: &Path, bytes: Vec<u8>, classes: usize) -> Result<Vec<u32>> {
    let (_, labels) = parse(path, bytes, 1)?;
    if let Some(i) = labels.iter().position(|&l| l as usize >= classes) {
        return Err(Error::format(
            path,
            format!(
                "label {} at index {i} is out of range ({classes} classes)",
                labels[i]
            ),
        ));
    }
    Ok(labels.into_iter().map(u32::from).collect())
}

/// Builds one split from parsed image and label bytes; `images` and `labels` name the files in errors.
pub fn split_from_bytes(
    name: &str,
    images: (&Path, Vec<u8>),
    labels: (&Path, Vec<u8>),
) -> Result<Dataset> {
    let (n, rows, cols, pixels) = parse_images(images.0, images.1)?;
    let label_values = parse_labels(labels.0, labels.1, CLASSES)?;
    if label_values.len() != n {
        return Err(Error::format(
            labels.0,
            format!(
                "image/label count mismatch: {} labels but {} has {n} images",
                label_values.len(),
                images.0.display()
            ),
        ));
    }
    Ok(Dataset {
        name: name.to_string(),
        shape: [1, rows, cols],
        classes: CLASSES,
        images: pixels,
        labels: label_values,
    })
}

/// Checks that the test split's image size equals the training split's.
pub fn check_same_shape(train: &Dataset, test: &Dataset, test_path: &Path) -> Result<()> {
    if train.shape != test.shape {
        return Err(Error::format(
            test_path,
            format!(
                "wrong dims: test images are {}x{}, training images {}x{}",
                test.shape[1], test.shape[2], train.shape[1], train.shape[2]
            ),
        ));
    }
    Ok(())
}

/// Loads an MNIST-family dataset from the four standard IDX files (each plain or `.gz`) in `dir` or `dir/raw`.
/// The dataset is named after the directory.
pub fn load_dir(dir: &Path) -> Result<Splits> {
    let root = file::resolve_dir(dir, SUBDIRS, TRAIN_IMAGES, "IDX (MNIST-family)")?;
    let name = dataset_name(dir);
    let budget = Budget::default();
    let load_split = |images: &str, labels: &str| -> Result<(PathBuf, Dataset)> {
        let (ip, ib) = file::read_raw(&root, images, &budget)?;
        let ib = inflate(&ip, ib, 3, &budget)?;
        let (lp, lb) = file::read_raw(&root, labels, &budget)?;
        let lb = inflate(&lp, lb, 1, &budget)?;
        let ds = split_from_bytes(&name, (&ip, ib), (&lp, lb))?;
        Ok((ip, ds))
    };
    let (_, train) = load_split(TRAIN_IMAGES, TRAIN_LABELS)?;
    let (test_path, test) = load_split(TEST_IMAGES, TEST_LABELS)?;
    check_same_shape(&train, &test, &test_path)?;
    Ok(Splits { train, test })
}

fn dataset_name(dir: &Path) -> String {
    dir.file_name()
        .and_then(|n| n.to_str())
        .filter(|n| !n.is_empty())
        .unwrap_or("idx")
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn idx(dims: &[u32], data: &[u8]) -> Vec<u8> {
        let mut v = vec![0, 0, U8_TYPE, dims.len() as u8];
        for d in dims {
            v.extend_from_slice(&d.to_be_bytes());
        }
        v.extend_from_slice(data);
        v
    }

    #[test]
    fn parses_dims_and_values() {
        let (dims, vals) = parse(Path::new("f"), idx(&[2, 1, 3], &[1, 2, 3, 4, 5, 6]), 3).unwrap();
        assert_eq!(dims, vec![2, 1, 3]);
        assert_eq!(vals, vec![1, 2, 3, 4, 5, 6]);
    }

    #[test]
    fn rejects_malformed_headers() {
        let p = Path::new("bad-file");
        let cases = [
            (vec![0, 0], "truncated IDX header"),
            (idx(&[2, 2], &[0; 4]), "wrong magic"),
            (idx(&[2, 0, 2], &[]), "wrong dims"),
            (idx(&[2, 2, 2], &[0; 7]), "truncated"),
            (idx(&[2, 2, 2], &[0; 9]), "trailing"),
            (
                idx(&[2, 2, 2], &[0; 8])[..10].to_vec(),
                "truncated IDX header",
            ),
        ];
        for (bytes, what) in cases {
            let err = parse(p, bytes, 3).unwrap_err().to_string();
            assert!(
                err.contains("bad-file") && err.contains(what),
                "{err} lacks {what}"
            );
        }
    }

    #[test]
    fn inflation_is_bounded_by_the_header() {
        let body = idx(&[2, 2, 2], &[5; 8]);
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        std::io::Write::write_all(&mut enc, &body).unwrap();
        std::io::Write::write_all(&mut enc, &[0u8; 4096]).unwrap();
        let gz = enc.finish().unwrap();
        let e = inflate(Path::new("long.gz"), gz, 3, &Budget::default())
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("long.gz") && e.contains("more than the 24 bytes"),
            "{e}"
        );
        let e = inflate(
            Path::new("m.gz"),
            idx(&[2, 2], &[0; 4]),
            3,
            &Budget::default(),
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("wrong magic"), "{e}");
        let plain = inflate(Path::new("p"), body.clone(), 3, &Budget::default()).unwrap();
        assert_eq!(plain, body);
    }

    #[test]
    fn rejects_labels_out_of_range() {
        let err = parse_labels(Path::new("l"), idx(&[3], &[1, 10, 2]), 10)
            .unwrap_err()
            .to_string();
        assert!(err.contains("label 10 at index 1"), "{err}");
    }
}
