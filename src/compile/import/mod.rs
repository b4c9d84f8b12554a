//! Importers into the IR: sculpt checkpoints and ONNX files of the supported op subset.
pub mod checkpoint;
pub mod onnx;

use std::path::Path;

use crate::compile::artefact::{Artefact, ModelFile};
use crate::compile::ir::Graph;
use crate::error::Result;

/// Imports an ONNX file or a checkpoint (`NAME`, `NAME.json` or `NAME.safetensors`), recognised by content
/// ([`ModelFile::recognise`]).
pub fn import(path: &Path) -> Result<Graph> {
    match ModelFile::recognise(path)? {
        ModelFile::Artefact(Artefact::OnnxDense | Artefact::OnnxSparse, bytes) => {
            onnx::import_bytes(&bytes, path)
        }
        _ => checkpoint::import(path),
    }
}
