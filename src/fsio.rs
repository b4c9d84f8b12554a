//! File I/O with two guarantees. Writes are atomic: a temporary file in the target's directory, flushed to
//! disk, then renamed over the target, so a reader (or a crash) sees either the old file or the whole new one;
//! new files get the usual mode (0666 less the process umask). Reads of input files are bounded: the size is
//! checked against a [`Budget`] before anything is read.

use std::io::{Read, Write};
use std::path::Path;

use crate::budget::Budget;
use crate::error::{Error, Result};

/// Writes `bytes` to `path` atomically, creating the parent directory when missing. The rename is followed by a
/// sync of the directory, so the new file survives a power cut once this returns.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    fault::step(path)?;
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let mut tmp = temp_builder()
        .tempfile_in(dir)
        .map_err(|e| Error::io(dir, e))?;
    tmp.write_all(bytes).map_err(|e| Error::io(path, e))?;
    tmp.as_file().sync_all().map_err(|e| Error::io(path, e))?;
    if let Err(killed) = fault::step(path) {
        let _ = tmp.keep();
        return Err(killed);
    }
    tmp.persist(path).map_err(|e| Error::io(path, e.error))?;
    sync_dir(dir);
    fault::step(path)
}

/// Appends `bytes` to the open `file` (named `path` in errors) and flushes it. A kill part-way leaves a prefix
/// of `bytes` at the end of the file, which readers of append-only logs must tolerate.
pub fn append(file: &mut std::fs::File, path: &Path, bytes: &[u8]) -> Result<()> {
    fault::step(path)?;
    if let Err(killed) = fault::step(path) {
        let _ = file.write_all(&bytes[..bytes.len() / 2]);
        return Err(killed);
    }
    file.write_all(bytes)
        .and_then(|_| file.flush())
        .map_err(|e| Error::io(path, e))
}

/// Removes the temporary files that [`write_atomic`] leaves in `dir` when the process is killed before the
/// rename; returns how many there were. Only call it on a directory no other process is writing into.
pub fn remove_stale_temps(dir: &Path) -> Result<usize> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(Error::io(dir, e)),
    };
    let mut removed = 0;
    for entry in entries {
        let entry = entry.map_err(|e| Error::io(dir, e))?;
        let stale = entry.file_name().to_string_lossy().starts_with(TEMP_PREFIX)
            && entry.file_type().is_ok_and(|t| t.is_file());
        if stale {
            std::fs::remove_file(entry.path()).map_err(|e| Error::io(entry.path(), e))?;
            removed += 1;
        }
    }
    Ok(removed)
}

/// Flushes a directory's entries (a rename into it) to disk; best effort, as some file systems refuse it.
fn sync_dir(dir: &Path) {
    #[cfg(unix)]
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
}

const TEMP_PREFIX: &str = ".sculpt-tmp";

/// Temporary files created with mode 0666, which the kernel narrows by the umask, as for any new file.
fn temp_builder() -> tempfile::Builder<'static, 'static> {
    let mut b = tempfile::Builder::new();
    b.prefix(TEMP_PREFIX);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        b.permissions(std::fs::Permissions::from_mode(0o666));
    }
    b
}

/// Reads the whole file at `path`, charging its size to `budget` as `what` before reading. A file that grows
/// while being read is cut off at the charged size plus one byte and refused.
pub fn read_within(path: &Path, budget: &Budget, what: &str) -> Result<Vec<u8>> {
    let file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let len = file.metadata().map_err(|e| Error::io(path, e))?.len();
    budget
        .charge(what, len)
        .map_err(|e| Error::budget(path, e))?;
    let mut out = Vec::with_capacity(len as usize);
    file.take(len.saturating_add(1))
        .read_to_end(&mut out)
        .map_err(|e| Error::io(path, e))?;
    if out.len() as u64 > len {
        return Err(Error::format(path, "the file grew while it was being read"));
    }
    Ok(out)
}

/// [`read_within`] as UTF-8 text.
pub fn read_text_within(path: &Path, budget: &Budget, what: &str) -> Result<String> {
    let bytes = read_within(path, budget, what)?;
    String::from_utf8(bytes).map_err(|e| {
        Error::format(
            path,
            format!(
                "not UTF-8 text (invalid byte at offset {})",
                e.utf8_error().valid_up_to()
            ),
        )
    })
}

/// Fault injection for crash tests. Every write step of this module (before a write, after the temporary file
/// is complete, after the rename; before an append, half-way through it) is numbered from the moment the
/// calling thread arms the hook; the armed step fails with an error and leaves the disk exactly as a kill at
/// that instant would (a complete temporary file stays behind, a torn append stays torn).
#[doc(hidden)]
pub mod fault {
    use std::cell::Cell;
    use std::path::Path;

    use crate::error::{Error, Result};

    thread_local! {
        static ARMED: Cell<Option<u64>> = const { Cell::new(None) };
        static STEPS: Cell<u64> = const { Cell::new(0) };
    }

    /// Makes step `n` (0-based) from now fail on this thread, and restarts the step count.
    pub fn arm(n: u64) {
        ARMED.set(Some(n));
        STEPS.set(0);
    }

    /// Counts steps from now without failing any.
    pub fn count() {
        ARMED.set(None);
        STEPS.set(0);
    }

    /// Steps taken on this thread since [`arm`] or [`count`].
    pub fn steps() -> u64 {
        STEPS.get()
    }

    pub(crate) fn step(path: &Path) -> Result<()> {
        let n = STEPS.get();
        STEPS.set(n + 1);
        if ARMED.get() == Some(n) {
            ARMED.set(None);
            return Err(Error::io(
                path,
                std::io::Error::other(format!("injected kill at write step {n}")),
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_the_whole_file_and_creates_directories() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a/b/file.bin");
        write_atomic(&p, b"first version, longer").unwrap();
        write_atomic(&p, b"second").unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"second");
        assert_eq!(std::fs::read_dir(p.parent().unwrap()).unwrap().count(), 1);
        let blocked = dir.path().join("a/b/file.bin/inner");
        assert!(write_atomic(&blocked, b"x").is_err());
    }

    #[test]
    fn reads_are_charged_before_reading() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("data.bin");
        std::fs::write(&p, [7u8; 100]).unwrap();
        let b = Budget::new(150);
        assert_eq!(read_within(&p, &b, "the file").unwrap(), vec![7u8; 100]);
        let e = read_within(&p, &b, "the second read")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("data.bin") && e.contains("the second read needs 100 bytes"),
            "{e}"
        );
        std::fs::write(&p, [0xff, 0xfe]).unwrap();
        let e = read_text_within(&p, &Budget::new(10), "text").unwrap_err();
        assert!(e.to_string().contains("not UTF-8"), "{e}");
    }
}
