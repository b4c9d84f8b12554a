//! RELU: one `sc_relu_*` call over the output's elements.

use std::fmt::Write as _;

use super::{OpPrinter, Site};
use crate::compile::emit::c::flavour::Flavour;

pub struct Relu;

impl OpPrinter for Relu {
    fn library(&self, f: &dyn Flavour) -> Vec<String> {
        vec![format!("sc_relu_{}", f.suffix())]
    }

    fn call(&self, c: &mut String, s: &Site<'_>, f: &dyn Flavour) {
        let _ = writeln!(
            c,
            "    sc_relu_{}({}, {}, {});",
            f.suffix(),
            s.x,
            s.y,
            s.out_numel()
        );
    }
}
