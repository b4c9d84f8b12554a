//! sculpt: a sparse neural-network trainer and compiler.
//!
//! Data flows one way: [`train`] drives [`method`]s over a [`engine::Network`] and writes checkpoints;
//! [`compile`] turns a checkpoint or an ONNX file into deployable artefacts; [`verify`] checks every artefact
//! against a reference. See `formats/` for the file formats.

pub mod analysis;
pub mod budget;
pub mod cli;
pub mod compile;
pub mod data;
pub mod distributed;
pub mod engine;
pub mod error;
pub mod fsio;
pub mod fuzz;
pub mod method;
pub mod nn;
pub mod optim;
pub mod sparsity;
pub mod train;
pub mod verify;

pub use error::{Error, Result};
