//! Sweeps: methods × sparsities × seeds from one TOML file, run through the trainer, resumable, summarised as a
//! results table (CSV and JSON), plots and a Markdown report. A sweep can be split over processes sharing its
//! output folder: [`Shard`] assigns each process its points, and a [`lease`](super::lease) per point keeps any
//! two processes from training the same point at once.
//!
//! ```toml
//! out = "runs/repro"            # output directory (relative to the sweep file's directory unless absolute)
//! seeds = [0, 1, 2]
//! sparsities = [0.9, 0.95]      # default for runs that give none
//! base = "../recipes/mnist/dense.toml"   # or an inline [base] table: the recipe every run starts from
//!
//! [[run]]
//! name = "lrr"                  # unique; also the output sub-directory
//! group = "IMP vs WR vs LRR"    # runs of one group share a table and a plot in the report
//! method = { kind = "lrr" }     # the method; its sparsity is set from the sweep point
//! sparsities = [0.5, 0.9]       # optional
//! overrides = { "train.epochs" = 2 }   # optional dotted recipe overrides
//! ```

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::lease::{self, Acquired};
use crate::error::{Error, Result};
pub use crate::fsio::write_atomic;
use crate::train::{read_metrics, EpochMetrics, Recipe, RunSummary};

/// The base recipe: a path to a recipe file or an inline table.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(untagged)]
pub enum Base {
    Path(PathBuf),
    Inline(toml::Table),
}

/// One method entry of a sweep.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunEntry {
    pub name: String,
    /// The name shown in tables and legends (default: `name`); several entries may share one, e.g. to
    /// assemble one series from entries with per-sparsity settings.
    #[serde(default)]
    pub label: Option<String>,
    #[serde(default)]
    pub group: Option<String>,
    /// What the report says about the entry (e.g. the epochs it used), printed under its group table.
    #[serde(default)]
    pub note: Option<String>,
    pub method: toml::Table,
    #[serde(default)]
    pub sparsities: Option<Vec<f64>>,
    #[serde(default)]
    pub overrides: toml::Table,
    /// For iterative methods (IMP, WR, LRR): train once to the largest of `sparsities` and report, for each of
    /// `sparsities`, the level whose sparsity is closest (its actual sparsity is kept in the row).
    #[serde(default)]
    pub levels: bool,
}

/// A report group: a title and the text printed above its table.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GroupEntry {
    pub name: String,
    #[serde(default)]
    pub text: String,
    /// Labels of the runs shown in this group, in order (default: the runs whose `group` is this name).
    #[serde(default)]
    pub runs: Vec<String>,
    /// Only these sparsities (default: all).
    #[serde(default)]
    pub sparsities: Vec<f64>,
}

/// A sweep file.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SweepSpec {
    #[serde(default)]
    pub title: Option<String>,
    /// Text printed at the top of the report.
    #[serde(default)]
    pub intro: Option<String>,
    pub out: PathBuf,
    pub seeds: Vec<u64>,
    #[serde(default)]
    pub sparsities: Vec<f64>,
    pub base: Base,
    #[serde(rename = "run")]
    pub runs: Vec<RunEntry>,
    #[serde(default, rename = "group")]
    pub groups: Vec<GroupEntry>,
    /// Orderings to check against the results (the report says which hold).
    #[serde(default, rename = "claim")]
    pub claims: Vec<super::claims::ClaimEntry>,
}

/// One trained point of the sweep.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ResultRow {
    pub name: String,
    pub group: String,
    pub method: String,
    pub sparsity: f64,
    /// The sparsity actually reached (differs from `sparsity` for level rows).
    pub actual_sparsity: f64,
    pub seed: u64,
    /// Test accuracy at the epoch of best validation accuracy (the final test accuracy without validation).
    pub test_acc: f64,
    pub final_test_acc: f64,
    pub best_val_acc: Option<f64>,
    /// Epochs trained in total (all cycles / levels).
    pub epochs: usize,
    /// Realised density of the prunable weights at the end.
    pub density: f64,
    /// Training loss of the last epoch.
    pub final_train_loss: f64,
    /// Training loss per global epoch.
    pub train_loss: Vec<f64>,
    pub seconds: f64,
}

/// Mean and sample standard deviation of one (run, sparsity) cell over seeds.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Aggregate {
    pub name: String,
    pub group: String,
    pub sparsity: f64,
    pub actual_sparsity: f64,
    pub seeds: usize,
    pub test_acc_mean: f64,
    pub test_acc_std: f64,
    pub train_loss_mean: f64,
    pub train_loss_std: f64,
    pub epochs: usize,
    pub density_mean: f64,
}

/// A point to train: the run entry, sparsity, seed, its recipe and output directory.
#[derive(Debug, Clone)]
pub struct Point {
    pub entry: RunEntry,
    pub sparsity: f64,
    pub seed: u64,
    pub recipe: Recipe,
    pub dir: PathBuf,
}

impl SweepSpec {
    /// Reads and checks a sweep file.
    pub fn load(path: &Path) -> Result<(Self, PathBuf)> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        let spec: SweepSpec = toml::from_str(&text)
            .map_err(|e| Error::format(path, e.to_string().trim().to_string()))?;
        let root = path.parent().unwrap_or(Path::new(".")).to_path_buf();
        spec.check(path)?;
        Ok((spec, root))
    }

    fn check(&self, path: &Path) -> Result<()> {
        let bad = |m: String| Err(Error::format(path, m));
        if self.seeds.is_empty() {
            return bad("`seeds` is empty".into());
        }
        if self.runs.is_empty() {
            return bad("no [[run]] entries".into());
        }
        let mut names = std::collections::BTreeSet::new();
        for r in &self.runs {
            if r.name.is_empty() || r.name.contains(['/', '\\']) || r.name.starts_with('.') {
                return bad(format!(
                    "run name '{}' is not a plain directory name",
                    r.name
                ));
            }
            if !names.insert(&r.name) {
                return bad(format!("run name '{}' appears twice", r.name));
            }
            let s = r.sparsities.as_ref().unwrap_or(&self.sparsities);
            if s.is_empty() {
                return bad(format!(
                    "run '{}' has no sparsities (set `sparsities`)",
                    r.name
                ));
            }
            for &x in s {
                crate::sparsity::maskset::check_sparsity(&format!("run '{}' sparsity", r.name), x)
                    .or_else(|e| bad(e.to_string()))?;
            }
        }
        let labels: Vec<&str> = self
            .runs
            .iter()
            .map(|r| r.label.as_deref().unwrap_or(&r.name))
            .collect();
        for c in &self.claims {
            for n in [&c.better, &c.worse] {
                if !labels.contains(&n.as_str()) {
                    return bad(format!("claim '{}' names no run labelled '{n}'", c.text));
                }
            }
        }
        Ok(())
    }

    /// Every point of the sweep in file order (runs, then sparsities, then seeds), with validated recipes.
    pub fn points(&self, root: &Path) -> Result<Vec<Point>> {
        let base = match &self.base {
            Base::Path(p) => {
                let p = root.join(p);
                let text = std::fs::read_to_string(&p).map_err(|e| Error::io(&p, e))?;
                toml::from_str::<toml::Table>(&text)
                    .map_err(|e| Error::format(&p, e.to_string().trim().to_string()))?
            }
            Base::Inline(t) => t.clone(),
        };
        let out = root.join(&self.out);
        let mut points = Vec::new();
        for r in &self.runs {
            let mut list = r
                .sparsities
                .clone()
                .unwrap_or_else(|| self.sparsities.clone());
            if r.levels {
                list = vec![list.iter().copied().fold(0.0, f64::max)];
            }
            for s in list {
                for &seed in &self.seeds {
                    let s: f64 = s;
                    let mut table = base.clone();
                    let mut method = r.method.clone();
                    if method.get("kind").and_then(|k| k.as_str()) != Some("dense") {
                        method.insert("sparsity".into(), toml::Value::Float(s));
                    }
                    table.insert("method".into(), toml::Value::Table(method));
                    for (k, v) in &r.overrides {
                        set_dotted(&mut table, k, v.clone()).map_err(|m| {
                            Error::Recipe(format!("run '{}': override {k}: {m}", r.name))
                        })?;
                    }
                    set_dotted(&mut table, "train.seed", toml::Value::Integer(seed as i64))
                        .map_err(|m| Error::Recipe(format!("run '{}': {m}", r.name)))?;
                    let origin = format!("sweep run '{}' (sparsity {s}, seed {seed})", r.name);
                    let text = toml::to_string(&table)
                        .map_err(|e| Error::Recipe(format!("{origin}: {e}")))?;
                    let recipe = Recipe::from_toml_str(&text, &origin)?;
                    let dir = out
                        .join(&r.name)
                        .join(format!("s{s}"))
                        .join(format!("seed{seed}"));
                    points.push(Point {
                        entry: r.clone(),
                        sparsity: s,
                        seed,
                        recipe,
                        dir,
                    });
                }
            }
        }
        Ok(points)
    }
}

/// Sets `a.b.c = value` in a TOML table, creating intermediate tables.
pub fn set_dotted(
    table: &mut toml::Table,
    key: &str,
    value: toml::Value,
) -> std::result::Result<(), String> {
    let parts: Vec<&str> = key.split('.').collect();
    if parts.iter().any(|p| p.is_empty()) {
        return Err(format!("bad key '{key}'"));
    }
    let mut t = table;
    for p in &parts[..parts.len() - 1] {
        let next = t
            .entry(p.to_string())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()));
        t = next
            .as_table_mut()
            .ok_or_else(|| format!("'{p}' in '{key}' is not a table"))?;
    }
    t.insert(parts[parts.len() - 1].to_string(), value);
    Ok(())
}

const RESULT: &str = "result.json";

/// Trains a point: `train(recipe, dir)` runs `recipe` in `dir` to the end, resuming the run an interrupted point
/// left there (a per-epoch checkpoint, no result), e.g. with [`crate::train::Run::start_or_resume`].
pub type TrainPoint<'a> = dyn Fn(&Recipe, &Path) -> Result<RunSummary> + 'a;

/// Which of a sweep's points one process trains: shard `index` of `count` (1-based) takes the points whose
/// position in [`SweepSpec::points`] is `index - 1` modulo `count`, so that `count` processes with the indices
/// 1..=`count` split the sweep evenly and together cover it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    pub index: usize,
    pub count: usize,
}

impl Shard {
    /// The whole sweep.
    pub const ALL: Shard = Shard { index: 1, count: 1 };

    /// Whether the point at `position` is this shard's.
    pub fn owns(&self, position: usize) -> bool {
        position % self.count == self.index - 1
    }
}

impl std::str::FromStr for Shard {
    type Err = String;

    /// `K/N` with 1 ≤ K ≤ N, e.g. `3/8` (Slurm: `$SLURM_ARRAY_TASK_ID/$SLURM_ARRAY_TASK_COUNT` with `--array=1-N`).
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        let bad = || format!("shard '{s}' is not K/N with 1 <= K <= N (e.g. 2/8)");
        let (k, n) = s.split_once('/').ok_or_else(bad)?;
        let (index, count) = (
            k.trim().parse::<usize>().map_err(|_| bad())?,
            n.trim().parse::<usize>().map_err(|_| bad())?,
        );
        if index == 0 || index > count {
            return Err(bad());
        }
        Ok(Shard { index, count })
    }
}

/// How a process takes part in a sweep.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Participation {
    pub shard: Shard,
    /// A point's lease not renewed for this long is taken to belong to a dead process.
    pub lease_timeout: Duration,
}

impl Default for Participation {
    fn default() -> Self {
        Participation {
            shard: Shard::ALL,
            lease_timeout: Duration::from_secs(600),
        }
    }
}

/// What became of one point.
#[derive(Debug, Clone, PartialEq)]
pub enum PointOutcome {
    /// Finished (now or earlier); its rows.
    Done(Vec<ResultRow>),
    /// Another process holds the point's lease.
    Busy { holder: String },
}

/// The finished point's rows, from `result.json` in its directory; `None` when the point has not finished.
pub fn finished_rows(point: &Point) -> Result<Option<Vec<ResultRow>>> {
    let result = point.dir.join(RESULT);
    match std::fs::read_to_string(&result) {
        Ok(text) => serde_json::from_str(&text)
            .map(Some)
            .map_err(|e| Error::format(&result, e.to_string())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Error::io(&result, e)),
    }
}

/// Runs (or resumes, or skips when already finished) one point under its lease and returns its rows (one, or one
/// per requested sparsity for `levels` entries). A finished point is one whose directory holds `result.json`;
/// a point whose lease another live process holds is left to it.
pub fn run_point(
    point: &Point,
    requested: &[f64],
    train: &TrainPoint,
    lease_timeout: Duration,
) -> Result<PointOutcome> {
    if let Some(rows) = finished_rows(point)? {
        return Ok(PointOutcome::Done(rows));
    }
    let _lease = match lease::acquire(&point.dir, lease_timeout)? {
        Acquired::Held(lease) => lease,
        Acquired::Busy { holder } => return Ok(PointOutcome::Busy { holder }),
    };
    if let Some(rows) = finished_rows(point)? {
        return Ok(PointOutcome::Done(rows));
    }
    let result = point.dir.join(RESULT);
    let t0 = std::time::Instant::now();
    let summary = train(&point.recipe, &point.dir)?;
    if !summary.completed {
        return Err(Error::Invalid(format!(
            "run in {} stopped before completing",
            point.dir.display()
        )));
    }
    let metrics = read_metrics(&summary.metrics)?;
    let seconds = t0.elapsed().as_secs_f64();
    let rows = if point.entry.levels {
        level_rows(point, requested, &metrics, seconds)?
    } else {
        let fin = metrics.last().map_or(summary.density, |m| m.density);
        let at_final: Vec<&EpochMetrics> = metrics
            .iter()
            .filter(|m| (m.density - fin).abs() < 1e-9)
            .collect();
        let final_test_acc = summary.final_test_acc.ok_or_else(|| {
            Error::Invalid(format!(
                "run in {} has no final test accuracy",
                point.dir.display()
            ))
        })?;
        vec![row(
            point,
            point.sparsity,
            &at_final,
            final_test_acc,
            summary.total_epochs,
            &metrics,
            seconds,
        )]
    };
    let json = serde_json::to_vec_pretty(&rows).map_err(|e| Error::Invalid(e.to_string()))?;
    write_atomic(&result, &json)?;
    Ok(PointOutcome::Done(rows))
}

/// The test accuracy at the best-validation epoch among `epochs` (the last test accuracy without validation).
fn best_val_test(epochs: &[&EpochMetrics]) -> (Option<f64>, Option<f64>) {
    let mut best: Option<&EpochMetrics> = None;
    for m in epochs
        .iter()
        .filter(|m| m.val_acc.is_some() && m.test_acc.is_some())
    {
        if best.is_none_or(|b| m.val_acc > b.val_acc) {
            best = Some(m);
        }
    }
    match best {
        Some(b) => (b.test_acc, b.val_acc),
        None => (epochs.iter().rev().find_map(|m| m.test_acc), None),
    }
}

fn row(
    point: &Point,
    sparsity: f64,
    epochs: &[&EpochMetrics],
    final_test_acc: f64,
    total_epochs: usize,
    all: &[EpochMetrics],
    seconds: f64,
) -> ResultRow {
    let (test, val) = best_val_test(epochs);
    let last = epochs.last();
    let upto = last.map_or(all.len(), |m| m.global_epoch);
    let train_loss: Vec<f64> = all.iter().take(upto).map(|m| m.train_loss).collect();
    ResultRow {
        name: point
            .entry
            .label
            .clone()
            .unwrap_or_else(|| point.entry.name.clone()),
        group: point.entry.group.clone().unwrap_or_default(),
        method: point.recipe.method.kind().to_string(),
        sparsity,
        actual_sparsity: last.map_or(0.0, |m| 1.0 - m.density),
        seed: point.seed,
        test_acc: test.unwrap_or(final_test_acc),
        final_test_acc,
        best_val_acc: val,
        epochs: total_epochs,
        density: last.map_or(1.0, |m| m.density),
        final_train_loss: last.map_or(f64::NAN, |m| m.train_loss),
        train_loss,
        seconds,
    }
}

/// One row per requested sparsity: the level (phase) whose final sparsity is closest to it.
fn level_rows(
    point: &Point,
    requested: &[f64],
    metrics: &[EpochMetrics],
    seconds: f64,
) -> Result<Vec<ResultRow>> {
    let mut phases: Vec<Vec<&EpochMetrics>> = Vec::new();
    for m in metrics {
        match phases.last_mut() {
            Some(p) if p[0].phase_index == m.phase_index => p.push(m),
            _ => phases.push(vec![m]),
        }
    }
    if phases.is_empty() {
        return Err(Error::Invalid(format!(
            "run in {} logged no epochs",
            point.dir.display()
        )));
    }
    Ok(requested
        .iter()
        .map(|&s| {
            let p = phases
                .iter()
                .min_by(|a, b| {
                    let da = (1.0 - a.last().expect("non-empty").density - s).abs();
                    let db = (1.0 - b.last().expect("non-empty").density - s).abs();
                    da.total_cmp(&db)
                })
                .expect("non-empty");
            let last = p.last().expect("non-empty");
            let fin = last.test_acc.unwrap_or(f64::NAN);
            row(point, s, p, fin, last.global_epoch, metrics, seconds)
        })
        .collect())
}

fn mean_std(v: &[f64]) -> (f64, f64) {
    let n = v.len() as f64;
    let mean = v.iter().sum::<f64>() / n;
    let var = if v.len() > 1 {
        v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0)
    } else {
        0.0
    };
    (mean, var.sqrt())
}

/// Mean ± sample std over seeds per (run, sparsity), in the order of first appearance.
pub fn aggregate(rows: &[ResultRow]) -> Vec<Aggregate> {
    let mut keys: Vec<(String, u64)> = Vec::new();
    let mut cells: BTreeMap<(String, u64), Vec<&ResultRow>> = BTreeMap::new();
    for r in rows {
        let k = (r.name.clone(), r.sparsity.to_bits());
        if !cells.contains_key(&k) {
            keys.push(k.clone());
        }
        cells.entry(k).or_default().push(r);
    }
    keys.iter()
        .map(|k| {
            let c = &cells[k];
            let (am, asd) = mean_std(&c.iter().map(|r| r.test_acc).collect::<Vec<_>>());
            let (lm, lsd) = mean_std(&c.iter().map(|r| r.final_train_loss).collect::<Vec<_>>());
            let (dm, _) = mean_std(&c.iter().map(|r| r.density).collect::<Vec<_>>());
            Aggregate {
                name: c[0].name.clone(),
                group: c[0].group.clone(),
                sparsity: c[0].sparsity,
                actual_sparsity: c[0].actual_sparsity,
                seeds: c.len(),
                test_acc_mean: am,
                test_acc_std: asd,
                train_loss_mean: lm,
                train_loss_std: lsd,
                epochs: c[0].epochs,
                density_mean: dm,
            }
        })
        .collect()
}

/// One CSV field: quoted (with doubled quotes) when it holds a comma, a quote or a line break.
fn csv_field(text: &str) -> String {
    if text.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", text.replace('"', "\"\""))
    } else {
        text.to_string()
    }
}

/// The results table as CSV (RFC 4180 quoting; one line per trained point).
pub fn to_csv(rows: &[ResultRow]) -> String {
    let mut s = String::from("name,group,method,sparsity,actual_sparsity,seed,test_acc,final_test_acc,best_val_acc,epochs,density,final_train_loss,seconds\n");
    for r in rows {
        s += &format!(
            "{},{},{},{},{:.6},{},{:.6},{:.6},{},{},{:.6},{:.6},{:.1}\n",
            csv_field(&r.name),
            csv_field(&r.group),
            r.method,
            r.sparsity,
            r.actual_sparsity,
            r.seed,
            r.test_acc,
            r.final_test_acc,
            r.best_val_acc.map_or(String::new(), |v| format!("{v:.6}")),
            r.epochs,
            r.density,
            r.final_train_loss,
            r.seconds
        );
    }
    s
}

/// What one process's pass over a sweep found.
#[derive(Debug, Clone, PartialEq)]
pub struct SweepOutcome {
    /// Rows of every finished point of this process's shard, in point order.
    pub rows: Vec<ResultRow>,
    /// Points of the shard left to other processes that held their leases.
    pub busy: usize,
}

/// Trains every point of `spec` (skipping finished ones, resuming interrupted ones) with `train`, reporting
/// progress through `log`, then writes the outputs (see [`super::report::write_outputs`]) from every finished
/// point. Returns the rows.
pub fn run_sweep(
    spec: &SweepSpec,
    root: &Path,
    report: Option<&Path>,
    train: &TrainPoint,
    log: &mut dyn FnMut(&str),
    command: &str,
) -> Result<Vec<ResultRow>> {
    let outcome = train_shard(spec, root, Participation::default(), train, log)?;
    if outcome.busy > 0 {
        log(&format!(
            "{} points are being trained by other processes; the outputs cover the finished ones \
             (re-run, or collect the results later)",
            outcome.busy
        ));
        return Ok(collect(spec, root, report, command)?.0);
    }
    super::report::write_outputs(spec, &root.join(&spec.out), &outcome.rows, report, command)?;
    Ok(outcome.rows)
}

/// Trains the points of `how.shard` that are neither finished nor leased by another live process. Writes no
/// outputs: several shards run at once, and [`collect`] assembles them.
pub fn train_shard(
    spec: &SweepSpec,
    root: &Path,
    how: Participation,
    train: &TrainPoint,
    log: &mut dyn FnMut(&str),
) -> Result<SweepOutcome> {
    let points = spec.points(root)?;
    let mine: Vec<(usize, &Point)> = points
        .iter()
        .enumerate()
        .filter(|(i, _)| how.shard.owns(*i))
        .collect();
    let mut outcome = SweepOutcome {
        rows: Vec::new(),
        busy: 0,
    };
    for (k, (i, p)) in mine.iter().enumerate() {
        let done = p.dir.join(RESULT).is_file();
        log(&format!(
            "[{}/{}] point {} of {}: {} sparsity {} seed {}{}",
            k + 1,
            mine.len(),
            i + 1,
            points.len(),
            p.entry.name,
            p.sparsity,
            p.seed,
            if done { " (done)" } else { "" }
        ));
        let requested = p
            .entry
            .sparsities
            .clone()
            .unwrap_or_else(|| spec.sparsities.clone());
        match run_point(p, &requested, train, how.lease_timeout)? {
            PointOutcome::Done(got) => {
                if !done {
                    for row in &got {
                        log(&format!(
                            "    sparsity {:.4}: test acc {:.2}%  epochs {}  {:.0}s",
                            row.actual_sparsity,
                            100.0 * row.test_acc,
                            row.epochs,
                            row.seconds
                        ));
                    }
                }
                outcome.rows.extend(got);
            }
            PointOutcome::Busy { holder } => {
                log(&format!("    being trained by {holder}; left to it"));
                outcome.busy += 1;
            }
        }
    }
    Ok(outcome)
}

/// Writes the outputs from whatever points have finished, training nothing. Returns their rows and the points
/// that have not finished.
pub fn collect(
    spec: &SweepSpec,
    root: &Path,
    report: Option<&Path>,
    command: &str,
) -> Result<(Vec<ResultRow>, Vec<Point>)> {
    let mut rows = Vec::new();
    let mut missing = Vec::new();
    for p in spec.points(root)? {
        match finished_rows(&p)? {
            Some(r) => rows.extend(r),
            None => missing.push(p),
        }
    }
    super::report::write_outputs(spec, &root.join(&spec.out), &rows, report, command)?;
    Ok((rows, missing))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_quotes_fields_with_commas_and_quotes() {
        assert_eq!(csv_field("plain"), "plain");
        assert_eq!(csv_field("one cycle, 3 ep"), "\"one cycle, 3 ep\"");
        assert_eq!(csv_field("say \"hi\""), "\"say \"\"hi\"\"\"");
        let row = ResultRow {
            name: "one cycle, 3 ep".into(),
            group: "A, \"B\"".into(),
            method: "static".into(),
            sparsity: 0.9,
            actual_sparsity: 0.9,
            seed: 1,
            test_acc: 0.5,
            final_test_acc: 0.5,
            best_val_acc: None,
            epochs: 3,
            density: 0.1,
            final_train_loss: 0.2,
            train_loss: vec![0.2],
            seconds: 1.0,
        };
        let csv = to_csv(&[row]);
        let line = csv.lines().nth(1).unwrap();
        assert!(
            line.starts_with("\"one cycle, 3 ep\",\"A, \"\"B\"\"\",static,0.9,"),
            "{line}"
        );
    }
}
