//! Reading the Rice-coded gap streams of encoding 4 (`formats/scb.md` §5). A stream is a sequence of bits,
//! least significant bit of each byte first; one code is `q` zero bits, a one bit, then the `k` low bits of the
//! gap (least significant first), for the gap `(q << k) | low`.

use crate::bytes::u8_at;
use crate::error::LoadError;
use crate::model::TensorDesc;

/// Bit `i` of the stream starting at byte `base` of `data`.
#[inline]
fn bit(data: &[u8], base: usize, i: usize) -> u8 {
    (u8_at(data, base + i / 8) >> (i % 8)) & 1
}

/// Decodes the code starting at bit `at` with parameter `k` (at most 7) from a stream of `end` bits at byte
/// `base` of `data`. Returns the gap and the bit after the code, or `None` when the code does not end within
/// the stream.
#[inline]
pub fn read_gap(data: &[u8], base: usize, at: usize, end: usize, k: u8) -> Option<(u64, usize)> {
    let mut i = at;
    let mut q: u64 = 0;
    loop {
        if i >= end {
            return None;
        }
        i += 1;
        if bit(data, base, i - 1) == 1 {
            break;
        }
        q += 1;
    }
    if end - i < k as usize {
        return None;
    }
    let mut low: u64 = 0;
    for j in 0..k as usize {
        low |= (bit(data, base, i + j) as u64) << j;
    }
    Some(((q << k) | low, i + k as usize))
}

/// Whether the bits from `end` to the end of its byte are all zero.
pub fn tail_is_zero(data: &[u8], base: usize, end: usize) -> bool {
    end % 8 == 0 || u8_at(data, base + end / 8) >> (end % 8) == 0
}

/// Checks the Rice stream of tensor `i` (its parameter and byte range already checked): exactly `nnz` codes
/// that end at bit `index_len`, every decoded position inside the tensor, zero bits after the stream.
pub fn check(data: &[u8], t: &TensorDesc, i: u32) -> Result<(), LoadError> {
    let numel = t.numel() as u64;
    if t.nnz as u64 > numel {
        return Err(LoadError::NnzMismatch { tensor: i });
    }
    let (base, end) = (t.index_off as usize, t.index_len as usize);
    let mut at = 0usize;
    let mut next: u64 = 0;
    for _ in 0..t.nnz {
        let (gap, after) = read_gap(data, base, at, end, t.param)
            .ok_or(LoadError::BadIndexStream { tensor: i })?;
        let pos = next + gap;
        if pos >= numel {
            return Err(LoadError::IndexOutOfRange { tensor: i });
        }
        next = pos + 1;
        at = after;
    }
    if at != end || !tail_is_zero(data, base, end) {
        return Err(LoadError::BadIndexStream { tensor: i });
    }
    Ok(())
}
