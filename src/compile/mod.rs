//! The compiler: import (checkpoint, ONNX) into the [`ir`], run [`passes`], emit artefacts ([`emit`]).
pub mod emit;
pub mod import;
pub mod interp;
pub mod ir;
pub mod passes;
pub mod target;
