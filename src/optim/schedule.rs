//! Learning-rate schedules as pure functions of the step.

/// A learning-rate schedule.
#[derive(Debug, Clone, PartialEq)]
pub enum Schedule {
    Constant { lr: f32 },
}
