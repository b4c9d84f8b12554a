//! Errors of loading and running a model. Every malformed input maps to one of these; nothing panics.

use core::fmt;

/// Why a byte string is not a valid `.scb` model.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoadError {
    /// Shorter than its header or than the file size the header states.
    Truncated {
        needed: u32,
        got: u32,
    },
    BadMagic,
    UnsupportedVersion {
        major: u16,
        minor: u16,
    },
    BadHeaderSize(u32),
    /// The header's file size differs from the byte string's length.
    FileSizeMismatch {
        header: u32,
        actual: u32,
    },
    HeaderCrc {
        stored: u32,
        computed: u32,
    },
    /// A required-feature bit this reader does not know.
    UnknownFeature(u32),
    /// A tensor or the graph uses a feature the header does not declare.
    FeatureNotDeclared(u32),
    /// A reserved field is not zero.
    ReservedNotZero {
        offset: u32,
    },
    SectionTableOutOfBounds,
    SectionOutOfBounds {
        kind: u32,
    },
    SectionMisaligned {
        kind: u32,
    },
    SectionOverlap {
        kind: u32,
    },
    UnknownSection {
        kind: u32,
    },
    DuplicateSection {
        kind: u32,
    },
    MissingSection {
        kind: u32,
    },
    /// A section's length is not a whole number of records.
    SectionLength {
        kind: u32,
    },
    SectionCrc {
        kind: u32,
        stored: u32,
        computed: u32,
    },
    BadDtype {
        tensor: u32,
    },
    BadEncoding {
        tensor: u32,
    },
    /// Rank, dimensions or a zero dimension of a tensor.
    BadTensorShape {
        tensor: u32,
    },
    /// A tensor's payload offset is not aligned or its arrays leave the data section.
    TensorDataOutOfBounds {
        tensor: u32,
    },
    /// Stored-entry count inconsistent with the shape, the row pointers or the index stream.
    NnzMismatch {
        tensor: u32,
    },
    NonMonotoneIndptr {
        tensor: u32,
    },
    /// A column index (or decoded position) outside the tensor, or not strictly increasing in its row.
    IndexOutOfRange {
        tensor: u32,
    },
    /// An encoding parameter out of range: a Rice parameter above 7, or a nonzero parameter byte on a tensor
    /// whose encoding has none.
    BadEncodingParam {
        tensor: u32,
    },
    /// A Rice stream whose codes run past its length, do not end exactly at its length, or leave nonzero bits
    /// in its last byte.
    BadIndexStream {
        tensor: u32,
    },
    /// A quantisation scale that is not finite and positive, or missing/present against the type.
    BadScale {
        tensor: u32,
    },
    /// A buffer record: unknown type, bad rank, zero or too large dimensions, or a bad scale.
    BadBuffer {
        buffer: u32,
    },
    /// A buffer (or an op's scratch) extends past the arena or is not aligned.
    ArenaTooSmall {
        buffer: u32,
    },
    UnknownOpcode {
        op: u32,
    },
    /// An op refers to a buffer or tensor that does not exist, or to one it must not use.
    BadReference {
        op: u32,
    },
    /// An op's operand shapes do not fit together.
    BadShape {
        op: u32,
    },
    /// An op's operand types do not fit the graph's (f32 or int8) kind.
    TypeMismatch {
        op: u32,
    },
    /// Bad kernel, stride or padding parameters.
    BadParams {
        op: u32,
    },
    /// A buffer is written twice, read before it is written, or the graph output is never written.
    BadDataflow {
        op: u32,
    },
    /// An op writes over a buffer that is still to be read.
    ArenaOverlap {
        op: u32,
    },
    /// Normalisation arrays missing, out of bounds or with a non-positive standard deviation.
    BadNormalization,
    /// A size computation overflowed.
    Overflow,
}

/// Why a run failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunError {
    InputLength {
        expected: u32,
        got: u32,
    },
    OutputLength {
        expected: u32,
        got: u32,
    },
    ArenaTooSmall {
        needed: u32,
        got: u32,
    },
    /// The call does not fit the model's kind (an int8 call on a float model or the reverse).
    WrongKind,
    /// The requested kernel path needs CPU features this machine lacks.
    PathUnavailable,
}

impl fmt::Display for LoadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

impl fmt::Display for RunError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}
