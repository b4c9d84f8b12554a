//! Runs every artefact of a compilation on a dataset against the IR interpreter and reports agreement.
pub mod runners;
