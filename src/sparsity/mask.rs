//! A binary mask over one weight tensor, stored as a CSR pattern (rows = output units, columns = fan-in).

use sprs::CsMat;

use crate::error::{Error, Result};

/// Which entries of a weight tensor are kept. Row `r` of the pattern is output unit `r`; column `c` is the
/// flattened fan-in index (for a conv weight `[out, in, kh, kw]`, `c = (i * kh + y) * kw + x`), so the row-major
/// flat index of an entry is `r * cols + c`.
#[derive(Debug, Clone, PartialEq)]
pub struct Mask {
    shape: Vec<usize>,
    pattern: CsMat<u8>,
}

impl Mask {
    fn rows_cols(shape: &[usize]) -> (usize, usize) {
        let rows = shape.first().copied().unwrap_or(1);
        (rows, shape.iter().skip(1).product())
    }

    /// Keeps every entry.
    pub fn dense(shape: &[usize]) -> Self {
        Self::from_keep(shape, &vec![true; shape.iter().product()])
    }

    /// Builds a mask from row-major keep flags. Panics if `keep.len()` differs from the tensor size.
    pub fn from_keep(shape: &[usize], keep: &[bool]) -> Self {
        let (rows, cols) = Self::rows_cols(shape);
        assert_eq!(
            keep.len(),
            rows * cols,
            "mask flags do not match shape {shape:?}"
        );
        let mut indptr = Vec::with_capacity(rows + 1);
        let mut indices = Vec::new();
        indptr.push(0);
        for r in 0..rows {
            for c in 0..cols {
                if keep[r * cols + c] {
                    indices.push(c);
                }
            }
            indptr.push(indices.len());
        }
        let data = vec![1u8; indices.len()];
        Mask {
            shape: shape.to_vec(),
            pattern: CsMat::new((rows, cols), indptr, indices, data),
        }
    }

    /// Builds a mask from CSR arrays, checking them (for data read from files).
    pub fn from_csr(shape: &[usize], indptr: Vec<usize>, indices: Vec<usize>) -> Result<Self> {
        let (rows, cols) = Self::rows_cols(shape);
        let data = vec![1u8; indices.len()];
        let pattern =
            CsMat::try_new((rows, cols), indptr, indices, data).map_err(|(_, _, _, e)| {
                Error::Invalid(format!("invalid CSR mask for shape {shape:?}: {e}"))
            })?;
        Ok(Mask {
            shape: shape.to_vec(),
            pattern,
        })
    }

    pub fn shape(&self) -> &[usize] {
        &self.shape
    }

    /// Total number of entries of the tensor.
    pub fn len(&self) -> usize {
        self.shape.iter().product()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Number of kept entries.
    pub fn nnz(&self) -> usize {
        self.pattern.nnz()
    }

    /// Fraction of kept entries.
    pub fn density(&self) -> f64 {
        if self.is_empty() {
            1.0
        } else {
            self.nnz() as f64 / self.len() as f64
        }
    }

    /// Row-major keep flags.
    pub fn keep_flags(&self) -> Vec<bool> {
        let mut out = vec![false; self.len()];
        let cols = self.pattern.cols();
        for (r, row) in self.pattern.outer_iterator().enumerate() {
            for (c, _) in row.iter() {
                out[r * cols + c] = true;
            }
        }
        out
    }

    /// Row-major multiplier (1.0 kept, 0.0 pruned).
    pub fn multiplier(&self) -> Vec<f32> {
        self.keep_flags()
            .into_iter()
            .map(|k| k as u8 as f32)
            .collect()
    }

    /// CSR row pointers.
    pub fn indptr(&self) -> Vec<usize> {
        self.pattern.indptr().raw_storage().to_vec()
    }

    /// CSR column indices.
    pub fn indices(&self) -> &[usize] {
        self.pattern.indices()
    }

    /// The underlying sprs pattern.
    pub fn pattern(&self) -> &CsMat<u8> {
        &self.pattern
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csr_round_trip() {
        let keep = [
            true, false, false, true, true, false, false, false, true, true, false, true,
        ];
        let m = Mask::from_keep(&[3, 2, 2], &keep);
        assert_eq!(m.nnz(), 6);
        assert_eq!(m.keep_flags(), keep);
        assert_eq!(m.indptr(), vec![0, 2, 3, 6]);
        let back = Mask::from_csr(&[3, 2, 2], m.indptr(), m.indices().to_vec()).unwrap();
        assert_eq!(back, m);
        assert!((m.density() - 0.5).abs() < 1e-12);
    }

    #[test]
    fn malformed_csr_is_an_error() {
        assert!(Mask::from_csr(&[2, 2], vec![0, 1, 5], vec![0, 1]).is_err());
        assert!(Mask::from_csr(&[2, 2], vec![0, 1, 2], vec![0, 7]).is_err());
    }
}
