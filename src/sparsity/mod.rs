//! Masks and how they are chosen: the mask set of a model, layer-wise allocation, scores (magnitude, random,
//! SNIP, SynFlow, GraSP and the DST criteria) and the prune/grow update primitive.

pub mod allocation;
pub mod criteria;
pub mod mask;
pub mod maskset;
pub mod pai;
pub mod scores;
pub mod select;

pub use allocation::Allocation;
pub use mask::Mask;
pub use maskset::{Layer, MaskSet, Scope};
