//! Iteration over the stored entries of a tensor in every encoding, in row-major order.

use crate::bytes::{f16_to_f32, f32_at, i32_at, u16_at, u32_at, u8_at};
use crate::format::{dtype, dtype_size, encoding};
use crate::model::TensorDesc;
use crate::rice::read_gap;

/// One stored entry: its row, its column and the index of its value in the values array.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Entry {
    pub row: usize,
    pub col: usize,
    pub k: usize,
}

/// Row-major iterator over a validated tensor's stored entries (filler entries included: their value is zero).
#[derive(Debug, Clone)]
pub struct Entries<'a> {
    data: &'a [u8],
    enc: u8,
    param: u8,
    rows: usize,
    cols: usize,
    nnz: usize,
    index_off: usize,
    index_len: usize,
    indptr_off: usize,
    row: usize,
    next_col: usize,
    k: usize,
    code: usize,
}

impl<'a> Entries<'a> {
    pub(crate) fn new(data: &'a [u8], t: &TensorDesc) -> Self {
        Entries {
            data,
            enc: t.encoding,
            param: t.param,
            rows: t.rows(),
            cols: t.cols(),
            nnz: t.nnz as usize,
            index_off: t.index_off as usize,
            index_len: t.index_len as usize,
            indptr_off: t.indptr_off as usize,
            row: 0,
            next_col: 0,
            k: 0,
            code: 0,
        }
    }

    fn indptr(&self, r: usize) -> usize {
        u32_at(self.data, self.indptr_off + 4 * r) as usize
    }
}

impl Iterator for Entries<'_> {
    type Item = Entry;

    fn next(&mut self) -> Option<Entry> {
        if self.k >= self.nnz {
            return None;
        }
        let k = self.k;
        match self.enc {
            encoding::DENSE => {
                if self.next_col == self.cols {
                    self.next_col = 0;
                    self.row += 1;
                }
                let e = Entry {
                    row: self.row,
                    col: self.next_col,
                    k,
                };
                self.next_col += 1;
                self.k += 1;
                Some(e)
            }
            encoding::RICE => {
                let (gap, at) = read_gap(
                    self.data,
                    self.index_off,
                    self.code,
                    self.index_len,
                    self.param,
                )?;
                self.code = at;
                self.next_col += gap as usize;
                while self.next_col >= self.cols {
                    self.next_col -= self.cols;
                    self.row += 1;
                }
                let e = Entry {
                    row: self.row,
                    col: self.next_col,
                    k,
                };
                self.next_col += 1;
                self.k += 1;
                Some(e)
            }
            _ => {
                while self.row < self.rows && self.indptr(self.row + 1) <= k {
                    self.row += 1;
                    self.next_col = 0;
                }
                if self.row >= self.rows {
                    return None;
                }
                let col = match self.enc {
                    encoding::CSR_GAP8 => {
                        self.next_col + u8_at(self.data, self.index_off + k) as usize
                    }
                    encoding::CSR_IDX16 => u16_at(self.data, self.index_off + 2 * k) as usize,
                    _ => u32_at(self.data, self.index_off + 4 * k) as usize,
                };
                self.next_col = col + 1;
                self.k += 1;
                Some(Entry {
                    row: self.row,
                    col,
                    k,
                })
            }
        }
    }
}

/// Value `k` of a float tensor (f32 or f16) as f32.
#[inline]
pub fn value_f32(data: &[u8], t: &TensorDesc, k: usize) -> f32 {
    let base = t.values_off as usize;
    if t.dtype == dtype::F16 {
        f16_to_f32(u16_at(data, base + 2 * k))
    } else {
        f32_at(data, base + 4 * k)
    }
}

/// Value `k` of an int8 or int32 tensor as i32.
#[inline]
pub fn value_i32(data: &[u8], t: &TensorDesc, k: usize) -> i32 {
    let base = t.values_off as usize;
    if t.dtype == dtype::I32 {
        i32_at(data, base + 4 * k)
    } else {
        u8_at(data, base + k) as i8 as i32
    }
}

/// The values array of a validated tensor: `nnz` elements of its dtype, little-endian.
pub(crate) fn values_bytes<'a>(data: &'a [u8], t: &TensorDesc) -> &'a [u8] {
    let (off, n) = (t.values_off as usize, t.nnz as usize * dtype_size(t.dtype));
    data.get(off..off.saturating_add(n)).unwrap_or(&[])
}
