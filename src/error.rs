//! The library's single error type.

use std::path::PathBuf;

/// Every failure that comes from outside the program: files, flags, recipes, datasets, checkpoints.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: {msg}")]
    Format { path: PathBuf, msg: String },
    #[error("invalid recipe: {0}")]
    Recipe(String),
    #[error("invalid model: {0}")]
    Model(String),
    #[error("shape mismatch for {name}: expected {expected:?}, got {got:?}")]
    Shape {
        name: String,
        expected: Vec<usize>,
        got: Vec<usize>,
    },
    #[error("unknown tensor {0}")]
    UnknownTensor(String),
    #[error("checkpoint {path}: {msg}")]
    Checkpoint { path: PathBuf, msg: String },
    /// A device that needs an engine this build does not include.
    #[error(
        "device '{device}' needs the libtorch engine, which this build of sculpt does not include: rebuild with \
         `scripts/libtorch.sh cargo build --release --features tch` (README, section \"GPU and libtorch\")"
    )]
    EngineNotCompiled { device: String },
    /// The engine or its device failed (a libtorch error, an unavailable GPU).
    #[error("{device}: {msg}")]
    Engine { device: String, msg: String },
    #[error("{0}")]
    Invalid(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// An I/O error tagged with the path it concerns.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }

    /// A malformed-file error tagged with the path it concerns.
    pub fn format(path: impl Into<PathBuf>, msg: impl Into<String>) -> Self {
        Error::Format {
            path: path.into(),
            msg: msg.into(),
        }
    }
}
