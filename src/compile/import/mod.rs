//! Importers into the IR: sculpt checkpoints and ONNX files of the supported op subset.
pub mod checkpoint;
pub mod onnx;

use std::path::Path;

use crate::compile::ir::Graph;
use crate::error::Result;

/// Imports a checkpoint (`NAME`, `NAME.json` or `NAME.safetensors`) or an `.onnx` file, by extension.
pub fn import(path: &Path) -> Result<Graph> {
    match path.extension().and_then(|e| e.to_str()) {
        Some("onnx") => onnx::import_file(path),
        _ => checkpoint::import(path),
    }
}
