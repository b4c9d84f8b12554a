//! The compiler: import (checkpoint, ONNX) into the [`ir`], run [`passes`], emit artefacts ([`emit`], via
//! [`lower`] for the binary formats); [`pipeline::compile`] does all of it for a target.
pub mod artefact;
pub mod batch;
pub mod bench;
pub mod codes;
pub mod emit;
pub mod import;
pub mod interp;
pub mod ir;
pub mod lower;
pub mod passes;
pub mod pipeline;
pub mod target;
pub mod text;

pub use pipeline::{compile, Artefacts, CompileOptions};
