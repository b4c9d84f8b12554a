//! MAX_POOL, AVG_POOL and GLOBAL_AVG_POOL: one `sc_*_pool_*` / `sc_gap_*` call each (int8 averages take
//! their requantisation parameters).

use std::fmt::Write as _;

use super::{OpPrinter, Site};
use crate::compile::emit::c::flavour::Flavour;

pub struct MaxPool;
pub struct AvgPool;
pub struct GlobalAvgPool;

impl OpPrinter for MaxPool {
    fn library(&self, f: &dyn Flavour) -> Vec<String> {
        vec![format!("sc_max_pool_{}", f.suffix())]
    }

    fn call(&self, c: &mut String, s: &Site<'_>, f: &dyn Flavour) {
        let xd = s.xd;
        let _ = writeln!(
            c,
            "    sc_max_pool_{}({}, {}, {}, {}, {}, {}, {});",
            f.suffix(),
            s.x,
            s.y,
            xd[0],
            xd[1],
            xd[2],
            s.op.kernel,
            s.op.stride
        );
    }
}

impl OpPrinter for AvgPool {
    fn library(&self, f: &dyn Flavour) -> Vec<String> {
        vec![format!("sc_avg_pool_{}", f.suffix())]
    }

    fn call(&self, c: &mut String, s: &Site<'_>, f: &dyn Flavour) {
        let xd = s.xd;
        let _ = writeln!(
            c,
            "    sc_avg_pool_{}({}, {}, {}, {}, {}, {}, {}{});",
            f.suffix(),
            s.x,
            s.y,
            xd[0],
            xd[1],
            xd[2],
            s.op.kernel,
            s.op.stride,
            f.params_arg(s.i)
        );
    }
}

impl OpPrinter for GlobalAvgPool {
    fn library(&self, f: &dyn Flavour) -> Vec<String> {
        vec![format!("sc_gap_{}", f.suffix())]
    }

    fn call(&self, c: &mut String, s: &Site<'_>, f: &dyn Flavour) {
        let _ = writeln!(
            c,
            "    sc_gap_{}({}, {}, {}, {}{});",
            f.suffix(),
            s.x,
            s.y,
            s.xd[0],
            s.xd[1] * s.xd[2],
            f.params_arg(s.i)
        );
    }
}
