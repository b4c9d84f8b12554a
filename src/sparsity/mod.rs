//! Masks and how they are chosen.

pub mod mask;

pub use mask::Mask;
