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
/// their element size instead ([`dtype_size`], [`index_align`]).
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

/// Element types of tensors and buffers.
pub mod dtype {
    pub const F32: u8 = 0;
    pub const F16: u8 = 1;
    pub const I8: u8 = 2;
    pub const I32: u8 = 3;
}

/// Storage encodings of tensors.
pub mod encoding {
    pub const DENSE: u8 = 0;
    pub const CSR_GAP8: u8 = 1;
    pub const CSR_IDX16: u8 = 2;
    pub const CSR_IDX32: u8 = 3;
    pub const RICE: u8 = 4;
    /// Largest Rice parameter `k` of a [`RICE`] tensor.
    pub const RICE_MAX_PARAM: u8 = 7;
}

/// Op codes of the graph section.
pub mod opcode {
    pub const CONV: u8 = 1;
    pub const GEMM: u8 = 2;
    pub const MAX_POOL: u8 = 3;
    pub const AVG_POOL: u8 = 4;
    pub const GLOBAL_AVG_POOL: u8 = 5;
    pub const ADD: u8 = 6;
    pub const SUBSAMPLE_PAD: u8 = 7;
    pub const RELU: u8 = 8;
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
pub const fn params_bytes(opcode: u8, rows: usize, residual: bool) -> usize {
    match opcode {
        opcode::CONV | opcode::GEMM => 8 * rows + if residual { 12 } else { 0 },
        opcode::ADD => 12,
        opcode::AVG_POOL | opcode::GLOBAL_AVG_POOL => 8,
        _ => 0,
    }
}

/// Size in bytes of one element of `dtype`, 0 for an unknown type.
pub const fn dtype_size(dtype: u8) -> usize {
    match dtype {
        dtype::F32 | dtype::I32 => 4,
        dtype::F16 => 2,
        dtype::I8 => 1,
        _ => 0,
    }
}

/// Alignment of the index stream of a tensor in `encoding` in the data section: the size of one index
/// element (1 for gap bytes and Rice bit streams, 2 and 4 for u16 and u32 indices). Values are aligned to
/// [`dtype_size`]; row pointers, scales and the normalisation arrays to 4.
pub const fn index_align(encoding: u8) -> usize {
    match encoding {
        encoding::CSR_IDX16 => 2,
        encoding::CSR_IDX32 => 4,
        _ => 1,
    }
}

/// Bytes of the index stream of a tensor in `encoding` holding `index_len` codes (bits for [`encoding::RICE`]).
pub const fn index_bytes(encoding: u8, index_len: usize) -> usize {
    match encoding {
        encoding::CSR_GAP8 => index_len,
        encoding::CSR_IDX16 => 2 * index_len,
        encoding::CSR_IDX32 => 4 * index_len,
        encoding::RICE => index_len.div_ceil(8),
        _ => 0,
    }
}

/// `n` rounded up to a multiple of [`ALIGN`].
pub const fn align_up(n: usize) -> usize {
    n.div_ceil(ALIGN) * ALIGN
}
