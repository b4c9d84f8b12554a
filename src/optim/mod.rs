//! Optimiser hyperparameters and learning-rate schedules.

pub mod schedule;
pub mod sgd;

pub use schedule::Schedule;
pub use sgd::SgdConfig;
