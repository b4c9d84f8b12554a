//! The `static const` arrays of the emitted C: weight values, index streams, row pointers and scales of
//! each tensor with its `sc_tensor` descriptor, the requantisation parameters of each op, and C spellings
//! of constants.

use std::fmt::Write as _;

use sculpt_runtime::format::{IndexEncoding, ValueType};

use crate::compile::emit::binary::{CsrBytes, Encoded, TensorSpec};
use crate::compile::emit::rice;
use crate::error::{Error, Result};

/// A finite `f32` as a C float literal (`1.5e0f`); an error for NaN and infinities.
pub fn c_float(v: f32) -> Result<String> {
    if !v.is_finite() {
        return Err(Error::Invalid(format!(
            "C emitter: non-finite constant {v}"
        )));
    }
    Ok(format!("{v:e}f"))
}

/// An `i32` as a C literal (`INT32_MIN` as an expression, since its magnitude is no `int` literal).
pub fn c_i32(v: i32) -> String {
    if v == i32::MIN {
        "(-2147483647 - 1)".into()
    } else {
        v.to_string()
    }
}

/// `static const TY NAME[n] = { items };`, twelve items a line (an empty array holds one 0).
pub fn array(out: &mut String, ty: &str, name: &str, items: &[String]) {
    let _ = write!(out, "static const {ty} {name}[{}] = {{", items.len().max(1));
    if items.is_empty() {
        out.push('0');
    }
    for (i, it) in items.iter().enumerate() {
        if i % 12 == 0 {
            out.push_str("\n    ");
        } else {
            out.push(' ');
        }
        out.push_str(it);
        out.push(',');
    }
    out.push_str("\n};\n");
}

fn le_chunks<const N: usize>(b: &[u8]) -> impl Iterator<Item = [u8; N]> + '_ {
    b.chunks_exact(N).map(|c| {
        let mut a = [0u8; N];
        a.copy_from_slice(c);
        a
    })
}

/// The values array `name` of little-endian `bytes` of type `vtype`; returns its C element type.
fn values_array(
    out: &mut String,
    name: &str,
    vtype: ValueType,
    bytes: &[u8],
) -> Result<&'static str> {
    match vtype {
        ValueType::F32 => {
            let items = le_chunks::<4>(bytes)
                .map(|c| c_float(f32::from_le_bytes(c)))
                .collect::<Result<Vec<_>>>()?;
            array(out, "float", name, &items);
            Ok("float")
        }
        ValueType::F16 => {
            let items: Vec<String> = le_chunks::<2>(bytes)
                .map(|c| format!("0x{:04X}u", u16::from_le_bytes(c)))
                .collect();
            array(out, "uint16_t", name, &items);
            Ok("uint16_t")
        }
        ValueType::I8 => {
            let items: Vec<String> = bytes.iter().map(|&b| (b as i8).to_string()).collect();
            array(out, "int8_t", name, &items);
            Ok("int8_t")
        }
        ValueType::I32 => {
            let items: Vec<String> = le_chunks::<4>(bytes)
                .map(|c| c_i32(i32::from_le_bytes(c)))
                .collect();
            array(out, "int32_t", name, &items);
            Ok("int32_t")
        }
    }
}

/// The arrays the C stores for `t` (whose matrix has `cols` columns): a Rice-coded tensor is re-encoded as the
/// smaller of dense, u8 gaps and u16 indices, which the kernels read without bit decoding; the entries keep
/// their row-major order, so every sum runs in the same order as the runtime's. Other encodings are kept.
fn c_layout(t: &TensorSpec, cols: usize) -> Result<Encoded> {
    if t.data.encoding != IndexEncoding::Rice {
        return Ok(t.data.clone());
    }
    let rows = t.dims[0];
    let bad = || Error::Invalid("C emitter: Rice stream does not match its tensor".into());
    let positions =
        rice::decode(&t.data.index, t.data.index_len, t.data.param, t.data.nnz).ok_or_else(bad)?;
    let elem = t.dtype.size();
    if t.data.values.len() != positions.len() * elem {
        return Err(bad());
    }
    let mut csr = CsrBytes {
        rows,
        cols,
        indptr: vec![0],
        indices: Vec::with_capacity(positions.len()),
        values: t.data.values.clone(),
        elem,
    };
    for &p in &positions {
        if p >= rows * cols {
            return Err(bad());
        }
        while csr.indptr.len() <= p / cols {
            csr.indptr.push(csr.indices.len());
        }
        csr.indices.push(p % cols);
    }
    while csr.indptr.len() <= rows {
        csr.indptr.push(csr.indices.len());
    }
    Ok(csr.smallest(&[IndexEncoding::CsrGap8, IndexEncoding::CsrIdx16]))
}

/// The arrays of tensor `i` and its descriptor `sc_t{i}` (formats/c-api.md).
pub fn tensor(c: &mut String, i: usize, t: &TensorSpec) -> Result<()> {
    let rows = t.dims[0];
    let cols: usize = if t.dtype == ValueType::I8 && t.dims.len() == 4 {
        t.dims[1].div_ceil(4) * 4 * t.dims[2] * t.dims[3]
    } else {
        t.dims[1..].iter().product()
    };
    let data = c_layout(t, cols)?;
    let vname = format!("sc_t{i}_values");
    values_array(c, &vname, t.dtype, &data.values)?;
    let index = match data.encoding {
        IndexEncoding::Dense => "0".to_string(),
        enc => {
            let name = format!("sc_t{i}_index");
            let (ty, items): (&str, Vec<String>) = match enc {
                IndexEncoding::CsrIdx16 => (
                    "uint16_t",
                    le_chunks::<2>(&data.index)
                        .map(|b| u16::from_le_bytes(b).to_string())
                        .collect(),
                ),
                IndexEncoding::CsrIdx32 => (
                    "uint32_t",
                    le_chunks::<4>(&data.index)
                        .map(|b| format!("{}u", u32::from_le_bytes(b)))
                        .collect(),
                ),
                _ => (
                    "uint8_t",
                    data.index.iter().map(|b| b.to_string()).collect(),
                ),
            };
            array(c, ty, &name, &items);
            name
        }
    };
    let indptr = match &data.indptr {
        Some(p) => {
            let name = format!("sc_t{i}_indptr");
            array(
                c,
                "uint32_t",
                &name,
                &p.iter().map(|v| format!("{v}u")).collect::<Vec<_>>(),
            );
            name
        }
        None => "0".into(),
    };
    let scales = match &t.scales {
        Some(s) => {
            let name = format!("sc_t{i}_scales");
            array(
                c,
                "float",
                &name,
                &s.iter().map(|&v| c_float(v)).collect::<Result<Vec<_>>>()?,
            );
            name
        }
        None => "0".into(),
    };
    let _ = writeln!(
        c,
        "static const sc_tensor sc_t{i} = {{{}, {}, {}, {rows}, {cols}, {}, {}, {vname}, {index}, {indptr}, {scales}}};\n",
        data.encoding.code(),
        data.param,
        t.dtype.code(),
        data.nnz,
        data.index_len
    );
    Ok(())
}

/// The stored entries of `data` (a matrix of `rows` × `cols` in any encoding but Rice) as (row, column, value
/// position), in stored order.
fn entries(data: &Encoded, rows: usize, cols: usize) -> Result<Vec<(usize, usize, usize)>> {
    let bad = || Error::Invalid("C emitter: index stream does not match its tensor".into());
    let mut out = Vec::with_capacity(data.nnz);
    if data.encoding == IndexEncoding::Dense {
        for k in 0..rows * cols {
            out.push((k / cols, k % cols, k));
        }
        return Ok(out);
    }
    let indptr = data.indptr.as_ref().ok_or_else(bad)?;
    if indptr.len() != rows + 1 {
        return Err(bad());
    }
    for r in 0..rows {
        let (k0, k1) = (indptr[r] as usize, indptr[r + 1] as usize);
        if k0 > k1 || k1 > data.nnz {
            return Err(bad());
        }
        let mut c: usize = 0;
        for k in k0..k1 {
            let col = match data.encoding {
                IndexEncoding::CsrGap8 => {
                    let gap = *data.index.get(k).ok_or_else(bad)? as usize;
                    c = if k == k0 { gap } else { c + 1 + gap };
                    c
                }
                IndexEncoding::CsrIdx16 => {
                    let b = data.index.get(2 * k..2 * k + 2).ok_or_else(bad)?;
                    u16::from_le_bytes([b[0], b[1]]) as usize
                }
                IndexEncoding::CsrIdx32 => {
                    let b = data.index.get(4 * k..4 * k + 4).ok_or_else(bad)?;
                    u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize
                }
                _ => return Err(bad()),
            };
            if col >= cols {
                return Err(bad());
            }
            out.push((r, col, k));
        }
    }
    Ok(out)
}

/// The tap table `sc_k{i}` (an `sc_taps`) of int8 convolution op `i` with weight `t` (int8, channel-quad column
/// order, formats/c-api.md) over an input of shape `xd` (C, H, W) zero-padded by `pad`: per output channel its
/// nonzero weights in stored order, in pairs `(wa & 0xFFFF) | (wb << 16), oa, ob` with the offsets into the padded
/// input (an odd last weight is paired with a 0 weight at its own offset). Zero weights and the entries of the
/// padding channels are dropped.
pub fn conv_taps(c: &mut String, i: usize, t: &TensorSpec, xd: &[usize], pad: usize) -> Result<()> {
    if t.dtype != ValueType::I8 || t.dims.len() != 4 || xd.len() != 3 {
        return Err(Error::Invalid(format!(
            "C emitter: int8 convolution {i} needs an int8 4-d weight and a 3-d input"
        )));
    }
    let (rows, ch, k) = (t.dims[0], xd[0], t.dims[2]);
    let (ph, pw) = (xd[1] + 2 * pad, xd[2] + 2 * pad);
    let kk = k * t.dims[3];
    let cols = t.dims[1].div_ceil(4) * 4 * kk;
    let data = c_layout(t, cols)?;
    let mut rowtaps: Vec<Vec<(u32, i8)>> = vec![Vec::new(); rows];
    for (r, col, at) in entries(&data, rows, cols)? {
        let (q, lane) = (col / 4, col % 4);
        let (tap, ci) = (q % kk, 4 * (q / kk) + lane);
        if ci >= ch {
            continue;
        }
        let off = ci * ph * pw + (tap / t.dims[3]) * pw + tap % t.dims[3];
        let off = u32::try_from(off).map_err(|_| {
            Error::Invalid(format!(
                "C emitter: convolution {i} input too large for 32-bit tap offsets ({off})"
            ))
        })?;
        let w = *data.values.get(at).ok_or_else(|| {
            Error::Invalid("C emitter: weight values do not match their index".into())
        })?;
        if w != 0 {
            rowtaps[r].push((off, w as i8));
        }
    }
    let mut words = Vec::with_capacity(3 * data.nnz.div_ceil(2) + 3 * rows);
    let mut start = vec![0u32];
    for taps in &rowtaps {
        for pair in taps.chunks(2) {
            let (oa, wa) = pair[0];
            let (ob, wb) = pair.get(1).copied().unwrap_or((oa, 0));
            let packed = u32::from(wa as i16 as u16) | (u32::from(wb as i16 as u16) << 16);
            words.extend([packed, oa, ob].map(|v| format!("{v}u")));
        }
        start.push((words.len() / 3) as u32);
    }
    array(c, "uint32_t", &format!("sc_k{i}_tap"), &words);
    let items: Vec<String> = start.iter().map(|v| format!("{v}u")).collect();
    array(c, "uint32_t", &format!("sc_k{i}_start"), &items);
    let _ = writeln!(
        c,
        "static const sc_taps sc_k{i} = {{sc_k{i}_tap, sc_k{i}_start, {rows}}};\n"
    );
    Ok(())
}

/// The exported per-channel normalisation array `name` (no `static`: the header declares it).
pub fn exported_floats(c: &mut String, name: &str, v: &[f32]) -> Result<()> {
    let items = v.iter().map(|&v| c_float(v)).collect::<Result<Vec<_>>>()?;
    let mut a = String::new();
    array(&mut a, "float", name, &items);
    c.push_str(a.strip_prefix("static ").expect("array() writes a static"));
    Ok(())
}

/// The requantisation parameters `sc_p{i}` of op `i`, nothing for an op without.
pub fn params(c: &mut String, i: usize, words: &[i32]) {
    if !words.is_empty() {
        let items: Vec<String> = words.iter().map(|&v| c_i32(v)).collect();
        array(c, "int32_t", &format!("sc_p{i}"), &items);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn constants_are_spelled_as_c_reads_them() {
        assert_eq!(c_float(1.5).unwrap(), "1.5e0f");
        assert!(c_float(f32::NAN).is_err() && c_float(f32::INFINITY).is_err());
        assert_eq!(c_i32(i32::MIN), "(-2147483647 - 1)");
        assert_eq!(c_i32(-3), "-3");
        let mut s = String::new();
        array(&mut s, "int8_t", "a", &[]);
        assert_eq!(s, "static const int8_t a[1] = {0\n};\n");
        let mut s = String::new();
        let items: Vec<String> = (0..13).map(|v| v.to_string()).collect();
        array(&mut s, "int32_t", "b", &items);
        assert_eq!(s.lines().count(), 4, "{s}");
    }

    /// The numbers of the C array `name` in `c`.
    fn numbers(c: &str, name: &str) -> Vec<u64> {
        let at = c.find(&format!(" {name}[")).unwrap();
        let body = &c[at..];
        let body = &body[body.find('{').unwrap() + 1..body.find('}').unwrap()];
        body.split(',')
            .map(|v| v.trim().trim_end_matches('u'))
            .filter(|v| !v.is_empty())
            .map(|v| v.parse().unwrap())
            .collect()
    }

    #[test]
    fn conv_taps_hold_every_weight_at_its_padded_input_offset() {
        use crate::compile::emit::binary::CsrBytes;
        // 3 output channels, 3 input channels (stored as 4), 3x3 kernel, over a 3x5x4 input padded by 1
        let (rows, ch, k, pad, h, w) = (3, 3, 3, 1, 5, 4);
        let cols = 4 * k * k;
        let mut dense = vec![0u8; rows * cols];
        let mut want = Vec::new();
        for r in 0..rows {
            for ci in 0..4 {
                for tap in 0..k * k {
                    let v = ((r * 31 + ci * 7 + tap * 3) % 11) as i8 - 5;
                    if v != 0 && (r + ci + tap) % 3 != 0 {
                        dense[r * cols + 4 * tap + ci] = v as u8;
                        if ci < ch {
                            want.push((r, ci, tap / k, tap % k, v));
                        }
                    }
                }
            }
        }
        let (ph, pw) = (h + 2 * pad, w + 2 * pad);
        for enc in [
            IndexEncoding::Dense,
            IndexEncoding::CsrGap8,
            IndexEncoding::CsrIdx16,
            IndexEncoding::CsrIdx32,
        ] {
            let data = CsrBytes::from_dense(rows, cols, &dense, 1)
                .encode(enc)
                .unwrap();
            let t = TensorSpec {
                dtype: ValueType::I8,
                dims: vec![rows, ch, k, k],
                data,
                scales: None,
            };
            let mut c = String::new();
            conv_taps(&mut c, 7, &t, &[ch, h, w], pad).unwrap();
            let (tap, start) = (numbers(&c, "sc_k7_tap"), numbers(&c, "sc_k7_start"));
            assert_eq!(start.len(), rows + 1);
            let mut got = Vec::new();
            for r in 0..rows {
                for p in start[r] as usize..start[r + 1] as usize {
                    let (wp, oa, ob) = (tap[3 * p] as u32, tap[3 * p + 1], tap[3 * p + 2]);
                    for (wv, off) in [(wp as u16 as i16, oa), ((wp >> 16) as u16 as i16, ob)] {
                        if wv != 0 {
                            let off = off as usize;
                            let (ci, rem) = (off / (ph * pw), off % (ph * pw));
                            got.push((r, ci, rem / pw, rem % pw, wv as i8));
                        }
                    }
                }
            }
            let key = |v: &(usize, usize, usize, usize, i8)| (v.0, v.1, v.2, v.3);
            let (mut g, mut e) = (got.clone(), want.clone());
            g.sort_by_key(key);
            e.sort_by_key(key);
            assert_eq!(g, e, "{enc:?}");
            assert!(c.contains("static const sc_taps sc_k7 = {sc_k7_tap, sc_k7_start, 3};"));
        }
        let bad = TensorSpec::dense(ValueType::F32, vec![1, 1, 1, 1], vec![0; 4]);
        assert!(conv_taps(&mut String::new(), 0, &bad, &[1, 2, 2], 0).is_err());
    }
}
