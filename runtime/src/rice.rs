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
/// the stream. Reads a 64-bit word and counts its trailing zeros; codes that do not fit one word (long zero
/// runs, the last bytes of `data`) go bit by bit.
#[inline]
pub fn read_gap(data: &[u8], base: usize, at: usize, end: usize, k: u8) -> Option<(u64, usize)> {
    let byte = base.wrapping_add(at / 8);
    if let Some(s) = data.get(byte..byte.wrapping_add(8)) {
        let mut word = [0u8; 8];
        word.copy_from_slice(s);
        let w = u64::from_le_bytes(word) >> (at % 8);
        let q = w.trailing_zeros() as usize;
        let n = q + 1 + k as usize;
        if n <= 64 - 7 && n <= end.saturating_sub(at) {
            let low = (w >> (q + 1)) & ((1u64 << k) - 1);
            return Some((((q as u64) << k) | low, at + n));
        }
    }
    read_gap_bits(data, base, at, end, k)
}

/// [`read_gap`] one bit at a time.
fn read_gap_bits(data: &[u8], base: usize, at: usize, end: usize, k: u8) -> Option<(u64, usize)> {
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
    end.is_multiple_of(8) || u8_at(data, base + end / 8) >> (end % 8) == 0
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn word_and_bit_decoding_agree() {
        let mut data = [0u8; 40];
        let mut x: u32 = 12345;
        for b in data.iter_mut() {
            x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
            *b = (x >> 16) as u8;
        }
        data[10] = 0;
        data[11] = 0;
        for k in 0..=7u8 {
            for base in 0..3 {
                for end in [0, 1, 60, 200, 8 * (40 - base)] {
                    for at in 0..end.min(300) {
                        assert_eq!(
                            read_gap(&data, base, at, end, k),
                            read_gap_bits(&data, base, at, end, k),
                            "k {k} base {base} end {end} at {at}"
                        );
                    }
                }
            }
        }
    }
}
