//! One printer per opcode: the library functions an op calls and its statement in `sc_run_graph`, the
//! same for every [`Flavour`] but for the kernel suffix and the flavour's extra arguments.

use sculpt_runtime::format::Opcode;

use super::flavour::Flavour;
use crate::compile::emit::binary::OpSpec;

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
    /// Arena bytes of the op's output buffer of `bytes` bytes and shape `dims`, scratch included.
    fn out_bytes(&self, _f: &dyn Flavour, bytes: usize, _dims: &[usize]) -> usize {
        bytes
    }
    /// Appends the op's statement in `sc_run_graph` to `c`.
    fn call(&self, c: &mut String, s: &Site<'_>, f: &dyn Flavour);
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
