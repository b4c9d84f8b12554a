//! Small `.scb` models built directly with the writer, for runtime, C and rejection tests.
#![allow(dead_code)]

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use sculpt::compile::emit::binary::{
    BufferSpec, CsrBytes, IndexEncoding, OpSpec, ScbModel, TensorSpec,
};
use sculpt::compile::lower::requant_params;
use sculpt_runtime::conv::quad_column;
use sculpt_runtime::format::{Opcode, ValueType, NONE};

pub fn f32_bytes(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

/// Value type of the weights of [`small_resnet`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    F32,
    F16,
    I8,
}

struct Builder {
    rng: ChaCha8Rng,
    kind: Kind,
    density: f64,
    m: ScbModel,
}

impl Builder {
    fn buffer(&mut self, dims: Vec<usize>) -> u32 {
        let scale = if self.kind == Kind::I8 {
            self.rng.gen_range(0.02f32..0.08)
        } else {
            0.0
        };
        self.m.buffers.push(BufferSpec { dims, scale });
        (self.m.buffers.len() - 1) as u32
    }

    fn same_scale(&mut self, from: u32, dims: Vec<usize>) -> u32 {
        let scale = self.m.buffers[from as usize].scale;
        self.m.buffers.push(BufferSpec { dims, scale });
        (self.m.buffers.len() - 1) as u32
    }

    fn weights(&mut self, dims: Vec<usize>, enc: Option<IndexEncoding>) -> (u32, u32) {
        let rows = dims[0];
        let cols: usize = dims[1..].iter().product();
        let (values, elem, dt, scales, bias) = match self.kind {
            Kind::I8 => {
                let v: Vec<u8> = (0..rows * cols)
                    .map(|_| {
                        if self.rng.gen_bool(self.density) {
                            self.rng.gen_range(-127i8..=127) as u8
                        } else {
                            0
                        }
                    })
                    .collect();
                let s: Vec<f32> = (0..rows)
                    .map(|_| self.rng.gen_range(0.001f32..0.01))
                    .collect();
                let b: Vec<u8> = (0..rows)
                    .flat_map(|_| self.rng.gen_range(-2000i32..2000).to_le_bytes())
                    .collect();
                (
                    v,
                    1,
                    ValueType::I8,
                    Some(s),
                    TensorSpec::dense(ValueType::I32, vec![rows], b),
                )
            }
            k => {
                let w: Vec<f32> = (0..rows * cols)
                    .map(|_| {
                        if self.rng.gen_bool(self.density) {
                            self.rng.gen_range(-0.5f32..0.5)
                        } else {
                            0.0
                        }
                    })
                    .collect();
                let b: Vec<f32> = (0..rows)
                    .map(|_| self.rng.gen_range(-0.1f32..0.1))
                    .collect();
                let bias = TensorSpec::dense(ValueType::F32, vec![rows], f32_bytes(&b));
                if k == Kind::F16 {
                    let v = w
                        .iter()
                        .flat_map(|&x| half::f16::from_f32(x).to_le_bytes())
                        .collect();
                    (v, 2, ValueType::F16, None, bias)
                } else {
                    (f32_bytes(&w), 4, ValueType::F32, None, bias)
                }
            }
        };
        let (values, cols) = if dt == ValueType::I8 && dims.len() == 4 {
            quad_ordered(&values, &dims)
        } else {
            (values, cols)
        };
        let csr = CsrBytes::from_dense(rows, cols, &values, elem);
        let data = match enc {
            None => csr.smallest(&IndexEncoding::SPARSE),
            Some(e) => csr.encode(e).unwrap(),
        };
        self.m.tensors.push(TensorSpec {
            dtype: dt,
            dims,
            data,
            scales,
        });
        self.m.tensors.push(bias);
        (
            (self.m.tensors.len() - 2) as u32,
            (self.m.tensors.len() - 1) as u32,
        )
    }

    #[allow(clippy::too_many_arguments)]
    fn conv(
        &mut self,
        x: u32,
        co: usize,
        k: usize,
        s: usize,
        p: usize,
        relu: bool,
        enc: Option<IndexEncoding>,
    ) -> u32 {
        let d = self.m.buffers[x as usize].dims.clone();
        let (w, b) = self.weights(vec![co, d[0], k, k], enc);
        let y = self.buffer(vec![
            co,
            (d[1] + 2 * p - k) / s + 1,
            (d[2] + 2 * p - k) / s + 1,
        ]);
        self.m.ops.push(OpSpec {
            opcode: Opcode::Conv,
            relu,
            in0: x,
            in1: NONE,
            out: y,
            weight: w,
            bias: b,
            kernel: k as u8,
            stride: s as u8,
            pad: p as u16,
            ..OpSpec::simple(Opcode::Conv, x, y)
        });
        y
    }
}

/// A small residual network exercising every op: conv (dense and each sparse encoding, stride 1 and 2),
/// ReLU, the option-A shortcut, add, max and average pooling, global average pooling and a gemm.
pub fn small_resnet(kind: Kind, density: f64, seed: u64) -> ScbModel {
    let mut b = Builder {
        rng: ChaCha8Rng::seed_from_u64(seed),
        kind,
        density,
        m: ScbModel {
            int8: kind == Kind::I8,
            ..Default::default()
        },
    };
    let x = b.buffer(vec![3, 12, 12]);
    let h = b.conv(x, 8, 3, 1, 1, true, Some(IndexEncoding::CsrGap8));
    let r = b.conv(h, 16, 3, 2, 1, true, Some(IndexEncoding::Rice));
    let r = b.conv(r, 16, 3, 1, 1, false, Some(IndexEncoding::CsrIdx16));
    let sc = b.same_scale(h, vec![16, 6, 6]);
    b.m.ops.push(OpSpec {
        pad: 4,
        stride: 2,
        ..OpSpec::simple(Opcode::SubsamplePad, h, sc)
    });
    let a = b.buffer(vec![16, 6, 6]);
    b.m.ops.push(OpSpec {
        in1: sc,
        relu: true,
        ..OpSpec::simple(Opcode::Add, r, a)
    });
    let mp = b.same_scale(a, vec![16, 5, 5]);
    b.m.ops.push(OpSpec {
        kernel: 2,
        stride: 1,
        ..OpSpec::simple(Opcode::MaxPool, a, mp)
    });
    let ap = b.buffer(vec![16, 2, 2]);
    b.m.ops.push(OpSpec {
        kernel: 2,
        stride: 2,
        ..OpSpec::simple(Opcode::AvgPool, mp, ap)
    });
    let c2 = b.conv(ap, 12, 1, 1, 0, false, Some(IndexEncoding::CsrIdx32));
    let rl = b.same_scale(c2, vec![12, 2, 2]);
    b.m.ops.push(OpSpec::simple(Opcode::Relu, c2, rl));
    let g = b.buffer(vec![12]);
    b.m.ops.push(OpSpec::simple(Opcode::GlobalAvgPool, rl, g));
    let (w, bias) = b.weights(vec![10, 12], None);
    let out = b.buffer(vec![10]);
    b.m.ops.push(OpSpec {
        weight: w,
        bias,
        ..OpSpec::simple(Opcode::Gemm, g, out)
    });
    b.m.input = x;
    b.m.output = out;
    b.m.normalization = Some((vec![0.1, 0.2, 0.3], vec![0.5, 1.0, 2.0]));
    b.m.model_hash = [0xAB; 32];
    with_params(b.m)
}

/// `m` with the int8 requantisation parameters of every op filled in from its scales.
pub fn with_params(mut m: ScbModel) -> ScbModel {
    for i in 0..m.ops.len() {
        let p = requant_params(&m, &m.ops[i]);
        m.ops[i].params = p;
    }
    m
}

/// Row-major int8 values of a (CO, CI, K, K) weight re-laid in channel-quad column order (formats/scb.md
/// §5), and the padded column count.
pub fn quad_ordered(values: &[u8], dims: &[usize]) -> (Vec<u8>, usize) {
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

pub fn inputs(n: usize, len: usize, seed: u64) -> Vec<Vec<f32>> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    (0..n)
        .map(|_| (0..len).map(|_| rng.gen_range(-1.0f32..1.0)).collect())
        .collect()
}
