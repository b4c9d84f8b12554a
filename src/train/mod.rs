//! Training: recipes, the [`Run`] that drives a method over a network on a device, metrics, checkpoints and
//! resume.

pub mod checkpoint;
pub mod evaluate;
pub mod metrics;
pub mod probe;
mod progress;
pub mod recipe;
pub mod run_data;
pub mod serde_repr;
pub mod trainer;

pub use checkpoint::{load_checkpoint, Checkpoint, CheckpointMeta, TrainState};
pub use evaluate::{density, evaluate, evaluate_split};
pub use metrics::{read_metrics, EpochMetrics};
pub use recipe::{Override, Recipe};
pub use trainer::{checkpoint_weights, resume_recipe, Run, RunSummary};
