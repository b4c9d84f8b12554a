//! The `.scb` writer: weight encodings, the arena planner and the section layout of `formats/scb.md`, plus
//! the lowering of an IR graph into them ([`emit_scb`]). The writer never optimises: it stores what the IR
//! says, choosing only the smallest allowed index encoding for each sparse tensor.

use sculpt_runtime::conv::ConvGeom;
use sculpt_runtime::crc::crc32;
use sculpt_runtime::format::{
    align_up, feature, section, ALIGN, BUFFER_SIZE, FLAG_RESIDUAL, GRAPH_HEADER_SIZE,
    HEADER_CRC_AT, HEADER_SIZE, MAGIC, NONE, OP_SIZE, SECTION_ENTRY_SIZE, TENSOR_SIZE,
    VERSION_MAJOR, VERSION_MINOR,
};
pub use sculpt_runtime::format::{IndexEncoding, Opcode, ValueType};

use super::rice;
use crate::error::{Error, Result};

/// A weight matrix in CSR form (rows = output channels, columns = fan-in), values already converted to the
/// stored type: `values` holds `indices.len()` elements of `elem` bytes each, little-endian.
#[derive(Debug, Clone, PartialEq)]
pub struct CsrBytes {
    pub rows: usize,
    pub cols: usize,
    pub indptr: Vec<usize>,
    pub indices: Vec<usize>,
    pub values: Vec<u8>,
    pub elem: usize,
}

/// The arrays of one encoded tensor.
#[derive(Debug, Clone, PartialEq)]
pub struct Encoded {
    pub encoding: IndexEncoding,
    /// Encoding parameter (the Rice parameter `k`; 0 for other encodings).
    pub param: u8,
    pub nnz: usize,
    pub values: Vec<u8>,
    pub index: Vec<u8>,
    /// Length of the index stream in its units: gap bytes, u16/u32 indices, or bits of a Rice stream.
    pub index_len: usize,
    pub indptr: Option<Vec<u32>>,
}

impl Encoded {
    /// Payload bytes (values, index stream, row pointers), without alignment padding.
    pub fn bytes(&self) -> usize {
        self.values.len() + self.index.len() + self.indptr.as_ref().map_or(0, |p| 4 * p.len())
    }
}

impl CsrBytes {
    /// Converts a dense row-major matrix, keeping entries whose value bytes are not all zero.
    pub fn from_dense(rows: usize, cols: usize, values: &[u8], elem: usize) -> Self {
        assert_eq!(values.len(), rows * cols * elem, "dense matrix size");
        let mut csr = CsrBytes {
            rows,
            cols,
            indptr: vec![0],
            indices: Vec::new(),
            values: Vec::new(),
            elem,
        };
        for r in 0..rows {
            for c in 0..cols {
                let v = &values[(r * cols + c) * elem..(r * cols + c + 1) * elem];
                if v.iter().any(|&b| b != 0) {
                    csr.indices.push(c);
                    csr.values.extend_from_slice(v);
                }
            }
            csr.indptr.push(csr.indices.len());
        }
        csr
    }

    fn nnz(&self) -> usize {
        self.indices.len()
    }

    /// Dense encoding of the same matrix.
    pub fn dense(&self) -> Encoded {
        let mut values = vec![0u8; self.rows * self.cols * self.elem];
        for r in 0..self.rows {
            for k in self.indptr[r]..self.indptr[r + 1] {
                let at = (r * self.cols + self.indices[k]) * self.elem;
                values[at..at + self.elem]
                    .copy_from_slice(&self.values[k * self.elem..(k + 1) * self.elem]);
            }
        }
        Encoded {
            encoding: IndexEncoding::Dense,
            param: 0,
            nnz: self.rows * self.cols,
            values,
            index: Vec::new(),
            index_len: 0,
            indptr: None,
        }
    }

    /// The matrix in `enc`, or `None` when `enc` cannot hold it (u16 indices with more than 65536 columns).
    pub fn encode(&self, enc: IndexEncoding) -> Option<Encoded> {
        let e = self.elem;
        let zero = vec![0u8; e];
        let mut values = Vec::with_capacity(self.values.len());
        let mut index = Vec::new();
        let mut indptr = vec![0u32];
        let index_len;
        match enc {
            IndexEncoding::Dense => return Some(self.dense()),
            IndexEncoding::CsrGap8 => {
                for r in 0..self.rows {
                    let mut next = 0;
                    for k in self.indptr[r]..self.indptr[r + 1] {
                        let col = self.indices[k];
                        while col - next > 255 {
                            index.push(255u8);
                            values.extend_from_slice(&zero);
                            next += 256;
                        }
                        index.push((col - next) as u8);
                        values.extend_from_slice(&self.values[k * e..(k + 1) * e]);
                        next = col + 1;
                    }
                    indptr.push(index.len() as u32);
                }
                index_len = index.len();
            }
            IndexEncoding::CsrIdx16 | IndexEncoding::CsrIdx32 => {
                if enc == IndexEncoding::CsrIdx16 && self.cols > 65536 {
                    return None;
                }
                for (k, &c) in self.indices.iter().enumerate() {
                    if enc == IndexEncoding::CsrIdx16 {
                        index.extend_from_slice(&(c as u16).to_le_bytes());
                    } else {
                        index.extend_from_slice(&(c as u32).to_le_bytes());
                    }
                    values.extend_from_slice(&self.values[k * e..(k + 1) * e]);
                }
                indptr = self.indptr.iter().map(|&p| p as u32).collect();
                index_len = self.nnz();
            }
            IndexEncoding::Rice => {
                let positions = (0..self.rows).flat_map(|r| {
                    (self.indptr[r]..self.indptr[r + 1])
                        .map(move |k| r * self.cols + self.indices[k])
                });
                let gaps = rice::gaps(positions);
                let (k, _) = rice::best_param(&gaps);
                let (stream, bits) = rice::encode(&gaps, k);
                return Some(Encoded {
                    encoding: enc,
                    param: k,
                    nnz: self.nnz(),
                    values: self.values.clone(),
                    index: stream,
                    index_len: bits,
                    indptr: None,
                });
            }
        }
        Some(Encoded {
            encoding: enc,
            param: 0,
            nnz: values.len() / e,
            values,
            index,
            index_len,
            indptr: Some(indptr),
        })
    }

    /// The smallest of dense and the allowed index encodings (ties keep the earlier: dense, then `allowed`
    /// in order).
    pub fn smallest(&self, allowed: &[IndexEncoding]) -> Encoded {
        let mut best = self.dense();
        for &enc in allowed {
            if let Some(c) = self.encode(enc) {
                if c.bytes() < best.bytes() {
                    best = c;
                }
            }
        }
        best
    }
}

/// A tensor to store: its shape, element type, arrays and (int8) per-row scales.
#[derive(Debug, Clone, PartialEq)]
pub struct TensorSpec {
    pub dtype: ValueType,
    pub dims: Vec<usize>,
    pub data: Encoded,
    pub scales: Option<Vec<f32>>,
}

impl TensorSpec {
    /// A dense tensor from little-endian element bytes.
    pub fn dense(dtype: ValueType, dims: Vec<usize>, values: Vec<u8>) -> Self {
        let nnz = dims.iter().product();
        TensorSpec {
            dtype,
            dims,
            data: Encoded {
                encoding: IndexEncoding::Dense,
                param: 0,
                nnz,
                values,
                index: Vec::new(),
                index_len: 0,
                indptr: None,
            },
            scales: None,
        }
    }
}

/// An activation buffer before placement.
#[derive(Debug, Clone, PartialEq)]
pub struct BufferSpec {
    pub dims: Vec<usize>,
    /// Int8 scale (0 for float graphs).
    pub scale: f32,
}

/// An op record (see `formats/scb.md`, "Graph section").
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpSpec {
    pub opcode: Opcode,
    pub relu: bool,
    /// CONV: add buffer `in1` (the output's shape) before the ReLU.
    pub residual: bool,
    /// CONV: loop order ([`sculpt_runtime::format::schedule`]).
    pub schedule: u8,
    pub in0: u32,
    pub in1: u32,
    pub out: u32,
    pub weight: u32,
    pub bias: u32,
    pub kernel: u8,
    pub stride: u8,
    pub pad: u16,
    /// Int8 requantisation parameters (formats/scb.md §8) as i32 words; empty for none.
    pub params: Vec<i32>,
}

impl OpSpec {
    /// An op without weights or parameters.
    pub fn simple(opcode: Opcode, in0: u32, out: u32) -> Self {
        OpSpec {
            opcode,
            relu: false,
            residual: false,
            schedule: 0,
            in0,
            in1: NONE,
            out,
            weight: NONE,
            bias: NONE,
            kernel: 0,
            stride: 0,
            pad: 0,
            params: Vec::new(),
        }
    }
}

/// Everything a `.scb` file holds, before layout.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ScbModel {
    pub int8: bool,
    pub tensors: Vec<TensorSpec>,
    pub buffers: Vec<BufferSpec>,
    pub ops: Vec<OpSpec>,
    pub input: u32,
    pub output: u32,
    /// Per-channel input normalisation applied by the runtime: (mean, std).
    pub normalization: Option<(Vec<f32>, Vec<f32>)>,
    pub model_hash: [u8; 32],
}

/// Assigns arena offsets: each buffer lives from the op that writes it to the last op that reads it (the graph
/// input from the start, the graph output to the end); first fit in 16-byte steps among buffers whose lifetimes
/// intersect. Returns the offsets and the arena size. `sizes[b]` is the bytes buffer `b` occupies while live
/// (its output region plus any scratch of the op that writes it).
pub fn plan_arena(sizes: &[usize], ops: &[OpSpec], input: u32, output: u32) -> (Vec<usize>, usize) {
    let n = sizes.len();
    let mut born = vec![0usize; n];
    let mut last = vec![0usize; n];
    for (i, op) in ops.iter().enumerate() {
        born[op.out as usize] = i + 1;
        for b in [op.in0, op.in1] {
            if b != NONE {
                last[b as usize] = last[b as usize].max(i + 1);
            }
        }
    }
    born[input as usize] = 0;
    last[output as usize] = usize::MAX;
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_by_key(|&b| (born[b], b));
    let mut offsets = vec![0usize; n];
    let mut placed: Vec<usize> = Vec::new();
    let mut arena = 0;
    for &b in &order {
        let mut taken: Vec<(usize, usize)> = placed
            .iter()
            .filter(|&&p| born[p] <= last[b] && born[b] <= last[p])
            .map(|&p| (offsets[p], offsets[p] + sizes[p]))
            .collect();
        taken.sort_unstable();
        let mut off = 0;
        for (s, e) in taken {
            if off + sizes[b] <= s {
                break;
            }
            off = off.max(align_up(e));
        }
        offsets[b] = off;
        arena = arena.max(off + sizes[b]);
        placed.push(b);
    }
    (offsets, align_up(arena))
}

fn put_u32(out: &mut Vec<u8>, v: u32) {
    out.extend_from_slice(&v.to_le_bytes());
}

fn le_bytes(words: impl Iterator<Item = [u8; 4]>) -> Vec<u8> {
    words.flatten().collect()
}

fn pad_to(out: &mut Vec<u8>, align: usize) {
    while out.len() % align != 0 {
        out.push(0);
    }
}

fn size_u32(n: usize, what: &str) -> Result<u32> {
    u32::try_from(n).map_err(|_| {
        Error::Invalid(format!(
            "scb: {what} ({n}) exceeds the format's 32-bit range"
        ))
    })
}

impl ScbModel {
    /// The geometry of a CONV op from its buffers (`None` when they are not rank 3).
    pub fn conv_geom(&self, op: &OpSpec) -> Option<ConvGeom> {
        let (x, y) = (
            &self.buffers.get(op.in0 as usize)?.dims,
            &self.buffers.get(op.out as usize)?.dims,
        );
        if x.len() != 3 || y.len() != 3 {
            return None;
        }
        Some(ConvGeom {
            c: x[0],
            h: x[1],
            w: x[2],
            co: y[0],
            oh: y[1],
            ow: y[2],
            k: op.kernel as usize,
            s: op.stride as usize,
            p: op.pad as usize,
        })
    }

    /// Bytes each buffer occupies while live: the buffer, plus the scratch of the convolution that writes it
    /// (formats/scb.md §7).
    pub fn live_sizes(&self) -> Vec<usize> {
        let elem = if self.int8 { 1 } else { 4 };
        let mut sizes: Vec<usize> = self
            .buffers
            .iter()
            .map(|b| b.dims.iter().product::<usize>() * elem)
            .collect();
        for op in &self.ops {
            if op.opcode == Opcode::Conv {
                if let Some(g) = self.conv_geom(op) {
                    let o = op.out as usize;
                    sizes[o] = align_up(sizes[o]) + g.scratch(self.int8).total;
                }
            }
        }
        sizes
    }

    /// The arena offset of every buffer and the arena size.
    pub fn arena_plan(&self) -> (Vec<usize>, usize) {
        plan_arena(&self.live_sizes(), &self.ops, self.input, self.output)
    }

    /// The required-feature bits this model uses.
    pub fn features(&self) -> u32 {
        let mut f = 0;
        if self.int8 {
            f |= feature::INT8;
        }
        if self.normalization.is_some() {
            f |= feature::NORMALIZE;
        }
        for t in &self.tensors {
            if t.dtype == ValueType::F16 {
                f |= feature::F16;
            }
            f |= t.data.encoding.feature();
        }
        f
    }

    /// Plans the arena and lays the file out: header, section table, TENSORS, BUFFERS, GRAPH, DATA, each
    /// section 16-byte aligned with its CRC-32; each array in DATA aligned to its element size.
    pub fn to_bytes(&self) -> Result<Vec<u8>> {
        let (offsets, arena) = self.arena_plan();
        let mut data: Vec<u8> = Vec::new();
        let mut place = |bytes: &[u8], align: usize| -> Result<u32> {
            pad_to(&mut data, align);
            let at = size_u32(data.len(), "data offset")?;
            data.extend_from_slice(bytes);
            Ok(at)
        };
        let mut tensors = Vec::with_capacity(self.tensors.len() * TENSOR_SIZE);
        for t in &self.tensors {
            let mut dims = [0u32; 4];
            if t.dims.is_empty() || t.dims.len() > 4 {
                return Err(Error::Invalid(format!(
                    "scb: tensor of rank {} (1 to 4 allowed)",
                    t.dims.len()
                )));
            }
            for (d, &v) in dims.iter_mut().zip(&t.dims) {
                *d = size_u32(v, "dimension")?;
            }
            let values_off = place(&t.data.values, t.dtype.size())?;
            let (index_off, indptr_off) = if t.data.encoding == IndexEncoding::Dense {
                (NONE, NONE)
            } else {
                let i = place(&t.data.index, t.data.encoding.index_align())?;
                let p = match &t.data.indptr {
                    Some(p) => place(&le_bytes(p.iter().map(|v| v.to_le_bytes())), 4)?,
                    None => NONE,
                };
                (i, p)
            };
            let scales_off = match &t.scales {
                Some(s) => place(&le_bytes(s.iter().map(|v| v.to_le_bytes())), 4)?,
                None => NONE,
            };
            tensors.extend_from_slice(&[
                t.dtype.code(),
                t.data.encoding.code(),
                t.dims.len() as u8,
                t.data.param,
            ]);
            for d in dims {
                put_u32(&mut tensors, d);
            }
            for v in [
                size_u32(t.data.nnz, "stored entries")?,
                values_off,
                index_off,
                size_u32(t.data.index_len, "index codes")?,
                indptr_off,
                scales_off,
                0,
            ] {
                put_u32(&mut tensors, v);
            }
        }
        let (mean_off, std_off) = match &self.normalization {
            Some((m, s)) => (
                place(&le_bytes(m.iter().map(|v| v.to_le_bytes())), 4)?,
                place(&le_bytes(s.iter().map(|v| v.to_le_bytes())), 4)?,
            ),
            None => (NONE, NONE),
        };
        let mut buffers = Vec::with_capacity(self.buffers.len() * BUFFER_SIZE);
        for (b, off) in self.buffers.iter().zip(&offsets) {
            if b.dims.is_empty() || b.dims.len() > 3 {
                return Err(Error::Invalid(format!(
                    "scb: buffer of rank {} (1 to 3 allowed)",
                    b.dims.len()
                )));
            }
            put_u32(&mut buffers, size_u32(*off, "arena offset")?);
            let dt = if self.int8 {
                ValueType::I8
            } else {
                ValueType::F32
            };
            buffers.extend_from_slice(&[dt.code(), b.dims.len() as u8, 0, 0]);
            for k in 0..3 {
                put_u32(
                    &mut buffers,
                    size_u32(b.dims.get(k).copied().unwrap_or(0), "dimension")?,
                );
            }
            buffers.extend_from_slice(&b.scale.to_le_bytes());
        }
        let mut graph = Vec::with_capacity(GRAPH_HEADER_SIZE + self.ops.len() * OP_SIZE);
        for v in [
            self.input,
            self.output,
            size_u32(self.ops.len(), "op count")?,
            0,
            mean_off,
            std_off,
            0,
            0,
        ] {
            put_u32(&mut graph, v);
        }
        for op in &self.ops {
            let params = if op.params.is_empty() {
                NONE
            } else {
                place(&le_bytes(op.params.iter().map(|v| v.to_le_bytes())), 4)?
            };
            let flags = u8::from(op.relu) | if op.residual { FLAG_RESIDUAL } else { 0 };
            graph.extend_from_slice(&[op.opcode.code(), flags, op.schedule, 0]);
            for v in [op.in0, op.in1, op.out, op.weight, op.bias, params] {
                put_u32(&mut graph, v);
            }
            graph.extend_from_slice(&[op.kernel, op.stride]);
            graph.extend_from_slice(&op.pad.to_le_bytes());
        }
        let sections = [
            (section::TENSORS, tensors),
            (section::BUFFERS, buffers),
            (section::GRAPH, graph),
            (section::DATA, data),
        ];
        let table_at = HEADER_SIZE;
        let mut out = vec![0u8; table_at + sections.len() * SECTION_ENTRY_SIZE];
        let mut table = Vec::new();
        for (kind, body) in &sections {
            pad_to(&mut out, ALIGN);
            put_u32(&mut table, *kind);
            put_u32(&mut table, size_u32(out.len(), "section offset")?);
            put_u32(&mut table, size_u32(body.len(), "section length")?);
            put_u32(&mut table, crc32(body));
            out.extend_from_slice(body);
        }
        out[table_at..table_at + table.len()].copy_from_slice(&table);
        let file_size = size_u32(out.len(), "file size")?;
        let mut h = Vec::with_capacity(HEADER_SIZE);
        h.extend_from_slice(&MAGIC);
        h.extend_from_slice(&VERSION_MAJOR.to_le_bytes());
        h.extend_from_slice(&VERSION_MINOR.to_le_bytes());
        for v in [
            HEADER_SIZE as u32,
            file_size,
            self.features(),
            sections.len() as u32,
            table_at as u32,
        ] {
            put_u32(&mut h, v);
        }
        h.extend_from_slice(&self.model_hash);
        put_u32(&mut h, size_u32(arena, "arena size")?);
        h.resize(HEADER_CRC_AT, 0);
        let crc = crc32(&h);
        put_u32(&mut h, crc);
        out[..HEADER_SIZE].copy_from_slice(&h);
        Ok(out)
    }
}
