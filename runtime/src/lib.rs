//! sculpt-runtime: reads sculpt's compact binary format (`.scb`, specified in `formats/scb.md`) and runs
//! inference in a caller-provided arena. `no_std`, no allocation, no dependencies.
//!
//! ```ignore
//! let model = sculpt_runtime::Model::parse(MODEL_BYTES)?;   // validates everything once
//! let mut arena = [0u8; 65536];                            // >= model.arena_size(), 4-byte aligned
//! model.run(&input, &mut arena, &mut logits)?;             // fastest kernel path of this CPU
//! ```
//!
//! Kernels exist for several [`KernelPath`]s (AVX-512, AVX2, portable), chosen at run time from the CPU's
//! features; [`Model::run_on`] forces one.
#![no_std]
#![deny(unsafe_op_in_unsafe_fn)]

mod bytes;
pub mod conv;
pub mod cpu;
pub mod crc;
mod error;
mod exec;
pub mod format;
mod gemm;
mod lanes;
mod model;
mod ops;
pub mod quant;
mod rice;
mod rows;
mod stage;
mod weights;

pub use bytes::f16_to_f32;
pub use cpu::KernelPath;
pub use error::{LoadError, RunError};
pub use model::{BufferDesc, Model, OpDesc, TensorDesc};
pub use weights::{value_f32, value_i32, Entries, Entry};
