//! ADD: one `sc_add_*` call over the output's elements.

use std::fmt::Write as _;

use super::{OpPrinter, Site};
use crate::compile::emit::c::flavour::Flavour;

pub struct Add;

impl OpPrinter for Add {
    fn library(&self, f: &dyn Flavour) -> Vec<String> {
        vec![format!("sc_add_{}", f.suffix())]
    }

    fn call(&self, c: &mut String, s: &Site<'_>, f: &dyn Flavour) {
        let _ = writeln!(
            c,
            "    sc_add_{}({}, {}, {}, {}{}, {});",
            f.suffix(),
            s.x,
            s.in1,
            s.y,
            s.out_numel(),
            f.params_arg(s.i),
            s.relu()
        );
    }
}
