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
    /// Reading `path` would need more memory than the budget allows (see [`crate::budget`]).
    #[error("{path}: {source}")]
    Budget {
        path: PathBuf,
        #[source]
        source: crate::budget::Exceeded,
    },
    /// A graph invariant broken at one node (see `compile::ir`).
    #[error("ir: node '{node}' ({kind}): {msg}")]
    Node {
        node: String,
        kind: &'static str,
        msg: String,
    },
    /// A compiler pass failed, or produced a graph that does not validate.
    #[error("pass {pass}: {source}")]
    Pass {
        pass: String,
        #[source]
        source: Box<Error>,
    },
    /// An external tool an executor needs (ONNX Runtime, a C compiler) is not available on this machine.
    #[error("{tool} unavailable: {why}")]
    Unavailable { tool: String, why: String },
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

    /// A budget refusal tagged with the file being read.
    pub fn budget(path: impl Into<PathBuf>, source: crate::budget::Exceeded) -> Self {
        Error::Budget {
            path: path.into(),
            source,
        }
    }

    /// The pass an error comes from, when it comes from one.
    pub fn pass(&self) -> Option<&str> {
        match self {
            Error::Pass { pass, .. } => Some(pass),
            _ => None,
        }
    }

    /// The graph node an error names, looking through [`Error::Pass`].
    pub fn node(&self) -> Option<&str> {
        match self {
            Error::Node { node, .. } => Some(node),
            Error::Pass { source, .. } => source.node(),
            _ => None,
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

/// A safetensors reader error in words (the crate's `Display` is its `Debug` form).
pub fn describe_safetensors(e: &safetensors::SafeTensorError) -> String {
    use safetensors::SafeTensorError as E;
    match e {
        E::InvalidHeader => "the header is not UTF-8 text".into(),
        E::InvalidHeaderStart => "the header does not start with '{'".into(),
        E::InvalidHeaderDeserialization => "the header is not valid safetensors JSON".into(),
        E::HeaderTooLarge => "the header length is over the 100 MB safetensors allows".into(),
        E::HeaderTooSmall => "the file is shorter than the 8-byte header length".into(),
        E::InvalidHeaderLength => "the header length points past the end of the file".into(),
        E::TensorNotFound(n) => format!("no tensor named {}", quote(n)),
        E::TensorInvalidInfo => "a tensor's shape, type and offsets disagree".into(),
        E::InvalidOffset(n) => format!("the data offsets of tensor {} are invalid", quote(n)),
        E::IoError(e) => format!("read error: {e}"),
        E::JsonError(e) => format!("header JSON: {}", clip_lines(&e.to_string(), 4)),
        E::InvalidTensorView(dtype, shape, len) => {
            format!("a {dtype:?} tensor of shape {shape:?} cannot hold {len} bytes")
        }
        E::MetadataIncompleteBuffer => {
            "the tensors do not cover the data exactly (truncated or padded file)".into()
        }
        E::ValidationOverflow => "a tensor's shape or byte size overflows".into(),
    }
}

/// The most characters of user text (a name, a value, a line of a file) an error message quotes.
pub const QUOTE_LIMIT: usize = 80;

/// `text` in single quotes for an error message, cut to [`QUOTE_LIMIT`] characters (saying how much was cut),
/// with control characters escaped, so a huge or binary value cannot flood the terminal.
pub fn quote(text: &str) -> String {
    let mut out = String::from("'");
    for (shown, c) in text.chars().enumerate() {
        if shown == QUOTE_LIMIT {
            let rest = text.chars().count() - shown;
            out.push_str(&format!("…' ({rest} more characters)"));
            return out;
        }
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out.push('\'');
    out
}

/// The most characters of one line of an error message that [`clip_lines`] keeps.
pub const LINE_LIMIT: usize = 240;

/// `msg` with every line cut to [`LINE_LIMIT`] characters and at most `max_lines` lines: for messages of
/// third-party parsers that quote the input (TOML, JSON), whose lines may be arbitrarily long. A cut line keeps
/// its start and its end, so a reason that follows a huge path or value still shows.
pub fn clip_lines(msg: &str, max_lines: usize) -> String {
    let lines: Vec<&str> = msg.lines().collect();
    let mut out: Vec<String> = lines
        .iter()
        .take(max_lines)
        .map(|l| {
            let n = l.chars().count();
            if n <= LINE_LIMIT {
                l.to_string()
            } else {
                let (keep_head, keep_tail) = (LINE_LIMIT * 2 / 3, LINE_LIMIT / 3);
                let head: String = l.chars().take(keep_head).collect();
                let tail: String = l.chars().skip(n - keep_tail).collect();
                format!(
                    "{head}… ({} more characters) …{tail}",
                    n - keep_head - keep_tail
                )
            }
        })
        .collect();
    if lines.len() > max_lines {
        out.push(format!("… ({} more lines)", lines.len() - max_lines));
    }
    out.join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotes_are_cut_and_escaped() {
        assert_eq!(quote("abc"), "'abc'");
        assert_eq!(quote("a\nb"), "'a\\nb'");
        let long = "x".repeat(10_000);
        let q = quote(&long);
        assert!(q.len() < 120 && q.contains("9920 more characters"), "{q}");
    }

    #[test]
    fn long_lines_and_many_lines_are_clipped() {
        let msg = format!("first\n{}: the reason\nthird", "y".repeat(1000));
        let c = clip_lines(&msg, 2);
        let lines: Vec<&str> = c.lines().collect();
        assert_eq!(lines[0], "first");
        assert!(lines[1].len() < 300 && lines[1].contains("772 more characters"));
        assert!(lines[1].starts_with("yyy") && lines[1].ends_with("yyy: the reason"));
        assert_eq!(lines[2], "… (1 more lines)");
    }
}
