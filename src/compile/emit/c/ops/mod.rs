//! One printer per opcode: the library functions an op calls and its statement in `sc_run_graph`, the
//! same for every [`Flavour`] but for the kernel suffix and the flavour's extra arguments.

use sculpt_runtime::format::Opcode;

use super::flavour::Flavour;
use crate::compile::emit::binary::{OpSpec, TensorSpec};
use crate::error::Result;

mod add;
mod conv;
mod gemm;
mod pool;
mod relu;
mod subsample_pad;

/// What a printer knows of one op: its record, the C expressions of its buffers and their shapes.
pub struct Site<'a> {
    /// Position of the op in the graph.
    pub i: usize,
    pub op: &'a OpSpec,
    /// C expressions of the first input, the second input (`in1`) and the output buffer; `in1` is `0` when
    /// the op reads none.
    pub x: String,
    pub in1: String,
    pub y: String,
    /// Shapes of the first input and the output buffer.
    pub xd: &'a [usize],
    pub yd: &'a [usize],
    /// The bias pointer expression (`0` without a bias).
    pub bias: String,
    /// Arena offset of the output buffer.
    pub out_at: usize,
    /// The op's weight tensor, `None` for an op without one.
    pub weight: Option<&'a TensorSpec>,
}

impl Site<'_> {
    /// Elements of the output buffer.
    pub fn out_numel(&self) -> usize {
        self.yd.iter().product()
    }
    /// `1` when the op applies ReLU to its result, else `0`.
    pub fn relu(&self) -> u8 {
        u8::from(self.op.relu)
    }
}

/// Prints one opcode.
pub trait OpPrinter: Sync {
    /// Library functions the op calls besides the flavour's helpers.
    fn library(&self, f: &dyn Flavour) -> Vec<String>;
    /// Whether the emitted C reads the op's weight through its `sc_t` tensor descriptor.
    fn reads_weight_tensor(&self, _f: &dyn Flavour) -> bool {
        true
    }
    /// Arena bytes of the op's output buffer of `bytes` bytes, scratch included, for an input of shape `xd`
    /// and the op's padding `pad`.
    fn out_bytes(&self, _f: &dyn Flavour, bytes: usize, _xd: &[usize], _pad: usize) -> usize {
        bytes
    }
    /// Appends the op's own constant arrays to `c` (before `sc_run_graph`).
    fn constants(&self, _c: &mut String, _s: &Site<'_>, _f: &dyn Flavour) -> Result<()> {
        Ok(())
    }
    /// Appends the op's statement in `sc_run_graph` to `c`.
    fn call(&self, c: &mut String, s: &Site<'_>, f: &dyn Flavour);
}

/// The library functions that reading a weight tensor's entries takes in flavour `f`.
pub fn weight_reading(f: &dyn Flavour) -> Vec<String> {
    let mut v: Vec<String> = ["sc_types", "sc_next", "sc_iter_init"]
        .map(String::from)
        .to_vec();
    v.extend(f.value_helpers().iter().map(|s| s.to_string()));
    v
}

/// The printer of `op`.
pub fn printer(op: Opcode) -> &'static dyn OpPrinter {
    match op {
        Opcode::Conv => &conv::Conv,
        Opcode::Gemm => &gemm::Gemm,
        Opcode::MaxPool => &pool::MaxPool,
        Opcode::AvgPool => &pool::AvgPool,
        Opcode::GlobalAvgPool => &pool::GlobalAvgPool,
        Opcode::Add => &add::Add,
        Opcode::SubsamplePad => &subsample_pad::SubsamplePad,
        Opcode::Relu => &relu::Relu,
    }
}

#[cfg(test)]
mod tests {
    use super::super::{flavour, library};
    use super::*;

    #[test]
    fn every_printer_names_library_functions_that_exist() {
        for &op in Opcode::ALL {
            for int8 in [false, true] {
                let f = flavour::of(int8);
                for name in printer(op).library(f) {
                    assert!(
                        library::defines(&name),
                        "{op} ({}) calls {name}",
                        f.suffix()
                    );
                }
            }
        }
        for int8 in [false, true] {
            let f = flavour::of(int8);
            for name in f.value_helpers().iter().chain(f.arithmetic()) {
                assert!(library::defines(name), "{name}");
            }
        }
    }
}
