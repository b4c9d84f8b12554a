//! Entry points of the fuzz targets (`fuzz/`) and of the corpus replay test (`tests/fuzz_replay.rs`): each
//! feeds arbitrary bytes to one reader, within a [`FUZZ_LIMIT`] budget, and returns whether the reader accepted
//! them. The contract under test is that none of them panics, aborts or allocates past the budget, whatever the
//! bytes; a rejection is a normal outcome.

use std::path::Path;

use crate::budget::Budget;
use crate::compile::import::{checkpoint, onnx};
use crate::data::{cifar, file, idx};
use crate::train::recipe::{Override, Recipe};

/// The memory budget of one fuzzed input: 64 MiB.
pub const FUZZ_LIMIT: u64 = 64 << 20;

/// The targets, by name: the names of `fuzz/fuzz_targets/*.rs` and of the corpus directories.
pub const TARGETS: [&str; 6] = ["scb", "onnx", "checkpoint", "idx", "cifar", "recipe"];

/// Runs target `name` on `data`; `None` for an unknown name.
pub fn run(name: &str, data: &[u8]) -> Option<bool> {
    Some(match name {
        "scb" => scb(data),
        "onnx" => onnx(data),
        "checkpoint" => checkpoint(data),
        "idx" => idx(data),
        "cifar" => cifar(data),
        "recipe" => recipe(data),
        _ => return None,
    })
}

/// A `.scb` model through the runtime's public API: parse, then (when the arena fits the budget) run once on
/// a fixed input, and for an int8 model once more through the int8 entry point.
pub fn scb(data: &[u8]) -> bool {
    let Ok(m) = sculpt_runtime::Model::parse(data) else {
        return false;
    };
    let (arena_len, inputs, outputs) = (m.arena_size(), m.input_len(), m.output_len());
    let fits = (arena_len as u64)
        .saturating_add(4 * (inputs as u64 + outputs as u64))
        .saturating_add(16)
        <= FUZZ_LIMIT;
    if !fits {
        return true;
    }
    let mut storage = vec![0u8; arena_len + 16];
    let off = storage.as_ptr().align_offset(16).min(16);
    let arena = &mut storage[off..off + arena_len];
    let input: Vec<f32> = (0..inputs).map(|i| (i % 7) as f32 / 7.0).collect();
    let mut out = vec![0.0f32; outputs];
    let ran = m.run(&input, arena, &mut out).is_ok();
    if m.is_int8() {
        let q: Vec<i8> = (0..inputs).map(|i| (i % 255) as i8).collect();
        let mut qo = vec![0i8; outputs];
        let _ = m.run_int8(&q, arena, &mut qo);
    }
    ran
}

/// An ONNX model through the importer.
pub fn onnx(data: &[u8]) -> bool {
    onnx::import_bytes_within(data, Path::new("fuzz.onnx"), &Budget::new(FUZZ_LIMIT)).is_ok()
}

/// A checkpoint pair packed into one input: a little-endian u32 length `n`, then `n` bytes of JSON metadata,
/// then the safetensors bytes.
pub fn checkpoint(data: &[u8]) -> bool {
    let Some((json, tensors)) = split_pair(data) else {
        return false;
    };
    let Ok(text) = std::str::from_utf8(json) else {
        return false;
    };
    let budget = Budget::new(FUZZ_LIMIT);
    let Ok(meta) = checkpoint::parse_meta(Path::new("fuzz.json"), text) else {
        return false;
    };
    checkpoint::graph_from_tensors_within(&meta, tensors, Path::new("fuzz.safetensors"), &budget)
        .is_ok()
}

/// Splits `[u32 LE n][n bytes][rest]`; the length is clamped to what is there.
pub fn split_pair(data: &[u8]) -> Option<(&[u8], &[u8])> {
    let head: [u8; 4] = data.get(..4)?.try_into().ok()?;
    let rest = &data[4..];
    let n = (u32::from_le_bytes(head) as usize).min(rest.len());
    Some(rest.split_at(n))
}

/// An IDX file (plain or gzip): the first byte chooses labels (even) or images (odd), the rest is the file.
pub fn idx(data: &[u8]) -> bool {
    let Some((&sel, bytes)) = data.split_first() else {
        return false;
    };
    let budget = Budget::new(FUZZ_LIMIT);
    let path = Path::new("fuzz-idx");
    let ndims = if sel & 1 == 1 { 3 } else { 1 };
    let Ok(raw) = idx::inflate(path, bytes.to_vec(), ndims, &budget) else {
        return false;
    };
    if ndims == 3 {
        idx::parse_images(path, raw).is_ok()
    } else {
        idx::parse_labels(path, raw, idx::CLASSES).is_ok()
    }
}

/// A CIFAR binary file (plain or gzip): the first byte chooses CIFAR-10, CIFAR-100 coarse or fine, the rest is
/// the file.
pub fn cifar(data: &[u8]) -> bool {
    let Some((&sel, bytes)) = data.split_first() else {
        return false;
    };
    let layout = match sel % 3 {
        0 => cifar::Layout::CIFAR10,
        1 => cifar::Layout::CIFAR100_COARSE,
        _ => cifar::Layout::CIFAR100_FINE,
    };
    let budget = Budget::new(FUZZ_LIMIT);
    let path = Path::new("fuzz-cifar");
    let Ok(raw) = file::decode(path, bytes.to_vec(), &budget, None) else {
        return false;
    };
    let (mut images, mut labels) = (Vec::new(), Vec::new());
    cifar::parse_records(path, &raw, layout, &mut images, &mut labels).is_ok()
}

/// A recipe: the text up to the first NUL byte is the TOML file, each further NUL-separated part one
/// command-line override `KEY=VALUE`.
pub fn recipe(data: &[u8]) -> bool {
    let text = String::from_utf8_lossy(data);
    let mut parts = text.split('\0');
    let file = parts.next().unwrap_or("");
    let mut overrides = Vec::new();
    for o in parts {
        match Override::parse(o) {
            Ok(o) => overrides.push(o),
            Err(_) => return false,
        }
    }
    Recipe::from_toml_with(file, "fuzz.toml", &overrides).is_ok()
}
