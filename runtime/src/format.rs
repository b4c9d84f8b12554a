//! Constants of the `.scb` format, version 2.0 (normative description: `formats/scb.md`).

/// File magic: a high-bit byte, "SCB", CR LF, ^Z, LF (catches 7-bit and text-mode corruption).
pub const MAGIC: [u8; 8] = [0x89, b'S', b'C', b'B', 0x0D, 0x0A, 0x1A, 0x0A];
/// Major version: a reader rejects any other major version.
pub const VERSION_MAJOR: u16 = 2;
/// Minor version written by this crate; readers accept any minor version of their major version.
pub const VERSION_MINOR: u16 = 0;
/// Size of the fixed header in bytes.
pub const HEADER_SIZE: usize = 96;
/// Byte offset of the header CRC inside the header (the CRC covers bytes `0..HEADER_CRC_AT`).
pub const HEADER_CRC_AT: usize = 92;
/// Size of one section-table entry.
pub const SECTION_ENTRY_SIZE: usize = 16;
/// Size of one tensor descriptor.
pub const TENSOR_SIZE: usize = 48;
/// Size of one activation-buffer record.
pub const BUFFER_SIZE: usize = 24;
/// Size of the graph-section header.
pub const GRAPH_HEADER_SIZE: usize = 32;
/// Size of one op record.
pub const OP_SIZE: usize = 32;
/// Alignment of sections in the file and of buffers in the arena. Arrays in the data section are aligned to
/// their element size instead ([`ValueType::size`], [`IndexEncoding::index_align`]).
pub const ALIGN: usize = 16;
/// Marks an absent optional reference (tensor, buffer or data offset).
pub const NONE: u32 = 0xFFFF_FFFF;

/// Section kinds. Kinds with bit 31 set are optional: readers check their CRC and otherwise skip them.
pub mod section {
    pub const TENSORS: u32 = 1;
    pub const BUFFERS: u32 = 2;
    pub const GRAPH: u32 = 3;
    pub const DATA: u32 = 4;
    pub const OPTIONAL_BIT: u32 = 0x8000_0000;
}

/// Required-feature bits of the header: a reader rejects a file that sets a bit it does not know, and a file
/// whose tensors use a feature it does not declare.
pub mod feature {
    /// Tensors with f16 values.
    pub const F16: u32 = 1 << 0;
    /// Quantised (int8) graph: int8 activations, int8 weights with per-channel scales, int32 biases.
    pub const INT8: u32 = 1 << 1;
    /// CSR with 8-bit relative column gaps and filler entries.
    pub const CSR_GAP8: u32 = 1 << 2;
    /// CSR with u16 absolute column indices.
    pub const CSR_IDX16: u32 = 1 << 3;
    /// CSR with u32 absolute column indices.
    pub const CSR_IDX32: u32 = 1 << 4;
    /// Rice-coded gaps over the flattened tensor.
    pub const RICE: u32 = 1 << 5;
    /// Input normalisation by per-channel mean and standard deviation.
    pub const NORMALIZE: u32 = 1 << 6;
    /// Every bit this reader knows.
    pub const KNOWN: u32 = F16 | INT8 | CSR_GAP8 | CSR_IDX16 | CSR_IDX32 | RICE | NORMALIZE;
}

/// Declares a closed set of one-byte codes of the format: the enum (`#[repr(u8)]`, each variant's
/// discriminant its code), [`code`](ValueType::code), [`name`](ValueType::name) (the spelling of target
/// files and reports), [`from_name`](ValueType::from_name), `ALL`, `Display` and `TryFrom<u8>` failing with
/// [`UnknownCode`].
macro_rules! codes {
    (
        $(#[$meta:meta])*
        $what:literal $enum:ident {
            $($(#[$vmeta:meta])* $variant:ident = $code:literal, $name:literal;)+
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
        #[repr(u8)]
        pub enum $enum {
            $($(#[$vmeta])* $variant = $code,)+
        }

        impl $enum {
            /// Every code, in increasing order.
            pub const ALL: &'static [$enum] = &[$($enum::$variant),+];

            /// The byte that stands for this value in a file.
            pub const fn code(self) -> u8 {
                self as u8
            }

            /// The name in target files, manifests and reports.
            pub const fn name(self) -> &'static str {
                match self {
                    $($enum::$variant => $name,)+
                }
            }

            /// The value [`name`](Self::name) spells, `None` for any other string.
            pub fn from_name(name: &str) -> Option<$enum> {
                match name {
                    $($name => Some($enum::$variant),)+
                    _ => None,
                }
            }
        }

        impl TryFrom<u8> for $enum {
            type Error = UnknownCode;
            fn try_from(code: u8) -> Result<$enum, UnknownCode> {
                match code {
                    $($code => Ok($enum::$variant),)+
                    _ => Err(UnknownCode { kind: $what, code }),
                }
            }
        }

        impl core::fmt::Display for $enum {
            fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
                f.write_str(self.name())
            }
        }
    };
}

/// A byte that is no code of its kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UnknownCode {
    /// What the byte should have named: "value type", "index encoding" or "opcode".
    pub kind: &'static str,
    pub code: u8,
}

impl core::fmt::Display for UnknownCode {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "unknown {} code {}", self.kind, self.code)
    }
}

codes! {
    /// Element types of tensors and buffers.
    "value type" ValueType {
        F32 = 0, "f32";
        F16 = 1, "f16";
        I8 = 2, "i8";
        I32 = 3, "i32";
    }
}

impl ValueType {
    /// Size in bytes of one element.
    pub const fn size(self) -> usize {
        match self {
            ValueType::F32 | ValueType::I32 => 4,
            ValueType::F16 => 2,
            ValueType::I8 => 1,
        }
    }
}

codes! {
    /// Storage encodings of tensors (formats/scb.md §5).
    "index encoding" IndexEncoding {
        /// Every value, row-major; no index stream.
        Dense = 0, "dense";
        /// CSR, u8 relative column gaps, filler entries for gaps over 255.
        CsrGap8 = 1, "gap8";
        /// CSR, u16 absolute column indices.
        CsrIdx16 = 2, "idx16";
        /// CSR, u32 absolute column indices.
        CsrIdx32 = 3, "idx32";
        /// Rice-coded gaps over the flattened row-major tensor, parameter `k` per tensor.
        Rice = 4, "rice";
    }
}

impl IndexEncoding {
    /// The sparse encodings, in increasing order of code.
    pub const SPARSE: [IndexEncoding; 4] = [
        IndexEncoding::CsrGap8,
        IndexEncoding::CsrIdx16,
        IndexEncoding::CsrIdx32,
        IndexEncoding::Rice,
    ];

    /// Alignment of the index stream in the data section: the size of one index element (1 for gap bytes
    /// and Rice bit streams, 2 and 4 for u16 and u32 indices). Values are aligned to [`ValueType::size`];
    /// row pointers, scales and the normalisation arrays to 4.
    pub const fn index_align(self) -> usize {
        match self {
            IndexEncoding::CsrIdx16 => 2,
            IndexEncoding::CsrIdx32 => 4,
            _ => 1,
        }
    }

    /// Bytes of the index stream holding `index_len` codes (bits for [`IndexEncoding::Rice`]).
    pub const fn index_bytes(self, index_len: usize) -> usize {
        match self {
            IndexEncoding::Dense => 0,
            IndexEncoding::CsrGap8 => index_len,
            IndexEncoding::CsrIdx16 => 2 * index_len,
            IndexEncoding::CsrIdx32 => 4 * index_len,
            IndexEncoding::Rice => index_len.div_ceil(8),
        }
    }

    /// The header feature bit a tensor in this encoding needs (0 for dense).
    pub const fn feature(self) -> u32 {
        match self {
            IndexEncoding::Dense => 0,
            IndexEncoding::CsrGap8 => feature::CSR_GAP8,
            IndexEncoding::CsrIdx16 => feature::CSR_IDX16,
            IndexEncoding::CsrIdx32 => feature::CSR_IDX32,
            IndexEncoding::Rice => feature::RICE,
        }
    }

    /// Largest encoding parameter: the Rice parameter `k` for [`IndexEncoding::Rice`], 0 for the others.
    pub const fn max_param(self) -> u8 {
        match self {
            IndexEncoding::Rice => RICE_MAX_PARAM,
            _ => 0,
        }
    }
}

/// Largest Rice parameter `k` of an [`IndexEncoding::Rice`] tensor.
pub const RICE_MAX_PARAM: u8 = 7;

codes! {
    /// Op codes of the graph section.
    "opcode" Opcode {
        Conv = 1, "conv";
        Gemm = 2, "gemm";
        MaxPool = 3, "maxpool";
        AvgPool = 4, "avgpool";
        GlobalAvgPool = 5, "globalavgpool";
        Add = 6, "add";
        SubsamplePad = 7, "subsamplepad";
        Relu = 8, "relu";
    }
}

impl Opcode {
    /// Whether the op reads a weight tensor (and optionally a bias).
    pub const fn has_weight(self) -> bool {
        matches!(self, Opcode::Conv | Opcode::Gemm)
    }
}

/// The [`ValueType`] codes as the raw bytes of a descriptor, for comparisons in kernels.
pub mod dtype {
    use super::ValueType;
    pub const F32: u8 = ValueType::F32.code();
    pub const F16: u8 = ValueType::F16.code();
    pub const I8: u8 = ValueType::I8.code();
    pub const I32: u8 = ValueType::I32.code();
}

/// The [`IndexEncoding`] codes as the raw bytes of a descriptor, for comparisons in kernels.
pub mod encoding {
    use super::IndexEncoding;
    pub const DENSE: u8 = IndexEncoding::Dense.code();
    pub const CSR_GAP8: u8 = IndexEncoding::CsrGap8.code();
    pub const CSR_IDX16: u8 = IndexEncoding::CsrIdx16.code();
    pub const CSR_IDX32: u8 = IndexEncoding::CsrIdx32.code();
    pub const RICE: u8 = IndexEncoding::Rice.code();
}

/// Op flag: apply ReLU to the result.
pub const FLAG_RELU: u8 = 1;
/// Op flag (CONV only): add the second input buffer, of the output's shape, before the ReLU.
pub const FLAG_RESIDUAL: u8 = 2;

/// Loop orders of a CONV op (op byte 2), chosen by the compiler per layer. The result does not depend on it.
pub mod schedule {
    /// One output channel at a time, every tile of positions.
    pub const CHANNELS_OUTER: u8 = 0;
    /// One tile of positions at a time, every output channel (the input tile stays in cache).
    pub const TILES_OUTER: u8 = 1;
}

/// Bytes of the int8 requantisation parameters of an op (formats/scb.md §8), 0 for ops without: CONV and
/// GEMM `(m: i32, sh: u32)` per output channel, then `(ma: i32, mb: i32, sh: u32)` with a residual; ADD
/// `(ma, mb, sh)`; AVG_POOL and GLOBAL_AVG_POOL `(m, sh)`.
pub const fn params_bytes(opcode: Opcode, rows: usize, residual: bool) -> usize {
    match opcode {
        Opcode::Conv | Opcode::Gemm => 8 * rows + if residual { 12 } else { 0 },
        Opcode::Add => 12,
        Opcode::AvgPool | Opcode::GlobalAvgPool => 8,
        _ => 0,
    }
}

/// Size in bytes of one element of the value type with code `dtype`, 0 for an unknown code.
pub const fn dtype_size(dtype: u8) -> usize {
    match dtype {
        dtype::F32 | dtype::I32 => 4,
        dtype::F16 => 2,
        dtype::I8 => 1,
        _ => 0,
    }
}

/// `n` rounded up to a multiple of [`ALIGN`].
pub const fn align_up(n: usize) -> usize {
    n.div_ceil(ALIGN) * ALIGN
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_round_trip_and_unknown_bytes_say_what_they_should_be() {
        for &v in ValueType::ALL {
            assert_eq!(ValueType::try_from(v.code()), Ok(v));
            assert_eq!(ValueType::from_name(v.name()), Some(v));
            assert_eq!(v.size(), dtype_size(v.code()));
        }
        for &e in IndexEncoding::ALL {
            assert_eq!(IndexEncoding::try_from(e.code()), Ok(e));
            assert_eq!(IndexEncoding::from_name(e.name()), Some(e));
        }
        for &o in Opcode::ALL {
            assert_eq!(Opcode::try_from(o.code()), Ok(o));
            assert_eq!(Opcode::from_name(o.name()), Some(o));
        }
        assert_eq!(
            (
                ValueType::I32.code(),
                IndexEncoding::Rice.code(),
                Opcode::Relu.code()
            ),
            (3, 4, 8),
            "the codes of formats/scb.md"
        );
        assert_eq!(
            Opcode::try_from(0),
            Err(UnknownCode {
                kind: "opcode",
                code: 0
            })
        );
        assert_eq!(Opcode::try_from(9).unwrap_err().kind, "opcode");
        assert_eq!(ValueType::try_from(4).unwrap_err().kind, "value type");
        assert_eq!(
            IndexEncoding::try_from(5).unwrap_err().kind,
            "index encoding"
        );
        assert_eq!(ValueType::from_name("int8"), None);
    }
}
