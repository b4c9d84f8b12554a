//! The pass driver: the compiler's passes are named values in one list ([`standard`]), run in order by
//! [`run`], which validates the graph after every pass and labels every failure with the pass
//! ([`Error::Pass`]) and, where the failure is at a node, the node ([`Error::node`]).
//!
//! Each [`Pass`] names the stage it reads: `source` (the imported graph, validated first under the name
//! `import`) or an earlier pass. The standard list forks after `fuse`: the float branch ends in `layout`, the
//! int8 branch (which runs only with calibration images) in `layout_int8`. [`run`] keeps the graph of every
//! stage, so callers can dump ([`crate::compile::text`]) or check ([`crate::verify`]) each one.

use crate::compile::ir::{Graph, IndexEncoding};
use crate::compile::passes::layout::{layout_for, Objective};
use crate::compile::passes::{fold_bn, fuse, quantize};
use crate::error::{Error, Result};

/// What passes may use besides the graph.
#[derive(Debug, Clone, Copy)]
pub struct Ctx<'a> {
    /// Index formats the target allows.
    pub formats: &'a [IndexEncoding],
    /// What the storage choice optimises.
    pub objective: Objective,
    /// [0, 1] images that calibrate int8 activation ranges; `None`: no int8 branch.
    pub calibration: Option<&'a [f32]>,
}

/// One named graph-to-graph pass.
#[derive(Debug, Clone, Copy)]
pub struct Pass {
    /// The name used in errors, `--stop-after` and `--dump-ir` files.
    pub name: &'static str,
    /// The stage whose graph the pass reads: [`SOURCE`] or the name of an earlier pass.
    pub input: &'static str,
    /// One line for `--help` and reports.
    pub about: &'static str,
    /// Runs only when [`Ctx::calibration`] is given (the int8 branch).
    pub int8: bool,
    pub run: fn(Graph, &Ctx) -> Result<Graph>,
}

/// The name of the imported graph's stage.
pub const SOURCE: &str = "source";
/// The stage the float artefacts are emitted from.
pub const FLOAT_OUTPUT: &str = "layout";
/// The stage the int8 artefacts are emitted from.
pub const INT8_OUTPUT: &str = "layout_int8";

fn calibration<'a>(ctx: &Ctx<'a>) -> Result<&'a [f32]> {
    ctx.calibration
        .ok_or_else(|| Error::Invalid("needs calibration images (int8)".into()))
}

/// The compiler's passes, in order.
pub fn standard() -> Vec<Pass> {
    vec![
        Pass {
            name: "fold_bn",
            input: SOURCE,
            about: "fold each batch norm into the convolution before it",
            int8: false,
            run: |g, _| fold_bn::fold_bn(g),
        },
        Pass {
            name: "fuse",
            input: "fold_bn",
            about: "fuse ReLUs into the op before them, drop flattens before gemms",
            int8: false,
            run: |g, _| fuse::fuse(g),
        },
        Pass {
            name: FLOAT_OUTPUT,
            input: "fuse",
            about: "choose dense or CSR storage and the index format per weight (float branch)",
            int8: false,
            run: |g, c| layout_for(g, c.formats, c.objective),
        },
        Pass {
            name: "quantize",
            input: "fuse",
            about: "int8 post-training quantisation calibrated on training images",
            int8: true,
            run: |g, c| quantize::quantize(&g, calibration(c)?),
        },
        Pass {
            name: INT8_OUTPUT,
            input: "quantize",
            about: "choose dense or CSR storage and the index format per weight (int8 branch)",
            int8: true,
            run: |g, c| layout_for(g, c.formats, c.objective),
        },
    ]
}

/// The graph after one stage.
#[derive(Debug, Clone)]
pub struct Stage {
    /// [`SOURCE`] or a pass name.
    pub name: String,
    /// The stage it was computed from (`None` for the source).
    pub input: Option<String>,
    pub graph: Graph,
}

/// Every stage a [`run`] computed, the source first, in the order they ran.
#[derive(Debug, Clone)]
pub struct Stages(pub Vec<Stage>);

impl Stages {
    /// The graph of stage `name`, when it ran.
    pub fn get(&self, name: &str) -> Option<&Graph> {
        self.0.iter().find(|s| s.name == name).map(|s| &s.graph)
    }

    /// The stage that ran last.
    pub fn last(&self) -> &Stage {
        self.0.last().expect("a run holds at least the source")
    }
}

fn labelled(pass: &str, e: Error) -> Error {
    Error::Pass {
        pass: pass.to_string(),
        source: Box::new(e),
    }
}

/// Checks a pass list: unique names, each input an earlier stage.
pub fn check_list(passes: &[Pass]) -> Result<()> {
    let mut seen = vec![SOURCE];
    for p in passes {
        if seen.contains(&p.name) {
            return Err(Error::Invalid(format!("pass list: '{}' twice", p.name)));
        }
        if !seen.contains(&p.input) {
            return Err(Error::Invalid(format!(
                "pass list: '{}' reads '{}', which is not an earlier stage",
                p.name, p.input
            )));
        }
        seen.push(p.name);
    }
    Ok(())
}

/// Runs `passes` on `source`: validates the source (errors labelled `import`), then runs each pass whose input
/// stage exists (int8 passes only with calibration) and validates its result (errors labelled with the pass).
/// With `stop_after`, stops once that pass has run; naming a pass that is not in the list, or one that would
/// not run, is an error that lists the passes.
pub fn run(source: Graph, passes: &[Pass], ctx: &Ctx, stop_after: Option<&str>) -> Result<Stages> {
    check_list(passes)?;
    if let Some(stop) = stop_after {
        let names: Vec<&str> = passes.iter().map(|p| p.name).collect();
        match passes.iter().find(|p| p.name == stop) {
            None => {
                return Err(Error::Invalid(format!(
                    "--stop-after '{stop}': no such pass (passes: {})",
                    names.join(", ")
                )))
            }
            Some(p) if p.int8 && ctx.calibration.is_none() => {
                return Err(Error::Invalid(format!(
                    "--stop-after '{stop}': an int8 pass, which does not run without int8 artefacts"
                )))
            }
            Some(_) => {}
        }
    }
    source.validate().map_err(|e| labelled("import", e))?;
    let mut stages = Stages(vec![Stage {
        name: SOURCE.into(),
        input: None,
        graph: source,
    }]);
    for p in passes {
        if p.int8 && ctx.calibration.is_none() {
            continue;
        }
        let Some(input) = stages.get(p.input) else {
            continue;
        };
        let g = (p.run)(input.clone(), ctx).map_err(|e| labelled(p.name, e))?;
        g.validate().map_err(|e| labelled(p.name, e))?;
        stages.0.push(Stage {
            name: p.name.into(),
            input: Some(p.input.into()),
            graph: g,
        });
        if stop_after == Some(p.name) {
            break;
        }
    }
    Ok(stages)
}

/// File name of stage `k` (0 = source) in a `--dump-ir` directory: `NN-name.ir`.
pub fn dump_name(k: usize, stage: &str) -> String {
    format!("{k:02}-{stage}.ir")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_standard_list_is_well_formed() {
        check_list(&standard()).unwrap();
        let mut bad = standard();
        bad.swap(0, 1);
        assert!(check_list(&bad).unwrap_err().to_string().contains("fuse"));
    }
}
