//! Placeholder module.
pub mod emit;
pub mod target;
