//! A parsed and fully validated `.scb` model borrowing its bytes (which may live in flash).

use crate::bytes::{f32_at, u16_at, u32_at, u8_at};
use crate::crc::crc32;
use crate::error::LoadError;
use crate::format::*;
use crate::weights::Entries;

#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Section {
    pub off: usize,
    pub len: usize,
}

/// A validated model. Construct it with [`Model::parse`]; every accessor then reads fields that were checked.
#[derive(Debug, Clone, Copy)]
pub struct Model<'a> {
    pub(crate) bytes: &'a [u8],
    pub(crate) features: u32,
    pub(crate) arena_size: u32,
    pub(crate) tensors: Section,
    pub(crate) buffers: Section,
    pub(crate) graph: Section,
    pub(crate) data: Section,
    pub(crate) input_buffer: u32,
    pub(crate) output_buffer: u32,
    pub(crate) op_count: u32,
    pub(crate) mean_off: u32,
    pub(crate) std_off: u32,
}

/// A tensor descriptor (weights, biases).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TensorDesc {
    pub dtype: u8,
    pub encoding: u8,
    /// Encoding parameter: the Rice parameter `k` for [`IndexEncoding::Rice`], 0 otherwise.
    pub param: u8,
    pub rank: u8,
    pub dims: [u32; 4],
    /// Stored values (for gap encodings, filler entries included).
    pub nnz: u32,
    pub values_off: u32,
    pub index_off: u32,
    /// Length of the index stream: gap bytes, u16/u32 indices, or bits of a Rice stream.
    pub index_len: u32,
    pub indptr_off: u32,
    pub scales_off: u32,
}

impl TensorDesc {
    /// First dimension (output channels).
    pub fn rows(&self) -> usize {
        self.dims[0] as usize
    }
    /// Columns: the product of the remaining dimensions (fan-in), 1 for a rank-1 tensor; for an int8 tensor
    /// of rank 4 (a convolution weight in channel-quad order) the input channels count rounded up to a
    /// multiple of 4.
    pub fn cols(&self) -> usize {
        let d = |i: usize| self.dims[i] as usize;
        if self.quad_order() {
            return d(1).div_ceil(4) * 4 * d(2) * d(3);
        }
        self.dims[1..self.rank as usize]
            .iter()
            .map(|&d| d as usize)
            .product()
    }
    /// Whether the columns are in channel-quad order: column `((ci / 4) · K² + ky · K + kx) · 4 + ci % 4`
    /// (int8 tensors of rank 4, formats/scb.md §5).
    pub fn quad_order(&self) -> bool {
        self.dtype == dtype::I8 && self.rank == 4
    }
    pub fn numel(&self) -> usize {
        self.rows() * self.cols()
    }
}

/// An activation buffer: a region of the arena.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BufferDesc {
    pub offset: u32,
    pub dtype: u8,
    pub rank: u8,
    pub dims: [u32; 3],
    /// Quantisation scale of an int8 buffer (real value = scale × q); 0 for f32 buffers.
    pub scale: f32,
}

impl BufferDesc {
    pub fn numel(&self) -> usize {
        self.dims[..self.rank as usize]
            .iter()
            .map(|&d| d as usize)
            .product()
    }
    pub fn bytes(&self) -> usize {
        self.numel() * dtype_size(self.dtype)
    }
    /// (C, H, W) of a rank-3 buffer.
    pub fn chw(&self) -> (usize, usize, usize) {
        (
            self.dims[0] as usize,
            self.dims[1] as usize,
            self.dims[2] as usize,
        )
    }
}

/// One op of the graph.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OpDesc {
    pub opcode: Opcode,
    pub flags: u8,
    pub in0: u32,
    pub in1: u32,
    pub out: u32,
    pub weight: u32,
    pub bias: u32,
    /// Int8 requantisation parameters in the data section, or `NONE`.
    pub params: u32,
    /// Loop order of a CONV ([`schedule`]).
    pub schedule: u8,
    pub kernel: u8,
    pub stride: u8,
    /// Convolution padding, or the channels added before the input for SUBSAMPLE_PAD.
    pub pad: u16,
}

impl OpDesc {
    pub fn relu(&self) -> bool {
        self.flags & FLAG_RELU != 0
    }
    /// A CONV that adds its second input buffer before the ReLU.
    pub fn residual(&self) -> bool {
        self.flags & FLAG_RESIDUAL != 0
    }
    /// Whether the op reads a second input buffer.
    pub fn uses_in1(&self) -> bool {
        self.opcode == Opcode::Add || (self.opcode == Opcode::Conv && self.residual())
    }
}

fn sec_name_ok(kind: u32) -> bool {
    matches!(
        kind,
        section::TENSORS | section::BUFFERS | section::GRAPH | section::DATA
    )
}

impl<'a> Model<'a> {
    /// Parses and validates a whole model: header, sections and their CRCs, every tensor (shapes, index ranges,
    /// row pointers), every buffer (arena bounds), every op (operand shapes and types) and the arena plan (no op
    /// overwrites a buffer that is still to be read). Never panics.
    pub fn parse(bytes: &'a [u8]) -> Result<Model<'a>, LoadError> {
        let len = bytes.len();
        if len < HEADER_SIZE {
            return Err(LoadError::Truncated {
                needed: HEADER_SIZE as u32,
                got: len as u32,
            });
        }
        if bytes[..8] != MAGIC {
            return Err(LoadError::BadMagic);
        }
        let major = u16_at(bytes, 8);
        let minor = u16_at(bytes, 10);
        if major != VERSION_MAJOR {
            return Err(LoadError::UnsupportedVersion { major, minor });
        }
        let header_size = u32_at(bytes, 12);
        if header_size as usize != HEADER_SIZE {
            return Err(LoadError::BadHeaderSize(header_size));
        }
        let file_size = u32_at(bytes, 16);
        if (file_size as usize) > len {
            return Err(LoadError::Truncated {
                needed: file_size,
                got: len.min(u32::MAX as usize) as u32,
            });
        }
        if file_size as usize != len {
            return Err(LoadError::FileSizeMismatch {
                header: file_size,
                actual: len.min(u32::MAX as usize) as u32,
            });
        }
        let stored = u32_at(bytes, HEADER_CRC_AT);
        let computed = crc32(&bytes[..HEADER_CRC_AT]);
        if stored != computed {
            return Err(LoadError::HeaderCrc { stored, computed });
        }
        let features = u32_at(bytes, 20);
        if features & !feature::KNOWN != 0 {
            return Err(LoadError::UnknownFeature(features & !feature::KNOWN));
        }
        if let Some(k) = bytes[68..HEADER_CRC_AT].iter().position(|&b| b != 0) {
            return Err(LoadError::ReservedNotZero {
                offset: 68 + k as u32,
            });
        }
        let section_count = u32_at(bytes, 24) as usize;
        let table = u32_at(bytes, 28) as usize;
        let table_end = section_count
            .checked_mul(SECTION_ENTRY_SIZE)
            .and_then(|n| n.checked_add(table))
            .ok_or(LoadError::SectionTableOutOfBounds)?;
        if table < HEADER_SIZE || !table.is_multiple_of(4) || table_end > len {
            return Err(LoadError::SectionTableOutOfBounds);
        }
        let mut found: [Option<Section>; 4] = [None; 4];
        for i in 0..section_count {
            let e = table + i * SECTION_ENTRY_SIZE;
            let kind = u32_at(bytes, e);
            let off = u32_at(bytes, e + 4) as usize;
            let slen = u32_at(bytes, e + 8) as usize;
            let crc = u32_at(bytes, e + 12);
            if kind & section::OPTIONAL_BIT == 0 && !sec_name_ok(kind) {
                return Err(LoadError::UnknownSection { kind });
            }
            let end = off
                .checked_add(slen)
                .ok_or(LoadError::SectionOutOfBounds { kind })?;
            if off < table_end || end > len {
                return Err(LoadError::SectionOutOfBounds { kind });
            }
            if !off.is_multiple_of(ALIGN) {
                return Err(LoadError::SectionMisaligned { kind });
            }
            for j in 0..i {
                let f = table + j * SECTION_ENTRY_SIZE;
                let o2 = u32_at(bytes, f + 4) as usize;
                let e2 = o2 + u32_at(bytes, f + 8) as usize;
                if off < e2 && o2 < end {
                    return Err(LoadError::SectionOverlap { kind });
                }
            }
            let computed = crc32(&bytes[off..end]);
            if computed != crc {
                return Err(LoadError::SectionCrc {
                    kind,
                    stored: crc,
                    computed,
                });
            }
            if kind & section::OPTIONAL_BIT != 0 {
                continue;
            }
            let slot = &mut found[(kind - 1) as usize];
            if slot.is_some() {
                return Err(LoadError::DuplicateSection { kind });
            }
            *slot = Some(Section { off, len: slen });
        }
        let get = |kind: u32| found[(kind - 1) as usize].ok_or(LoadError::MissingSection { kind });
        let tensors = get(section::TENSORS)?;
        let buffers = get(section::BUFFERS)?;
        let graph = get(section::GRAPH)?;
        let data = get(section::DATA)?;
        if tensors.len % TENSOR_SIZE != 0 {
            return Err(LoadError::SectionLength {
                kind: section::TENSORS,
            });
        }
        if buffers.len % BUFFER_SIZE != 0 || buffers.len == 0 {
            return Err(LoadError::SectionLength {
                kind: section::BUFFERS,
            });
        }
        if graph.len < GRAPH_HEADER_SIZE {
            return Err(LoadError::SectionLength {
                kind: section::GRAPH,
            });
        }
        let g = graph.off;
        let op_count = u32_at(bytes, g + 8);
        if (graph.len - GRAPH_HEADER_SIZE) / OP_SIZE != op_count as usize
            || !(graph.len - GRAPH_HEADER_SIZE).is_multiple_of(OP_SIZE)
            || op_count == 0
        {
            return Err(LoadError::SectionLength {
                kind: section::GRAPH,
            });
        }
        for off in [g + 12, g + 24, g + 28] {
            if u32_at(bytes, off) != 0 {
                return Err(LoadError::ReservedNotZero { offset: off as u32 });
            }
        }
        let model = Model {
            bytes,
            features,
            arena_size: u32_at(bytes, 64),
            tensors,
            buffers,
            graph,
            data,
            input_buffer: u32_at(bytes, g),
            output_buffer: u32_at(bytes, g + 4),
            op_count,
            mean_off: u32_at(bytes, g + 16),
            std_off: u32_at(bytes, g + 20),
        };
        for t in 0..model.tensor_count() {
            model.check_tensor(t as u32)?;
        }
        for b in 0..model.buffer_count() {
            model.check_buffer(b as u32)?;
        }
        model.check_graph()?;
        Ok(model)
    }

    /// Activation memory the caller must provide to [`Model::run`], in bytes (a 4-byte-aligned slice; pass 3 more
    /// bytes if the slice may be misaligned).
    pub fn arena_size(&self) -> usize {
        self.arena_size as usize
    }
    /// The 32-byte model hash (sha256 of the IR's canonical bytes) shared by every export of the same model.
    pub fn model_hash(&self) -> [u8; 32] {
        let mut h = [0u8; 32];
        h.copy_from_slice(&self.bytes[32..64]);
        h
    }
    pub fn features(&self) -> u32 {
        self.features
    }
    /// True for a quantised model: int8 activations and weights.
    pub fn is_int8(&self) -> bool {
        self.features & feature::INT8 != 0
    }
    pub fn tensor_count(&self) -> usize {
        self.tensors.len / TENSOR_SIZE
    }
    pub fn buffer_count(&self) -> usize {
        self.buffers.len / BUFFER_SIZE
    }
    pub fn op_count(&self) -> usize {
        self.op_count as usize
    }
    pub fn input(&self) -> BufferDesc {
        self.buffer(self.input_buffer)
    }
    pub fn output(&self) -> BufferDesc {
        self.buffer(self.output_buffer)
    }
    /// Number of input values per sample.
    pub fn input_len(&self) -> usize {
        self.input().numel()
    }
    /// Number of output values (logits).
    pub fn output_len(&self) -> usize {
        self.output().numel()
    }
    /// The data section's bytes.
    pub(crate) fn data(&self) -> &'a [u8] {
        &self.bytes[self.data.off..self.data.off + self.data.len]
    }

    /// Descriptor of tensor `i` (`i < tensor_count()`).
    pub fn tensor(&self, i: u32) -> TensorDesc {
        let o = self.tensors.off + i as usize * TENSOR_SIZE;
        let b = self.bytes;
        TensorDesc {
            dtype: u8_at(b, o),
            encoding: u8_at(b, o + 1),
            param: u8_at(b, o + 3),
            rank: u8_at(b, o + 2),
            dims: [
                u32_at(b, o + 4),
                u32_at(b, o + 8),
                u32_at(b, o + 12),
                u32_at(b, o + 16),
            ],
            nnz: u32_at(b, o + 20),
            values_off: u32_at(b, o + 24),
            index_off: u32_at(b, o + 28),
            index_len: u32_at(b, o + 32),
            indptr_off: u32_at(b, o + 36),
            scales_off: u32_at(b, o + 40),
        }
    }

    /// Record of buffer `i` (`i < buffer_count()`).
    pub fn buffer(&self, i: u32) -> BufferDesc {
        let o = self.buffers.off + i as usize * BUFFER_SIZE;
        let b = self.bytes;
        BufferDesc {
            offset: u32_at(b, o),
            dtype: u8_at(b, o + 4),
            rank: u8_at(b, o + 5),
            dims: [u32_at(b, o + 8), u32_at(b, o + 12), u32_at(b, o + 16)],
            scale: f32_at(b, o + 20),
        }
    }

    /// Record of op `i` (`i < op_count()`; [`Model::parse`] checked every opcode).
    pub fn op(&self, i: u32) -> OpDesc {
        self.op_record(i)
            .expect("Model::parse rejects unknown opcodes")
    }

    /// Record of op `i`, `UnknownOpcode` when its opcode byte is none of [`Opcode`].
    fn op_record(&self, i: u32) -> Result<OpDesc, LoadError> {
        let o = self.graph.off + GRAPH_HEADER_SIZE + i as usize * OP_SIZE;
        let b = self.bytes;
        let opcode =
            Opcode::try_from(u8_at(b, o)).map_err(|_| LoadError::UnknownOpcode { op: i })?;
        Ok(OpDesc {
            opcode,
            flags: u8_at(b, o + 1),
            in0: u32_at(b, o + 4),
            in1: u32_at(b, o + 8),
            out: u32_at(b, o + 12),
            weight: u32_at(b, o + 16),
            bias: u32_at(b, o + 20),
            params: u32_at(b, o + 24),
            schedule: u8_at(b, o + 2),
            kernel: u8_at(b, o + 28),
            stride: u8_at(b, o + 29),
            pad: u16_at(b, o + 30),
        })
    }

    /// Per-channel input normalisation `(mean, std)` when the model applies it.
    pub fn normalization(&self) -> Option<(&'a [u8], &'a [u8])> {
        if self.features & feature::NORMALIZE == 0 {
            return None;
        }
        let c = self.input().dims[0] as usize * 4;
        let d = self.data();
        let m = self.mean_off as usize;
        let s = self.std_off as usize;
        Some((&d[m..m + c], &d[s..s + c]))
    }

    /// The entries of tensor `i` in row-major order.
    pub fn entries(&self, i: u32) -> Entries<'a> {
        Entries::new(self.data(), &self.tensor(i))
    }

    /// Bytes of the data section a tensor's arrays take (values, indices, row pointers, scales, unpadded).
    pub fn tensor_bytes(&self, i: u32) -> usize {
        let t = self.tensor(i);
        let mut n = t.nnz as usize * dtype_size(t.dtype);
        n += IndexEncoding::try_from(t.encoding).map_or(0, |e| e.index_bytes(t.index_len as usize));
        if t.indptr_off != NONE {
            n += 4 * (t.rows() + 1);
        }
        if t.scales_off != NONE {
            n += 4 * t.rows();
        }
        n
    }

    /// Whether `bytes` bytes at `off` lie in the data section, `off` a multiple of `align`.
    fn range_ok(&self, off: u32, bytes: usize, align: usize) -> bool {
        off != NONE
            && (off as usize).is_multiple_of(align)
            && (off as usize)
                .checked_add(bytes)
                .is_some_and(|e| e <= self.data.len)
    }

    fn check_tensor(&self, i: u32) -> Result<(), LoadError> {
        let t = self.tensor(i);
        let o = self.tensors.off + i as usize * TENSOR_SIZE;
        if u32_at(self.bytes, o + 44) != 0 {
            return Err(LoadError::ReservedNotZero { offset: o as u32 });
        }
        let need = |bit: u32| {
            if self.features & bit == 0 {
                Err(LoadError::FeatureNotDeclared(bit))
            } else {
                Ok(())
            }
        };
        let vt = ValueType::try_from(t.dtype).map_err(|_| LoadError::BadDtype { tensor: i })?;
        match vt {
            ValueType::F32 => {}
            ValueType::F16 => need(feature::F16)?,
            ValueType::I8 | ValueType::I32 => need(feature::INT8)?,
        }
        let enc = IndexEncoding::try_from(t.encoding)
            .map_err(|_| LoadError::BadEncoding { tensor: i })?;
        if enc != IndexEncoding::Dense {
            need(enc.feature())?;
        }
        if t.param > enc.max_param() {
            return Err(LoadError::BadEncodingParam { tensor: i });
        }
        let rank = t.rank as usize;
        if !(1..=4).contains(&rank) {
            return Err(LoadError::BadTensorShape { tensor: i });
        }
        let mut numel: u64 = 1;
        for (k, &d) in t.dims.iter().enumerate() {
            if (k < rank) != (d != 0) {
                return Err(LoadError::BadTensorShape { tensor: i });
            }
            if k < rank {
                numel *= d as u64;
                if numel > (1 << 31) {
                    return Err(LoadError::Overflow);
                }
            }
        }
        if t.quad_order() && t.dims[2] != t.dims[3] {
            return Err(LoadError::BadTensorShape { tensor: i });
        }
        let numel = t.numel();
        let rows = t.rows();
        let dense = enc == IndexEncoding::Dense;
        if !dense && (rank < 2 || vt == ValueType::I32) {
            return Err(LoadError::BadEncoding { tensor: i });
        }
        let bad_data = LoadError::TensorDataOutOfBounds { tensor: i };
        if t.nnz as usize > numel + numel / 255 + rows + 1 {
            return Err(LoadError::NnzMismatch { tensor: i });
        }
        if !self.range_ok(t.values_off, t.nnz as usize * vt.size(), vt.size()) {
            return Err(bad_data);
        }
        if vt == ValueType::I8 {
            if !self.range_ok(t.scales_off, 4 * rows, 4) {
                return Err(bad_data);
            }
            let d = self.data();
            for r in 0..rows {
                let s = f32_at(d, t.scales_off as usize + 4 * r);
                if !(s.is_finite() && s > 0.0) {
                    return Err(LoadError::BadScale { tensor: i });
                }
            }
        } else if t.scales_off != NONE {
            return Err(LoadError::BadScale { tensor: i });
        }
        if dense {
            if t.nnz as usize != numel {
                return Err(LoadError::NnzMismatch { tensor: i });
            }
            if t.index_off != NONE || t.index_len != 0 || t.indptr_off != NONE {
                return Err(LoadError::BadEncoding { tensor: i });
            }
            return Ok(());
        }
        self.check_index(i, &t, enc)?;
        if t.quad_order() {
            let (ci, k) = (t.dims[1] as usize, t.dims[2] as usize);
            if self
                .entries(i)
                .any(|e| crate::conv::natural_column(e.col, ci, k).is_none())
            {
                return Err(LoadError::IndexOutOfRange { tensor: i });
            }
        }
        Ok(())
    }

    /// The index stream and row pointers of a sparse tensor (its values and scales already checked).
    fn check_index(&self, i: u32, t: &TensorDesc, enc: IndexEncoding) -> Result<(), LoadError> {
        let rows = t.rows();
        let bad_data = LoadError::TensorDataOutOfBounds { tensor: i };
        let code_bytes = enc.index_bytes(t.index_len as usize);
        if !self.range_ok(t.index_off, code_bytes, enc.index_align()) {
            return Err(bad_data);
        }
        let d = self.data();
        let cols = t.cols();
        if enc == IndexEncoding::Rice {
            if t.indptr_off != NONE {
                return Err(LoadError::BadEncoding { tensor: i });
            }
            return crate::rice::check(d, t, i);
        }
        if !self.range_ok(t.indptr_off, 4 * (rows + 1), 4) {
            return Err(bad_data);
        }
        if t.index_len != t.nnz {
            return Err(LoadError::NnzMismatch { tensor: i });
        }
        let ip = |r: usize| u32_at(d, t.indptr_off as usize + 4 * r) as usize;
        if ip(0) != 0 {
            return Err(LoadError::NonMonotoneIndptr { tensor: i });
        }
        for r in 0..rows {
            if ip(r + 1) < ip(r) {
                return Err(LoadError::NonMonotoneIndptr { tensor: i });
            }
        }
        if ip(rows) != t.nnz as usize {
            return Err(LoadError::NnzMismatch { tensor: i });
        }
        for r in 0..rows {
            let (a, b) = (ip(r), ip(r + 1));
            let mut next = 0usize;
            for k in a..b {
                let col = match enc {
                    IndexEncoding::CsrGap8 => next + u8_at(d, t.index_off as usize + k) as usize,
                    IndexEncoding::CsrIdx16 => u16_at(d, t.index_off as usize + 2 * k) as usize,
                    _ => u32_at(d, t.index_off as usize + 4 * k) as usize,
                };
                if col >= cols || col < next {
                    return Err(LoadError::IndexOutOfRange { tensor: i });
                }
                next = col + 1;
            }
        }
        Ok(())
    }

    fn check_buffer(&self, i: u32) -> Result<(), LoadError> {
        let b = self.buffer(i);
        let o = self.buffers.off + i as usize * BUFFER_SIZE;
        if u16_at(self.bytes, o + 6) != 0 {
            return Err(LoadError::ReservedNotZero {
                offset: o as u32 + 6,
            });
        }
        let bad = LoadError::BadBuffer { buffer: i };
        let want = if self.is_int8() {
            dtype::I8
        } else {
            dtype::F32
        };
        if b.dtype != want || !(1..=3).contains(&b.rank) {
            return Err(bad);
        }
        let mut n: u64 = 1;
        for (k, &d) in b.dims.iter().enumerate() {
            if (k < b.rank as usize) != (d != 0) {
                return Err(bad);
            }
            if d != 0 {
                n *= d as u64;
                if n > (1 << 28) {
                    return Err(bad);
                }
            }
        }
        if self.is_int8() {
            if !(b.scale.is_finite() && b.scale > 0.0) {
                return Err(bad);
            }
        } else if b.scale.to_bits() != 0 {
            return Err(bad);
        }
        let end = b.offset as u64 + b.bytes() as u64;
        if !(b.offset as usize).is_multiple_of(ALIGN) || end > self.arena_size as u64 {
            return Err(LoadError::ArenaTooSmall { buffer: i });
        }
        Ok(())
    }

    /// Bytes an op writes beyond its output buffer (the scratch of a convolution, formats/scb.md §7), after
    /// the output rounded up to [`ALIGN`].
    pub fn scratch_bytes(&self, op: &OpDesc) -> usize {
        if op.opcode == Opcode::Conv {
            self.conv_geom(op).scratch(self.is_int8()).total
        } else {
            0
        }
    }

    /// The geometry of a CONV op (its buffers' shapes and parameters).
    pub fn conv_geom(&self, op: &OpDesc) -> crate::conv::ConvGeom {
        let (c, h, w) = self.buffer(op.in0).chw();
        let (co, oh, ow) = self.buffer(op.out).chw();
        crate::conv::ConvGeom {
            c,
            h,
            w,
            co,
            oh,
            ow,
            k: op.kernel as usize,
            s: op.stride as usize,
            p: op.pad as usize,
        }
    }

    /// The arena range `[start, end)` an op writes: its output buffer, then its scratch.
    pub fn write_region(&self, op: &OpDesc) -> (usize, usize) {
        let b = self.buffer(op.out);
        let s = self.scratch_bytes(op);
        let end = if s == 0 {
            b.offset as usize + b.bytes()
        } else {
            b.offset as usize + align_up(b.bytes()) + s
        };
        (b.offset as usize, end)
    }

    fn check_graph(&self) -> Result<(), LoadError> {
        let nb = self.buffer_count() as u32;
        let nt = self.tensor_count() as u32;
        if self.input_buffer >= nb
            || self.output_buffer >= nb
            || self.input_buffer == self.output_buffer
        {
            return Err(LoadError::BadDataflow { op: 0 });
        }
        if self.features & feature::NORMALIZE != 0 {
            let inp = self.input();
            let c = inp.dims[0] as usize;
            if inp.rank != 3
                || !self.range_ok(self.mean_off, 4 * c, 4)
                || !self.range_ok(self.std_off, 4 * c, 4)
            {
                return Err(LoadError::BadNormalization);
            }
            for k in 0..c {
                let m = f32_at(self.data(), self.mean_off as usize + 4 * k);
                let s = f32_at(self.data(), self.std_off as usize + 4 * k);
                if !(m.is_finite() && s.is_finite() && s > 0.0) {
                    return Err(LoadError::BadNormalization);
                }
            }
        } else if self.mean_off != NONE || self.std_off != NONE {
            return Err(LoadError::BadNormalization);
        }
        let int8 = self.is_int8();
        for i in 0..self.op_count {
            let op = self.op_record(i)?;
            let o = self.graph.off + GRAPH_HEADER_SIZE + i as usize * OP_SIZE;
            if u8_at(self.bytes, o + 3) != 0 {
                return Err(LoadError::ReservedNotZero {
                    offset: o as u32 + 3,
                });
            }
            self.check_op(i, &op, nb, nt, int8)?;
            self.check_params(i, &op, int8)?;
            let (_, end) = self.write_region(&op);
            if end > self.arena_size as usize {
                return Err(LoadError::ArenaTooSmall { buffer: op.out });
            }
        }
        self.check_dataflow()
    }

    fn check_op(&self, i: u32, op: &OpDesc, nb: u32, nt: u32, int8: bool) -> Result<(), LoadError> {
        let bad_ref = LoadError::BadReference { op: i };
        let bad_shape = LoadError::BadShape { op: i };
        let bad_params = LoadError::BadParams { op: i };
        let uses_in1 = op.uses_in1();
        let uses_w = op.opcode.has_weight();
        if op.in0 >= nb
            || op.out >= nb
            || (uses_in1 && op.in1 >= nb)
            || (!uses_in1 && op.in1 != NONE)
        {
            return Err(bad_ref);
        }
        if uses_w {
            if op.weight >= nt || (op.bias != NONE && op.bias >= nt) {
                return Err(bad_ref);
            }
        } else if op.weight != NONE || op.bias != NONE {
            return Err(bad_ref);
        }
        if op.flags & !(FLAG_RELU | FLAG_RESIDUAL) != 0
            || (op.relu() && !matches!(op.opcode, Opcode::Conv | Opcode::Gemm | Opcode::Add))
            || (op.residual() && op.opcode != Opcode::Conv)
            || (op.schedule != 0 && op.opcode != Opcode::Conv)
            || op.schedule > schedule::TILES_OUTER
        {
            return Err(bad_params);
        }
        let x = self.buffer(op.in0);
        let y = self.buffer(op.out);
        let rank3 = |b: &BufferDesc| {
            if b.rank == 3 {
                Ok(b.chw())
            } else {
                Err(bad_shape)
            }
        };
        let no_params = op.kernel == 0 && op.stride == 0 && op.pad == 0;
        let scale_kept = matches!(
            op.opcode,
            Opcode::MaxPool | Opcode::SubsamplePad | Opcode::Relu
        );
        if int8 && scale_kept && x.scale.to_bits() != y.scale.to_bits() {
            return Err(LoadError::TypeMismatch { op: i });
        }
        match op.opcode {
            Opcode::Conv | Opcode::Gemm => {
                let w = self.tensor(op.weight);
                let (wt_ok, bias_t) = if int8 {
                    (w.dtype == dtype::I8, dtype::I32)
                } else {
                    (w.dtype == dtype::F32 || w.dtype == dtype::F16, dtype::F32)
                };
                if !wt_ok {
                    return Err(LoadError::TypeMismatch { op: i });
                }
                if op.bias != NONE {
                    let b = self.tensor(op.bias);
                    if b.dtype != bias_t || b.encoding != encoding::DENSE {
                        return Err(LoadError::TypeMismatch { op: i });
                    }
                    if b.rank != 1 || b.dims[0] != w.dims[0] {
                        return Err(bad_shape);
                    }
                }
                if op.opcode == Opcode::Conv {
                    let (c, h, wd) = rank3(&x)?;
                    let (k, s, p) = (op.kernel as usize, op.stride as usize, op.pad as usize);
                    if k == 0 || s == 0 || p >= k {
                        return Err(bad_params);
                    }
                    if w.rank != 4
                        || w.dims[1] as usize != c
                        || w.dims[2] as usize != k
                        || w.dims[3] as usize != k
                    {
                        return Err(bad_shape);
                    }
                    if h + 2 * p < k || wd + 2 * p < k {
                        return Err(bad_shape);
                    }
                    let (oh, ow) = ((h + 2 * p - k) / s + 1, (wd + 2 * p - k) / s + 1);
                    if rank3(&y)? != (w.dims[0] as usize, oh, ow) {
                        return Err(bad_shape);
                    }
                    if op.residual() {
                        let z = self.buffer(op.in1);
                        if z.rank != y.rank || z.dims != y.dims {
                            return Err(bad_shape);
                        }
                    }
                } else {
                    if !no_params {
                        return Err(bad_params);
                    }
                    if w.rank != 2 || w.cols() != x.numel() || y.rank != 1 || y.dims[0] != w.dims[0]
                    {
                        return Err(bad_shape);
                    }
                }
            }
            Opcode::MaxPool | Opcode::AvgPool => {
                let (c, h, wd) = rank3(&x)?;
                let (k, s) = (op.kernel as usize, op.stride as usize);
                if k == 0 || s == 0 || op.pad != 0 {
                    return Err(bad_params);
                }
                if h < k || wd < k || rank3(&y)? != (c, (h - k) / s + 1, (wd - k) / s + 1) {
                    return Err(bad_shape);
                }
            }
            Opcode::GlobalAvgPool => {
                let (c, _, _) = rank3(&x)?;
                if !no_params {
                    return Err(bad_params);
                }
                if y.dims[0] as usize != c || y.numel() != c {
                    return Err(bad_shape);
                }
            }
            Opcode::Add => {
                if !no_params {
                    return Err(bad_params);
                }
                let z = self.buffer(op.in1);
                if x.rank != y.rank || x.dims != y.dims || z.rank != y.rank || z.dims != y.dims {
                    return Err(bad_shape);
                }
            }
            Opcode::SubsamplePad => {
                let (c, h, wd) = rank3(&x)?;
                let s = op.stride as usize;
                if s == 0 || op.kernel != 0 {
                    return Err(bad_params);
                }
                let (oc, oh, ow) = rank3(&y)?;
                if oc < c + op.pad as usize || oh != h.div_ceil(s) || ow != wd.div_ceil(s) {
                    return Err(bad_shape);
                }
            }
            _ => {
                if !no_params {
                    return Err(bad_params);
                }
                if x.rank != y.rank || x.dims != y.dims {
                    return Err(bad_shape);
                }
            }
        }
        Ok(())
    }

    /// The int8 requantisation parameters of an op: present exactly when the graph is int8 and the op has
    /// some, inside the data section, 4-byte aligned, multipliers and shifts in range (formats/scb.md §8).
    fn check_params(&self, i: u32, op: &OpDesc, int8: bool) -> Result<(), LoadError> {
        let bad = LoadError::BadParams { op: i };
        let rows = if matches!(op.opcode, Opcode::Conv | Opcode::Gemm) {
            self.tensor(op.weight).rows()
        } else {
            0
        };
        let n = params_bytes(op.opcode, rows, op.residual());
        if !int8 || n == 0 {
            return if op.params == NONE { Ok(()) } else { Err(bad) };
        }
        if !self.range_ok(op.params, n, 4) {
            return Err(bad);
        }
        let d = &self.data()[op.params as usize..op.params as usize + n];
        let word = |k: usize| u32_at(d, 4 * k);
        let mult_ok = |k: usize| (word(k) as i32) >= 0 && word(k + 1) <= crate::quant::MAX_SHIFT;
        let add_ok = |k: usize| {
            let m = crate::quant::MAX_ADD_MULTIPLIER as u32;
            word(k) <= m && word(k + 1) <= m && word(k + 2) <= crate::quant::MAX_ADD_SHIFT
        };
        let ok = match op.opcode {
            Opcode::Conv | Opcode::Gemm => {
                (0..rows).all(|r| mult_ok(2 * r)) && (!op.residual() || add_ok(2 * rows))
            }
            Opcode::Add => add_ok(0),
            _ => mult_ok(0),
        };
        if ok {
            Ok(())
        } else {
            Err(bad)
        }
    }

    fn producer(&self, b: u32) -> Option<u32> {
        (0..self.op_count).find(|&j| self.op(j).out == b)
    }

    fn last_use(&self, b: u32) -> Option<u32> {
        if b == self.output_buffer {
            return Some(u32::MAX);
        }
        (0..self.op_count).rev().find(|&j| {
            let op = self.op(j);
            op.in0 == b || (op.in1 != NONE && op.in1 == b)
        })
    }

    fn check_dataflow(&self) -> Result<(), LoadError> {
        for i in 0..self.op_count {
            let op = self.op(i);
            let bad = LoadError::BadDataflow { op: i };
            if op.out == self.input_buffer || (0..i).any(|j| self.op(j).out == op.out) {
                return Err(bad);
            }
            for b in [op.in0, op.in1] {
                if b != NONE && b != self.input_buffer && !(0..i).any(|j| self.op(j).out == b) {
                    return Err(bad);
                }
            }
        }
        if self.producer(self.output_buffer).is_none() {
            return Err(LoadError::BadDataflow {
                op: self.op_count - 1,
            });
        }
        for i in 0..self.op_count {
            let op = self.op(i);
            let (ws, we) = self.write_region(&op);
            for b in 0..self.buffer_count() as u32 {
                if b == op.out {
                    continue;
                }
                let born = if b == self.input_buffer {
                    Some(0)
                } else {
                    self.producer(b).map(|p| p + 1)
                };
                let (Some(born), Some(last)) = (born, self.last_use(b)) else {
                    continue;
                };
                if born <= i && i <= last {
                    let buf = self.buffer(b);
                    let (bs, be) = (buf.offset as usize, buf.offset as usize + buf.bytes());
                    if ws < be && bs < we {
                        return Err(LoadError::ArenaOverlap { op: i });
                    }
                }
            }
        }
        Ok(())
    }
}
