//! Running a validated model in a caller-provided arena, on a [`KernelPath`].

use crate::bytes::{f32_at, i32_at, u32_at};
use crate::conv::{self, ConvWeights, Epilogue, Requant};
use crate::cpu::KernelPath;
use crate::error::RunError;
use crate::format::{Opcode, NONE};
use crate::gemm;
use crate::lanes::{Lanes, Portable};
use crate::model::{BufferDesc, Model, OpDesc};
use crate::ops;
use crate::quant;
use crate::weights::{value_f32, value_i32};

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
            self.right
                .get(s.wrapping_sub(self.end)..s.wrapping_sub(self.end).wrapping_add(n))
                .unwrap_or(&[])
        }
    }
}

/// A kernel invocation that can run on any [`Lanes`] implementation.
trait Job {
    fn run<S: Lanes>(self);
}

/// Runs `job` on `path` (which the caller has checked is available).
fn dispatch(path: KernelPath, job: impl Job) {
    match path {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: the path is available on this CPU (checked by the callers of `run_ops`).
        KernelPath::Avx512 => unsafe { enter_avx512(job) },
        #[cfg(target_arch = "x86_64")]
        // SAFETY: as above.
        KernelPath::Avx2 => unsafe { enter_avx2(job) },
        _ => job.run::<Portable>(),
    }
}

/// # Safety
/// The CPU must support the AVX-512 path.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512dq,avx512vnni,avx2,fma")]
unsafe fn enter_avx512(job: impl Job) {
    job.run::<crate::lanes::Avx512>()
}

/// # Safety
/// The CPU must support AVX2 and FMA.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn enter_avx2(job: impl Job) {
    job.run::<crate::lanes::Avx2>()
}

struct ConvF32<'a> {
    x: &'a [f32],
    y: &'a mut [f32],
    scratch: &'a mut [u8],
    g: conv::ConvGeom,
    w: ConvWeights<'a>,
    bias: &'a dyn Fn(usize) -> f32,
    ep: Epilogue<'a, f32>,
    tile_outer: bool,
}

impl Job for ConvF32<'_> {
    #[inline(always)]
    fn run<S: Lanes>(self) {
        // SAFETY: the model was validated, so shapes, offsets and scratch fit the geometry.
        unsafe {
            conv::conv_f32::<S>(
                self.x,
                self.y,
                self.scratch,
                &self.g,
                &self.w,
                self.bias,
                self.ep,
                self.tile_outer,
            );
        }
    }
}

/// Float max pooling, compiled for the path's vector width.
struct MaxPoolF32<'a> {
    x: &'a [f32],
    y: &'a mut [f32],
    chw: (usize, usize, usize),
    k: usize,
    s: usize,
}

impl Job for MaxPoolF32<'_> {
    #[inline(always)]
    fn run<S: Lanes>(self) {
        let (c, h, w) = self.chw;
        ops::max_pool(self.x, self.y, c, h, w, self.k, self.s);
    }
}

struct ConvI8<'a> {
    x: &'a [i8],
    y: &'a mut [i8],
    scratch: &'a mut [u8],
    g: conv::ConvGeom,
    w: ConvWeights<'a>,
    bias: &'a dyn Fn(usize) -> i32,
    rq: Requant<'a>,
    ep: Epilogue<'a, i8>,
}

impl Job for ConvI8<'_> {
    #[inline(always)]
    fn run<S: Lanes>(self) {
        // SAFETY: as for `ConvF32`.
        unsafe {
            conv::conv_i8::<S>(
                self.x,
                self.y,
                self.scratch,
                &self.g,
                &self.w,
                self.bias,
                self.rq,
                self.ep,
            );
        }
    }
}

struct GemmF32<'a> {
    x: &'a [f32],
    y: &'a mut [f32],
    w: ConvWeights<'a>,
    bias: &'a dyn Fn(usize) -> f32,
    relu: bool,
}

impl Job for GemmF32<'_> {
    #[inline(always)]
    fn run<S: Lanes>(self) {
        // SAFETY: as for `ConvF32`.
        unsafe { gemm::gemm_f32::<S>(self.x, self.y, &self.w, self.bias, self.relu) }
    }
}

struct GemmI8<'a> {
    x: &'a [i8],
    y: &'a mut [i8],
    w: ConvWeights<'a>,
    bias: &'a dyn Fn(usize) -> i32,
    requant: &'a dyn Fn(usize, i32) -> i8,
}

impl Job for GemmI8<'_> {
    #[inline(always)]
    fn run<S: Lanes>(self) {
        // SAFETY: as for `ConvF32`.
        unsafe { gemm::gemm_i8::<S>(self.x, self.y, &self.w, self.bias, self.requant) }
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

    /// Writes `f(v)` for every normalised input value `v` (channel-major, per the model's normalisation if
    /// any) to the same position of `out`.
    #[inline(always)]
    fn normalized<T>(&self, input: &[f32], out: &mut [T], f: impl Fn(f32) -> T) {
        match self.normalization() {
            None => out.iter_mut().zip(input).for_each(|(d, &v)| *d = f(v)),
            Some((mean, std)) => {
                let b = self.input();
                let plane = (b.dims[1] as usize * b.dims[2] as usize).max(1);
                for (c, (xs, ds)) in input.chunks(plane).zip(out.chunks_mut(plane)).enumerate() {
                    let (m, s) = (f32_at(mean, 4 * c), f32_at(std, 4 * c));
                    for (d, &v) in ds.iter_mut().zip(xs) {
                        *d = f((v - m) / s);
                    }
                }
            }
        }
    }

    fn check_path(path: KernelPath) -> Result<(), RunError> {
        if path.available() {
            Ok(())
        } else {
            Err(RunError::PathUnavailable)
        }
    }

    /// Runs one sample on the fastest kernel path of this CPU: `input` holds `input_len()` values (C, H, W
    /// channel-major), `output` receives `output_len()` logits; `arena` must hold `arena_size()` bytes (4-byte
    /// aligned, or 3 more). An int8 model quantises the input with the input buffer's scale and dequantises
    /// its output.
    pub fn run(&self, input: &[f32], arena: &mut [u8], output: &mut [f32]) -> Result<(), RunError> {
        self.run_on(KernelPath::detect(), input, arena, output)
    }

    /// [`Model::run`] on a chosen kernel path (`PathUnavailable` if this CPU lacks it).
    pub fn run_on(
        &self,
        path: KernelPath,
        input: &[f32],
        arena: &mut [u8],
        output: &mut [f32],
    ) -> Result<(), RunError> {
        Self::check_path(path)?;
        self.check_lengths(input.len(), output.len())?;
        let arena = self.aligned_arena(arena)?;
        let ib = self.input();
        let region = &mut arena[ib.offset as usize..ib.offset as usize + ib.bytes()];
        if self.is_int8() {
            self.normalized(input, i8s_mut(region), |v| quant::quantize(v, ib.scale));
        } else {
            self.normalized(input, f32s_mut(region), |v| v);
        }
        self.run_ops(arena, path);
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
    /// applied by the caller) and returns the raw int8 outputs. Integer arithmetic only.
    pub fn run_int8(
        &self,
        input: &[i8],
        arena: &mut [u8],
        output: &mut [i8],
    ) -> Result<(), RunError> {
        self.run_int8_on(KernelPath::detect(), input, arena, output)
    }

    /// [`Model::run_int8`] on a chosen kernel path.
    pub fn run_int8_on(
        &self,
        path: KernelPath,
        input: &[i8],
        arena: &mut [u8],
        output: &mut [i8],
    ) -> Result<(), RunError> {
        if !self.is_int8() {
            return Err(RunError::WrongKind);
        }
        Self::check_path(path)?;
        self.check_lengths(input.len(), output.len())?;
        let arena = self.aligned_arena(arena)?;
        let ib = self.input();
        i8s_mut(&mut arena[ib.offset as usize..ib.offset as usize + ib.bytes()])
            .copy_from_slice(input);
        self.run_ops(arena, path);
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

    fn run_ops(&self, arena: &mut [u8], path: KernelPath) {
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
                self.op_i8(&op, &split, out, path);
            } else {
                self.op_f32(&op, &split, out, path);
            }
        }
    }

    /// The output buffer and the scratch after it (at the output size rounded up to 16).
    fn out_and_scratch<'b>(&self, op: &OpDesc, out: &'b mut [u8]) -> (&'b mut [u8], &'b mut [u8]) {
        let yb = self.buffer(op.out);
        let at = crate::format::align_up(yb.bytes()).min(out.len());
        let (y, scratch) = out.split_at_mut(at);
        (&mut y[..yb.bytes().min(at)], scratch)
    }

    fn op_f32(&self, op: &OpDesc, split: &Split<'_>, out: &mut [u8], path: KernelPath) {
        let xb = self.buffer(op.in0);
        let x = f32s(split.get(&xb));
        let (yo, scratch) = self.out_and_scratch(op, out);
        let y = f32s_mut(yo);
        let data = self.data();
        let relu = op.relu();
        let second = || f32s(split.get(&self.buffer(op.in1)));
        match op.opcode {
            Opcode::Conv | Opcode::Gemm => {
                let wt = self.tensor(op.weight);
                let bt = (op.bias != NONE).then(|| self.tensor(op.bias));
                let bias = |r| bt.as_ref().map_or(0.0, |b| value_f32(data, b, r));
                let w = ConvWeights { desc: wt, data };
                if op.opcode == Opcode::Conv {
                    let job = ConvF32 {
                        x,
                        y,
                        scratch,
                        g: self.conv_geom(op),
                        w,
                        bias: &bias,
                        ep: Epilogue {
                            relu,
                            residual: op.residual().then(second),
                        },
                        tile_outer: op.schedule == crate::format::schedule::TILES_OUTER,
                    };
                    dispatch(path, job);
                } else {
                    dispatch(
                        path,
                        GemmF32 {
                            x,
                            y,
                            w,
                            bias: &bias,
                            relu,
                        },
                    );
                }
            }
            Opcode::MaxPool => dispatch(
                path,
                MaxPoolF32 {
                    x,
                    y,
                    chw: xb.chw(),
                    k: op.kernel as usize,
                    s: op.stride as usize,
                },
            ),
            Opcode::AvgPool => {
                let (c, h, w) = xb.chw();
                ops::avg_pool_f32(x, y, c, h, w, op.kernel as usize, op.stride as usize);
            }
            Opcode::GlobalAvgPool => {
                let (c, h, w) = xb.chw();
                ops::global_avg_pool_f32(x, y, c, h * w);
            }
            Opcode::Add => ops::add_f32(x, second(), y, relu),
            Opcode::SubsamplePad => {
                let (c, h, w) = xb.chw();
                ops::subsample_pad(x, y, 0.0, c, h, w, op.stride as usize, op.pad as usize);
            }
            Opcode::Relu => {
                y.copy_from_slice(x);
                ops::relu_f32(y);
            }
        }
    }

    fn op_i8(&self, op: &OpDesc, split: &Split<'_>, out: &mut [u8], path: KernelPath) {
        let xb = self.buffer(op.in0);
        let x = i8s(split.get(&xb));
        let (yo, scratch) = self.out_and_scratch(op, out);
        let y = i8s_mut(yo);
        let data = self.data();
        let relu = op.relu();
        let second = || i8s(split.get(&self.buffer(op.in1)));
        let rows = if matches!(op.opcode, Opcode::Conv | Opcode::Gemm) {
            self.tensor(op.weight).rows()
        } else {
            0
        };
        let pn = crate::format::params_bytes(op.opcode, rows, op.residual());
        let params = data
            .get(op.params as usize..(op.params as usize).saturating_add(pn))
            .unwrap_or(&[]);
        let word = |k: usize| i32_at(params, 4 * k);
        match op.opcode {
            Opcode::Conv | Opcode::Gemm => {
                let wt = self.tensor(op.weight);
                let bt = (op.bias != NONE).then(|| self.tensor(op.bias));
                let bias = |r| bt.as_ref().map_or(0, |b| value_i32(data, b, r));
                let w = ConvWeights { desc: wt, data };
                if op.opcode == Opcode::Conv {
                    let add = op.residual().then(|| {
                        (
                            word(2 * rows),
                            word(2 * rows + 1),
                            word(2 * rows + 2) as u32,
                        )
                    });
                    let job = ConvI8 {
                        x,
                        y,
                        scratch,
                        g: self.conv_geom(op),
                        w,
                        bias: &bias,
                        rq: Requant { params, add },
                        ep: Epilogue {
                            relu,
                            residual: op.residual().then(second),
                        },
                    };
                    dispatch(path, job);
                } else {
                    let requant = |r: usize, acc: i32| {
                        quant::requantize(acc, word(2 * r), u32_at(params, 8 * r + 4), relu)
                    };
                    dispatch(
                        path,
                        GemmI8 {
                            x,
                            y,
                            w,
                            bias: &bias,
                            requant: &requant,
                        },
                    );
                }
            }
            Opcode::MaxPool => {
                let (c, h, w) = xb.chw();
                ops::max_pool(x, y, c, h, w, op.kernel as usize, op.stride as usize);
            }
            Opcode::AvgPool => {
                let (c, h, w) = xb.chw();
                let k = op.kernel as usize;
                ops::avg_pool_i8(
                    x,
                    y,
                    c,
                    h,
                    w,
                    k,
                    op.stride as usize,
                    word(0),
                    word(1) as u32,
                );
            }
            Opcode::GlobalAvgPool => {
                let (c, h, w) = xb.chw();
                ops::global_avg_pool_i8(x, y, c, h * w, word(0), word(1) as u32);
            }
            Opcode::Add => ops::add_i8(x, second(), y, word(0), word(1), word(2) as u32, relu),
            Opcode::SubsamplePad => {
                let (c, h, w) = xb.chw();
                ops::subsample_pad(x, y, 0, c, h, w, op.stride as usize, op.pad as usize);
            }
            Opcode::Relu => {
                for (v, &a) in y.iter_mut().zip(x) {
                    *v = a.max(0);
                }
            }
        }
    }
}
