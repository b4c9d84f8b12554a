//! Sparse layer kernels: only the weights a mask keeps are multiplied.
//!
//! Every sparse product here is one of two row operations on an offset CSR ([`Taps`]): row `r` lists, for each
//! kept weight, where its operand starts in a dense source buffer.
//!
//! - **gather** ([`micro::gather_row`]): `out[q] (+)= Σ_j v_j · src[off_j + q]` for a run of `q`, register-blocked
//!   over up to 16 vectors of `q`, so each kept weight is broadcast once per block and every operand load feeds
//!   one FMA. Forward and input gradient are gathers: for a convolution `q` runs over the output width of a
//!   zero-padded, stride-phase-split sample ([`conv`], SparseProp's width layout), for a linear layer over the
//!   batch of a transposed activation ([`linear`], SparseProp's batch layout).
//! - **sampled product** ([`micro::sampled_row`]): `acc_j += Σ_q d[q] · src[off_j + q]` per kept weight `j`
//!   only (a sampled dense × dense product), the weight gradient at the mask's positions, written into packed
//!   values; masked entries are never computed.
//!
//! The summation order of every output depends only on the mask, the shapes and the kernel path, so results
//! are deterministic.

pub mod conv;
pub mod linear;
pub mod micro;

/// An offset CSR: row `r` holds its kept weights `ptr[r]..ptr[r + 1]`, each with the offset of its operand
/// in the source buffer and the flat index of its value in the dense weight. Built once per mask; the
/// largest offset is recorded so kernels can check the source buffer once per call.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Taps {
    ptr: Vec<usize>,
    off: Vec<u32>,
    weight_index: Vec<u32>,
    /// One past the largest offset (0 when empty).
    span: usize,
}

impl Taps {
    /// Builds the CSR from rows of `(offset, weight index)` pairs, in the order given.
    pub fn from_rows(rows: impl IntoIterator<Item = Vec<(usize, usize)>>) -> Self {
        let mut t = Taps {
            ptr: vec![0],
            ..Taps::default()
        };
        for row in rows {
            for (off, wi) in row {
                t.span = t.span.max(off + 1);
                t.off
                    .push(u32::try_from(off).expect("operand offset fits u32"));
                t.weight_index
                    .push(u32::try_from(wi).expect("weight index fits u32"));
            }
            t.ptr.push(t.off.len());
        }
        t
    }

    pub fn rows(&self) -> usize {
        self.ptr.len() - 1
    }

    /// Kept weights over all rows.
    pub fn nnz(&self) -> usize {
        self.off.len()
    }

    /// One past the largest operand offset.
    pub fn span(&self) -> usize {
        self.span
    }

    /// Positions `start..end` of row `r` in the packed order.
    pub fn range(&self, r: usize) -> std::ops::Range<usize> {
        self.ptr[r]..self.ptr[r + 1]
    }

    /// Operand offsets of row `r`.
    pub fn offsets(&self, r: usize) -> &[u32] {
        &self.off[self.range(r)]
    }

    /// Flat dense-weight index of every packed entry, in packed order.
    pub fn weight_index(&self) -> &[u32] {
        &self.weight_index
    }

    /// The same CSR with every offset multiplied by `factor` (e.g. a column index turned into a row start).
    pub fn scaled(&self, factor: usize) -> Taps {
        let off: Vec<u32> = self
            .off
            .iter()
            .map(|&o| u32::try_from(o as usize * factor).expect("operand offset fits u32"))
            .collect();
        Taps {
            span: off.iter().map(|&o| o as usize + 1).max().unwrap_or(0),
            ptr: self.ptr.clone(),
            off,
            weight_index: self.weight_index.clone(),
        }
    }

    /// `packed[j] = weight[weight_index[j]]`.
    pub fn gather_values(&self, weight: &[f32], packed: &mut Vec<f32>) {
        packed.clear();
        packed.extend(self.weight_index.iter().map(|&i| weight[i as usize]));
    }

    /// `dense[weight_index[j]] (+)= packed[j]`; other entries untouched.
    pub fn scatter_values(&self, packed: &[f32], dense: &mut [f32], accumulate: bool) {
        for (&i, &v) in self.weight_index.iter().zip(packed) {
            let d = &mut dense[i as usize];
            *d = if accumulate { *d + v } else { v };
        }
    }
}

/// Per-sample cost of a layer on the sparse kernels, for the cost model that picks sparse or dense kernels.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Work {
    /// Lane multiply-adds of the forward pass (whole vectors, wasted lanes included).
    pub forward: u64,
    /// Lane multiply-adds of the weight gradient at the kept positions.
    pub weight_grad: u64,
    /// Lane multiply-adds of the input gradient.
    pub input_grad: u64,
    /// Values written or read by the packing steps (padding, phase splits, transposes).
    pub moved: u64,
    /// Parallel passes over the batch of one forward and backward (a fixed cost per batch, not per sample).
    pub passes: u64,
}

/// Rounds `n` up to a multiple of `m`.
pub fn round_up(n: usize, m: usize) -> usize {
    n.div_ceil(m) * m
}

/// A `len`-value slice of `buf` that starts on a 64-byte boundary (growing `buf` as needed, keeping its
/// contents finite: new space is zeroed).
pub fn aligned(buf: &mut Vec<f32>, len: usize) -> &mut [f32] {
    const ALIGN: usize = 16;
    if buf.len() < len + ALIGN {
        buf.resize(len + ALIGN, 0.0);
    }
    let skip = buf.as_ptr().align_offset(64).min(ALIGN);
    &mut buf[skip..skip + len]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn taps_gather_and_scatter_by_weight_index() {
        let t = Taps::from_rows(vec![vec![(4, 2), (0, 0)], vec![], vec![(9, 5)]]);
        assert_eq!((t.rows(), t.nnz(), t.span()), (3, 3, 10));
        assert_eq!(t.offsets(0), &[4, 0]);
        assert!(t.offsets(1).is_empty());
        let w = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0];
        let mut p = Vec::new();
        t.gather_values(&w, &mut p);
        assert_eq!(p, vec![3.0, 1.0, 6.0]);
        let mut d = vec![0.5; 6];
        t.scatter_values(&p, &mut d, true);
        assert_eq!(d, vec![1.5, 0.5, 3.5, 0.5, 0.5, 6.5]);
    }

    #[test]
    fn aligned_slices_start_on_64_bytes() {
        let mut b = Vec::new();
        for len in [1, 17, 1000] {
            let s = aligned(&mut b, len);
            assert_eq!(s.len(), len);
            assert_eq!(s.as_ptr() as usize % 64, 0);
        }
    }
}
