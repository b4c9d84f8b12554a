//! The kinds of artefact a compilation writes, as a type: each knows its file name in the artefact folder,
//! its value type, the executors that verify it, the target budget rule and the bound it is verified to.

use sculpt_runtime::format::ValueType;
use serde::{Deserialize, Serialize};
use std::io::Read;

/// One kind of artefact. Serialised (in `manifest.json`, `formats` of reports) by [`Artefact::name`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Artefact {
    /// Dense ONNX, every constant an `initializer`.
    #[serde(rename = "onnx")]
    OnnxDense,
    /// ONNX with `sparse_initializer` weights where that is smaller.
    #[serde(rename = "onnx-sparse")]
    OnnxSparse,
    /// `.scb` binary, f32 weights.
    #[serde(rename = "scb")]
    ScbF32,
    /// `.scb` binary, int8 weights and activations.
    #[serde(rename = "scb-int8")]
    ScbInt8,
    /// C99 source, f32.
    #[serde(rename = "c")]
    CF32,
    /// C99 source, int8.
    #[serde(rename = "c-int8")]
    CInt8,
}

/// What runs an artefact in `verify`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Executor {
    /// tract, reading the file as it is.
    Tract,
    /// tract, on a copy whose sparse initializers an independent reader densified.
    TractDensified,
    /// ONNX Runtime (a shared library found at run time).
    OnnxRuntime,
    /// The `sculpt-runtime` crate.
    Runtime,
    /// The system C compiler and a harness.
    C,
}

impl Executor {
    /// The executor in words, for reports.
    pub fn label(self) -> &'static str {
        match self {
            Executor::Tract => "tract",
            Executor::TractDensified => "tract (densified)",
            Executor::OnnxRuntime => "ONNX Runtime",
            Executor::Runtime => "sculpt-runtime",
            Executor::C => "C compiler",
        }
    }
}

/// What an artefact is verified to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bound {
    /// The float reference: same top-1 and `max |Δlogit| ≤ tolerance · scale`.
    Float,
    /// The int8 interpreter: bit-identical logits.
    BitExact,
}

/// Which target budget an artefact is checked against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BudgetRule {
    /// Flash and RAM of the target, when it allows the artefact's [`Artefact::value_type`].
    Checked,
    /// Reported with the footprint of the `.scb` of its value type (the C shares it), not checked again.
    SharesScb,
    /// Not a deployment artefact for the target (ONNX).
    None,
}

impl Artefact {
    /// Every kind, in the order a compilation writes them.
    pub const ALL: [Artefact; 6] = [
        Artefact::OnnxDense,
        Artefact::OnnxSparse,
        Artefact::ScbF32,
        Artefact::CF32,
        Artefact::ScbInt8,
        Artefact::CInt8,
    ];

    /// The manifest name (`onnx`, `onnx-sparse`, `scb`, `scb-int8`, `c`, `c-int8`).
    pub fn name(self) -> &'static str {
        match self {
            Artefact::OnnxDense => "onnx",
            Artefact::OnnxSparse => "onnx-sparse",
            Artefact::ScbF32 => "scb",
            Artefact::ScbInt8 => "scb-int8",
            Artefact::CF32 => "c",
            Artefact::CInt8 => "c-int8",
        }
    }

    /// The file's path relative to the artefact folder.
    pub fn file(self) -> &'static str {
        match self {
            Artefact::OnnxDense => "model.onnx",
            Artefact::OnnxSparse => "model.sparse.onnx",
            Artefact::ScbF32 => "model.scb",
            Artefact::ScbInt8 => "model.int8.scb",
            Artefact::CF32 => "model.c",
            Artefact::CInt8 => "int8/model.c",
        }
    }

    /// Whether it holds the int8 graph.
    pub fn int8(self) -> bool {
        matches!(self, Artefact::ScbInt8 | Artefact::CInt8)
    }

    /// The value type of its weights: i8 for the int8 graph, f32 otherwise.
    pub fn value_type(self) -> ValueType {
        if self.int8() {
            ValueType::I8
        } else {
            ValueType::F32
        }
    }

    /// The executors `verify` runs it with, each giving one row.
    pub fn executors(self) -> &'static [Executor] {
        match self {
            Artefact::OnnxDense => &[Executor::Tract],
            Artefact::OnnxSparse => &[Executor::OnnxRuntime, Executor::TractDensified],
            Artefact::ScbF32 | Artefact::ScbInt8 => &[Executor::Runtime],
            Artefact::CF32 | Artefact::CInt8 => &[Executor::C],
        }
    }

    /// The bound `verify` applies.
    pub fn bound(self) -> Bound {
        if self.int8() {
            Bound::BitExact
        } else {
            Bound::Float
        }
    }

    /// The budget rule of the report.
    pub fn budget(self) -> BudgetRule {
        match self {
            Artefact::ScbF32 | Artefact::ScbInt8 => BudgetRule::Checked,
            Artefact::CF32 | Artefact::CInt8 => BudgetRule::SharesScb,
            Artefact::OnnxDense | Artefact::OnnxSparse => BudgetRule::None,
        }
    }
}

/// A model file recognised by its content, never by its name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ModelFile {
    /// An `.scb` (its magic bytes) or ONNX (a protobuf opening with `ir_version`) artefact, with its bytes.
    Artefact(Artefact, Vec<u8>),
    /// Anything else: a sculpt checkpoint (`NAME`, `NAME.json`, `NAME.safetensors`).
    Checkpoint,
}

impl ModelFile {
    /// Recognises the file at `path`. An `.scb` is `scb-int8` when its header says so (an unparsable one is
    /// `scb` and fails where it is used); an ONNX file is `onnx-sparse` when any weight is stored sparse
    /// (decided by the importer, see [`Artefact::of_onnx`]). A path that is not a readable file is a
    /// checkpoint name.
    pub fn recognise(path: &std::path::Path) -> crate::error::Result<ModelFile> {
        if !path.is_file() {
            return Ok(ModelFile::Checkpoint);
        }
        let mut head = Vec::with_capacity(SNIFF_LEN);
        std::fs::File::open(path)
            .and_then(|f| f.take(SNIFF_LEN as u64).read_to_end(&mut head))
            .map_err(|e| crate::error::Error::io(path, e))?;
        if Self::kind_of(&head).is_none() {
            return Ok(ModelFile::Checkpoint);
        }
        let bytes = crate::fsio::read_within(path, &crate::budget::Budget::default(), "the file")?;
        Ok(match Self::kind_of(&bytes) {
            Some(a) => ModelFile::Artefact(a, bytes),
            None => ModelFile::Checkpoint,
        })
    }

    /// Whether the file at `path` is an ONNX model, judged by its content as [`ModelFile::recognise`] does.
    pub fn is_onnx(path: &std::path::Path) -> crate::error::Result<bool> {
        Ok(matches!(
            Self::recognise(path)?,
            ModelFile::Artefact(Artefact::OnnxDense | Artefact::OnnxSparse, _)
        ))
    }

    /// The artefact kind of `bytes`, `None` when they are neither `.scb` nor ONNX. A safetensors file (a
    /// little-endian u64 header length, then the JSON header) is never ONNX, whatever its first byte.
    pub fn kind_of(bytes: &[u8]) -> Option<Artefact> {
        if looks_like_safetensors(bytes) {
            return None;
        }
        if bytes.get(..8) == Some(&sculpt_runtime::format::MAGIC[..]) {
            let int8 = sculpt_runtime::Model::parse(bytes).is_ok_and(|m| m.is_int8());
            return Some(if int8 {
                Artefact::ScbInt8
            } else {
                Artefact::ScbF32
            });
        }
        // ModelProto field 1 (`ir_version`, varint): tag byte 0x08, as every ONNX writer emits first.
        (bytes.first() == Some(&0x08)).then_some(Artefact::OnnxDense)
    }
}

/// Bytes [`ModelFile::recognise`] reads to decide a file's kind before reading it whole.
const SNIFF_LEN: usize = 16;

/// Whether `bytes` open as a safetensors file: a header length that fits the file's own size limit, then `{`.
fn looks_like_safetensors(bytes: &[u8]) -> bool {
    match (bytes.get(..8), bytes.get(8)) {
        (Some(len), Some(b'{')) => {
            u64::from_le_bytes(len.try_into().unwrap_or([0xff; 8])) < 1 << 40
        }
        _ => false,
    }
}

impl Artefact {
    /// `onnx-sparse` when the imported graph holds any sparse-stored weight, else `onnx`.
    pub fn of_onnx(g: &crate::compile::ir::Graph) -> Artefact {
        let sparse = g.nodes.iter().any(|n| {
            n.op.weight()
                .is_some_and(|w| matches!(w.storage, crate::compile::ir::Storage::Csr { .. }))
        });
        if sparse {
            Artefact::OnnxSparse
        } else {
            Artefact::OnnxDense
        }
    }
}

impl std::fmt::Display for Artefact {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_serialise_as_the_manifest_spells_them() {
        for a in Artefact::ALL {
            let json = serde_json::to_string(&a).unwrap();
            assert_eq!(json, format!("\"{}\"", a.name()));
            assert_eq!(serde_json::from_str::<Artefact>(&json).unwrap(), a);
            assert_eq!(a.int8(), a.name().ends_with("int8"));
        }
        assert!(serde_json::from_str::<Artefact>("\"scb-f16\"").is_err());
    }

    #[test]
    fn model_files_are_recognised_by_content_not_name() {
        let mut scb = sculpt_runtime::format::MAGIC.to_vec();
        scb.extend_from_slice(&[0; 64]);
        assert_eq!(ModelFile::kind_of(&scb), Some(Artefact::ScbF32));
        assert_eq!(
            ModelFile::kind_of(&[0x08, 0x09, 0x12]),
            Some(Artefact::OnnxDense)
        );
        assert_eq!(ModelFile::kind_of(b"{\"arch\": 1}"), None);
        assert_eq!(ModelFile::kind_of(&[]), None);
        let mut safetensors = 0x108u64.to_le_bytes().to_vec();
        safetensors.extend_from_slice(b"{\"__metadata__\":{}}");
        assert_eq!(ModelFile::kind_of(&safetensors), None);
        let dir = std::env::temp_dir().join(format!("sculpt-artefact-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let misnamed = dir.join("model.onnx");
        std::fs::write(&misnamed, &scb).unwrap();
        assert_eq!(
            ModelFile::recognise(&misnamed).unwrap(),
            ModelFile::Artefact(Artefact::ScbF32, scb)
        );
        assert!(!ModelFile::is_onnx(&misnamed).unwrap());
        let onnx_named_bin = dir.join("model.bin");
        std::fs::write(&onnx_named_bin, [0x08, 0x09, 0x12]).unwrap();
        assert!(ModelFile::is_onnx(&onnx_named_bin).unwrap());
        assert_eq!(
            ModelFile::recognise(&dir.join("absent")).unwrap(),
            ModelFile::Checkpoint
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
