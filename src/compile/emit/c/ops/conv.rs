//! CONV: a static `sc_geom` and one `sc_conv_*` call (int8: with the accumulator scratch after the output).

use std::fmt::Write as _;

use super::{OpPrinter, Site};
use crate::compile::emit::c::flavour::Flavour;

pub struct Conv;

impl OpPrinter for Conv {
    fn library(&self, f: &dyn Flavour) -> Vec<String> {
        vec![
            "sc_geom".into(),
            "sc_span".into(),
            format!("sc_conv_{}", f.suffix()),
        ]
    }

    fn out_bytes(&self, f: &dyn Flavour, bytes: usize, dims: &[usize]) -> usize {
        f.conv_out_bytes(bytes, dims)
    }

    fn call(&self, c: &mut String, s: &Site<'_>, f: &dyn Flavour) {
        let (op, xd, yd) = (s.op, s.xd, s.yd);
        let _ = writeln!(
            c,
            "    {{\n        static const sc_geom g = {{{}, {}, {}, {}, {}, {}, {}, {}}};",
            xd[0], xd[1], xd[2], yd[1], yd[2], op.kernel, op.stride, op.pad
        );
        let res = if op.residual { s.in1.as_str() } else { "0" };
        let _ = writeln!(
            c,
            "        sc_conv_{}({}, {}{}, &g, &sc_t{}, {}{}, {res}, {});\n    }}",
            f.suffix(),
            s.x,
            s.y,
            f.conv_accumulator_arg(s.out_at, s.out_numel()),
            op.weight,
            s.bias,
            f.params_arg(s.i),
            s.relu()
        );
    }
}
