//! Folds each inference batch norm into the convolution before it (when that convolution feeds nothing else):
//! `w' = w · g`, `b' = (b − mean) · g + beta` with `g = gamma / sqrt(var + eps)` per output channel. CSR weights
//! keep their pattern.

use crate::compile::ir::{Bias, Graph, Op, Storage};
use crate::compile::passes::bypass;
use crate::error::{Error, Result};

/// Returns the graph with every foldable batch norm folded; the number folded is `graph.nodes.len()` less.
pub fn fold_bn(mut graph: Graph) -> Result<Graph> {
    let mut at = 1;
    while at < graph.nodes.len() {
        let (gain, shift) = match &graph.nodes[at].op {
            Op::BatchNorm {
                gamma,
                beta,
                mean,
                var,
                eps,
            } => {
                let g: Vec<f32> = gamma
                    .iter()
                    .zip(var)
                    .map(|(g, v)| g / (v + eps).sqrt())
                    .collect();
                let shift: Vec<(f32, f32)> = (0..g.len()).map(|c| (mean[c], beta[c])).collect();
                (g, shift)
            }
            _ => {
                at += 1;
                continue;
            }
        };
        let src = graph.nodes[at].inputs[0];
        let single = graph.consumers()[src] == 1;
        let last_ok = at + 1 < graph.nodes.len() || src + 1 == at;
        let foldable =
            single && last_ok && matches!(graph.nodes[src].op, Op::Conv { relu: false, .. });
        if !foldable {
            at += 1;
            continue;
        }
        if let Op::Conv { weight, bias, .. } = &mut graph.nodes[src].op {
            if weight.scales.is_some() {
                return Err(Error::Invalid(format!(
                    "fold_bn: '{}' is already quantised",
                    graph.nodes[src].name
                )));
            }
            let cols = weight.cols();
            match &mut weight.storage {
                Storage::Dense(v) => {
                    for (r, row) in v.chunks_mut(cols).enumerate() {
                        row.iter_mut().for_each(|x| *x *= gain[r]);
                    }
                }
                Storage::Csr { indptr, values, .. } => {
                    for r in 0..gain.len() {
                        for x in &mut values[indptr[r] as usize..indptr[r + 1] as usize] {
                            *x *= gain[r];
                        }
                    }
                }
            }
            let old: Vec<f32> = match bias {
                Some(Bias::F32(b)) => b.clone(),
                _ => vec![0.0; gain.len()],
            };
            let new = (0..gain.len())
                .map(|c| (old[c] - shift[c].0) * gain[c] + shift[c].1)
                .collect();
            *bias = Some(Bias::F32(new));
        }
        bypass(&mut graph, at);
    }
    graph.validate()?;
    Ok(graph)
}
