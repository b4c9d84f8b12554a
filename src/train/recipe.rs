//! Training recipes: a TOML document (schema in `formats/recipe.md`) deserialised with unknown keys rejected,
//! overridable key by key from the command line, and validated before any work starts.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::data::{Augment, DataSource};
use crate::engine::Device;
use crate::error::{clip_lines, quote, Error, Result};
use crate::method::MethodConfig;
use crate::nn::ModelSpec;
use crate::optim::schedule::Shape;
use crate::optim::{Schedule, SgdConfig};

/// A complete description of one training run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Recipe {
    #[serde(default)]
    pub model: ModelSection,
    #[serde(default)]
    pub data: DataSection,
    #[serde(default)]
    pub train: TrainSection,
    #[serde(default)]
    pub optimizer: SgdConfig,
    #[serde(
        default = "default_schedule",
        with = "crate::train::serde_repr::schedule"
    )]
    pub schedule: Schedule,
    #[serde(default = "default_method")]
    pub method: MethodConfig,
}

/// `[model]`: the architecture by short name; input shape and classes come from the dataset.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelSection {
    /// A name accepted by [`ModelSpec::from_name`], e.g. `lenet5` or `resnet20`.
    pub name: String,
}

/// `[data]`: where the images come from and how they are presented.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DataSection {
    #[serde(default = "default_source")]
    pub source: DataSource,
    /// Fraction of the training split held out for validation, in `[0, 1)`; 0 means no validation set.
    #[serde(default)]
    pub validation: f64,
    #[serde(default)]
    pub augment: Augment,
    /// Use only the first `n` training images (after the validation split); for quick runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub train_limit: Option<usize>,
    /// Use only the first `n` test images; for quick runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub test_limit: Option<usize>,
}

/// `[train]`: epochs, batching, seed and evaluation cadence.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrainSection {
    /// Epochs per cycle (the method decides how many cycles).
    #[serde(default = "default_epochs")]
    pub epochs: usize,
    #[serde(default = "default_batch_size")]
    pub batch_size: usize,
    /// Seeds initialisation, data order, augmentation, the validation split and the method's random stream.
    #[serde(default)]
    pub seed: u64,
    #[serde(default)]
    pub label_smoothing: f32,
    /// Evaluate on validation and test every `eval_every` epochs (and always after the last epoch of a phase).
    #[serde(default = "default_eval_every")]
    pub eval_every: usize,
    /// Batch size for evaluation passes.
    #[serde(default = "default_eval_batch_size")]
    pub eval_batch_size: usize,
    /// Where the run trains unless the command line names another device: `cpu`, `tch-cpu`, `cuda`, `cuda:N`.
    #[serde(default, skip_serializing_if = "is_default_device")]
    pub device: Device,
}

fn is_default_device(d: &Device) -> bool {
    *d == Device::default()
}

fn default_source() -> DataSource {
    DataSource::Embedded
}
fn default_epochs() -> usize {
    5
}
fn default_batch_size() -> usize {
    64
}
fn default_eval_every() -> usize {
    1
}
fn default_eval_batch_size() -> usize {
    500
}
fn default_schedule() -> Schedule {
    Schedule {
        lr: 0.05,
        shape: Shape::Cosine { min_lr: 0.0 },
        warmup: 0.2,
    }
}
fn default_method() -> MethodConfig {
    MethodConfig::Dense
}

impl Default for ModelSection {
    fn default() -> Self {
        ModelSection {
            name: "lenet5".into(),
        }
    }
}

impl Default for DataSection {
    fn default() -> Self {
        DataSection {
            source: default_source(),
            validation: 0.0,
            augment: Augment::default(),
            train_limit: None,
            test_limit: None,
        }
    }
}

impl Default for TrainSection {
    fn default() -> Self {
        TrainSection {
            epochs: default_epochs(),
            batch_size: default_batch_size(),
            seed: 0,
            label_smoothing: 0.0,
            eval_every: default_eval_every(),
            eval_batch_size: default_eval_batch_size(),
            device: Device::default(),
        }
    }
}

impl Default for Recipe {
    /// The embedded default: LeNet-5 on the embedded MNIST subset, 5 epochs of SGD (batch 64, momentum 0.9,
    /// weight decay 5e-4, lr 0.05 cosine with a linear warm-up over the first 20%), dense.
    fn default() -> Self {
        Recipe {
            model: ModelSection::default(),
            data: DataSection::default(),
            train: TrainSection::default(),
            optimizer: SgdConfig::default(),
            schedule: default_schedule(),
            method: default_method(),
        }
    }
}

/// One command-line override: a dotted key path into the recipe (`train.epochs`) and its new value, or `None`
/// to remove the key (so that its default applies).
#[derive(Debug, Clone, PartialEq)]
pub struct Override {
    pub key: String,
    pub value: Option<toml::Value>,
}

impl Override {
    pub fn new(key: impl Into<String>, value: impl Into<toml::Value>) -> Self {
        Override {
            key: key.into(),
            value: Some(value.into()),
        }
    }

    /// Removes `key` from the recipe.
    pub fn unset(key: impl Into<String>) -> Self {
        Override {
            key: key.into(),
            value: None,
        }
    }

    /// Parses `key=value`, reading the value as a TOML value (`3`, `0.1`, `true`, `"x"`, `[0.5, 0.75]`,
    /// `{ kind = "embedded" }`) and falling back to a bare string.
    pub fn parse(text: &str) -> Result<Self> {
        let (key, raw) = text.split_once('=').ok_or_else(|| {
            Error::Recipe(format!(
                "override {} is not of the form key=value",
                quote(text)
            ))
        })?;
        let key = key.trim();
        if key.is_empty() || key.split('.').any(str::is_empty) {
            return Err(Error::Recipe(format!(
                "override {} has an empty key",
                quote(text)
            )));
        }
        let raw = raw.trim();
        let value = match toml::from_str::<toml::Table>(&format!("v = {raw}")) {
            Ok(mut t) => t.remove("v").expect("parsed table has the key"),
            Err(_) => toml::Value::String(raw.to_string()),
        };
        Ok(Override::new(key, value))
    }
}

impl Recipe {
    /// Parses a recipe from TOML text; `origin` names the source in error messages.
    pub fn from_toml_str(text: &str, origin: &str) -> Result<Self> {
        Self::from_toml_with(text, origin, &[])
    }

    /// Parses TOML text, applies `overrides` in order, then deserialises and validates.
    pub fn from_toml_with(text: &str, origin: &str, overrides: &[Override]) -> Result<Self> {
        let recipe: Recipe = if overrides.is_empty() {
            toml::from_str(text).map_err(|e| {
                Error::Recipe(format!(
                    "{origin}: {}",
                    clip_lines(e.to_string().trim(), 12)
                ))
            })?
        } else {
            let table: toml::Table = toml::from_str(text).map_err(|e| {
                Error::Recipe(format!(
                    "{origin}: {}",
                    clip_lines(e.to_string().trim(), 12)
                ))
            })?;
            Self::from_table(table, origin, overrides)?
        };
        recipe
            .validate()
            .map_err(|e| Error::Recipe(format!("{origin}: {}", strip_prefix(e))))?;
        Ok(recipe)
    }

    /// Reads a recipe file (or the embedded default when `path` is `None`) and applies `overrides`.
    pub fn load(path: Option<&Path>, overrides: &[Override]) -> Result<Self> {
        match path {
            Some(p) => {
                let budget = crate::budget::Budget::new(MAX_RECIPE_BYTES);
                let text = crate::fsio::read_text_within(p, &budget, "the recipe").map_err(
                    |e| match e {
                        Error::Budget { .. } => Error::Recipe(format!(
                            "{}: larger than the {} a recipe file may have",
                            p.display(),
                            crate::budget::bytes(MAX_RECIPE_BYTES)
                        )),
                        other => other,
                    },
                )?;
                Self::from_toml_with(&text, &p.display().to_string(), overrides)
            }
            None => {
                let table = toml::Table::try_from(Recipe::default()).map_err(|e| {
                    Error::Recipe(format!("cannot serialise the default recipe: {e}"))
                })?;
                let recipe = Self::from_table(table, "default recipe", overrides)?;
                recipe
                    .validate()
                    .map_err(|e| Error::Recipe(strip_prefix(e)))?;
                Ok(recipe)
            }
        }
    }

    /// Applies the overrides and deserialises the result; errors quote the resolved recipe.
    fn from_table(mut table: toml::Table, origin: &str, overrides: &[Override]) -> Result<Self> {
        for o in overrides {
            apply_override(&mut table, o)
                .map_err(|m| Error::Recipe(format!("{origin}: override {}: {m}", quote(&o.key))))?;
        }
        let text = toml::to_string(&table).map_err(|e| Error::Recipe(format!("{origin}: {e}")))?;
        toml::from_str(&text).map_err(|e| {
            Error::Recipe(format!(
                "{origin} with command-line overrides: {}",
                clip_lines(e.to_string().trim(), 12)
            ))
        })
    }

    /// Serialises the recipe as TOML.
    pub fn to_toml(&self) -> Result<String> {
        toml::to_string(self).map_err(|e| Error::Recipe(format!("cannot serialise recipe: {e}")))
    }

    /// Checks every range; the model name is checked against the known architectures.
    pub fn validate(&self) -> Result<()> {
        let bad = |m: String| Err(Error::Recipe(m));
        let t = &self.train;
        if t.epochs == 0 || t.epochs > 100_000 {
            return bad(format!(
                "train.epochs must be in 1..=100000, got {}",
                t.epochs
            ));
        }
        if t.batch_size == 0 {
            return bad("train.batch_size must be positive".into());
        }
        if t.eval_batch_size == 0 {
            return bad("train.eval_batch_size must be positive".into());
        }
        if t.eval_every == 0 {
            return bad("train.eval_every must be positive".into());
        }
        if !(0.0..1.0).contains(&t.label_smoothing) {
            return bad(format!(
                "train.label_smoothing must be in [0, 1), got {}",
                t.label_smoothing
            ));
        }
        let d = &self.data;
        if !(0.0..1.0).contains(&d.validation) {
            return bad(format!(
                "data.validation must be a fraction in [0, 1), got {}",
                d.validation
            ));
        }
        if d.train_limit == Some(0) || d.test_limit == Some(0) {
            return bad("data.train_limit and data.test_limit must be positive when given".into());
        }
        if d.augment.crop_padding > MAX_CROP_PADDING {
            return bad(format!(
                "data.augment.crop_padding must be in 0..={MAX_CROP_PADDING}, got {}",
                d.augment.crop_padding
            ));
        }
        let o = &self.optimizer;
        if !(0.0..1.0).contains(&o.momentum) {
            return bad(format!(
                "optimizer.momentum must be in [0, 1), got {}",
                o.momentum
            ));
        }
        if !(o.weight_decay.is_finite() && o.weight_decay >= 0.0) {
            return bad(format!(
                "optimizer.weight_decay must be finite and non-negative, got {}",
                o.weight_decay
            ));
        }
        if o.nesterov && o.momentum == 0.0 {
            return bad("optimizer.nesterov needs a positive momentum".into());
        }
        if let Err(m) = self.schedule.validate() {
            return bad(format!("schedule: {m}"));
        }
        validate_schedule(&self.schedule).map_err(Error::Recipe)?;
        self.method
            .validate()
            .map_err(|e| Error::Recipe(format!("method: {}", strip_prefix(e))))?;
        ModelSpec::from_name(&self.model.name, [3, 32, 32], 10)
            .map_err(|e| Error::Recipe(format!("model.name: {}", strip_prefix(e))))?;
        Ok(())
    }

    /// The model for a dataset of the given input shape and class count.
    pub fn model_spec(&self, input: [usize; 3], classes: usize) -> Result<ModelSpec> {
        ModelSpec::from_name(&self.model.name, input, classes)
    }
}

/// The largest recipe file read: 1 MiB.
pub const MAX_RECIPE_BYTES: u64 = 1 << 20;

/// The largest `data.augment.crop_padding` (formats/recipe.md).
pub const MAX_CROP_PADDING: usize = 64;

/// The ranges formats/recipe.md states for `[schedule]` beyond [`Schedule::validate`]: a positive peak `lr`;
/// for `cosine`, `min_lr` at most `lr`; for `multi_step`, milestones strictly increasing inside (0, 1) and
/// `gamma` in (0, 1].
fn validate_schedule(s: &Schedule) -> std::result::Result<(), String> {
    if !(s.lr.is_finite() && s.lr > 0.0) {
        return Err(format!("schedule.lr must be positive, got {}", s.lr));
    }
    match &s.shape {
        Shape::Cosine { min_lr } if *min_lr > s.lr => Err(format!(
            "schedule.min_lr ({min_lr}) must not exceed schedule.lr ({})",
            s.lr
        )),
        Shape::MultiStep { milestones, gamma } => {
            if !(*gamma > 0.0 && *gamma <= 1.0) {
                return Err(format!("schedule.gamma must be in (0, 1], got {gamma}"));
            }
            if milestones.iter().any(|m| !(*m > 0.0 && *m < 1.0)) {
                return Err(format!(
                    "schedule.milestones must be fractions of the cycle in (0, 1), got {milestones:?}"
                ));
            }
            if milestones.windows(2).any(|w| w[0] >= w[1]) {
                return Err(format!(
                    "schedule.milestones must be strictly increasing, got {milestones:?}"
                ));
            }
            Ok(())
        }
        _ => Ok(()),
    }
}

fn strip_prefix(e: Error) -> String {
    match e {
        Error::Recipe(m) | Error::Model(m) | Error::Invalid(m) => m,
        other => other.to_string(),
    }
}

fn apply_override(table: &mut toml::Table, o: &Override) -> std::result::Result<(), String> {
    let parts: Vec<&str> = o.key.split('.').collect();
    let (last, parents) = parts.split_last().expect("keys are non-empty");
    let mut cur = table;
    for p in parents {
        if o.value.is_none() && !cur.contains_key(*p) {
            return Ok(());
        }
        let entry = cur
            .entry(p.to_string())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()));
        cur = match entry {
            toml::Value::Table(t) => t,
            _ => return Err(format!("{} is not a table", quote(p))),
        };
    }
    match &o.value {
        Some(v) => {
            cur.insert(last.to_string(), v.clone());
        }
        None => {
            cur.remove(*last);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_round_trips_through_toml() {
        let r = Recipe::default();
        let text = r.to_toml().unwrap();
        assert_eq!(Recipe::from_toml_str(&text, "x").unwrap(), r);
        assert_eq!(Recipe::load(None, &[]).unwrap(), r);
    }

    #[test]
    fn overrides_replace_values() {
        let o = [
            Override::parse("train.epochs=7").unwrap(),
            Override::parse("schedule.lr=0.2").unwrap(),
            Override::parse("model.name=resnet20").unwrap(),
            Override::parse("data.augment={crop_padding=4, hflip=true}").unwrap(),
        ];
        let r = Recipe::load(None, &o).unwrap();
        assert_eq!(r.train.epochs, 7);
        assert_eq!(r.schedule.lr, 0.2);
        assert_eq!(r.model.name, "resnet20");
        assert_eq!(r.data.augment.crop_padding, 4);
        assert!(r.data.augment.hflip);
        let r = Recipe::load(None, &[Override::parse("train.device=cuda:1").unwrap()]).unwrap();
        assert_eq!(r.train.device.to_string(), "cuda:1");
        assert!(r.to_toml().unwrap().contains("device = \"cuda:1\""));
        let err = Recipe::load(None, &[Override::parse("train.device=tpu").unwrap()]).unwrap_err();
        assert!(err.to_string().contains("unknown device 'tpu'"), "{err}");
        assert!(!Recipe::default().to_toml().unwrap().contains("device"));
        assert!(Override::parse("novalue").is_err());
        let err = Recipe::load(None, &[Override::parse("train.epoch=3").unwrap()]).unwrap_err();
        assert!(err.to_string().contains("epoch"), "{err}");
    }

    #[test]
    fn unknown_keys_inside_the_source_are_rejected() {
        for source in [
            r#"{ kind = "embedded", dir = "x" }"#,
            r#"{ kind = "idx", dir = "d", colour = 1 }"#,
            r#"{ kind = "cifar100", dir = "d", coarse = true, fine = true }"#,
        ] {
            let text = format!("[data]\nsource = {source}\n");
            assert!(
                Recipe::from_toml_str(&text, "r").is_err(),
                "{source} was accepted"
            );
        }
    }
}
