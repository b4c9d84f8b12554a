//! Reading dataset files from disk: plain or gzip-compressed, found in a directory or a known subdirectory.

use std::io::Read;
use std::path::{Path, PathBuf};

use flate2::read::MultiGzDecoder;

use crate::error::{Error, Result};

const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];

/// Decompresses `bytes` if they start with the gzip magic, otherwise returns them unchanged.
/// `path` names the source in errors (a corrupt or truncated gzip stream).
pub fn decode(path: &Path, bytes: Vec<u8>) -> Result<Vec<u8>> {
    if !bytes.starts_with(&GZIP_MAGIC) {
        return Ok(bytes);
    }
    let mut out = Vec::with_capacity(bytes.len().saturating_mul(4));
    MultiGzDecoder::new(bytes.as_slice())
        .read_to_end(&mut out)
        .map_err(|e| Error::format(path, format!("corrupt or truncated gzip data: {e}")))?;
    Ok(out)
}

/// The path of `name` in `dir`, plain or with a `.gz` suffix (plain preferred), if either exists.
pub fn locate(dir: &Path, name: &str) -> Option<PathBuf> {
    let plain = dir.join(name);
    if plain.is_file() {
        return Some(plain);
    }
    let gz = dir.join(format!("{name}.gz"));
    gz.is_file().then_some(gz)
}

/// Reads `name` (plain or `.gz`) from `dir` and decompresses it; a missing file is a format error naming the
/// plain path and saying that the `.gz` variant is accepted too.
pub fn read(dir: &Path, name: &str) -> Result<(PathBuf, Vec<u8>)> {
    let path = locate(dir, name).ok_or_else(|| {
        Error::format(
            dir.join(name),
            format!("missing file (neither {name} nor {name}.gz exists)"),
        )
    })?;
    let bytes = std::fs::read(&path).map_err(|e| Error::io(&path, e))?;
    let bytes = decode(&path, bytes)?;
    Ok((path, bytes))
}

/// The directory holding a dataset: `dir` itself or one of `subdirs` inside it, whichever contains `marker`
/// (plain or `.gz`). `what` names the dataset in the error when none does.
pub fn resolve_dir(dir: &Path, subdirs: &[&str], marker: &str, what: &str) -> Result<PathBuf> {
    if !dir.is_dir() {
        return Err(Error::format(dir, format!("{what}: not a directory")));
    }
    let candidates = std::iter::once(dir.to_path_buf()).chain(subdirs.iter().map(|s| dir.join(s)));
    for candidate in candidates {
        if locate(&candidate, marker).is_some() {
            return Ok(candidate);
        }
    }
    let mut places = vec![dir.display().to_string()];
    places.extend(subdirs.iter().map(|s| dir.join(s).display().to_string()));
    Err(Error::format(
        dir,
        format!(
            "directory lacks the {what} files: no {marker} (or {marker}.gz) in {}",
            places.join(" or ")
        ),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn plain_bytes_pass_through_and_gzip_is_inflated() {
        let p = Path::new("x");
        assert_eq!(decode(p, vec![1, 2, 3]).unwrap(), vec![1, 2, 3]);
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        enc.write_all(&[9u8; 1000]).unwrap();
        let gz = enc.finish().unwrap();
        assert_eq!(decode(p, gz.clone()).unwrap(), vec![9u8; 1000]);
        let cut = gz[..gz.len() / 2].to_vec();
        let err = decode(Path::new("cut.gz"), cut).unwrap_err().to_string();
        assert!(err.contains("cut.gz") && err.contains("gzip"), "{err}");
    }
}
