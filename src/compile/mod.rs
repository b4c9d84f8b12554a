//! The compiler: import (checkpoint, ONNX) into the [`ir`], run passes, emit artefacts.
pub mod emit;
pub mod ir;
pub mod target;
