//! Training: recipes, the loop that drives a method over a network, metrics, checkpoints and resume.

pub mod checkpoint;
pub mod metrics;
pub mod recipe;
pub mod serde_repr;

pub use checkpoint::{load_checkpoint, Checkpoint, CheckpointMeta, TrainState};
pub use metrics::{read_metrics, EpochMetrics};
pub use recipe::{Override, Recipe};
