//! CONV: a static `sc_geom` and one `sc_conv_*` call. Float convolutions read the weight tensor through its
//! iterator; int8 ones read a tap table `sc_k{i}` built here from the weight and the input geometry, and use
//! the scratch after their output for the zero-padded input.

use std::fmt::Write as _;

use super::{OpPrinter, Site};
use crate::compile::emit::c::{arrays, flavour::Flavour};
use crate::error::{Error, Result};

pub struct Conv;

impl OpPrinter for Conv {
    fn library(&self, f: &dyn Flavour) -> Vec<String> {
        let mut v: Vec<String> = vec!["sc_geom".into()];
        if f.int8() {
            v.extend(["sc_types", "sc_taps", "sc_requant_row"].map(String::from));
        } else {
            v.extend(super::weight_reading(f));
            v.push("sc_span".into());
        }
        v.push(format!("sc_conv_{}", f.suffix()));
        v
    }

    fn reads_weight_tensor(&self, f: &dyn Flavour) -> bool {
        !f.int8()
    }

    fn out_bytes(&self, f: &dyn Flavour, bytes: usize, xd: &[usize], pad: usize) -> usize {
        f.conv_out_bytes(bytes, xd, pad)
    }

    fn constants(&self, c: &mut String, s: &Site<'_>, f: &dyn Flavour) -> Result<()> {
        if f.int8() {
            let w = s.weight.ok_or_else(|| {
                Error::Invalid(format!("C emitter: convolution {} has no weight", s.i))
            })?;
            arrays::conv_taps(c, s.i, w, s.xd, s.op.pad as usize)?;
        }
        Ok(())
    }

    fn call(&self, c: &mut String, s: &Site<'_>, f: &dyn Flavour) {
        let (op, xd, yd) = (s.op, s.xd, s.yd);
        let _ = writeln!(
            c,
            "    {{\n        static const sc_geom g = {{{}, {}, {}, {}, {}, {}, {}, {}}};",
            xd[0], xd[1], xd[2], yd[1], yd[2], op.kernel, op.stride, op.pad
        );
        let res = if op.residual { s.in1.as_str() } else { "0" };
        let weight = if f.int8() {
            format!("sc_k{}", s.i)
        } else {
            format!("sc_t{}", op.weight)
        };
        let _ = writeln!(
            c,
            "        sc_conv_{}({}, {}{}, &g, &{weight}, {}{}, {res}, {});\n    }}",
            f.suffix(),
            s.x,
            s.y,
            f.conv_scratch_arg(s.out_at, s.out_numel(), op.pad as usize),
            s.bias,
            f.params_arg(s.i),
            s.relu()
        );
    }
}
