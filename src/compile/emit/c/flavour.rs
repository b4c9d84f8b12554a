//! What the float and the int8 C differ in, besides the kernels they call: element and arena types, the
//! helpers every model of the flavour links, the arguments only int8 kernels take (requantisation
//! parameters, the convolution accumulator) and the entry points.

use std::fmt::Write as _;

use sculpt_runtime::format::align_up;

use super::arrays::c_float;
use crate::error::Result;

/// The buffers and lengths the entry points touch.
pub struct Entry<'a> {
    /// C expressions of the input and output activation buffers.
    pub xin: &'a str,
    pub yout: &'a str,
    pub in_len: usize,
    pub out_len: usize,
    /// The C expression of the model's input value `i`, normalised when the model normalises.
    pub input_i: &'a str,
    /// Activation scales of the input and output buffers (0 for float models).
    pub in_scale: f32,
    pub out_scale: f32,
}

/// One value type of the emitted C.
pub trait Flavour {
    /// Suffix of the kernel names: `f32` or `i8`.
    fn suffix(&self) -> &'static str;
    /// `SCULPT_MODEL_INT8`.
    fn int8(&self) -> bool;
    /// C type and size of one activation element.
    fn activation(&self) -> (&'static str, usize);
    /// C element type of the static arena.
    fn arena(&self) -> &'static str;
    /// C pointer type of a bias's values.
    fn bias_pointer(&self) -> &'static str;
    /// Library functions that reading weight values needs (models with a CONV or GEMM).
    fn value_helpers(&self) -> &'static [&'static str];
    /// Library functions every model of the flavour links.
    fn arithmetic(&self) -> &'static [&'static str];
    /// The requantisation-parameters argument of op `i` (`, sc_pI`), empty where kernels take none.
    fn params_arg(&self, i: usize) -> String;
    /// Arena bytes of a convolution's output buffer of `bytes` bytes, its scratch included, for an input of
    /// shape `xd` (C, H, W) padded by `pad`.
    fn conv_out_bytes(&self, bytes: usize, xd: &[usize], pad: usize) -> usize;
    /// The scratch argument of a convolution whose output (`numel` elements) is at arena offset `at` and
    /// which pads by `pad` (`, pointer`), empty where kernels take none.
    fn conv_scratch_arg(&self, at: usize, numel: usize, pad: usize) -> String;
    /// Declarations the header adds for this flavour.
    fn header(&self, e: &Entry<'_>) -> Result<String>;
    /// The entry points (`sculpt_model_run` and the flavour's own).
    fn entry_points(&self, e: &Entry<'_>) -> Result<String>;
}

/// f32 activations, f32 or f16 weights.
pub struct Float;

/// int8 activations and weights, int32 biases, integer requantisation.
pub struct Int8;

impl Flavour for Float {
    fn suffix(&self) -> &'static str {
        "f32"
    }
    fn int8(&self) -> bool {
        false
    }
    fn activation(&self) -> (&'static str, usize) {
        ("float", 4)
    }
    fn arena(&self) -> &'static str {
        "float"
    }
    fn bias_pointer(&self) -> &'static str {
        "const float *"
    }
    fn value_helpers(&self) -> &'static [&'static str] {
        &["sc_f16", "sc_value_f32"]
    }
    fn arithmetic(&self) -> &'static [&'static str] {
        &[]
    }
    fn params_arg(&self, _i: usize) -> String {
        String::new()
    }
    fn conv_out_bytes(&self, bytes: usize, _xd: &[usize], _pad: usize) -> usize {
        bytes
    }
    fn conv_scratch_arg(&self, _at: usize, _numel: usize, _pad: usize) -> String {
        String::new()
    }
    fn header(&self, _e: &Entry<'_>) -> Result<String> {
        Ok(String::new())
    }
    fn entry_points(&self, e: &Entry<'_>) -> Result<String> {
        let Entry {
            xin,
            yout,
            in_len,
            out_len,
            input_i,
            ..
        } = e;
        let mut c = String::new();
        let _ = write!(
            c,
            "    float *x = {xin};\n    const float *y;\n    for (i = 0; i < {in_len}; i++) {{\n        x[i] = {input_i};\n    }}\n    \
             sc_run_graph();\n    y = {yout};\n    for (i = 0; i < {out_len}; i++) {{\n        output[i] = y[i];\n    }}\n    return 0;\n}}\n",
        );
        Ok(c)
    }
}

impl Flavour for Int8 {
    fn suffix(&self) -> &'static str {
        "i8"
    }
    fn int8(&self) -> bool {
        true
    }
    fn activation(&self) -> (&'static str, usize) {
        ("int8_t", 1)
    }
    fn arena(&self) -> &'static str {
        "int32_t"
    }
    fn bias_pointer(&self) -> &'static str {
        "const int32_t *"
    }
    fn value_helpers(&self) -> &'static [&'static str] {
        &["sc_value_i32"]
    }
    fn arithmetic(&self) -> &'static [&'static str] {
        &[
            "sc_shift_round",
            "sc_saturate",
            "sc_quantize",
            "sc_requantize",
            "sc_add_q",
        ]
    }
    fn params_arg(&self, i: usize) -> String {
        format!(", sc_p{i}")
    }
    /// The zero-padded copy of the input, where the convolution pads.
    fn conv_out_bytes(&self, bytes: usize, xd: &[usize], pad: usize) -> usize {
        if pad == 0 {
            return bytes;
        }
        align_up(bytes) + xd[0] * (xd[1] + 2 * pad) * (xd[2] + 2 * pad)
    }
    fn conv_scratch_arg(&self, at: usize, numel: usize, pad: usize) -> String {
        if pad == 0 {
            return ", 0".into();
        }
        format!(
            ", ((int8_t *)((unsigned char *)sc_arena + {}))",
            at + align_up(numel)
        )
    }
    fn header(&self, e: &Entry<'_>) -> Result<String> {
        let mut h = String::from(
            "\n/* Int8 entry: input as sculpt_model_prepare_input writes it; output holds the raw int8 logits\n   \
             (real = SCULPT_MODEL_OUTPUT_SCALE * q). Returns 0. */\n\
             int sculpt_model_run_int8(const int8_t *input, int8_t *output);\n\n\
             /* Turns SCULPT_MODEL_INPUT_LEN raw floats into the int8 input of sculpt_model_run_int8 exactly as\n   \
             sculpt_model_run does: normalises (when SCULPT_MODEL_NORMALIZED), divides by SCULPT_MODEL_INPUT_SCALE\n   \
             in float, rounds half away from zero and saturates to [-128, 127]; NaN gives 0. Returns 0. */\n\
             int sculpt_model_prepare_input(const float *input, int8_t *q);\n",
        );
        let _ = writeln!(
            h,
            "#define SCULPT_MODEL_INPUT_SCALE {}\n#define SCULPT_MODEL_OUTPUT_SCALE {}",
            c_float(e.in_scale)?,
            c_float(e.out_scale)?
        );
        Ok(h)
    }
    fn entry_points(&self, e: &Entry<'_>) -> Result<String> {
        let Entry {
            xin,
            yout,
            in_len,
            out_len,
            input_i,
            ..
        } = e;
        let si = c_float(e.in_scale)?;
        let so = c_float(e.out_scale)?;
        let mut c = String::new();
        let _ = write!(
            c,
            "    const int8_t *y;\n    sculpt_model_prepare_input(input, {xin});\n    sc_run_graph();\n    y = {yout};\n    \
             for (i = 0; i < {out_len}; i++) {{\n        output[i] = (float)y[i] * {so};\n    }}\n    return 0;\n}}\n\n"
        );
        let _ = write!(
            c,
            "int sculpt_model_prepare_input(const float *input, int8_t *q)\n{{\n    int32_t i;\n    \
             for (i = 0; i < {in_len}; i++) {{\n        q[i] = sc_quantize({input_i}, {si});\n    }}\n    return 0;\n}}\n\n",
        );
        let _ = write!(
            c,
            "int sculpt_model_run_int8(const int8_t *input, int8_t *output)\n{{\n    int32_t i;\n    int8_t *x = {xin};\n    \
             const int8_t *y;\n    for (i = 0; i < {in_len}; i++) {{\n        x[i] = input[i];\n    }}\n    sc_run_graph();\n    \
             y = {yout};\n    for (i = 0; i < {out_len}; i++) {{\n        output[i] = y[i];\n    }}\n    return 0;\n}}\n"
        );
        Ok(c)
    }
}

/// The flavour of a model: int8 or float.
pub fn of(int8: bool) -> &'static dyn Flavour {
    if int8 {
        &Int8
    } else {
        &Float
    }
}
