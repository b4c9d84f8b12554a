//! The runtime's kernels against straightforward reference implementations, on models built directly with
//! the `.scb` writer: every encoding, strides, padding, f16 values, the option-A shortcut and an int8 graph.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use sculpt::compile::emit::binary::{
    BufferSpec, CsrBytes, IndexEncoding, OpSpec, ScbModel, TensorSpec,
};
use sculpt_runtime::format::{dtype, opcode, NONE};
use sculpt_runtime::Model;

fn f32_bytes(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

fn sparse_weights(rng: &mut ChaCha8Rng, n: usize, density: f64) -> Vec<f32> {
    (0..n)
        .map(|_| {
            if rng.gen_bool(density) {
                rng.gen_range(-1.0f32..1.0)
            } else {
                0.0
            }
        })
        .collect()
}

/// Reference convolution, NCHW, one sample.
#[allow(clippy::too_many_arguments)]
fn ref_conv(
    x: &[f32],
    c: usize,
    h: usize,
    w: usize,
    wt: &[f32],
    co: usize,
    k: usize,
    s: usize,
    p: usize,
    b: &[f32],
) -> Vec<f32> {
    let oh = (h + 2 * p - k) / s + 1;
    let ow = (w + 2 * p - k) / s + 1;
    let mut y = vec![0.0f32; co * oh * ow];
    for o in 0..co {
        for oy in 0..oh {
            for ox in 0..ow {
                let mut acc = b[o] as f64;
                for ci in 0..c {
                    for ky in 0..k {
                        for kx in 0..k {
                            let iy = (oy * s + ky) as isize - p as isize;
                            let ix = (ox * s + kx) as isize - p as isize;
                            if iy < 0 || ix < 0 || iy >= h as isize || ix >= w as isize {
                                continue;
                            }
                            acc += wt[((o * c + ci) * k + ky) * k + kx] as f64
                                * x[(ci * h + iy as usize) * w + ix as usize] as f64;
                        }
                    }
                }
                y[(o * oh + oy) * ow + ox] = acc as f32;
            }
        }
    }
    y
}

fn weight_tensor(wt: &[f32], dims: Vec<usize>, enc: Option<IndexEncoding>) -> TensorSpec {
    let rows = dims[0];
    let cols = wt.len() / rows;
    let csr = CsrBytes::from_dense(rows, cols, &f32_bytes(wt), 4);
    let data = match enc {
        None => csr.dense(),
        Some(e) => csr.encode(e).expect("encodable"),
    };
    TensorSpec {
        dtype: dtype::F32,
        dims,
        data,
        scales: None,
    }
}

fn close(a: &[f32], b: &[f32], tol: f32) {
    assert_eq!(a.len(), b.len());
    for (i, (x, y)) in a.iter().zip(b).enumerate() {
        assert!(
            (x - y).abs() <= tol * (1.0 + y.abs()),
            "element {i}: {x} vs {y}"
        );
    }
}

#[test]
fn conv_every_encoding_stride_padding() {
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    for (k, s, p) in [
        (3, 1, 1),
        (3, 2, 1),
        (5, 1, 0),
        (1, 2, 0),
        (3, 1, 0),
        (2, 2, 1),
    ] {
        for enc in [
            None,
            Some(IndexEncoding::Gap8),
            Some(IndexEncoding::Idx16),
            Some(IndexEncoding::Idx32),
            Some(IndexEncoding::Rice),
        ] {
            let (c, h, w, co) = (3, 9, 7, 4);
            let wt = sparse_weights(&mut rng, co * c * k * k, 0.3);
            let b: Vec<f32> = (0..co).map(|_| rng.gen_range(-1.0..1.0)).collect();
            let x: Vec<f32> = (0..c * h * w).map(|_| rng.gen_range(-1.0..1.0)).collect();
            let (oh, ow) = ((h + 2 * p - k) / s + 1, (w + 2 * p - k) / s + 1);
            let m = ScbModel {
                tensors: vec![
                    weight_tensor(&wt, vec![co, c, k, k], enc),
                    TensorSpec::dense(dtype::F32, vec![co], f32_bytes(&b)),
                ],
                buffers: vec![
                    BufferSpec {
                        dims: vec![c, h, w],
                        scale: 0.0,
                    },
                    BufferSpec {
                        dims: vec![co, oh, ow],
                        scale: 0.0,
                    },
                ],
                ops: vec![OpSpec {
                    opcode: opcode::CONV,
                    relu: false,
                    in0: 0,
                    in1: NONE,
                    out: 1,
                    weight: 0,
                    bias: 1,
                    kernel: k as u8,
                    stride: s as u8,
                    pad: p as u16,
                }],
                input: 0,
                output: 1,
                ..Default::default()
            };
            let bytes = m.to_bytes().unwrap();
            let model =
                Model::parse(&bytes).unwrap_or_else(|e| panic!("k{k} s{s} p{p} {enc:?}: {e}"));
            let mut arena = vec![0u8; model.arena_size() + 3];
            let mut y = vec![0.0; co * oh * ow];
            model.run(&x, &mut arena, &mut y).unwrap();
            close(&y, &ref_conv(&x, c, h, w, &wt, co, k, s, p, &b), 1e-5);
        }
    }
}

#[test]
fn gap8_fillers_for_long_gaps() {
    let cols = 700;
    let mut wt = vec![0.0f32; 2 * cols];
    wt[0] = 1.0;
    wt[256] = 2.0;
    wt[256 + 256 + 1] = 3.0;
    wt[cols + 699] = 4.0;
    let csr = CsrBytes::from_dense(2, cols, &f32_bytes(&wt), 4);
    let enc = csr.encode(IndexEncoding::Gap8).unwrap();
    assert_eq!(
        enc.nnz,
        4 + 1 + 2,
        "one filler in row 0 (gap 255), two in row 1"
    );
    let m = ScbModel {
        tensors: vec![TensorSpec {
            dtype: dtype::F32,
            dims: vec![2, cols],
            data: enc,
            scales: None,
        }],
        buffers: vec![
            BufferSpec {
                dims: vec![cols],
                scale: 0.0,
            },
            BufferSpec {
                dims: vec![2],
                scale: 0.0,
            },
        ],
        ops: vec![OpSpec {
            weight: 0,
            ..OpSpec::simple(opcode::GEMM, 0, 1)
        }],
        input: 0,
        output: 1,
        ..Default::default()
    };
    let bytes = m.to_bytes().unwrap();
    let model = Model::parse(&bytes).unwrap();
    let entries: Vec<_> = model.entries(0).map(|e| (e.row, e.col)).collect();
    assert_eq!(
        entries,
        vec![
            (0, 0),
            (0, 256),
            (0, 512),
            (0, 513),
            (1, 255),
            (1, 511),
            (1, 699)
        ]
    );
    let x: Vec<f32> = (0..cols).map(|i| i as f32).collect();
    let mut y = [0.0f32; 2];
    let mut arena = vec![0u8; model.arena_size() + 3];
    model.run(&x, &mut arena, &mut y).unwrap();
    assert_eq!(y, [0.0 + 2.0 * 256.0 + 3.0 * 513.0, 4.0 * 699.0]);
}
