//! Reading dataset files from disk: plain or gzip-compressed, found in a directory or a known subdirectory.

use std::io::Read;
use std::path::{Path, PathBuf};

use flate2::read::MultiGzDecoder;

use crate::budget::Budget;
use crate::error::{Error, Result};
use crate::fsio;

const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];

/// Whether `bytes` start with the gzip magic.
pub fn is_gzip(bytes: &[u8]) -> bool {
    bytes.starts_with(&GZIP_MAGIC)
}

/// Decompresses `bytes` if they start with the gzip magic (a chain of gzip members), otherwise returns them
/// unchanged. The inflated bytes are charged to `budget` as they are produced, and inflating stops with an
/// error past `cap` bytes when given (a format whose header states its size passes that size, so a small
/// file cannot inflate without limit). `path` names the source in errors.
pub fn decode(path: &Path, bytes: Vec<u8>, budget: &Budget, cap: Option<u64>) -> Result<Vec<u8>> {
    if !is_gzip(&bytes) {
        return Ok(bytes);
    }
    let mut out = Vec::new();
    let mut reader = MultiGzDecoder::new(bytes.as_slice());
    let mut chunk = vec![0u8; 1 << 16];
    loop {
        let n = match reader.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => {
                return Err(Error::format(
                    path,
                    format!("corrupt or truncated gzip data: {e}"),
                ))
            }
        };
        if let Some(c) = cap {
            if out.len() as u64 + n as u64 > c {
                return Err(Error::format(
                    path,
                    format!(
                        "the gzip data inflates to more than the {c} bytes its header describes"
                    ),
                ));
            }
        }
        budget
            .charge("the decompressed data", n as u64)
            .map_err(|e| Error::budget(path, e))?;
        out.extend_from_slice(&chunk[..n]);
    }
    Ok(out)
}

/// The first `n` bytes of the decompressed stream (or fewer when it is shorter or corrupt), for reading a
/// header before deciding how much to inflate.
pub fn peek(bytes: &[u8], n: usize) -> Vec<u8> {
    if !is_gzip(bytes) {
        return bytes[..n.min(bytes.len())].to_vec();
    }
    let mut out = Vec::with_capacity(n);
    let _ = MultiGzDecoder::new(bytes)
        .take(n as u64)
        .read_to_end(&mut out);
    out
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

/// Reads `name` (plain or `.gz`) from `dir`, charging its size to `budget`, without decompressing it; a missing
/// file is a format error naming the plain path and saying that the `.gz` variant is accepted too.
pub fn read_raw(dir: &Path, name: &str, budget: &Budget) -> Result<(PathBuf, Vec<u8>)> {
    let path = locate(dir, name).ok_or_else(|| {
        Error::format(
            dir.join(name),
            format!("missing file (neither {name} nor {name}.gz exists)"),
        )
    })?;
    let bytes = fsio::read_within(&path, budget, "the file")?;
    Ok((path, bytes))
}

/// [`read_raw`] and [`decode`] without a cap.
pub fn read(dir: &Path, name: &str, budget: &Budget) -> Result<(PathBuf, Vec<u8>)> {
    let (path, bytes) = read_raw(dir, name, budget)?;
    let bytes = decode(&path, bytes, budget, None)?;
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
        let b = Budget::default();
        assert_eq!(decode(p, vec![1, 2, 3], &b, None).unwrap(), vec![1, 2, 3]);
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        enc.write_all(&[9u8; 1000]).unwrap();
        let gz = enc.finish().unwrap();
        assert_eq!(decode(p, gz.clone(), &b, None).unwrap(), vec![9u8; 1000]);
        assert_eq!(peek(&gz, 10), vec![9u8; 10]);
        let cut = gz[..gz.len() / 2].to_vec();
        let err = decode(Path::new("cut.gz"), cut, &b, None)
            .unwrap_err()
            .to_string();
        assert!(err.contains("cut.gz") && err.contains("gzip"), "{err}");
    }

    #[test]
    fn inflation_stops_at_the_cap_and_at_the_budget() {
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        enc.write_all(&vec![0u8; 1 << 20]).unwrap();
        let member = enc.finish().unwrap();
        let chain: Vec<u8> = member
            .iter()
            .copied()
            .cycle()
            .take(member.len() * 8)
            .collect();
        let p = Path::new("bomb.gz");
        let e = decode(p, chain.clone(), &Budget::default(), Some(3 << 20))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("bomb.gz") && e.contains("more than the 3145728 bytes"),
            "{e}"
        );
        let e = decode(p, chain.clone(), &Budget::new(2 << 20), None)
            .unwrap_err()
            .to_string();
        assert!(e.contains("bomb.gz") && e.contains("memory limit"), "{e}");
        assert_eq!(
            decode(p, chain, &Budget::default(), None).unwrap().len(),
            8 << 20
        );
    }
}
