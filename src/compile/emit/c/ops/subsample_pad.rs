//! SUBSAMPLE_PAD: one `sc_subsample_pad_*` call (the option-A shortcut).

use std::fmt::Write as _;

use super::{OpPrinter, Site};
use crate::compile::emit::c::flavour::Flavour;

pub struct SubsamplePad;

impl OpPrinter for SubsamplePad {
    fn library(&self, f: &dyn Flavour) -> Vec<String> {
        vec![format!("sc_subsample_pad_{}", f.suffix())]
    }

    fn call(&self, c: &mut String, s: &Site<'_>, f: &dyn Flavour) {
        let xd = s.xd;
        let _ = writeln!(
            c,
            "    sc_subsample_pad_{}({}, {}, {}, {}, {}, {}, {}, {});",
            f.suffix(),
            s.x,
            s.y,
            xd[0],
            xd[1],
            xd[2],
            s.op.stride,
            s.op.pad,
            s.yd[0]
        );
    }
}
