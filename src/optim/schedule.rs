//! Learning-rate schedules as pure functions of the step within a cycle.

use serde::{Deserialize, Serialize};

/// Shape of the learning-rate curve over one cycle, after any warm-up.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "shape", rename_all = "snake_case", deny_unknown_fields)]
pub enum Shape {
    Constant,
    /// Multiply by `gamma` at each milestone, given as fractions of the cycle (e.g. `[0.5, 0.75]`).
    MultiStep {
        milestones: Vec<f64>,
        gamma: f64,
    },
    /// Cosine decay from the peak to `min_lr`.
    Cosine {
        #[serde(default)]
        min_lr: f64,
    },
    /// Linear rise from `start·lr` to `lr` over the first `peak` fraction, then linear fall to 0 at the end.
    Triangular {
        start: f64,
        peak: f64,
    },
}

/// A cycle's schedule: peak learning rate, curve shape and linear warm-up over the first `warmup` fraction of the
/// cycle (from `lr/warmup_steps` up to `lr`). `lr(step, total)` is a pure function; a new cycle restarts it.
/// Unknown keys are rejected by the flattened `shape` variant.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Schedule {
    pub lr: f64,
    #[serde(flatten)]
    pub shape: Shape,
    #[serde(default)]
    pub warmup: f64,
}

impl Schedule {
    pub fn constant(lr: f64) -> Self {
        Schedule {
            lr,
            shape: Shape::Constant,
            warmup: 0.0,
        }
    }

    /// Checks the hyperparameters.
    pub fn validate(&self) -> Result<(), String> {
        if !(self.lr.is_finite() && self.lr >= 0.0) {
            return Err(format!(
                "learning rate must be finite and non-negative, got {}",
                self.lr
            ));
        }
        if !(0.0..1.0).contains(&self.warmup) {
            return Err(format!(
                "warmup must be a fraction in [0, 1), got {}",
                self.warmup
            ));
        }
        match &self.shape {
            Shape::MultiStep { milestones, gamma }
                if milestones.iter().any(|m| !(0.0..=1.0).contains(m)) || !gamma.is_finite() =>
            {
                return Err("multi_step milestones must be fractions in [0, 1]".into());
            }
            Shape::Triangular { start, peak }
                if !(0.0..=1.0).contains(start) || !(0.0..1.0).contains(peak) =>
            {
                return Err("triangular needs start in [0, 1] and peak in [0, 1)".into());
            }
            Shape::Cosine { min_lr } if !(min_lr.is_finite() && *min_lr >= 0.0) => {
                return Err("cosine min_lr must be finite and non-negative".into());
            }
            _ => {}
        }
        Ok(())
    }

    /// Learning rate at `step` (0-based) of a cycle of `total` steps.
    pub fn lr(&self, step: usize, total: usize) -> f64 {
        let total = total.max(1);
        let warm = (self.warmup * total as f64).round() as usize;
        if step < warm {
            return self.lr * (step + 1) as f64 / warm as f64;
        }
        let t = (step - warm) as f64 / (total - warm).max(1) as f64;
        match &self.shape {
            Shape::Constant => self.lr,
            Shape::MultiStep { milestones, gamma } => {
                let frac = step as f64 / total as f64;
                let passed = milestones.iter().filter(|&&m| frac >= m).count();
                self.lr * gamma.powi(passed as i32)
            }
            Shape::Cosine { min_lr } => {
                min_lr + (self.lr - min_lr) * 0.5 * (1.0 + (std::f64::consts::PI * t).cos())
            }
            Shape::Triangular { start, peak } => {
                if t < *peak {
                    self.lr * (start + (1.0 - start) * t / peak)
                } else {
                    self.lr * (1.0 - t) / (1.0 - peak)
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serde_round_trip_rejects_unknown_keys() {
        let s = Schedule {
            lr: 0.1,
            shape: Shape::Triangular {
                start: 0.2,
                peak: 0.2,
            },
            warmup: 0.0,
        };
        let json = serde_json::to_string(&s).unwrap();
        assert_eq!(serde_json::from_str::<Schedule>(&json).unwrap(), s);
        assert!(
            serde_json::from_str::<Schedule>(r#"{"lr":0.1,"shape":"cosine","colour":1}"#).is_err()
        );
    }

    #[test]
    fn shapes_follow_their_definitions() {
        let c = Schedule {
            lr: 0.1,
            shape: Shape::Cosine { min_lr: 0.0 },
            warmup: 0.0,
        };
        assert!((c.lr(0, 100) - 0.1).abs() < 1e-12);
        assert!((c.lr(50, 100) - 0.05).abs() < 1e-12);
        let m = Schedule {
            lr: 1.0,
            shape: Shape::MultiStep {
                milestones: vec![0.5, 0.75],
                gamma: 0.1,
            },
            warmup: 0.0,
        };
        assert_eq!(m.lr(49, 100), 1.0);
        assert!((m.lr(50, 100) - 0.1).abs() < 1e-12);
        assert!((m.lr(80, 100) - 0.01).abs() < 1e-12);
        let t = Schedule {
            lr: 1.0,
            shape: Shape::Triangular {
                start: 0.2,
                peak: 0.2,
            },
            warmup: 0.0,
        };
        assert!((t.lr(0, 100) - 0.2).abs() < 1e-12);
        assert!((t.lr(20, 100) - 1.0).abs() < 1e-12);
        assert!((t.lr(60, 100) - 0.5).abs() < 1e-12);
        let w = Schedule {
            lr: 1.0,
            shape: Shape::Constant,
            warmup: 0.1,
        };
        assert!((w.lr(0, 100) - 0.1).abs() < 1e-12);
        assert!((w.lr(9, 100) - 1.0).abs() < 1e-12);
        assert_eq!(w.lr(50, 100), 1.0);
    }
}
