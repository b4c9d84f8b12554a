//! The resource policy of every reader: one memory budget per input (a model file, a checkpoint, a dataset),
//! charged before each allocation whose size comes from the input — file bytes, decompressed bytes, tensor
//! elements, folded constants, activations, arenas — so that a small malicious file cannot make sculpt allocate
//! more than the limit. A charge that would pass the limit is an [`Exceeded`] naming the field, the bytes it
//! needs and the limit; readers turn it into an error that also names the file.
//!
//! The limit is [`default_limit`] (2 GiB unless [`set_default_limit`] changed it, as `--max-memory` does) or the
//! one given to [`Budget::new`].

use std::cell::Cell;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};

/// The limit of a [`Budget::default`] unless [`set_default_limit`] changes it: 2 GiB.
pub const DEFAULT_LIMIT: u64 = 2 << 30;

static LIMIT: AtomicU64 = AtomicU64::new(DEFAULT_LIMIT);

/// The limit new default budgets get, in bytes.
pub fn default_limit() -> u64 {
    LIMIT.load(Ordering::Relaxed)
}

/// Sets the limit of every default budget created from now on (the `--max-memory` flag).
pub fn set_default_limit(bytes: u64) {
    LIMIT.store(bytes, Ordering::Relaxed);
}

/// Bytes charged so far against a limit, for one input. Not shared between threads.
#[derive(Debug)]
pub struct Budget {
    limit: u64,
    used: Cell<u64>,
}

impl Default for Budget {
    /// A budget with [`default_limit`].
    fn default() -> Self {
        Budget::new(default_limit())
    }
}

/// A charge that would pass the budget's limit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Exceeded {
    /// What needed the memory, in words (`"initializer 'fc.weight'"`).
    pub what: String,
    /// Bytes the charge asked for; `None` when the size itself overflows.
    pub needed: Option<u64>,
    /// Bytes charged before.
    pub used: u64,
    pub limit: u64,
}

impl fmt::Display for Exceeded {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.needed {
            Some(n) => write!(f, "{} needs {}", self.what, bytes(n))?,
            None => write!(f, "{} has a size that overflows", self.what)?,
        }
        if self.used > 0 {
            write!(f, " on top of {} already used", bytes(self.used))?;
        }
        write!(
            f,
            ", over the memory limit of {} per input (raise it with --max-memory)",
            bytes(self.limit)
        )
    }
}

impl std::error::Error for Exceeded {}

impl Budget {
    /// A budget of `limit` bytes.
    pub fn new(limit: u64) -> Self {
        Budget {
            limit,
            used: Cell::new(0),
        }
    }

    pub fn limit(&self) -> u64 {
        self.limit
    }

    /// Bytes charged so far.
    pub fn used(&self) -> u64 {
        self.used.get()
    }

    /// Bytes still available.
    pub fn remaining(&self) -> u64 {
        self.limit.saturating_sub(self.used.get())
    }

    /// Charges `bytes` for `what`, or fails (charging nothing) when that would pass the limit.
    pub fn charge(&self, what: impl Into<String>, bytes: u64) -> Result<(), Exceeded> {
        match self.used.get().checked_add(bytes) {
            Some(total) if total <= self.limit => {
                self.used.set(total);
                Ok(())
            }
            _ => Err(self.exceeded(what, Some(bytes))),
        }
    }

    /// Charges `count` elements of `width` bytes each; an overflowing product is an error too.
    pub fn charge_elements(
        &self,
        what: impl Into<String>,
        count: usize,
        width: usize,
    ) -> Result<(), Exceeded> {
        match (count as u64).checked_mul(width as u64) {
            Some(b) => self.charge(what, b),
            None => Err(self.exceeded(what, None)),
        }
    }

    fn exceeded(&self, what: impl Into<String>, needed: Option<u64>) -> Exceeded {
        Exceeded {
            what: what.into(),
            needed,
            used: self.used.get(),
            limit: self.limit,
        }
    }
}

/// A byte count for people: `512 bytes`, `3.0 MiB (3145728 bytes)`.
pub fn bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["KiB", "MiB", "GiB", "TiB", "PiB"];
    if n < 1024 {
        return format!("{n} bytes");
    }
    let mut v = n as f64 / 1024.0;
    let mut unit = 0;
    while v >= 1024.0 && unit + 1 < UNITS.len() {
        v /= 1024.0;
        unit += 1;
    }
    format!("{v:.1} {} ({n} bytes)", UNITS[unit])
}

/// Parses a memory size: a number of bytes with an optional binary suffix `K`, `M`, `G` or `T` (also `KiB`,
/// `MB`, ... — every suffix means powers of 1024), e.g. `4G`, `512MiB`, `1000000`.
pub fn parse_size(text: &str) -> Result<u64, String> {
    let t = text.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, suffix) = t.split_at(split);
    let shift = match suffix.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 0,
        "k" | "kb" | "kib" => 10,
        "m" | "mb" | "mib" => 20,
        "g" | "gb" | "gib" => 30,
        "t" | "tb" | "tib" => 40,
        _ => {
            return Err(format!(
                "{} is not a memory size (use e.g. 4G, 512M or a number of bytes)",
                crate::error::quote(text)
            ))
        }
    };
    let value: f64 = num.parse().map_err(|_| {
        format!(
            "{} is not a memory size (use e.g. 4G, 512M or a number of bytes)",
            crate::error::quote(text)
        )
    })?;
    let b = value * (1u64 << shift) as f64;
    if !(1.0..1.8e19).contains(&b) {
        return Err(format!(
            "memory size {} is out of range",
            crate::error::quote(text)
        ));
    }
    Ok(b as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn charges_add_up_and_a_refused_charge_costs_nothing() {
        let b = Budget::new(100);
        b.charge("a", 60).unwrap();
        let e = b.charge("field x", 50).unwrap_err();
        assert_eq!(b.used(), 60);
        assert_eq!((e.needed, e.used, e.limit), (Some(50), 60, 100));
        let s = e.to_string();
        assert!(
            s.contains("field x needs 50 bytes") && s.contains("100 bytes"),
            "{s}"
        );
        b.charge("b", 40).unwrap();
        assert_eq!(b.remaining(), 0);
        assert!(b.charge_elements("c", usize::MAX, 8).is_err());
        assert!(b.charge("d", u64::MAX).is_err());
    }

    #[test]
    fn sizes_parse_with_binary_suffixes() {
        assert_eq!(parse_size("4G").unwrap(), 4 << 30);
        assert_eq!(parse_size("512MiB").unwrap(), 512 << 20);
        assert_eq!(parse_size("1000").unwrap(), 1000);
        assert_eq!(parse_size("1.5k").unwrap(), 1536);
        for bad in ["", "G", "4X", "-1", "0", "1e30"] {
            assert!(parse_size(bad).is_err(), "{bad}");
        }
    }
}
