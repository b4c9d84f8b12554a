//! Checkpoints as specified in `formats/checkpoint.md`: a safetensors file with every tensor (weights, BN
//! statistics, momentum buffers, mask CSR arrays, the method's tensors) that also carries the metadata and a
//! digest over both, so that one atomic rename replaces a checkpoint whole; then a JSON copy of the metadata for
//! readers that want it without the tensors.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use ndarray::{ArrayD, IxDyn};
use rand_chacha::ChaCha8Rng;
use safetensors::tensor::{Dtype, SafeTensors, TensorView};
use serde::{Deserialize, Serialize};

use crate::data::Normalization;
use crate::engine::Network;
use crate::error::{Error, Result};
pub use crate::fsio::write_atomic;
use crate::method::Phase;
use crate::nn::ModelSpec;
use crate::sparsity::Mask;
use crate::train::probe::{Probe, PROBE_INPUTS, PROBE_LOGITS};
use crate::train::recipe::Recipe;

/// The `format` value of the metadata.
pub const FORMAT: &str = "sculpt-checkpoint";
/// The layout version this code writes and reads.
pub const VERSION: u32 = 1;

const MOMENTUM_PREFIX: &str = "optim.momentum.";
const MASK_PREFIX: &str = "mask.";
const METHOD_PREFIX: &str = "method.";
/// Key of the safetensors header's `__metadata__` entry holding the digest over the metadata and every tensor
/// (64 hex digits), a newline, and the metadata JSON. One entry, so that the header's bytes are deterministic.
const EMBEDDED: &str = "sculpt.checkpoint";

/// The state of a random stream: seed, stream and word position of a ChaCha8 generator.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RngState {
    /// The 32-byte seed as hex.
    pub seed: String,
    pub stream: u64,
    /// The word position (a u128) as a decimal string.
    pub word_pos: String,
}

impl RngState {
    pub fn capture(rng: &ChaCha8Rng) -> Self {
        RngState {
            seed: rng.get_seed().iter().map(|b| format!("{b:02x}")).collect(),
            stream: rng.get_stream(),
            word_pos: rng.get_word_pos().to_string(),
        }
    }

    /// Rebuilds the generator; `origin` names the file in errors.
    pub fn restore(&self, origin: &Path) -> Result<ChaCha8Rng> {
        use rand::SeedableRng;
        let bad = |m: &str| Error::Checkpoint {
            path: origin.to_path_buf(),
            msg: format!("RNG state: {m}"),
        };
        if self.seed.len() != 64 || !self.seed.is_ascii() {
            return Err(bad("seed must be 64 hex digits"));
        }
        let mut seed = [0u8; 32];
        for (i, b) in seed.iter_mut().enumerate() {
            *b = u8::from_str_radix(&self.seed[2 * i..2 * i + 2], 16)
                .map_err(|_| bad("seed is not hex"))?;
        }
        let pos: u128 = self
            .word_pos
            .parse()
            .map_err(|_| bad("word_pos is not a number"))?;
        let mut rng = ChaCha8Rng::from_seed(seed);
        rng.set_stream(self.stream);
        rng.set_word_pos(pos);
        Ok(rng)
    }
}

/// Where training stood when the checkpoint was written.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainState {
    /// Index of the current phase (0-based, in the order the method handed them out).
    pub phase_index: usize,
    /// The current phase, `None` before the first one.
    #[serde(with = "crate::train::serde_repr::opt_phase")]
    pub phase: Option<Phase>,
    /// Epochs completed within the current phase.
    pub epoch_in_phase: usize,
    /// Epochs completed over the whole run.
    pub global_epoch: usize,
    /// Optimiser steps over the whole run.
    pub global_step: usize,
    /// Steps per epoch the run was using (checked on resume).
    pub steps_per_epoch: usize,
    /// The method returned no further phase: the run is complete.
    pub finished: bool,
    /// What `Method::state` returned.
    pub method_state: serde_json::Value,
    /// The method's random stream.
    pub rng: RngState,
    /// Best validation accuracy so far and the global epoch it was reached at.
    pub best_val: Option<(f64, usize)>,
    /// The last evaluation's accuracies (validation, test).
    pub last_val_acc: Option<f64>,
    pub last_test_acc: Option<f64>,
}

impl TrainState {
    /// Checks that the counters agree with each other and with the phase: a checkpoint that passes resumes
    /// the schedule it was written in. Returns what is wrong, in words.
    pub fn check(&self) -> std::result::Result<(), String> {
        if self.steps_per_epoch == 0 {
            return Err("steps_per_epoch is 0".into());
        }
        if Some(self.global_step) != self.global_epoch.checked_mul(self.steps_per_epoch) {
            return Err(format!(
                "global_step {} is not global_epoch {} times steps_per_epoch {}",
                self.global_step, self.global_epoch, self.steps_per_epoch
            ));
        }
        if self.epoch_in_phase > self.global_epoch || self.phase_index > self.global_epoch {
            return Err(format!(
                "epoch_in_phase {} or phase_index {} exceeds global_epoch {}",
                self.epoch_in_phase, self.phase_index, self.global_epoch
            ));
        }
        match &self.phase {
            None if self.epoch_in_phase != 0 || self.phase_index != 0 || self.global_epoch != 0 => {
                return Err("no current phase after training has started".into());
            }
            Some(p) if p.epochs == 0 || self.epoch_in_phase > p.epochs => {
                return Err(format!(
                    "epoch_in_phase {} is outside phase '{}' of {} epochs",
                    self.epoch_in_phase, p.label, p.epochs
                ));
            }
            Some(p) => p
                .schedule
                .validate()
                .map_err(|m| format!("phase '{}': {m}", p.label))?,
            None => {}
        }
        if let Some((acc, epoch)) = self.best_val {
            if !(0.0..=1.0).contains(&acc) || epoch > self.global_epoch {
                return Err(format!(
                    "best_val [{acc}, {epoch}] is not an accuracy reached by epoch {}",
                    self.global_epoch
                ));
            }
        }
        for (name, acc) in [
            ("last_val_acc", self.last_val_acc),
            ("last_test_acc", self.last_test_acc),
        ] {
            if acc.is_some_and(|a| !(0.0..=1.0).contains(&a)) {
                return Err(format!("{name} {acc:?} is not an accuracy in [0, 1]"));
            }
        }
        Ok(())
    }
}

/// The JSON half of a checkpoint.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CheckpointMeta {
    pub format: String,
    pub version: u32,
    #[serde(with = "crate::train::serde_repr::model_spec")]
    pub model: ModelSpec,
    pub normalization: Normalization,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recipe: Option<Recipe>,
    /// Method name (its `kind`), for readers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub training: Option<TrainState>,
    /// The engine's kernel path when the checkpoint was written ([`crate::engine::Network::kernel_path_name`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kernel_path: Option<String>,
    /// The CPU engine's sparse-kernel policy when the checkpoint was written
    /// ([`crate::engine::Network::sparse_policy_name`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sparse_kernels: Option<String>,
    /// SHA-256 (hex) of the safetensors file written with this metadata; set by [`Checkpoint::save`] and checked
    /// by [`load_checkpoint`], so a pair torn by a kill between the two writes is detected.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tensors_sha256: Option<String>,
}

/// A checkpoint in memory.
#[derive(Debug, Clone)]
pub struct Checkpoint {
    pub meta: CheckpointMeta,
    /// Parameters and BN statistics by path, in the model's tensor order.
    pub tensors: Vec<(String, ArrayD<f32>)>,
    /// Momentum buffers by parameter path.
    pub momentum: Vec<(String, ArrayD<f32>)>,
    /// Masks by weight path.
    pub masks: Vec<(String, Mask)>,
    /// The method's tensors by the method's own names (stored under `method.<name>`).
    pub method_tensors: Vec<(String, ArrayD<f32>)>,
    /// Training images and the network's logits on them, for the compiler's checks (see [`Probe`]).
    pub probe: Option<Probe>,
}

/// The two file paths of a checkpoint named by `path` (which may end in `.safetensors`, `.json`, or neither).
pub fn checkpoint_paths(path: &Path) -> (PathBuf, PathBuf) {
    let base = match path.extension().and_then(|e| e.to_str()) {
        Some("safetensors") | Some("json") => path.with_extension(""),
        _ => path.to_path_buf(),
    };
    let mut st = base.clone().into_os_string();
    st.push(".safetensors");
    let mut js = base.into_os_string();
    js.push(".json");
    (PathBuf::from(st), PathBuf::from(js))
}

impl Checkpoint {
    /// Captures everything of `net` plus the given metadata and method tensors.
    pub fn capture(
        net: &dyn Network,
        meta: CheckpointMeta,
        method_tensors: Vec<(String, ArrayD<f32>)>,
    ) -> Result<Self> {
        let mut tensors = Vec::new();
        let mut masks = Vec::new();
        for t in net.tensors() {
            tensors.push((t.path.clone(), net.read(&t.path)?));
            if t.is_prunable() {
                if let Some(m) = net.mask(&t.path) {
                    masks.push((t.path.clone(), m));
                }
            }
        }
        Ok(Checkpoint {
            meta,
            tensors,
            momentum: net.optimizer_state(),
            masks,
            method_tensors,
            probe: None,
        })
    }

    /// Writes `NAME.safetensors` (tensors, metadata and digest: the checkpoint), then `NAME.json` (a copy of the
    /// metadata), each atomically. A kill at any instant leaves either the previous or the new safetensors
    /// file whole, and that file alone is enough to resume. Returns the safetensors path.
    pub fn save(&self, path: &Path) -> Result<PathBuf> {
        let (st_path, json_path) = checkpoint_paths(path);
        let embedded = CheckpointMeta {
            tensors_sha256: None,
            ..self.meta.clone()
        };
        let meta_json = serde_json::to_string(&embedded).map_err(|e| Error::Checkpoint {
            path: st_path.clone(),
            msg: format!("cannot serialise metadata: {e}"),
        })?;
        let bytes = self.tensor_bytes(&st_path, meta_json)?;
        write_atomic(&st_path, &bytes)?;
        write_atomic(&json_path, &metadata_copy(&embedded, &bytes, &json_path)?)?;
        Ok(st_path)
    }

    fn tensor_bytes(&self, path: &Path, meta_json: String) -> Result<Vec<u8>> {
        let mut f32s: Vec<(String, Vec<usize>, Vec<u8>)> = Vec::new();
        let mut push_f32 = |name: String, a: &ArrayD<f32>| {
            let bytes: Vec<u8> = a.iter().flat_map(|v| v.to_le_bytes()).collect();
            f32s.push((name, a.shape().to_vec(), bytes));
        };
        for (p, a) in &self.tensors {
            push_f32(p.clone(), a);
        }
        for (p, a) in &self.momentum {
            push_f32(format!("{MOMENTUM_PREFIX}{p}"), a);
        }
        for (p, a) in &self.method_tensors {
            push_f32(format!("{METHOD_PREFIX}{p}"), a);
        }
        if let Some(p) = &self.probe {
            push_f32(PROBE_INPUTS.to_string(), &p.inputs);
            push_f32(PROBE_LOGITS.to_string(), &p.logits);
        }
        let mut i64s: Vec<(String, Vec<usize>, Vec<u8>)> = Vec::new();
        for (p, m) in &self.masks {
            let ip = m.indptr();
            let ix = m.indices();
            i64s.push((
                format!("{MASK_PREFIX}{p}.indptr"),
                vec![ip.len()],
                ip.iter().flat_map(|&v| (v as i64).to_le_bytes()).collect(),
            ));
            i64s.push((
                format!("{MASK_PREFIX}{p}.indices"),
                vec![ix.len()],
                ix.iter().flat_map(|&v| (v as i64).to_le_bytes()).collect(),
            ));
        }
        let mut views: BTreeMap<String, TensorView> = BTreeMap::new();
        fn mk<'a>(
            dtype: Dtype,
            shape: &[usize],
            data: &'a [u8],
            name: &str,
            path: &Path,
        ) -> Result<TensorView<'a>> {
            TensorView::new(dtype, shape.to_vec(), data).map_err(|e| Error::Checkpoint {
                path: path.to_path_buf(),
                msg: format!("tensor {name}: {e:?}"),
            })
        }
        for (n, s, d) in &f32s {
            if views
                .insert(n.clone(), mk(Dtype::F32, s, d, n, path)?)
                .is_some()
            {
                return Err(Error::Checkpoint {
                    path: path.to_path_buf(),
                    msg: format!("duplicate tensor name {n}"),
                });
            }
        }
        for (n, s, d) in &i64s {
            if views
                .insert(n.clone(), mk(Dtype::I64, s, d, n, path)?)
                .is_some()
            {
                return Err(Error::Checkpoint {
                    path: path.to_path_buf(),
                    msg: format!("duplicate tensor name {n}"),
                });
            }
        }
        let digest = state_digest(
            &meta_json,
            views
                .iter()
                .map(|(n, v)| (n.as_str(), v.dtype(), v.shape(), v.data())),
        );
        let header = std::collections::HashMap::from([(
            EMBEDDED.to_string(),
            format!("{digest}\n{meta_json}"),
        )]);
        safetensors::serialize(views, &Some(header)).map_err(|e| Error::Checkpoint {
            path: path.to_path_buf(),
            msg: format!("cannot serialise tensors: {e:?}"),
        })
    }

    /// Writes the tensors and BN statistics, masks and momentum buffers into `net` (whose spec must equal the
    /// checkpoint's model). Masks are set first so that masked weights are written as zeros.
    pub fn apply_to(&self, net: &mut dyn Network, origin: &Path) -> Result<()> {
        if net.spec() != &self.meta.model {
            return Err(Error::Checkpoint {
                path: origin.to_path_buf(),
                msg: format!(
                    "checkpoint is of model {} {:?} with {} classes, but the run uses {} {:?} with {} classes",
                    self.meta.model.name(),
                    self.meta.model.input,
                    self.meta.model.classes,
                    net.spec().name(),
                    net.spec().input,
                    net.spec().classes
                ),
            });
        }
        let infos = net.tensors().to_vec();
        for t in infos.iter().filter(|t| t.is_prunable()) {
            let m = self
                .masks
                .iter()
                .find(|(p, _)| p == &t.path)
                .map(|(_, m)| m);
            net.set_mask(&t.path, m)?;
        }
        for t in &infos {
            let (_, a) = self
                .tensors
                .iter()
                .find(|(p, _)| p == &t.path)
                .ok_or_else(|| Error::Checkpoint {
                    path: origin.to_path_buf(),
                    msg: format!("missing tensor {}", t.path),
                })?;
            net.write(&t.path, a.view())?;
        }
        net.reset_optimizer();
        if !self.momentum.is_empty() {
            net.set_optimizer_state(&self.momentum)?;
        }
        Ok(())
    }
}

/// Reads a checkpoint named by either of its files or their common stem. Every structural problem (missing
/// file, bad JSON, wrong format or version, tensor of the wrong dtype or shape, malformed mask) is an error
/// naming the file.
pub fn load_checkpoint(path: &Path) -> Result<Checkpoint> {
    let (st_path, json_path) = checkpoint_paths(path);
    let bytes = std::fs::read(&st_path).map_err(|e| Error::io(&st_path, e))?;
    let meta = match embedded_meta(&st_path, &bytes)? {
        Some(meta) => meta,
        None => json_meta(&json_path, &st_path, &bytes)?,
    };
    if meta.format != FORMAT || meta.version != VERSION {
        return Err(Error::Checkpoint {
            path: st_path,
            msg: format!(
                "expected format '{FORMAT}' version {VERSION}, found '{}' version {}",
                meta.format, meta.version
            ),
        });
    }
    if let Some(state) = &meta.training {
        state.check().map_err(|msg| Error::Checkpoint {
            path: st_path.clone(),
            msg: format!("training state: {msg}"),
        })?;
    }
    let bad = |msg: String| Error::Checkpoint {
        path: st_path.clone(),
        msg,
    };
    let st = SafeTensors::deserialize(&bytes)
        .map_err(|e| bad(format!("not a valid safetensors file: {e:?}")))?;
    let graph = meta
        .model
        .graph()
        .map_err(|e| bad(format!("metadata model: {e}")))?;
    let infos = graph.tensors();

    let read_f32 = |name: &str, shape: &[usize]| -> Result<ArrayD<f32>> {
        let v = st
            .tensor(name)
            .map_err(|_| bad(format!("missing tensor {name}")))?;
        if v.dtype() != Dtype::F32 || v.shape() != shape {
            return Err(bad(format!(
                "tensor {name} is {:?} {:?}, expected F32 {shape:?}",
                v.dtype(),
                v.shape()
            )));
        }
        let data: Vec<f32> = v
            .data()
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        ArrayD::from_shape_vec(IxDyn(shape), data).map_err(|e| bad(format!("tensor {name}: {e}")))
    };
    let read_i64 = |name: &str| -> Result<Vec<usize>> {
        let v = st
            .tensor(name)
            .map_err(|_| bad(format!("missing tensor {name}")))?;
        if v.dtype() != Dtype::I64 || v.shape().len() != 1 {
            return Err(bad(format!("tensor {name} must be a 1-D I64 array")));
        }
        v.data()
            .chunks_exact(8)
            .map(|c| {
                let x = i64::from_le_bytes(c.try_into().expect("chunk of 8"));
                usize::try_from(x)
                    .map_err(|_| bad(format!("tensor {name} holds the negative index {x}")))
            })
            .collect()
    };

    let mut tensors = Vec::new();
    let mut momentum = Vec::new();
    let mut masks = Vec::new();
    for t in &infos {
        tensors.push((t.path.clone(), read_f32(&t.path, &t.shape)?));
        let mname = format!("{MOMENTUM_PREFIX}{}", t.path);
        if st.tensor(&mname).is_ok() {
            let buf = read_f32(&mname, &t.shape)?;
            if let Some(i) = buf.iter().position(|v| !v.is_finite()) {
                return Err(bad(format!(
                    "momentum buffer {mname} holds the non-finite value {} at flat index {i}",
                    buf.iter().nth(i).copied().unwrap_or(f32::NAN)
                )));
            }
            momentum.push((t.path.clone(), buf));
        }
        let ip = format!("{MASK_PREFIX}{}.indptr", t.path);
        if st.tensor(&ip).is_ok() {
            let indptr = read_i64(&ip)?;
            let indices = read_i64(&format!("{MASK_PREFIX}{}.indices", t.path))?;
            let m = Mask::from_csr(&t.shape, indptr, indices)
                .map_err(|e| bad(format!("mask of {}: {e}", t.path)))?;
            masks.push((t.path.clone(), m));
        }
    }
    let mut names: Vec<String> = st.names().into_iter().cloned().collect();
    names.sort();
    let mut method_tensors = Vec::new();
    for n in &names {
        if let Some(rest) = n.strip_prefix(METHOD_PREFIX) {
            let shape = st
                .tensor(n)
                .map_err(|e| bad(format!("tensor {n}: {e:?}")))?
                .shape()
                .to_vec();
            method_tensors.push((rest.to_string(), read_f32(n, &shape)?));
        }
    }
    let probe = match (st.tensor(PROBE_INPUTS), st.tensor(PROBE_LOGITS)) {
        (Ok(i), Ok(l)) => {
            let (is, ls) = (i.shape().to_vec(), l.shape().to_vec());
            let n = is.first().copied().unwrap_or(0);
            let mut want = vec![n];
            want.extend_from_slice(&meta.model.input);
            if is != want || ls != [n, meta.model.classes] {
                return Err(bad(format!(
                    "probe tensors have shapes {is:?} and {ls:?}, the model needs {want:?} and [{n}, {}]",
                    meta.model.classes
                )));
            }
            Some(Probe {
                inputs: read_f32(PROBE_INPUTS, &is)?,
                logits: read_f32(PROBE_LOGITS, &ls)?,
            })
        }
        (Err(_), Err(_)) => None,
        _ => {
            return Err(bad(format!(
                "a probe needs both {PROBE_INPUTS} and {PROBE_LOGITS}"
            )))
        }
    };
    Ok(Checkpoint {
        meta,
        tensors,
        momentum,
        masks,
        method_tensors,
        probe,
    })
}

/// The metadata stored inside the safetensors header, its digest checked; `None` for a checkpoint written before
/// the metadata was embedded (its JSON file then holds the metadata).
fn embedded_meta(st_path: &Path, bytes: &[u8]) -> Result<Option<CheckpointMeta>> {
    let bad = |msg: String| Error::Checkpoint {
        path: st_path.to_path_buf(),
        msg,
    };
    let st = SafeTensors::deserialize(bytes)
        .map_err(|e| bad(format!("not a valid safetensors file: {e:?}")))?;
    let (_, header) = SafeTensors::read_metadata(bytes)
        .map_err(|e| bad(format!("not a valid safetensors file: {e:?}")))?;
    let Some(entries) = header.metadata() else {
        return Ok(None);
    };
    let Some(entry) = entries.get(EMBEDDED) else {
        return Ok(None);
    };
    let Some((stored_digest, meta_json)) = entry.split_once('\n') else {
        return Err(bad(format!("the header entry {EMBEDDED} lacks its digest")));
    };
    let mut tensors = st.tensors();
    tensors.sort_by(|a, b| a.0.cmp(&b.0));
    let digest = state_digest(
        meta_json,
        tensors
            .iter()
            .map(|(n, v)| (n.as_str(), v.dtype(), v.shape(), v.data())),
    );
    if stored_digest != digest {
        return Err(bad(
            "the metadata or the tensors were changed after the checkpoint was written (the SHA-256 digest \
             in the header does not match)"
                .into(),
        ));
    }
    serde_json::from_str(meta_json)
        .map(Some)
        .map_err(|e| bad(format!("malformed embedded metadata: {e}")))
}

/// The metadata of a checkpoint whose safetensors file carries none: read from the JSON file and matched to
/// the tensors by its `tensors_sha256`.
fn json_meta(json_path: &Path, st_path: &Path, bytes: &[u8]) -> Result<CheckpointMeta> {
    let json = std::fs::read(json_path).map_err(|e| Error::io(json_path, e))?;
    let meta: CheckpointMeta = serde_json::from_slice(&json).map_err(|e| Error::Checkpoint {
        path: json_path.to_path_buf(),
        msg: format!("malformed metadata: {e}"),
    })?;
    if let Some(expected) = &meta.tensors_sha256 {
        if &sha256_hex(bytes) != expected {
            return Err(Error::Checkpoint {
                path: st_path.to_path_buf(),
                msg: format!(
                    "does not match its metadata {} (SHA-256 differs): the pair is torn or the file was changed",
                    json_path.display()
                ),
            });
        }
    }
    Ok(meta)
}

/// The JSON copy of `meta` written beside the safetensors file `st_bytes`.
fn metadata_copy(meta: &CheckpointMeta, st_bytes: &[u8], json_path: &Path) -> Result<Vec<u8>> {
    let copy = CheckpointMeta {
        tensors_sha256: Some(sha256_hex(st_bytes)),
        ..meta.clone()
    };
    serde_json::to_vec_pretty(&copy).map_err(|e| Error::Checkpoint {
        path: json_path.to_path_buf(),
        msg: format!("cannot serialise metadata: {e}"),
    })
}

/// Rewrites `NAME.json` from the metadata inside `NAME.safetensors` when it is missing or stale (a kill between
/// the two writes of [`Checkpoint::save`]); returns whether it was rewritten. Checkpoints without embedded
/// metadata are left alone.
pub fn repair_metadata_copy(path: &Path) -> Result<bool> {
    let (st_path, json_path) = checkpoint_paths(path);
    let bytes = std::fs::read(&st_path).map_err(|e| Error::io(&st_path, e))?;
    let Some(meta) = embedded_meta(&st_path, &bytes)? else {
        return Ok(false);
    };
    let want = metadata_copy(&meta, &bytes, &json_path)?;
    if std::fs::read(&json_path).is_ok_and(|have| have == want) {
        return Ok(false);
    }
    write_atomic(&json_path, &want)?;
    Ok(true)
}

/// SHA-256 (hex) over the metadata JSON and then, in the given (sorted) order, each tensor's name, dtype, shape
/// and little-endian data, each field length-prefixed.
fn state_digest<'a>(
    meta_json: &str,
    tensors: impl Iterator<Item = (&'a str, Dtype, &'a [usize], &'a [u8])>,
) -> String {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    let mut field = |bytes: &[u8]| {
        h.update((bytes.len() as u64).to_le_bytes());
        h.update(bytes);
    };
    field(meta_json.as_bytes());
    for (name, dtype, shape, data) in tensors {
        field(name.as_bytes());
        field(format!("{dtype:?}").as_bytes());
        let dims: Vec<u8> = shape
            .iter()
            .flat_map(|&d| (d as u64).to_le_bytes())
            .collect();
        field(&dims);
        field(data);
    }
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}
