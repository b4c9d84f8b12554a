//! Placeholder module.
pub mod emit;
