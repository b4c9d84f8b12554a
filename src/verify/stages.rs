//! Checks at every stage of a compilation, on a probe: `probe ≡ interp(source) ≡ interp(after each pass)`.
//!
//! The probe of a checkpoint is data the trainer stored (a few training images and its own eval-mode logits,
//! [`crate::compile::import::checkpoint::read_probe`]); the probe of an ONNX source is [`ONNX_PROBE_SAMPLES`]
//! seeded uniform [0, 1] images and the file's own outputs on them, computed by tract (ONNX Runtime when tract
//! cannot plan the file). Bounds, with `scale`
//! the largest |logit| of the probe (at least 1) and `tol` [`super::VerifyOptions::float_tolerance`]:
//!
//! - the source against the probe, and each float pass against the stage it read: `max |Δlogit| ≤ tol · scale`;
//! - `quantize` against the float stage it read: `max |Δlogit| ≤ QUANT_BOUND · scale` (a coarse bound that
//!   catches a broken pass; the test-set agreement of the int8 reference is checked separately);
//! - every later int8 pass against the int8 stage it read: bit-identical logits.
//!
//! Without a probe (a checkpoint written before probes existed) the passes are still checked against each
//! other on the first test samples, and the report says that the source was not checked.

use std::path::Path;

use rand::{Rng, SeedableRng};

use super::{compare, runners, FormatResult, Outcome};
use crate::compile::import::checkpoint::read_probe;
use crate::compile::interp;
use crate::compile::ir::Graph;
use crate::compile::passes::driver::Stages;
use crate::error::Result;

/// How many seeded images probe an ONNX source.
pub const ONNX_PROBE_SAMPLES: usize = 4;
/// Seed of the ONNX probe images.
pub const ONNX_PROBE_SEED: u64 = 0x5c01_9e0b;
/// Relative logit bound of the `quantize` stage (see the module docs).
pub const QUANT_BOUND: f32 = 0.25;

/// Probe images (concatenated, [0, 1]) and the logits the source's own executor gave them.
#[derive(Debug, Clone, PartialEq)]
pub struct Probe {
    pub samples: usize,
    pub inputs: Vec<f32>,
    pub logits: Vec<f32>,
    /// Who computed the logits, for the report.
    pub origin: String,
}

/// The probe of `source` (a checkpoint or an `.onnx` file) whose imported graph is `graph`: the stored
/// one of a checkpoint (`None` when it has none), or for ONNX seeded images run through the file by tract
/// (by ONNX Runtime when tract cannot plan the file; an error when neither can run it).
pub fn source_probe(source: &Path, graph: &Graph) -> Result<Option<Probe>> {
    if crate::compile::artefact::ModelFile::is_onnx(source)? {
        let per: usize = graph.input.shape.iter().product();
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(ONNX_PROBE_SEED);
        let inputs: Vec<f32> = (0..per * ONNX_PROBE_SAMPLES)
            .map(|_| rng.gen::<f32>())
            .collect();
        let bytes = std::fs::read(source).map_err(|e| crate::error::Error::io(source, e))?;
        let (logits, origin) = match runners::tract(source, &bytes, graph, &inputs) {
            Ok(l) => (l, "the ONNX file run by tract"),
            Err(tract_error) => match runners::onnxruntime(source, &bytes, graph, &inputs) {
                Ok(l) => (l, "the ONNX file run by ONNX Runtime"),
                Err(_) => return Err(tract_error),
            },
        };
        return Ok(Some(Probe {
            samples: ONNX_PROBE_SAMPLES,
            inputs,
            logits,
            origin: origin.into(),
        }));
    }
    Ok(read_probe(source, graph)?.map(|p| Probe {
        samples: p.samples,
        inputs: p.inputs,
        logits: p.logits,
        origin: "the trainer's logits in the checkpoint".into(),
    }))
}

fn row(format: String, file: &str, bound: String) -> FormatResult {
    FormatResult::new(format, file.into(), "interpreter".into(), 0, bound)
}

/// One row per check of the module docs: `probe` (the source against the probe, when there is one) and
/// `pass NAME` for every stage after the source. `fallback` holds the images used without a probe.
pub fn check(
    stages: &Stages,
    probe: Option<&Probe>,
    fallback: &[f32],
    tol: f32,
) -> Result<Vec<FormatResult>> {
    let source = &stages.0[0].graph;
    let classes = source.classes();
    let xs = probe.map_or(fallback, |p| &p.inputs[..]);
    let n = xs.len() / source.input.shape.iter().product::<usize>().max(1);
    let mut outputs: Vec<(String, Vec<f32>)> = Vec::new();
    let src_out = interp::run_batch(source, xs)?;
    let scale = probe
        .map_or(&src_out[..], |p| &p.logits[..])
        .iter()
        .fold(1.0f32, |m, v| m.max(v.abs()));
    let none = vec![0u32; n];
    let mut rows = Vec::new();
    if let Some(p) = probe {
        let mut r = row(
            "probe".into(),
            "(source graph)",
            format!(
                "≡ {} on {} images, |Δ| ≤ {:.3e}",
                p.origin,
                p.samples,
                tol * scale
            ),
        );
        let c = compare(&p.logits, &src_out, classes, &none)?;
        r.top1_agreement = Some(c.agreement);
        r.max_abs_dlogit = Some(c.max_abs);
        let why = format!(
            "the source graph differs from {} by {:.3e} (bound {})",
            p.origin, c.max_abs, r.bound
        );
        r.settle(
            Outcome::measured(c.max_abs <= tol * scale, c.max_abs, c.agreement, why),
            false,
        );
        rows.push(r);
    }
    outputs.push((stages.0[0].name.clone(), src_out));
    for st in stages.0.iter().skip(1) {
        let input = st.input.as_deref().unwrap_or_default();
        let Some((_, want)) = outputs.iter().find(|(s, _)| s == input) else {
            continue;
        };
        let from_int8 = stages.get(input).is_some_and(Graph::is_quantized);
        let to_int8 = st.graph.is_quantized();
        let (limit, bound) = match (from_int8, to_int8) {
            (true, _) => (0.0, format!("bit-identical to '{input}'")),
            (false, true) => (
                QUANT_BOUND * scale,
                format!("|Δ| ≤ {:.3e} from '{input}'", QUANT_BOUND * scale),
            ),
            (false, false) => (
                tol * scale,
                format!("|Δ| ≤ {:.3e} from '{input}'", tol * scale),
            ),
        };
        let mut r = row(format!("pass {}", st.name), "(interpreter)", bound);
        let got = interp::run_batch(&st.graph, xs)?;
        let c = compare(want, &got, classes, &none)?;
        r.top1_agreement = Some(c.agreement);
        r.max_abs_dlogit = Some(c.max_abs);
        let why = format!(
            "pass {} changed the logits by {:.3e} (bound {})",
            st.name, c.max_abs, r.bound
        );
        r.settle(
            Outcome::measured(c.max_abs <= limit, c.max_abs, c.agreement, why),
            false,
        );
        rows.push(r);
        outputs.push((st.name.clone(), got));
    }
    if probe.is_none() {
        if let Some(first) = rows.first_mut() {
            first.note = Some(
                "no probe in the source (an older checkpoint): the source graph itself is not checked".into(),
            );
        }
    }
    Ok(rows)
}
