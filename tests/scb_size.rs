//! Size bars at 90% sparsity for LeNet-5-shaped models against the dense f32 parameter bytes (a lower bound
//! of the dense ONNX file, which adds protobuf framing and names). The requirement: the f32 `.scb` at most 0.13x
//! and the int8 `.scb` at most 0.05x for the sparsity pattern of a trained model, where one global magnitude
//! prune leaves per-layer densities conv1 70%, conv2 23%, fc1 5%, fc2 26.5%, fc3 46% (10% overall).
//!
//! A second pattern, every layer at exactly 10%, is held to 0.13x and 0.052x: there the int8 file cannot
//! reach 0.05x in this format, since at a uniform 10% the positions alone carry `H(0.1)/0.1 = 4.69` bits per
//! entry (Rice codes take 4.75) and with one byte per value, 8 bytes of scale and bias per row and 1,088 bytes
//! of header and records, an entropy-optimal index still leaves about 0.0517x.
//!
//! Format 2.0 adds to every int8 row its integer requantisation `(m, sh)` (8 bytes; 236 rows, 1,888 bytes, or
//! 0.0076x of the dense bytes) and pads the input channels of conv1 to 4, so the int8 bars are 0.058 and 0.060.
//! The measured ratios are printed.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use sculpt::compile::emit::binary::{
    BufferSpec, CsrBytes, IndexEncoding, OpSpec, ScbModel, TensorSpec,
};
use sculpt::compile::lower::requant_params;
use sculpt_runtime::conv::quad_column;
use sculpt_runtime::format::{Opcode, ValueType, NONE};
use sculpt_runtime::Model;

/// Row-major int8 values of a (CO, CI, K, K) weight in channel-quad column order, and the padded columns.
fn quad_ordered(values: &[u8], dims: &[usize]) -> (Vec<u8>, usize) {
    let (rows, ci, k) = (dims[0], dims[1], dims[2]);
    let cols = ci * k * k;
    let cols4 = ci.div_ceil(4) * 4 * k * k;
    let mut out = vec![0u8; rows * cols4];
    for r in 0..rows {
        for c in 0..cols {
            out[r * cols4 + quad_column(c, k)] = values[r * cols + c];
        }
    }
    (out, cols4)
}

fn lenet5(int8: bool, densities: [f64; 5]) -> (ScbModel, usize) {
    let mut rng = ChaCha8Rng::seed_from_u64(90);
    let mut m = ScbModel {
        int8,
        ..Default::default()
    };
    let mut dense_bytes = 0;
    let mut layer = 0;
    let buf = |m: &mut ScbModel, dims: Vec<usize>, rng: &mut ChaCha8Rng| {
        m.buffers.push(BufferSpec {
            dims,
            scale: if int8 { rng.gen_range(0.02..0.05) } else { 0.0 },
        });
        (m.buffers.len() - 1) as u32
    };
    let mut weights = |m: &mut ScbModel, dims: Vec<usize>, rng: &mut ChaCha8Rng| {
        let rows = dims[0];
        let cols: usize = dims[1..].iter().product();
        let density = densities[layer];
        layer += 1;
        dense_bytes += 4 * (rows * cols + rows);
        let (vals, elem, dt): (Vec<u8>, usize, ValueType) = if int8 {
            (
                (0..rows * cols)
                    .map(|_| {
                        if rng.gen_bool(density) {
                            rng.gen_range(1i8..=127) as u8
                        } else {
                            0
                        }
                    })
                    .collect(),
                1,
                ValueType::I8,
            )
        } else {
            (
                (0..rows * cols)
                    .flat_map(|_| {
                        if rng.gen_bool(density) {
                            rng.gen_range(0.1f32..1.0)
                        } else {
                            0.0
                        }
                        .to_le_bytes()
                    })
                    .collect(),
                4,
                ValueType::F32,
            )
        };
        let (vals, cols) = if int8 && dims.len() == 4 {
            quad_ordered(&vals, &dims)
        } else {
            (vals, cols)
        };
        let data = CsrBytes::from_dense(rows, cols, &vals, elem).smallest(&IndexEncoding::SPARSE);
        let scales = int8.then(|| vec![0.01f32; rows]);
        m.tensors.push(TensorSpec {
            dtype: dt,
            dims,
            data,
            scales,
        });
        let bias = if int8 {
            TensorSpec::dense(ValueType::I32, vec![rows], vec![0; 4 * rows])
        } else {
            TensorSpec::dense(ValueType::F32, vec![rows], vec![0; 4 * rows])
        };
        m.tensors.push(bias);
        ((m.tensors.len() - 2) as u32, (m.tensors.len() - 1) as u32)
    };
    let x = buf(&mut m, vec![1, 28, 28], &mut rng);
    let (w, b) = weights(&mut m, vec![6, 1, 5, 5], &mut rng);
    let c1 = buf(&mut m, vec![6, 28, 28], &mut rng);
    m.ops.push(OpSpec {
        opcode: Opcode::Conv,
        relu: true,
        in0: x,
        in1: NONE,
        out: c1,
        weight: w,
        bias: b,
        kernel: 5,
        stride: 1,
        pad: 2,
        ..OpSpec::simple(Opcode::Conv, x, c1)
    });
    let s = m.buffers[c1 as usize].scale;
    m.buffers.push(BufferSpec {
        dims: vec![6, 14, 14],
        scale: s,
    });
    let p1 = (m.buffers.len() - 1) as u32;
    m.ops.push(OpSpec {
        kernel: 2,
        stride: 2,
        ..OpSpec::simple(Opcode::MaxPool, c1, p1)
    });
    let (w, b) = weights(&mut m, vec![16, 6, 5, 5], &mut rng);
    let c2 = buf(&mut m, vec![16, 10, 10], &mut rng);
    m.ops.push(OpSpec {
        opcode: Opcode::Conv,
        relu: true,
        in0: p1,
        in1: NONE,
        out: c2,
        weight: w,
        bias: b,
        kernel: 5,
        stride: 1,
        pad: 0,
        ..OpSpec::simple(Opcode::Conv, p1, c2)
    });
    let s = m.buffers[c2 as usize].scale;
    m.buffers.push(BufferSpec {
        dims: vec![16, 5, 5],
        scale: s,
    });
    let mut h = (m.buffers.len() - 1) as u32;
    m.ops.push(OpSpec {
        kernel: 2,
        stride: 2,
        ..OpSpec::simple(Opcode::MaxPool, c2, h)
    });
    for (i, (fi, fo)) in [(400, 120), (120, 84), (84, 10)].into_iter().enumerate() {
        let (w, b) = weights(&mut m, vec![fo, fi], &mut rng);
        let y = buf(&mut m, vec![fo], &mut rng);
        m.ops.push(OpSpec {
            weight: w,
            bias: b,
            relu: i < 2,
            ..OpSpec::simple(Opcode::Gemm, h, y)
        });
        h = y;
    }
    m.input = x;
    m.output = h;
    for i in 0..m.ops.len() {
        let p = requant_params(&m, &m.ops[i]);
        m.ops[i].params = p;
    }
    (m, dense_bytes)
}

/// Per-layer densities and the (f32, int8) bars.
const PATTERNS: [(&str, [f64; 5], f64, f64); 2] = [
    ("trained", [0.7, 0.23, 0.05, 0.265, 0.46], 0.13, 0.058),
    ("uniform", [0.1; 5], 0.13, 0.060),
];

#[test]
fn size_bars_at_90_percent() {
    for (name, densities, f32_bar, int8_bar) in PATTERNS {
        for (int8, bar) in [(false, f32_bar), (true, int8_bar)] {
            let (m, dense) = lenet5(int8, densities);
            let bytes = m.to_bytes().unwrap();
            Model::parse(&bytes).unwrap();
            let ratio = bytes.len() as f64 / dense as f64;
            println!(
                "lenet5 90% {name} {}: {} bytes / dense f32 {} bytes = {ratio:.4} (bar {bar})",
                if int8 { "int8" } else { "f32" },
                bytes.len(),
                dense
            );
            assert!(ratio <= bar, "{name}: ratio {ratio:.4} over the bar {bar}");
        }
    }
}
