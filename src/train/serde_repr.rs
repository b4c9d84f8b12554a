//! Serde representations of [`Schedule`], [`Phase`] and [`ModelSpec`] for recipes and checkpoints. The derived
//! `Deserialize` impls of `Schedule` and `ModelSpec` combine `flatten` with `deny_unknown_fields`, which serde
//! does not support (they reject their own flattened keys), so recipes and checkpoints read them through this
//! module: schedules in the flat form `{ lr, shape, warmup, <shape keys> }` with every key checked against the
//! chosen shape, model specs as `{ arch, <arch keys>, input, classes }`.

use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::method::Phase;
use crate::nn::{Arch, ModelSpec};
use crate::optim::schedule::Shape;
use crate::optim::Schedule;

fn default_lr() -> f64 {
    0.05
}
fn default_shape() -> String {
    "cosine".into()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ScheduleRepr {
    #[serde(default = "default_lr")]
    lr: f64,
    #[serde(default = "default_shape")]
    shape: String,
    #[serde(default)]
    warmup: f64,
    min_lr: Option<f64>,
    milestones: Option<Vec<f64>>,
    gamma: Option<f64>,
    start: Option<f64>,
    peak: Option<f64>,
}

impl ScheduleRepr {
    fn into_schedule(self) -> Result<Schedule, String> {
        let extra = |allowed: &[&str]| -> Result<(), String> {
            let given = [
                ("min_lr", self.min_lr.is_some()),
                ("milestones", self.milestones.is_some()),
                ("gamma", self.gamma.is_some()),
                ("start", self.start.is_some()),
                ("peak", self.peak.is_some()),
            ];
            match given.iter().find(|(k, g)| *g && !allowed.contains(k)) {
                Some((k, _)) => Err(format!(
                    "unknown field `{k}` for schedule shape {}",
                    crate::error::quote(&self.shape)
                )),
                None => Ok(()),
            }
        };
        let need = |v: Option<f64>, k: &str| {
            v.ok_or_else(|| format!("schedule shape `{}` needs `{k}`", self.shape))
        };
        let shape = match self.shape.as_str() {
            "constant" => {
                extra(&[])?;
                Shape::Constant
            }
            "cosine" => {
                extra(&["min_lr"])?;
                Shape::Cosine {
                    min_lr: self.min_lr.unwrap_or(0.0),
                }
            }
            "multi_step" => {
                extra(&["milestones", "gamma"])?;
                Shape::MultiStep {
                    milestones: self.milestones.clone().ok_or_else(|| {
                        "schedule shape `multi_step` needs `milestones`".to_string()
                    })?,
                    gamma: need(self.gamma, "gamma")?,
                }
            }
            "triangular" => {
                extra(&["start", "peak"])?;
                Shape::Triangular {
                    start: need(self.start, "start")?,
                    peak: need(self.peak, "peak")?,
                }
            }
            other => {
                return Err(format!(
                "unknown schedule shape {}, expected one of `constant`, `cosine`, `multi_step`, \
                     `triangular`",
                crate::error::quote(other)
            ))
            }
        };
        Ok(Schedule {
            lr: self.lr,
            shape,
            warmup: self.warmup,
        })
    }
}

/// `#[serde(with = "schedule")]` for a [`Schedule`] field.
pub mod schedule {
    use super::*;

    pub fn serialize<S: Serializer>(s: &Schedule, ser: S) -> Result<S::Ok, S::Error> {
        s.serialize(ser)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Schedule, D::Error> {
        ScheduleRepr::deserialize(d)?
            .into_schedule()
            .map_err(D::Error::custom)
    }
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct PhaseRepr {
    label: String,
    epochs: usize,
    #[serde(with = "schedule")]
    schedule: Schedule,
    reset_optimizer: bool,
}

/// `#[serde(with = "opt_phase")]` for an `Option<Phase>` field.
pub mod opt_phase {
    use super::*;

    pub fn serialize<S: Serializer>(p: &Option<Phase>, ser: S) -> Result<S::Ok, S::Error> {
        p.as_ref()
            .map(|p| PhaseRepr {
                label: p.label.clone(),
                epochs: p.epochs,
                schedule: p.schedule.clone(),
                reset_optimizer: p.reset_optimizer,
            })
            .serialize(ser)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Phase>, D::Error> {
        Ok(Option::<PhaseRepr>::deserialize(d)?.map(|r| Phase {
            label: r.label,
            epochs: r.epochs,
            schedule: r.schedule,
            reset_optimizer: r.reset_optimizer,
        }))
    }
}

/// `#[serde(with = "model_spec")]` for a [`ModelSpec`] field.
pub mod model_spec {
    use super::*;

    pub fn serialize<S: Serializer>(m: &ModelSpec, ser: S) -> Result<S::Ok, S::Error> {
        m.serialize(ser)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<ModelSpec, D::Error> {
        let v = serde_json::Value::deserialize(d)?;
        let mut map = match v {
            serde_json::Value::Object(m) => m,
            other => {
                return Err(D::Error::custom(format!(
                    "model must be a table, got {other}"
                )))
            }
        };
        let take = |map: &mut serde_json::Map<String, serde_json::Value>, k: &str| {
            map.remove(k)
                .ok_or_else(|| D::Error::custom(format!("model lacks `{k}`")))
        };
        let input: [usize; 3] = serde_json::from_value(take(&mut map, "input")?)
            .map_err(|e| D::Error::custom(format!("model input: {e}")))?;
        let classes: usize = serde_json::from_value(take(&mut map, "classes")?)
            .map_err(|e| D::Error::custom(format!("model classes: {e}")))?;
        let arch: Arch = serde_json::from_value(serde_json::Value::Object(map))
            .map_err(|e| D::Error::custom(format!("model: {e}")))?;
        Ok(ModelSpec {
            arch,
            input,
            classes,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Serialize, Deserialize, Debug, PartialEq)]
    struct Holder {
        #[serde(with = "schedule")]
        s: Schedule,
    }

    #[derive(Serialize, Deserialize, Debug, PartialEq)]
    struct SpecHolder {
        #[serde(with = "model_spec")]
        m: ModelSpec,
    }

    #[test]
    fn model_specs_round_trip() {
        for name in [
            "lenet5",
            "lenet5caffe",
            "mlp",
            "resnet20b",
            "resnet18",
            "vgg16",
        ] {
            let h = SpecHolder {
                m: ModelSpec::from_name(name, [3, 32, 32], 10).unwrap(),
            };
            let json = serde_json::to_string(&h).unwrap();
            assert_eq!(
                serde_json::from_str::<SpecHolder>(&json).unwrap(),
                h,
                "{json}"
            );
        }
        let e = serde_json::from_str::<SpecHolder>(
            r#"{"m":{"arch":"lenet5","variant":"classic","input":[1,28,28]}}"#,
        )
        .unwrap_err();
        assert!(e.to_string().contains("classes"), "{e}");
        let e = serde_json::from_str::<SpecHolder>(
            r#"{"m":{"arch":"lenet5","variant":"classic","input":[1,28,28],"classes":10,"depth":3}}"#,
        )
        .unwrap_err();
        assert!(e.to_string().contains("depth"), "{e}");
    }

    #[test]
    fn every_shape_round_trips_and_foreign_keys_are_rejected() {
        for shape in [
            Shape::Constant,
            Shape::Cosine { min_lr: 0.001 },
            Shape::MultiStep {
                milestones: vec![0.5, 0.75],
                gamma: 0.1,
            },
            Shape::Triangular {
                start: 0.1,
                peak: 0.3,
            },
        ] {
            let h = Holder {
                s: Schedule {
                    lr: 0.2,
                    shape,
                    warmup: 0.05,
                },
            };
            let text = toml::to_string(&h).unwrap();
            assert_eq!(toml::from_str::<Holder>(&text).unwrap(), h, "{text}");
            let json = serde_json::to_string(&h).unwrap();
            assert_eq!(serde_json::from_str::<Holder>(&json).unwrap(), h, "{json}");
        }
        let e = toml::from_str::<Holder>("[s]\nlr = 0.1\nshape = \"constant\"\nmin_lr = 0.0\n")
            .unwrap_err();
        assert!(e.to_string().contains("min_lr"), "{e}");
        let e = toml::from_str::<Holder>("[s]\nlr = 0.1\nshape = \"spiral\"\n").unwrap_err();
        assert!(e.to_string().contains("spiral"), "{e}");
        let e = toml::from_str::<Holder>("[s]\nlr = 0.1\nshape = \"multi_step\"\ngamma = 0.1\n")
            .unwrap_err();
        assert!(e.to_string().contains("milestones"), "{e}");
        let e = toml::from_str::<Holder>("[s]\nlr = 0.1\nsteepness = 3\n").unwrap_err();
        assert!(e.to_string().contains("steepness"), "{e}");
    }
}
