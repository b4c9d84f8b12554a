//! Per-epoch metrics, one JSON object per line in `OUT/metrics.jsonl`.

use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::train::checkpoint::write_atomic;

/// One epoch's record. Accuracies are fractions in `[0, 1]`; `epoch` counts within the phase from 1,
/// `global_epoch` over the run from 1; `step` is the global optimiser step count at the end of the epoch.
/// Evaluation fields are `null` in epochs without evaluation (or without a validation split).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EpochMetrics {
    pub phase: String,
    pub phase_index: usize,
    pub epoch: usize,
    pub global_epoch: usize,
    pub step: usize,
    /// Learning rate of the epoch's last step.
    pub lr: f64,
    pub train_loss: f64,
    pub train_acc: f64,
    pub val_loss: Option<f64>,
    pub val_acc: Option<f64>,
    pub test_loss: Option<f64>,
    pub test_acc: Option<f64>,
    pub density: f64,
    /// Training throughput of the epoch (evaluation excluded).
    pub images_per_s: f64,
    /// Useful training GFLOP/s of the epoch: `6 · MACs of the kept weights` per image (masks at the epoch's
    /// end, see [`crate::engine::bench::useful_macs`]) at `images_per_s`.
    #[serde(default)]
    pub gflops: f64,
    /// Wall time of the epoch including evaluation.
    pub seconds: f64,
    /// Processes the epoch was trained on (data-parallel ranks; 1 for one process).
    #[serde(default = "one")]
    pub ranks: usize,
    /// Fraction of the epoch's training time this process spent in collectives (gradient and batch-norm
    /// sums); 0 for one process.
    #[serde(default)]
    pub comm_share: f64,
}

fn one() -> usize {
    1
}

impl EpochMetrics {
    /// A one-line human-readable summary.
    pub fn summary_line(&self) -> String {
        let pct = |v: Option<f64>| v.map_or("-".to_string(), |a| format!("{:.2}%", 100.0 * a));
        let comm = if self.ranks > 1 {
            format!(
                " {} ranks, comm {:.1}%",
                self.ranks,
                100.0 * self.comm_share
            )
        } else {
            String::new()
        };
        format!(
            "{} epoch {} (global {}): loss {:.4} train {:.2}% val {} test {} density {:.4} lr {:.5} {:.0} img/s {:.2} GFLOP/s{comm} {:.1}s",
            self.phase,
            self.epoch,
            self.global_epoch,
            self.train_loss,
            100.0 * self.train_acc,
            pct(self.val_acc),
            pct(self.test_acc),
            self.density,
            self.lr,
            self.images_per_s,
            self.gflops,
            self.seconds
        )
    }
}

/// An append-only metrics file.
pub struct MetricsLog {
    path: PathBuf,
    file: File,
}

impl MetricsLog {
    /// Starts an empty log (truncating any previous one).
    pub fn create(path: &Path) -> Result<Self> {
        write_atomic(path, b"")?;
        Self::open(path)
    }

    /// Reopens a log for a resumed run, dropping records after `global_epoch` (epochs logged after the
    /// checkpoint the run resumes from) and any torn last line.
    pub fn resume(path: &Path, global_epoch: usize) -> Result<Self> {
        let kept = match std::fs::read_to_string(path) {
            Ok(text) => text
                .lines()
                .filter(|l| {
                    serde_json::from_str::<EpochMetrics>(l)
                        .is_ok_and(|m| m.global_epoch <= global_epoch)
                })
                .map(|l| format!("{l}\n"))
                .collect::<String>(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
            Err(e) => return Err(Error::io(path, e)),
        };
        if std::fs::read(path).ok().as_deref() != Some(kept.as_bytes()) {
            write_atomic(path, kept.as_bytes())?;
        }
        Self::open(path)
    }

    fn open(path: &Path) -> Result<Self> {
        let file = OpenOptions::new()
            .append(true)
            .open(path)
            .map_err(|e| Error::io(path, e))?;
        Ok(MetricsLog {
            path: path.to_path_buf(),
            file,
        })
    }

    /// Appends one record as a JSON line and flushes it.
    pub fn append(&mut self, m: &EpochMetrics) -> Result<()> {
        let mut line =
            serde_json::to_string(m).map_err(|e| Error::Invalid(format!("metrics: {e}")))?;
        line.push('\n');
        crate::fsio::append(&mut self.file, &self.path, line.as_bytes())
    }
}

/// Reads every record of a metrics file.
pub fn read_metrics(path: &Path) -> Result<Vec<EpochMetrics>> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| {
            serde_json::from_str(l).map_err(|e| Error::format(path, format!("line {}: {e}", i + 1)))
        })
        .collect()
}
