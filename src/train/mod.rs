//! Training: recipes, the loop that drives a method over a network, metrics, checkpoints and resume.

pub mod checkpoint;
pub mod metrics;
pub mod recipe;
pub mod serde_repr;
pub mod trainer;

pub use checkpoint::{load_checkpoint, Checkpoint, CheckpointMeta, TrainState};
pub use metrics::{read_metrics, EpochMetrics};
pub use recipe::{Override, Recipe};
pub use trainer::{
    evaluate, resume, resume_recipe, run, run_custom, run_with, RunOptions, RunSummary,
};
