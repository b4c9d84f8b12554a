//! Orderings a sweep file states (e.g. "LRR beats IMP at 90–98%"), checked against the aggregated results: a
//! difference of means counts only where it exceeds the noise, the larger of the two sample standard deviations.

use serde::{Deserialize, Serialize};

use super::sweep::Aggregate;

/// The relation a claim states between `better` and `worse`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Relation {
    /// `better` exceeds `worse` by more than the noise.
    Better,
    /// `better` is not below `worse` by more than the noise.
    NotWorse,
    /// The two are within the noise of each other.
    Equal,
}

/// The measure a claim compares.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Metric {
    /// Test accuracy at the best-validation epoch (higher is better).
    #[default]
    TestAcc,
    /// Training loss of the last epoch (lower is better).
    TrainLoss,
}

/// A `[[claim]]` entry of a sweep file.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClaimEntry {
    /// Where the claim comes from and what it says, shown in the report.
    pub text: String,
    /// Run labels.
    pub better: String,
    pub worse: String,
    pub relation: Relation,
    #[serde(default)]
    pub metric: Metric,
    /// The sparsities at which the claim is checked.
    pub sparsities: Vec<f64>,
}

/// The verdict at one sparsity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    Holds,
    Fails,
    /// A run has no result at this sparsity.
    Missing,
}

/// One checked (claim, sparsity) pair.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Check {
    pub sparsity: f64,
    /// `better − worse` in the claim's direction (accuracy points, or loss reduction), positive when `better`
    /// is ahead.
    pub delta: f64,
    /// The larger standard deviation of the two cells.
    pub noise: f64,
    pub verdict: Verdict,
}

/// Checks `claim` at each of its sparsities against `aggs`.
pub fn check(claim: &ClaimEntry, aggs: &[Aggregate]) -> Vec<Check> {
    let cell = |name: &str, s: f64| {
        aggs.iter()
            .find(|a| a.name == name && (a.sparsity - s).abs() < 1e-9)
    };
    claim
        .sparsities
        .iter()
        .map(|&s| match (cell(&claim.better, s), cell(&claim.worse, s)) {
            (Some(b), Some(w)) => {
                let (delta, noise) = match claim.metric {
                    Metric::TestAcc => (
                        100.0 * (b.test_acc_mean - w.test_acc_mean),
                        100.0 * b.test_acc_std.max(w.test_acc_std),
                    ),
                    Metric::TrainLoss => (
                        w.train_loss_mean - b.train_loss_mean,
                        b.train_loss_std.max(w.train_loss_std),
                    ),
                };
                let holds = match claim.relation {
                    Relation::Better => delta > noise,
                    Relation::NotWorse => delta >= -noise,
                    Relation::Equal => delta.abs() <= noise,
                };
                Check {
                    sparsity: s,
                    delta,
                    noise,
                    verdict: if holds {
                        Verdict::Holds
                    } else {
                        Verdict::Fails
                    },
                }
            }
            _ => Check {
                sparsity: s,
                delta: f64::NAN,
                noise: f64::NAN,
                verdict: Verdict::Missing,
            },
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn agg(name: &str, s: f64, acc: f64, std: f64, loss: f64) -> Aggregate {
        Aggregate {
            name: name.into(),
            group: String::new(),
            sparsity: s,
            actual_sparsity: s,
            seeds: 3,
            test_acc_mean: acc,
            test_acc_std: std,
            train_loss_mean: loss,
            train_loss_std: 0.01,
            epochs: 1,
            density_mean: 1.0 - s,
        }
    }

    fn claim(relation: Relation, metric: Metric) -> ClaimEntry {
        ClaimEntry {
            text: String::new(),
            better: "a".into(),
            worse: "b".into(),
            relation,
            metric,
            sparsities: vec![0.9, 0.95, 0.98],
        }
    }

    #[test]
    fn verdicts_follow_the_noise_rule() {
        let aggs = [
            agg("a", 0.9, 0.960, 0.002, 0.10),
            agg("b", 0.9, 0.950, 0.003, 0.20),
            agg("a", 0.95, 0.951, 0.004, 0.10),
            agg("b", 0.95, 0.950, 0.002, 0.10),
            agg("a", 0.98, 0.930, 0.001, 0.30),
        ];
        let v = |r, m| -> Vec<Verdict> {
            check(&claim(r, m), &aggs)
                .iter()
                .map(|c| c.verdict)
                .collect()
        };
        use Verdict::*;
        assert_eq!(
            v(Relation::Better, Metric::TestAcc),
            [Holds, Fails, Missing]
        );
        assert_eq!(
            v(Relation::NotWorse, Metric::TestAcc),
            [Holds, Holds, Missing]
        );
        assert_eq!(v(Relation::Equal, Metric::TestAcc), [Fails, Holds, Missing]);
        assert_eq!(
            v(Relation::Better, Metric::TrainLoss),
            [Holds, Fails, Missing]
        );
        let c = check(&claim(Relation::Better, Metric::TestAcc), &aggs);
        assert!((c[0].delta - 1.0).abs() < 1e-9 && (c[0].noise - 0.3).abs() < 1e-9);
    }
}
