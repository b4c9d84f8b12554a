//! Running a validated model in a caller-provided arena.

use crate::bytes::{f32_at, u32_at};
use crate::error::RunError;
use crate::format::{dtype, encoding, opcode, NONE};
use crate::kernels::{self, ConvGeom};
use crate::model::{BufferDesc, Model, OpDesc};
use crate::quant;
use crate::rows;
use crate::weights::{self, value_f32, value_i32};

/// Evaluates `$body` with `$rows` bound to a `&mut impl Rows` over tensor `$t`, one arm per encoding.
macro_rules! with_rows {
    ($data:expr, $t:expr, |$rows:ident| $body:expr) => {
        match $t.encoding {
            encoding::DENSE => {
                let $rows = &mut rows::Dense::new($t);
                $body
            }
            encoding::CSR_GAP8 => {
                let $rows = &mut rows::Csr::<rows::Gap8>::new($data, $t);
                $body
            }
            encoding::CSR_IDX16 => {
                let $rows = &mut rows::Csr::<rows::Idx16>::new($data, $t);
                $body
            }
            encoding::CSR_IDX32 => {
                let $rows = &mut rows::Csr::<rows::Idx32>::new($data, $t);
                $body
            }
            _ => {
                let $rows = &mut rows::Rice::new($data, $t);
                $body
            }
        }
    };
}

fn f32s(b: &[u8]) -> &[f32] {
    // SAFETY: every bit pattern is a valid f32; align_to only yields correctly aligned elements.
    let (_, mid, _) = unsafe { b.align_to::<f32>() };
    mid
}

fn f32s_mut(b: &mut [u8]) -> &mut [f32] {
    // SAFETY: as for `f32s`.
    let (_, mid, _) = unsafe { b.align_to_mut::<f32>() };
    mid
}

fn i32s_mut(b: &mut [u8]) -> &mut [i32] {
    // SAFETY: every bit pattern is a valid i32; align_to only yields correctly aligned elements.
    let (_, mid, _) = unsafe { b.align_to_mut::<i32>() };
    mid
}

fn i8s(b: &[u8]) -> &[i8] {
    // SAFETY: u8 and i8 have the same size, alignment and validity.
    let (_, mid, _) = unsafe { b.align_to::<i8>() };
    mid
}

fn i8s_mut(b: &mut [u8]) -> &mut [i8] {
    // SAFETY: as for `i8s`.
    let (_, mid, _) = unsafe { b.align_to_mut::<i8>() };
    mid
}

/// The arena split around an op's write region: read-only bytes before and after it.
struct Split<'a> {
    left: &'a [u8],
    right: &'a [u8],
    end: usize,
}

impl<'a> Split<'a> {
    fn get(&self, b: &BufferDesc) -> &'a [u8] {
        let (s, n) = (b.offset as usize, b.bytes());
        if s + n <= self.left.len() {
            &self.left[s..s + n]
        } else {
            &self.right[s - self.end..s - self.end + n]
        }
    }
}

impl Model<'_> {
    fn aligned_arena<'b>(&self, arena: &'b mut [u8]) -> Result<&'b mut [u8], RunError> {
        let pad = arena.as_ptr().align_offset(4).min(arena.len());
        let got = arena.len() - pad;
        if got < self.arena_size() {
            return Err(RunError::ArenaTooSmall {
                needed: (self.arena_size() + 3) as u32,
                got: arena.len() as u32,
            });
        }
        Ok(&mut arena[pad..])
    }

    /// Calls `put(i, v)` with every normalised input value (channel-major), per the model's normalisation if any.
    fn normalized(&self, input: &[f32], mut put: impl FnMut(usize, f32)) {
        match self.normalization() {
            None => input.iter().enumerate().for_each(|(i, &v)| put(i, v)),
            Some((mean, std)) => {
                let b = self.input();
                let plane = (b.dims[1] as usize * b.dims[2] as usize).max(1);
                for (c, xs) in input.chunks(plane).enumerate() {
                    let (m, s) = (f32_at(mean, 4 * c), f32_at(std, 4 * c));
                    for (j, &v) in xs.iter().enumerate() {
                        put(c * plane + j, (v - m) / s);
                    }
                }
            }
        }
    }

    /// Runs one sample: `input` holds `input_len()` values (C, H, W channel-major), `output` receives
    /// `output_len()` logits; `arena` must hold `arena_size()` bytes (4-byte aligned). An int8 model quantises
    /// the input with the input buffer's scale and dequantises its output.
    pub fn run(&self, input: &[f32], arena: &mut [u8], output: &mut [f32]) -> Result<(), RunError> {
        self.check_lengths(input.len(), output.len())?;
        let arena = self.aligned_arena(arena)?;
        let ib = self.input();
        let region = &mut arena[ib.offset as usize..ib.offset as usize + ib.bytes()];
        if self.is_int8() {
            let q = i8s_mut(region);
            self.normalized(input, |i, v| {
                if let Some(d) = q.get_mut(i) {
                    *d = quant::quantize(v, ib.scale);
                }
            });
        } else {
            let d = f32s_mut(region);
            self.normalized(input, |i, v| {
                if let Some(d) = d.get_mut(i) {
                    *d = v;
                }
            });
        }
        self.run_ops(arena);
        let ob = self.output();
        let region = &arena[ob.offset as usize..ob.offset as usize + ob.bytes()];
        if self.is_int8() {
            for (o, &q) in output.iter_mut().zip(i8s(region)) {
                *o = quant::dequantize(q, ob.scale);
            }
        } else {
            output.copy_from_slice(f32s(region));
        }
        Ok(())
    }

    /// Runs one sample of an int8 model on already quantised values (input buffer scale, normalisation
    /// applied by the caller) and returns the raw int8 outputs.
    pub fn run_int8(
        &self,
        input: &[i8],
        arena: &mut [u8],
        output: &mut [i8],
    ) -> Result<(), RunError> {
        if !self.is_int8() {
            return Err(RunError::WrongKind);
        }
        self.check_lengths(input.len(), output.len())?;
        let arena = self.aligned_arena(arena)?;
        let ib = self.input();
        i8s_mut(&mut arena[ib.offset as usize..ib.offset as usize + ib.bytes()])
            .copy_from_slice(input);
        self.run_ops(arena);
        let ob = self.output();
        output.copy_from_slice(i8s(
            &arena[ob.offset as usize..ob.offset as usize + ob.bytes()]
        ));
        Ok(())
    }

    fn check_lengths(&self, input: usize, output: usize) -> Result<(), RunError> {
        if input != self.input_len() {
            return Err(RunError::InputLength {
                expected: self.input_len() as u32,
                got: input as u32,
            });
        }
        if output != self.output_len() {
            return Err(RunError::OutputLength {
                expected: self.output_len() as u32,
                got: output as u32,
            });
        }
        Ok(())
    }

    fn run_ops(&self, arena: &mut [u8]) {
        for i in 0..self.op_count() as u32 {
            let op = self.op(i);
            let (ws, we) = self.write_region(&op);
            let (left, rest) = arena.split_at_mut(ws);
            let (out, right) = rest.split_at_mut(we - ws);
            let split = Split {
                left,
                right,
                end: we,
            };
            if self.is_int8() {
                self.op_i8(&op, &split, out);
            } else {
                self.op_f32(&op, &split, out);
            }
        }
    }

    fn op_f32(&self, op: &OpDesc, split: &Split<'_>, out: &mut [u8]) {
        let xb = self.buffer(op.in0);
        let yb = self.buffer(op.out);
        let x = f32s(split.get(&xb));
        let y = &mut f32s_mut(out)[..yb.numel()];
        let data = self.data();
        let relu = op.relu();
        match op.opcode {
            opcode::CONV | opcode::GEMM => {
                let wt = self.tensor(op.weight);
                let vals = weights::values_bytes(data, &wt);
                if wt.dtype == dtype::F16 {
                    self.weighted_f32(op, x, y, |k| weights::f16_le(vals, k));
                } else {
                    self.weighted_f32(op, x, y, |k| weights::f32_le(vals, k));
                }
            }
            opcode::MAX_POOL => {
                let (c, h, w) = xb.chw();
                kernels::max_pool(x, y, c, h, w, op.kernel as usize, op.stride as usize);
            }
            opcode::AVG_POOL => {
                let (c, h, w) = xb.chw();
                kernels::avg_pool_f32(x, y, c, h, w, op.kernel as usize, op.stride as usize);
            }
            opcode::GLOBAL_AVG_POOL => {
                let (c, h, w) = xb.chw();
                kernels::global_avg_pool_f32(x, y, c, h * w);
            }
            opcode::ADD => {
                let z = f32s(split.get(&self.buffer(op.in1)));
                for ((v, &a), &b) in y.iter_mut().zip(x).zip(z) {
                    *v = a + b;
                }
                if relu {
                    kernels::relu_f32(y);
                }
            }
            opcode::SUBSAMPLE_PAD => {
                let (c, h, w) = xb.chw();
                kernels::subsample_pad(x, y, 0.0, c, h, w, op.stride as usize, op.pad as usize);
            }
            _ => {
                y.copy_from_slice(x);
                kernels::relu_f32(y);
            }
        }
    }

    fn op_i8(&self, op: &OpDesc, split: &Split<'_>, out: &mut [u8]) {
        let xb = self.buffer(op.in0);
        let yb = self.buffer(op.out);
        let x = i8s(split.get(&xb));
        let data = self.data();
        let relu = op.relu();
        let scratch_at = crate::format::align_up(yb.bytes());
        let (yo, scratch) = out.split_at_mut(scratch_at.min(out.len()));
        let y = &mut i8s_mut(yo)[..yb.numel()];
        match op.opcode {
            opcode::CONV | opcode::GEMM => {
                let wt = self.tensor(op.weight);
                let bt = (op.bias != NONE).then(|| self.tensor(op.bias));
                let vals = weights::i8s(weights::values_bytes(data, &wt));
                let bias = |r| bt.as_ref().map_or(0, |b| value_i32(data, b, r));
                let mult = |r: usize| {
                    let sw = f32::from_bits(u32_at(data, wt.scales_off as usize + 4 * r));
                    quant::multiplier(xb.scale, sw, yb.scale)
                };
                if op.opcode == opcode::CONV {
                    let g = self.geom(op);
                    let acc = i32s_mut(scratch);
                    let value = |k: usize| vals.get(k).copied().unwrap_or(0);
                    with_rows!(data, &wt, |rows| kernels::conv_i8(
                        x,
                        y,
                        acc,
                        &g,
                        wt.rows(),
                        rows,
                        value,
                        bias,
                        mult,
                        relu
                    ));
                } else {
                    with_rows!(data, &wt, |rows| kernels::gemm_i8(
                        x, y, rows, vals, bias, mult, relu
                    ));
                }
            }
            opcode::MAX_POOL => {
                let (c, h, w) = xb.chw();
                kernels::max_pool(x, y, c, h, w, op.kernel as usize, op.stride as usize);
            }
            opcode::AVG_POOL => {
                let (c, h, w) = xb.chw();
                let k = op.kernel as usize;
                let m = quant::pool_multiplier(xb.scale, yb.scale, k * k);
                kernels::avg_pool_i8(x, y, c, h, w, k, op.stride as usize, m);
            }
            opcode::GLOBAL_AVG_POOL => {
                let (c, h, w) = xb.chw();
                let m = quant::pool_multiplier(xb.scale, yb.scale, h * w);
                kernels::global_avg_pool_i8(x, y, c, h * w, m);
            }
            opcode::ADD => {
                let zb = self.buffer(op.in1);
                let z = i8s(split.get(&zb));
                let (ma, mb) = (xb.scale / yb.scale, zb.scale / yb.scale);
                for ((v, &a), &b) in y.iter_mut().zip(x).zip(z) {
                    *v = quant::add(a, ma, b, mb, relu);
                }
            }
            opcode::SUBSAMPLE_PAD => {
                let (c, h, w) = xb.chw();
                kernels::subsample_pad(x, y, 0, c, h, w, op.stride as usize, op.pad as usize);
            }
            _ => {
                for (v, &a) in y.iter_mut().zip(x) {
                    *v = a.max(0);
                }
            }
        }
    }

    /// A float convolution or gemm whose weight values are read by `value`.
    fn weighted_f32(&self, op: &OpDesc, x: &[f32], y: &mut [f32], value: impl Fn(usize) -> f32) {
        let data = self.data();
        let wt = self.tensor(op.weight);
        let bt = (op.bias != NONE).then(|| self.tensor(op.bias));
        let bias = |r| bt.as_ref().map_or(0.0, |b| value_f32(data, b, r));
        let relu = op.relu();
        if op.opcode == opcode::CONV {
            let g = self.geom(op);
            with_rows!(data, &wt, |rows| kernels::conv_f32(
                x,
                y,
                &g,
                wt.rows(),
                rows,
                &value,
                bias,
                relu
            ));
        } else {
            with_rows!(data, &wt, |rows| kernels::gemm_f32(
                x, y, rows, &value, bias, relu
            ));
        }
    }

    fn geom(&self, op: &OpDesc) -> ConvGeom {
        let (c, h, w) = self.buffer(op.in0).chw();
        let (_, oh, ow) = self.buffer(op.out).chw();
        ConvGeom {
            c,
            h,
            w,
            oh,
            ow,
            k: op.kernel as usize,
            s: op.stride as usize,
            p: op.pad as usize,
        }
    }
}
