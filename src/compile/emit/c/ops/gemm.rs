//! GEMM: one `sc_gemm_*` call.

use std::fmt::Write as _;

use super::{OpPrinter, Site};
use crate::compile::emit::c::flavour::Flavour;

pub struct Gemm;

impl OpPrinter for Gemm {
    fn library(&self, f: &dyn Flavour) -> Vec<String> {
        let mut v = super::weight_reading(f);
        v.push(format!("sc_gemm_{}", f.suffix()));
        v
    }

    fn call(&self, c: &mut String, s: &Site<'_>, f: &dyn Flavour) {
        let _ = writeln!(
            c,
            "    sc_gemm_{}({}, {}, &sc_t{}, {}{}, {});",
            f.suffix(),
            s.x,
            s.y,
            s.op.weight,
            s.bias,
            f.params_arg(s.i),
            s.relu()
        );
    }
}
