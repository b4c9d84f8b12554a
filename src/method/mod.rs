//! Placeholder module.
