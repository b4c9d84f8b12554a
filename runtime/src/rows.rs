//! Row-by-row access to a validated weight tensor's stored entries (filler entries included), one type per
//! encoding, so that each kernel is compiled once per encoding with the index decoding inlined.

use crate::bytes::u32_at;
use crate::model::TensorDesc;
use crate::rice::read_gap;

/// Evaluates `$body` with `$rows` bound to a `&mut impl Rows` over tensor `$t` (a `&TensorDesc`) in data
/// section `$data`, one arm per encoding.
macro_rules! with_rows {
    ($data:expr, $t:expr, |$rows:ident| $body:expr) => {
        match $t.encoding {
            $crate::format::encoding::DENSE => {
                let $rows = &mut $crate::rows::Dense::new($t);
                $body
            }
            $crate::format::encoding::CSR_GAP8 => {
                let $rows = &mut $crate::rows::Csr::<$crate::rows::Gap8>::new($data, $t);
                $body
            }
            $crate::format::encoding::CSR_IDX16 => {
                let $rows = &mut $crate::rows::Csr::<$crate::rows::Idx16>::new($data, $t);
                $body
            }
            $crate::format::encoding::CSR_IDX32 => {
                let $rows = &mut $crate::rows::Csr::<$crate::rows::Idx32>::new($data, $t);
                $body
            }
            _ => {
                let $rows = &mut $crate::rows::Rice::new($data, $t);
                $body
            }
        }
    };
}
pub(crate) use with_rows;

/// The stored entries of a validated tensor, row by row.
pub trait Rows {
    /// Calls `f(col, k)` for each stored entry of row `r` in storage order, `k` being the entry's index in the
    /// values array; the `k` of one row are consecutive. Rows are visited in increasing order, each at most
    /// once; a row skipped over is visited as empty by implementations that stream their indices.
    fn row(&mut self, r: usize, f: impl FnMut(usize, usize));
}

/// Encoding 0: every entry, `k = r · cols + col`.
pub struct Dense {
    cols: usize,
}

impl Dense {
    pub fn new(t: &TensorDesc) -> Self {
        Dense { cols: t.cols() }
    }
}

impl Rows for Dense {
    #[inline(always)]
    fn row(&mut self, r: usize, mut f: impl FnMut(usize, usize)) {
        let base = r * self.cols;
        for c in 0..self.cols {
            f(c, base + c);
        }
    }
}

/// The column codes of a CSR encoding: `IDX` bytes per code, decoded against the previous column + 1.
pub trait ColCode {
    const BYTES: usize;
    fn col(code: &[u8], next: usize) -> usize;
}

/// Encoding 1: u8 gaps from the previous column + 1.
pub struct Gap8;
/// Encoding 2: u16 absolute columns.
pub struct Idx16;
/// Encoding 3: u32 absolute columns.
pub struct Idx32;

impl ColCode for Gap8 {
    const BYTES: usize = 1;
    #[inline]
    fn col(code: &[u8], next: usize) -> usize {
        next + code[0] as usize
    }
}

impl ColCode for Idx16 {
    const BYTES: usize = 2;
    #[inline]
    fn col(code: &[u8], _: usize) -> usize {
        u16::from_le_bytes([code[0], code[1]]) as usize
    }
}

impl ColCode for Idx32 {
    const BYTES: usize = 4;
    #[inline]
    fn col(code: &[u8], _: usize) -> usize {
        u32::from_le_bytes([code[0], code[1], code[2], code[3]]) as usize
    }
}

/// Encodings 1–3: row pointers and one column code per entry.
pub struct Csr<'a, C> {
    indptr: &'a [u8],
    codes: &'a [u8],
    code: core::marker::PhantomData<C>,
}

impl<'a, C: ColCode> Csr<'a, C> {
    pub fn new(data: &'a [u8], t: &TensorDesc) -> Self {
        let codes = data.get(t.index_off as usize..).unwrap_or(&[]);
        let n = (t.index_len as usize * C::BYTES).min(codes.len());
        Csr {
            indptr: data.get(t.indptr_off as usize..).unwrap_or(&[]),
            codes: &codes[..n],
            code: core::marker::PhantomData,
        }
    }
}

impl<C: ColCode> Rows for Csr<'_, C> {
    #[inline(always)]
    fn row(&mut self, r: usize, mut f: impl FnMut(usize, usize)) {
        let a = u32_at(self.indptr, 4 * r) as usize;
        let b = u32_at(self.indptr, 4 * r + 4) as usize;
        let Some(codes) = self.codes.get(a * C::BYTES..b * C::BYTES) else {
            return;
        };
        let mut next = 0;
        for (i, code) in codes.chunks_exact(C::BYTES).enumerate() {
            let col = C::col(code, next);
            next = col + 1;
            f(col, a + i);
        }
    }
}

/// Encoding 4: a Rice-coded gap stream over the flattened tensor, decoded as the rows are visited.
pub struct Rice<'a> {
    data: &'a [u8],
    base: usize,
    end: usize,
    param: u8,
    cols: usize,
    at: usize,
    left: usize,
    k: usize,
    pos: usize,
}

impl<'a> Rice<'a> {
    pub fn new(data: &'a [u8], t: &TensorDesc) -> Self {
        let mut s = Rice {
            data,
            base: t.index_off as usize,
            end: t.index_len as usize,
            param: t.param,
            cols: t.cols(),
            at: 0,
            left: t.nnz as usize,
            k: 0,
            pos: 0,
        };
        s.advance(0);
        s
    }

    /// Decodes the next gap and places `pos` after `from`; ends the stream on a bad code.
    #[inline]
    fn advance(&mut self, from: usize) {
        if self.left == 0 {
            return;
        }
        match read_gap(self.data, self.base, self.at, self.end, self.param) {
            Some((gap, at)) => {
                self.at = at;
                self.pos = from.saturating_add(gap as usize);
            }
            None => self.left = 0,
        }
    }
}

impl Rows for Rice<'_> {
    #[inline(always)]
    fn row(&mut self, r: usize, mut f: impl FnMut(usize, usize)) {
        let start = r * self.cols;
        let end = start + self.cols;
        while self.left > 0 && self.pos < end {
            if self.pos >= start {
                f(self.pos - start, self.k);
            }
            self.k += 1;
            self.left -= 1;
            self.advance(self.pos + 1);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::{dtype, encoding};
    use crate::weights::Entries;

    const ROWS: usize = 5;
    const COLS: usize = 300;

    fn positions() -> [[bool; COLS]; ROWS] {
        let mut m = [[false; COLS]; ROWS];
        let mut x: u32 = 99;
        for (r, row) in m.iter_mut().enumerate() {
            for (c, v) in row.iter_mut().enumerate() {
                x = x.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                *v = r != 2 && (x >> 24) < 20 || (r == 4 && c == COLS - 1);
            }
        }
        m[0][0] = true;
        m[3] = [false; COLS];
        m[3][290] = true;
        m
    }

    fn desc(enc: u8, nnz: usize, index_len: usize, param: u8) -> TensorDesc {
        TensorDesc {
            dtype: dtype::F32,
            encoding: enc,
            param,
            rank: 2,
            dims: [ROWS as u32, COLS as u32, 0, 0],
            nnz: nnz as u32,
            values_off: 0,
            index_off: 0,
            index_len: index_len as u32,
            indptr_off: 4096,
            scales_off: crate::format::NONE,
        }
    }

    fn csr(enc: u8) -> ([u8; 8192], TensorDesc) {
        let m = positions();
        let mut data = [0u8; 8192];
        let mut k = 0;
        for r in 0..ROWS {
            data[4096 + 4 * r..4096 + 4 * r + 4].copy_from_slice(&(k as u32).to_le_bytes());
            let mut next = 0;
            for c in (0..COLS).filter(|&c| m[r][c]) {
                match enc {
                    encoding::CSR_GAP8 => {
                        while c - next > 255 {
                            data[k] = 255;
                            k += 1;
                            next += 256;
                        }
                        data[k] = (c - next) as u8;
                        k += 1;
                    }
                    encoding::CSR_IDX16 => {
                        data[2 * k..2 * k + 2].copy_from_slice(&(c as u16).to_le_bytes());
                        k += 1;
                    }
                    _ => {
                        data[4 * k..4 * k + 4].copy_from_slice(&(c as u32).to_le_bytes());
                        k += 1;
                    }
                }
                next = c + 1;
            }
        }
        data[4096 + 4 * ROWS..4096 + 4 * ROWS + 4].copy_from_slice(&(k as u32).to_le_bytes());
        (data, desc(enc, k, k, 0))
    }

    fn rice(param: u8) -> ([u8; 8192], TensorDesc) {
        let m = positions();
        let mut data = [0u8; 8192];
        let (mut at, mut next, mut nnz) = (0usize, 0usize, 0usize);
        let mut put = |at: &mut usize, b: usize| {
            data[*at / 8] |= (b as u8) << (*at % 8);
            *at += 1;
        };
        for p in (0..ROWS * COLS).filter(|&p| m[p / COLS][p % COLS]) {
            let gap = p - next;
            for _ in 0..gap >> param {
                put(&mut at, 0);
            }
            put(&mut at, 1);
            for j in 0..param {
                put(&mut at, (gap >> j) & 1);
            }
            next = p + 1;
            nnz += 1;
        }
        (data, desc(encoding::RICE, nnz, at, param))
    }

    fn visited(rows: &mut impl Rows) -> ([(usize, usize, usize); 2048], usize) {
        let mut out = [(0, 0, 0); 2048];
        let mut n = 0;
        for r in 0..ROWS {
            rows.row(r, |c, k| {
                out[n] = (r, c, k);
                n += 1;
            });
        }
        (out, n)
    }

    fn same_as_entries(data: &[u8], t: &TensorDesc, rows: &mut impl Rows) {
        let (got, n) = visited(rows);
        let mut i = 0;
        for e in Entries::new(data, t) {
            assert_eq!(got[i], (e.row, e.col, e.k), "entry {i}");
            i += 1;
        }
        assert_eq!(i, n);
        assert_eq!(n, t.nnz as usize);
    }

    #[test]
    fn every_encoding_visits_the_stored_entries_in_order() {
        let (d, t) = csr(encoding::CSR_GAP8);
        same_as_entries(&d, &t, &mut Csr::<Gap8>::new(&d, &t));
        let (d, t) = csr(encoding::CSR_IDX16);
        same_as_entries(&d, &t, &mut Csr::<Idx16>::new(&d, &t));
        let (d, t) = csr(encoding::CSR_IDX32);
        same_as_entries(&d, &t, &mut Csr::<Idx32>::new(&d, &t));
        for param in 0..=7 {
            let (d, t) = rice(param);
            assert!(crate::rice::check(&d, &t, 0).is_ok(), "param {param}");
            same_as_entries(&d, &t, &mut Rice::new(&d, &t));
        }
        let d = [0u8; 4];
        let t = TensorDesc {
            nnz: (ROWS * COLS) as u32,
            encoding: encoding::DENSE,
            ..desc(encoding::DENSE, 0, 0, 0)
        };
        same_as_entries(&d, &t, &mut Dense::new(&t));
    }
}
