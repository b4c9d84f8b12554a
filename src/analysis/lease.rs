//! Leases on sweep points, so that processes sharing one output folder (the tasks of a Slurm job array, or any
//! processes on one or many machines over a shared file system) never train the same point at the same time.
//!
//! A lease is the file `DIR/lease`, created with `create_new` (an atomic exclusive create, as POSIX file systems
//! and NFSv3 and later provide) and holding its holder's host, process id and a random token. While it is held,
//! a thread renews it (sets its modification time) every fifth of the timeout. A lease not renewed for the
//! timeout is stale: its holder died (a killed job, a lost node) and the next process takes it over. The
//! takeover renames the stale file to a name of the taker's own, an atomic step only one taker can do on one
//! file; when what it moved turns out to be a fresh lease (another taker replaced the stale one in between), it
//! puts that lease back and leaves the point. Dropping a [`Lease`] stops the renewal and removes the file when
//! it still holds this lease's token.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime};

use crate::error::{Error, Result};

/// The lease file's name inside a point's directory.
pub const LEASE: &str = "lease";

/// A held lease; dropping it releases the point.
#[derive(Debug)]
pub struct Lease {
    path: PathBuf,
    holder: String,
    stop: Arc<AtomicBool>,
    renewer: Option<JoinHandle<()>>,
}

/// The outcome of [`acquire`].
#[derive(Debug)]
pub enum Acquired {
    /// This process holds the point until the lease is dropped.
    Held(Lease),
    /// Another process holds a live lease on the point; `holder` says who (host, process id, token).
    Busy { holder: String },
}

/// Takes the lease on the point directory `dir` (created when missing), treating a lease not renewed for
/// `timeout` as stale. Errors only on I/O failures other than losing a race to another process.
pub fn acquire(dir: &Path, timeout: Duration) -> Result<Acquired> {
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let path = dir.join(LEASE);
    let holder = holder_id();
    for _ in 0..4 {
        match std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)
        {
            Ok(mut f) => {
                f.write_all(holder.as_bytes())
                    .and_then(|_| f.sync_all())
                    .map_err(|e| Error::io(&path, e))?;
                return Ok(Acquired::Held(Lease::start(path, holder, timeout)));
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(Error::io(&path, e)),
        }
        let Some(stale) = read_if_stale(&path, timeout)? else {
            let holder = std::fs::read_to_string(&path).unwrap_or_default();
            if holder.is_empty() && !path.exists() {
                continue;
            }
            return Ok(Acquired::Busy { holder });
        };
        let moved = dir.join(format!("{LEASE}.stale.{}", token()));
        match std::fs::rename(&path, &moved) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(Error::io(&path, e)),
        }
        let what_moved = std::fs::read_to_string(&moved).map_err(|e| Error::io(&moved, e))?;
        if what_moved != stale {
            let _ = std::fs::hard_link(&moved, &path);
            let _ = std::fs::remove_file(&moved);
            return Ok(Acquired::Busy { holder: what_moved });
        }
        std::fs::remove_file(&moved).map_err(|e| Error::io(&moved, e))?;
    }
    Ok(Acquired::Busy {
        holder: "processes racing for the lease".into(),
    })
}

/// The lease's content when it exists and has not been renewed for `timeout`.
fn read_if_stale(path: &Path, timeout: Duration) -> Result<Option<String>> {
    let modified = match std::fs::metadata(path).and_then(|m| m.modified()) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(Error::io(path, e)),
    };
    let age = SystemTime::now()
        .duration_since(modified)
        .unwrap_or(Duration::ZERO);
    if age < timeout {
        return Ok(None);
    }
    match std::fs::read_to_string(path) {
        Ok(text) => Ok(Some(text)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Error::io(path, e)),
    }
}

impl Lease {
    fn start(path: PathBuf, holder: String, timeout: Duration) -> Lease {
        let stop = Arc::new(AtomicBool::new(false));
        let renewer = {
            let (path, stop) = (path.clone(), stop.clone());
            let every = (timeout / 5).max(Duration::from_millis(10));
            std::thread::spawn(move || renew_until(&path, &stop, every))
        };
        Lease {
            path,
            holder,
            stop,
            renewer: Some(renewer),
        }
    }

    /// Who holds it: host, process id and token, as written in the file.
    pub fn holder(&self) -> &str {
        &self.holder
    }
}

/// Sets the modification time of `path` every `every` until `stop`, checking `stop` often so that dropping a
/// lease does not wait for a whole period.
fn renew_until(path: &Path, stop: &AtomicBool, every: Duration) {
    let tick = every.min(Duration::from_millis(100));
    let mut since = Duration::ZERO;
    while !stop.load(Ordering::Relaxed) {
        std::thread::sleep(tick);
        since += tick;
        if since >= every {
            since = Duration::ZERO;
            if let Ok(f) = std::fs::OpenOptions::new().write(true).open(path) {
                let _ = f.set_modified(SystemTime::now());
            }
        }
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(h) = self.renewer.take() {
            let _ = h.join();
        }
        if std::fs::read_to_string(&self.path).is_ok_and(|t| t == self.holder) {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// `host pid N token T`: enough for a person to find the holder, and unique per lease.
fn holder_id() -> String {
    format!(
        "{} pid {} token {}",
        host_name(),
        std::process::id(),
        token()
    )
}

fn token() -> String {
    format!("{:016x}", rand::random::<u64>())
}

fn host_name() -> String {
    #[cfg(unix)]
    {
        let mut buf = [0u8; 256];
        // SAFETY: `buf` is valid for `buf.len()` bytes; gethostname writes at most that many.
        if unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) } == 0 {
            let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
            if let Ok(name) = std::str::from_utf8(&buf[..end]) {
                return name.to_string();
            }
        }
    }
    "unknown-host".into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_holder_at_a_time_and_released_on_drop() {
        let dir = tempfile::tempdir().unwrap();
        let Acquired::Held(a) = acquire(dir.path(), Duration::from_secs(60)).unwrap() else {
            panic!("a free point is busy");
        };
        match acquire(dir.path(), Duration::from_secs(60)).unwrap() {
            Acquired::Busy { holder } => assert_eq!(holder, a.holder()),
            Acquired::Held(_) => panic!("two holders"),
        }
        drop(a);
        assert!(!dir.path().join(LEASE).exists());
        assert!(matches!(
            acquire(dir.path(), Duration::from_secs(60)).unwrap(),
            Acquired::Held(_)
        ));
    }

    #[test]
    fn a_stale_lease_is_taken_over_and_a_renewed_one_is_not() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(LEASE);
        std::fs::write(&path, "deadhost pid 1 token 0").unwrap();
        let old = SystemTime::now() - Duration::from_secs(3600);
        std::fs::File::options()
            .write(true)
            .open(&path)
            .unwrap()
            .set_modified(old)
            .unwrap();
        let Acquired::Held(lease) = acquire(dir.path(), Duration::from_secs(600)).unwrap() else {
            panic!("the stale lease was not taken over");
        };
        assert_eq!(std::fs::read_to_string(&path).unwrap(), lease.holder());
        let leftovers = std::fs::read_dir(dir.path()).unwrap().count();
        assert_eq!(leftovers, 1, "the moved stale lease was not removed");

        // Held with a short timeout, the lease stays fresh through several timeouts because it is renewed.
        drop(lease);
        let short = Duration::from_millis(300);
        let Acquired::Held(live) = acquire(dir.path(), short).unwrap() else {
            panic!("free point busy");
        };
        std::thread::sleep(Duration::from_millis(1000));
        assert!(matches!(
            acquire(dir.path(), short).unwrap(),
            Acquired::Busy { .. }
        ));
        drop(live);
    }

    #[test]
    fn a_lease_taken_over_by_another_is_not_removed_by_its_first_holder() {
        let dir = tempfile::tempdir().unwrap();
        let Acquired::Held(first) = acquire(dir.path(), Duration::from_secs(60)).unwrap() else {
            panic!("free point busy");
        };
        std::fs::write(dir.path().join(LEASE), "other pid 2 token 1").unwrap();
        drop(first);
        assert_eq!(
            std::fs::read_to_string(dir.path().join(LEASE)).unwrap(),
            "other pid 2 token 1"
        );
    }
}
