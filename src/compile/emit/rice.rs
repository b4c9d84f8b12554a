//! Rice codes of the gaps between stored positions (encoding 4 of `formats/scb.md` §5). A tensor's stored
//! entries sit at increasing flattened positions; the gap before an entry is the number of positions skipped
//! since the previous one (since position 0 for the first). With parameter `k` a gap `g` costs
//! `(g >> k) + 1 + k` bits: `g >> k` zero bits, a one bit, then the `k` low bits of `g`, least significant
//! first; the stream is packed least significant bit of each byte first and its last byte padded with zeros.
//! For gaps drawn geometrically at density `p` the best `k` comes within a few percent of the entropy
//! `H(p) / p` bits per entry.

use sculpt_runtime::format::RICE_MAX_PARAM;

/// Gaps before each of the strictly increasing `positions`.
pub fn gaps(positions: impl IntoIterator<Item = usize>) -> Vec<usize> {
    let mut next = 0;
    positions
        .into_iter()
        .map(|p| {
            let g = p - next;
            next = p + 1;
            g
        })
        .collect()
}

/// Length in bits of the stream of `gaps` with parameter `k`.
pub fn bits(gaps: &[usize], k: u8) -> usize {
    gaps.iter().map(|&g| (g >> k) + 1 + k as usize).sum()
}

/// The parameter in `0..=7` giving the shortest stream, and its length in bits; ties keep the smaller `k`.
pub fn best_param(gaps: &[usize]) -> (u8, usize) {
    (0..=RICE_MAX_PARAM)
        .map(|k| (k, bits(gaps, k)))
        .min_by_key(|&(k, b)| (b, k))
        .unwrap_or((0, 0))
}

/// The stream of `gaps` with parameter `k` and its length in bits.
pub fn encode(gaps: &[usize], k: u8) -> (Vec<u8>, usize) {
    let mut out = Vec::new();
    let mut len = 0usize;
    let mut push = |bit: bool| {
        if len % 8 == 0 {
            out.push(0);
        }
        if bit {
            out[len / 8] |= 1 << (len % 8);
        }
        len += 1;
    };
    for &g in gaps {
        for _ in 0..g >> k {
            push(false);
        }
        push(true);
        for j in 0..k {
            push((g >> j) & 1 == 1);
        }
    }
    (out, len)
}

/// The flattened positions of the first `nnz` entries of the `bits`-bit `stream` with parameter `k`, or
/// `None` when the stream ends early.
pub fn decode(stream: &[u8], bits: usize, k: u8, nnz: usize) -> Option<Vec<usize>> {
    let bits = bits.min(8 * stream.len());
    let bit = |i: usize| (stream[i / 8] >> (i % 8)) & 1 == 1;
    let mut at = 0usize;
    let mut next = 0usize;
    let mut out = Vec::with_capacity(nnz);
    for _ in 0..nnz {
        let mut q = 0usize;
        loop {
            if at >= bits {
                return None;
            }
            at += 1;
            if bit(at - 1) {
                break;
            }
            q += 1;
        }
        if bits - at < k as usize {
            return None;
        }
        let low = (0..k as usize).fold(0usize, |a, j| a | (usize::from(bit(at + j)) << j));
        at += k as usize;
        let p = next + ((q << k) | low);
        out.push(p);
        next = p + 1;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_and_parameter_choice() {
        assert_eq!(gaps([1, 3, 4]), vec![1, 1, 0]);
        assert_eq!(encode(&[1, 1, 0], 0), (vec![0b0001_1010], 5));
        assert_eq!(encode(&[5], 2), (vec![0b0000_0110], 4));
        assert_eq!(best_param(&[1, 1, 0]), (0, 5));
        assert_eq!(best_param(&[40, 33, 50]).0, 5);
        assert_eq!(best_param(&[]), (0, 0));
        let g = [0, 200, 7, 1000, 3];
        for k in 0..=RICE_MAX_PARAM {
            assert_eq!(encode(&g, k).1, bits(&g, k));
            assert_eq!(encode(&g, k).0.len(), bits(&g, k).div_ceil(8));
            let (stream, len) = encode(&g, k);
            assert_eq!(
                decode(&stream, len, k, g.len()),
                Some(vec![0, 201, 209, 1210, 1214])
            );
            assert_eq!(decode(&stream, len, k, g.len() + 1), None);
        }
    }
}
