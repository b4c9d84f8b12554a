//! Sweep outputs: results table (CSV, JSON), plots (accuracy against sparsity, training loss against epoch) and
//! a Markdown report with one table per group.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use super::plot::{write_line_plot, LinePlot, Series};
use super::sweep::{aggregate, to_csv, write_atomic, Aggregate, ResultRow, SweepSpec};
use crate::error::{Error, Result};

fn slug(s: &str) -> String {
    let mut out = String::new();
    for c in s.chars() {
        if c.is_ascii_alphanumeric() {
            out.push(c.to_ascii_lowercase());
        } else if !out.ends_with('-') {
            out.push('-');
        }
    }
    out.trim_matches('-').to_string()
}

/// The report groups with their rows: first the groups the spec lists (rows selected by label or by `group`),
/// then any other group named by a row, in order of first appearance (an unnamed group is "results").
fn groups(spec: &SweepSpec, rows: &[ResultRow]) -> Vec<(String, Vec<ResultRow>)> {
    let group_of = |r: &ResultRow| {
        if r.group.is_empty() {
            "results".to_string()
        } else {
            r.group.clone()
        }
    };
    let mut out: Vec<(String, Vec<ResultRow>)> = Vec::new();
    for g in &spec.groups {
        let sel: Vec<ResultRow> = if g.runs.is_empty() {
            rows.iter()
                .filter(|r| group_of(r) == g.name)
                .cloned()
                .collect()
        } else {
            g.runs
                .iter()
                .flat_map(|n| rows.iter().filter(move |r| &r.name == n).cloned())
                .collect()
        };
        let sel = sel
            .into_iter()
            .filter(|r| {
                g.sparsities.is_empty()
                    || g.sparsities.iter().any(|s| (s - r.sparsity).abs() < 1e-9)
            })
            .collect();
        out.push((g.name.clone(), sel));
    }
    let listed = |r: &ResultRow| spec.groups.iter().any(|g| g.runs.contains(&r.name));
    for r in rows {
        let g = group_of(r);
        if spec.groups.iter().any(|x| x.name == g) || (r.group.is_empty() && listed(r)) {
            continue;
        }
        match out.iter_mut().find(|(n, _)| *n == g) {
            Some((_, v)) => v.push(r.clone()),
            None => out.push((g, vec![r.clone()])),
        }
    }
    out.retain(|(_, v)| !v.is_empty());
    out
}

fn names(rows: &[ResultRow]) -> Vec<String> {
    let mut n: Vec<String> = Vec::new();
    for r in rows {
        if !n.contains(&r.name) {
            n.push(r.name.clone());
        }
    }
    n
}

/// Writes the plots of every group into `dir` (stems prefixed by `prefix`); returns (group, accuracy plot stem,
/// loss plot stems).
fn plots(
    spec: &SweepSpec,
    rows: &[ResultRow],
    aggs: &[Aggregate],
    dir: &Path,
    prefix: &str,
) -> Result<Vec<(String, PathBuf, Vec<PathBuf>)>> {
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let mut out = Vec::new();
    for (g, grows) in groups(spec, rows) {
        let acc: Vec<Series> = names(&grows)
            .into_iter()
            .map(|n| {
                let cells: Vec<&Aggregate> = aggs.iter().filter(|a| a.name == n).collect();
                Series {
                    name: n.clone(),
                    points: cells
                        .iter()
                        .map(|a| (100.0 * a.sparsity, 100.0 * a.test_acc_mean))
                        .collect(),
                    err: Some(cells.iter().map(|a| 100.0 * a.test_acc_std).collect()),
                }
            })
            .collect();
        let acc_stem = dir.join(format!("{prefix}{}-accuracy", slug(&g)));
        write_line_plot(
            &acc_stem,
            &LinePlot {
                title: &format!("{g}: test accuracy"),
                x_label: "sparsity (%)",
                y_label: "test accuracy (%), mean ± std over seeds",
                series: &acc,
            },
        )?;
        let mut sparsities: Vec<f64> = grows.iter().map(|r| r.sparsity).collect();
        sparsities.sort_by(f64::total_cmp);
        sparsities.dedup();
        let mut loss_stems = Vec::new();
        for s in sparsities {
            let series: Vec<Series> = names(&grows)
                .into_iter()
                .filter_map(|n| {
                    let runs: Vec<&ResultRow> = grows
                        .iter()
                        .filter(|r| r.name == n && r.sparsity == s)
                        .collect();
                    let len = runs.iter().map(|r| r.train_loss.len()).min()?;
                    let points = (0..len)
                        .map(|e| {
                            let m = runs.iter().map(|r| r.train_loss[e]).sum::<f64>()
                                / runs.len() as f64;
                            ((e + 1) as f64, m)
                        })
                        .collect();
                    Some(Series {
                        name: n,
                        points,
                        err: None,
                    })
                })
                .collect();
            let stem = dir.join(format!(
                "{prefix}{}-loss-s{}",
                slug(&g),
                (s * 1000.0).round() as u64
            ));
            write_line_plot(
                &stem,
                &LinePlot {
                    title: &format!("{g}: training loss at {:.1}% sparsity", 100.0 * s),
                    x_label: "epoch",
                    y_label: "training loss (mean over seeds)",
                    series: &series,
                },
            )?;
            loss_stems.push(stem);
        }
        out.push((g, acc_stem, loss_stems));
    }
    Ok(out)
}

fn rel(path: &Path, base: &Path) -> String {
    path.strip_prefix(base)
        .unwrap_or(path)
        .display()
        .to_string()
}

/// The Markdown report.
pub fn markdown(
    spec: &SweepSpec,
    rows: &[ResultRow],
    aggs: &[Aggregate],
    plots: &[(String, PathBuf, Vec<PathBuf>)],
    base: &Path,
    command: &str,
) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "# {}\n",
        spec.title.as_deref().unwrap_or("Sweep results")
    );
    if let Some(i) = &spec.intro {
        let _ = writeln!(s, "{}\n", i.trim());
    }
    let _ = writeln!(
        s,
        "Generated by `{command}`. Seeds: {:?}. Cells: test accuracy (%) at the best-validation epoch, mean ± sample \
         std over seeds; \"epochs\" is the total training epochs of the run (all cycles / levels).\n",
        spec.seeds
    );
    for (g, grows) in groups(spec, rows) {
        let _ = writeln!(s, "## {g}\n");
        if let Some(t) = spec.groups.iter().find(|x| x.name == g) {
            if !t.text.trim().is_empty() {
                let _ = writeln!(s, "{}\n", t.text.trim());
            }
        }
        let mut sparsities: Vec<f64> = grows.iter().map(|r| r.sparsity).collect();
        sparsities.sort_by(f64::total_cmp);
        sparsities.dedup();
        let _ = write!(s, "| run |");
        for sp in &sparsities {
            let _ = write!(s, " {:.1}% |", 100.0 * sp);
        }
        let _ = writeln!(s);
        let _ = write!(s, "|---|");
        for _ in &sparsities {
            let _ = write!(s, "---|");
        }
        let _ = writeln!(s);
        let gnames: Vec<String> = names(&grows);
        for n in &gnames {
            let _ = write!(s, "| {n} |");
            for sp in &sparsities {
                match aggs.iter().find(|a| &a.name == n && a.sparsity == *sp) {
                    Some(a) => {
                        let at = if (a.actual_sparsity - a.sparsity).abs() > 5e-4 {
                            format!(" at {:.1}%", 100.0 * a.actual_sparsity)
                        } else {
                            String::new()
                        };
                        let _ = write!(
                            s,
                            " {:.2} ± {:.2} ({} ep{at}, loss {:.3}) |",
                            100.0 * a.test_acc_mean,
                            100.0 * a.test_acc_std,
                            a.epochs,
                            a.train_loss_mean
                        );
                    }
                    None => {
                        let _ = write!(s, " – |");
                    }
                }
            }
            let _ = writeln!(s);
        }
        let _ = writeln!(s);
        for e in spec
            .runs
            .iter()
            .filter(|e| gnames.contains(e.label.as_ref().unwrap_or(&e.name)))
        {
            if let Some(note) = &e.note {
                let _ = writeln!(
                    s,
                    "- **{}** ({}): {}",
                    e.label.as_ref().unwrap_or(&e.name),
                    e.name,
                    note.trim()
                );
            }
        }
        let _ = writeln!(s);
        if let Some((_, acc, losses)) = plots.iter().find(|p| p.0 == g) {
            let _ = writeln!(s, "![{g}: accuracy]({}.svg)\n", rel(acc, base));
            for l in losses {
                let _ = writeln!(s, "![{g}: training loss]({}.svg)\n", rel(l, base));
            }
        }
    }
    if !spec.claims.is_empty() {
        claims_section(&mut s, spec, aggs);
    }
    s
}

/// The claims table: one line per (claim, sparsity) with the difference, the noise and the verdict.
fn claims_section(s: &mut String, spec: &SweepSpec, aggs: &[Aggregate]) {
    use super::claims::{check, Metric, Relation, Verdict};
    let _ = writeln!(
        s,
        "## Which orderings hold here\n\nΔ is `better − worse` in accuracy points (for training-loss claims: the loss \
         reduction); noise is the larger of the two standard deviations. \"better\" holds when Δ > noise, \"not \
         worse\" when Δ ≥ −noise, \"equal\" when |Δ| ≤ noise.\n"
    );
    let _ = writeln!(s, "| claim | relation | sparsity | Δ | noise | verdict |");
    let _ = writeln!(s, "|---|---|---|---|---|---|");
    let (mut held, mut total) = (0, 0);
    for c in &spec.claims {
        let rel = match (c.relation, c.metric) {
            (Relation::Better, Metric::TestAcc) => "higher accuracy",
            (Relation::NotWorse, Metric::TestAcc) => "accuracy not lower",
            (Relation::Equal, Metric::TestAcc) => "equal accuracy",
            (Relation::Better, Metric::TrainLoss) => "lower training loss",
            (Relation::NotWorse, Metric::TrainLoss) => "training loss not higher",
            (Relation::Equal, Metric::TrainLoss) => "equal training loss",
        };
        for k in check(c, aggs) {
            let verdict = match k.verdict {
                Verdict::Holds => "holds",
                Verdict::Fails => "**does not hold**",
                Verdict::Missing => "no result",
            };
            if k.verdict != Verdict::Missing {
                total += 1;
                held += usize::from(k.verdict == Verdict::Holds);
            }
            let _ = writeln!(
                s,
                "| {}: {} vs {} | {rel} | {:.0}% | {:+.2} | {:.2} | {verdict} |",
                c.text,
                c.better,
                c.worse,
                100.0 * k.sparsity,
                k.delta,
                k.noise
            );
        }
    }
    let _ = writeln!(s, "\n{held} of {total} checks hold.\n");
}

/// Writes `results.csv` and `results.json` into `out`, the plots, and (when `report` is given) the Markdown report
/// with its plots beside it (else the plots go to `out/plots`).
pub fn write_outputs(
    spec: &SweepSpec,
    out: &Path,
    rows: &[ResultRow],
    report: Option<&Path>,
    command: &str,
) -> Result<()> {
    let aggs = aggregate(rows);
    write_atomic(&out.join("results.csv"), to_csv(rows).as_bytes())?;
    let json = serde_json::json!({ "rows": rows, "aggregates": aggs });
    let bytes = serde_json::to_vec_pretty(&json).map_err(|e| Error::Invalid(e.to_string()))?;
    write_atomic(&out.join("results.json"), &bytes)?;
    let (dir, prefix) = match report {
        Some(r) => (
            r.parent()
                .filter(|d| !d.as_os_str().is_empty())
                .unwrap_or(Path::new("."))
                .to_path_buf(),
            "repro-",
        ),
        None => (out.join("plots"), ""),
    };
    let p = plots(spec, rows, &aggs, &dir, prefix)?;
    if let Some(r) = report {
        let md = markdown(spec, rows, &aggs, &p, &dir, command);
        write_atomic(r, md.as_bytes())?;
    }
    Ok(())
}
