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
}

/// The name of a section kind for messages.
struct Section(u32);

impl fmt::Display for Section {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use crate::format::section;
        match self.0 {
            section::TENSORS => f.write_str("the tensor section"),
            section::BUFFERS => f.write_str("the buffer section"),
            section::GRAPH => f.write_str("the graph section"),
            section::DATA => f.write_str("the data section"),
            k if k & section::OPTIONAL_BIT != 0 => write!(f, "optional section {:#x}", k),
            k => write!(f, "section of kind {k}"),
        }
    }
}

impl fmt::Display for LoadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use LoadError as E;
        match *self {
            E::Truncated { needed, got } => write!(
                f,
                "the file is truncated: {needed} bytes are needed, {got} are present"
            ),
            E::BadMagic => f.write_str("not an .scb file (wrong magic bytes)"),
            E::UnsupportedVersion { major, minor } => write!(
                f,
                "format version {major}.{minor} is not supported (this reader reads version {}.x)",
                crate::format::VERSION_MAJOR
            ),
            E::BadHeaderSize(n) => write!(
                f,
                "the header size is {n} bytes, the format's is {}",
                crate::format::HEADER_SIZE
            ),
            E::FileSizeMismatch { header, actual } => write!(
                f,
                "the header gives a file size of {header} bytes, the file has {actual}"
            ),
            E::HeaderCrc { stored, computed } => write!(
                f,
                "the header is corrupt (its CRC32 is {computed:#010x}, the file records {stored:#010x})"
            ),
            E::UnknownFeature(bits) => write!(
                f,
                "the file requires features unknown to this reader (bits {bits:#x})"
            ),
            E::FeatureNotDeclared(bits) => write!(
                f,
                "the model uses features its header does not declare (bits {bits:#x})"
            ),
            E::ReservedNotZero { offset } => {
                write!(f, "the reserved field at byte {offset} is not zero")
            }
            E::SectionTableOutOfBounds => f.write_str("the section table lies outside the file"),
            E::SectionOutOfBounds { kind } => {
                write!(f, "{} lies outside the file", Section(kind))
            }
            E::SectionMisaligned { kind } => write!(
                f,
                "{} is not aligned to {} bytes",
                Section(kind),
                crate::format::ALIGN
            ),
            E::SectionOverlap { kind } => {
                write!(f, "{} overlaps another section", Section(kind))
            }
            E::UnknownSection { kind } => write!(f, "unknown required section of kind {kind}"),
            E::DuplicateSection { kind } => write!(f, "{} appears twice", Section(kind)),
            E::MissingSection { kind } => write!(f, "{} is missing", Section(kind)),
            E::SectionLength { kind } => write!(
                f,
                "the length of {} is not a whole number of records",
                Section(kind)
            ),
            E::SectionCrc {
                kind,
                stored,
                computed,
            } => write!(
                f,
                "{} is corrupt (its CRC32 is {computed:#010x}, the file records {stored:#010x})",
                Section(kind)
            ),
            E::BadDtype { tensor } => write!(f, "tensor {tensor} has an unknown value type"),
            E::BadEncoding { tensor } => write!(f, "tensor {tensor} has an unknown storage encoding"),
            E::BadTensorShape { tensor } => write!(
                f,
                "tensor {tensor} has a bad rank, a zero dimension or too many elements"
            ),
            E::TensorDataOutOfBounds { tensor } => write!(
                f,
                "the arrays of tensor {tensor} are misaligned or leave the data section"
            ),
            E::NnzMismatch { tensor } => write!(
                f,
                "the stored-entry count of tensor {tensor} disagrees with its shape, row pointers or indices"
            ),
            E::NonMonotoneIndptr { tensor } => {
                write!(f, "the row pointers of tensor {tensor} decrease")
            }
            E::IndexOutOfRange { tensor } => write!(
                f,
                "a column index of tensor {tensor} is out of range or not increasing within its row"
            ),
            E::BadEncodingParam { tensor } => {
                write!(f, "the encoding parameter of tensor {tensor} is out of range")
            }
            E::BadIndexStream { tensor } => {
                write!(f, "the Rice-coded index stream of tensor {tensor} is malformed")
            }
            E::BadScale { tensor } => write!(
                f,
                "tensor {tensor} has a missing, unexpected or non-positive quantisation scale"
            ),
            E::BadBuffer { buffer } => write!(
                f,
                "activation buffer {buffer} has a bad type, rank, dimensions or scale"
            ),
            E::ArenaTooSmall { buffer } => write!(
                f,
                "activation buffer {buffer} (or an op's scratch) lies outside the arena or is misaligned"
            ),
            E::UnknownOpcode { op } => write!(f, "op {op} has an unknown opcode"),
            E::BadReference { op } => write!(
                f,
                "op {op} refers to a buffer or tensor that does not exist or that it may not use"
            ),
            E::BadShape { op } => write!(f, "the operand shapes of op {op} do not fit together"),
            E::TypeMismatch { op } => write!(
                f,
                "the operand types of op {op} do not fit the model's float or int8 kind"
            ),
            E::BadParams { op } => {
                write!(f, "op {op} has bad kernel, stride or padding parameters")
            }
            E::BadDataflow { op } => write!(
                f,
                "op {op} writes a buffer twice or reads one before it is written, or the output is never written"
            ),
            E::ArenaOverlap { op } => write!(
                f,
                "op {op} overwrites a buffer that is still to be read"
            ),
            E::BadNormalization => f.write_str(
                "the input normalisation is missing, out of bounds or has a non-positive standard deviation",
            ),
            E::Overflow => f.write_str("a size computation overflows"),
        }
    }
}

impl fmt::Display for RunError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            RunError::InputLength { expected, got } => write!(
                f,
                "the input has {got} values, the model takes {expected}"
            ),
            RunError::OutputLength { expected, got } => write!(
                f,
                "the output buffer has room for {got} values, the model writes {expected}"
            ),
            RunError::ArenaTooSmall { needed, got } => write!(
                f,
                "the arena has {got} bytes, the model needs {needed}"
            ),
            RunError::WrongKind => f.write_str(
                "the call does not fit the model's kind (an int8 call on a float model or the reverse)",
            ),
        }
    }
}
