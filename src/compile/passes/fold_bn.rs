//! Folds every inference batch norm into a neighbouring linear op, `y = g·x + t` per channel with
//! `g = gamma / sqrt(var + eps)` and `t = beta − mean·g`:
//!
//! - backwards, into the convolution or gemm before it when that op feeds nothing else and has no fused ReLU:
//!   row `r` becomes `w' = w · g[r]`, `b' = (b − mean[r]) · g[r] + beta[r]`;
//! - otherwise forwards, into its readers when every one is a gemm or an unpadded convolution: column `j`
//!   (input channel `ch(j)`) becomes `w' = w · g[ch(j)]`, and `b'[r] = b[r] + Σ_j w[r, j] · t[ch(j)]`. (A
//!   padded convolution would see the padding shifted by `t`, so it cannot absorb a batch norm before it.)
//!
//! A batch norm that fits neither is an error naming it and its neighbours. CSR weights keep their pattern.

use crate::compile::ir::{Bias, Graph, Op, Storage, Weight};
use crate::compile::passes::rewrite::Rewrite;
use crate::error::{Error, Result};

/// Per-channel `(g, t, mean, beta)` of a batch norm.
type Affine = (Vec<f32>, Vec<f32>, Vec<f32>, Vec<f32>);

fn gain_shift(op: &Op) -> Option<Affine> {
    match op {
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
            let t: Vec<f32> = (0..g.len()).map(|c| beta[c] - mean[c] * g[c]).collect();
            Some((g, t, mean.clone(), beta.clone()))
        }
        _ => None,
    }
}

/// Scales stored entry `(r, c)` of `w` by `f(r, c)`.
fn scale_entries(w: &mut Weight, f: impl Fn(usize, usize) -> f32) {
    let cols = w.cols();
    match &mut w.storage {
        Storage::Dense(v) => {
            for (k, x) in v.iter_mut().enumerate() {
                *x *= f(k / cols, k % cols);
            }
        }
        Storage::Csr {
            indptr,
            indices,
            values,
            ..
        } => {
            for r in 0..indptr.len().saturating_sub(1) {
                for k in indptr[r] as usize..indptr[r + 1] as usize {
                    values[k] *= f(r, indices[k] as usize);
                }
            }
        }
    }
}

fn float_bias(bias: &Option<Bias>, rows: usize) -> Vec<f32> {
    match bias {
        Some(Bias::F32(b)) => b.clone(),
        _ => vec![0.0; rows],
    }
}

fn not_quantised(w: &Weight, name: &str) -> Result<()> {
    if w.scales.is_some() {
        return Err(Error::Invalid(format!(
            "fold_bn: '{name}' is already quantised"
        )));
    }
    Ok(())
}

/// Folds batch norm `at` into its readers (all gemms or unpadded convs, checked by the caller).
fn fold_forward(graph: &mut Graph, at: usize, g: &[f32], t: &[f32]) -> Result<()> {
    let shape = graph.nodes[at].shape.clone();
    let channels = shape.first().copied().unwrap_or(1).max(1);
    let plane = shape.iter().product::<usize>() / channels;
    for n in graph.nodes.iter_mut().filter(|n| n.inputs.contains(&at)) {
        let name = n.name.clone();
        let (weight, bias, per_channel) = match &mut n.op {
            Op::Gemm { weight, bias, .. } => (weight, bias, plane),
            Op::Conv { weight, bias, .. } => {
                let k = weight.shape[2] * weight.shape[3];
                (weight, bias, k)
            }
            _ => unreachable!("checked by the caller"),
        };
        not_quantised(weight, &name)?;
        let ch = |c: usize| c / per_channel.max(1);
        let mut b = float_bias(bias, weight.rows());
        let cols = weight.cols();
        let dense = weight.to_dense();
        for (r, br) in b.iter_mut().enumerate() {
            *br += (0..cols)
                .map(|c| dense[r * cols + c] * t[ch(c)])
                .sum::<f32>();
        }
        scale_entries(weight, |_, c| g[ch(c)]);
        *bias = Some(Bias::F32(b));
    }
    Ok(())
}

/// Returns the graph with every batch norm folded (see the module docs).
pub fn fold_bn(mut graph: Graph) -> Result<Graph> {
    let mut edits = Rewrite::new(&graph);
    let consumers = graph.consumers();
    let last = graph.nodes.len() - 1;
    for at in 1..graph.nodes.len() {
        let Some((gain, shift, mean, beta)) = gain_shift(&graph.nodes[at].op) else {
            continue;
        };
        let src = graph.nodes[at].inputs[0];
        let last_ok = at < last || src + 1 == at;
        let backward = consumers[src] == 1
            && last_ok
            && !edits.removes(src)
            && matches!(
                graph.nodes[src].op,
                Op::Conv { relu: false, .. } | Op::Gemm { relu: false, .. }
            );
        if backward {
            let name = graph.nodes[src].name.clone();
            if let Op::Conv { weight, bias, .. } | Op::Gemm { weight, bias, .. } =
                &mut graph.nodes[src].op
            {
                not_quantised(weight, &name)?;
                let old = float_bias(bias, gain.len());
                scale_entries(weight, |r, _| gain[r]);
                let new = (0..gain.len())
                    .map(|c| (old[c] - mean[c]) * gain[c] + beta[c])
                    .collect();
                *bias = Some(Bias::F32(new));
            }
            edits.bypass(at, src);
            continue;
        }
        let readers: Vec<&Op> = graph
            .nodes
            .iter()
            .filter(|n| n.inputs.contains(&at))
            .map(|n| &n.op)
            .collect();
        let forward = at < last
            && !readers.is_empty()
            && readers.iter().all(|op| match op {
                Op::Gemm { .. } => true,
                Op::Conv { padding, .. } => *padding == 0,
                _ => false,
            });
        if forward {
            fold_forward(&mut graph, at, &gain, &shift)?;
            edits.bypass(at, src);
            continue;
        }
        let n = &graph.nodes[at];
        let kinds: Vec<&str> = readers.iter().map(|op| op.kind()).collect();
        return Err(Error::Node {
            node: n.name.clone(),
            kind: n.op.kind(),
            msg: format!(
                "cannot be folded: it follows a {} that {} and is read by [{}]; a batch norm folds into the \
                 convolution or gemm before it (read by nothing else, no ReLU between) or into readers that \
                 are all gemms or unpadded convolutions",
                graph.nodes[src].op.kind(),
                if consumers[src] == 1 {
                    "feeds only it"
                } else {
                    "feeds other nodes too"
                },
                kinds.join(", ")
            ),
        });
    }
    edits.apply(graph)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compile::interp;
    use crate::compile::ir::{InputSpec, Weight};

    fn bn(c: usize) -> Op {
        Op::BatchNorm {
            gamma: (0..c).map(|i| 0.8 + 0.1 * i as f32).collect(),
            beta: (0..c).map(|i| 0.05 * i as f32 - 0.1).collect(),
            mean: (0..c).map(|i| 0.02 * i as f32).collect(),
            var: (0..c).map(|i| 0.5 + 0.2 * i as f32).collect(),
            eps: 1e-5,
        }
    }

    fn input() -> (Graph, Vec<f32>) {
        let g = Graph::new(InputSpec {
            shape: [2, 4, 4],
            mean: vec![0.1, 0.2],
            std: vec![0.5, 0.4],
        });
        let x = (0..32).map(|i| (i as f32 * 0.37).sin().abs()).collect();
        (g, x)
    }

    fn w(shape: Vec<usize>) -> Weight {
        let n: usize = shape.iter().product();
        let mut w = Weight::dense(
            shape,
            (0..n).map(|i| (i as f32 * 0.71).cos() * 0.3).collect(),
        );
        w.storage = w.to_csr(crate::compile::ir::IndexEncoding::CsrIdx32);
        w
    }

    #[test]
    fn a_batch_norm_after_a_pool_folds_into_the_readers() {
        let (mut g, x) = input();
        let p = g
            .push(
                "pool",
                Op::MaxPool {
                    kernel: 2,
                    stride: 2,
                },
                vec![0],
            )
            .unwrap();
        let b = g.push("bn", bn(2), vec![p]).unwrap();
        let c = g
            .push(
                "conv",
                Op::Conv {
                    weight: w(vec![3, 2, 1, 1]),
                    bias: None,
                    stride: 1,
                    padding: 0,
                    relu: false,
                },
                vec![b],
            )
            .unwrap();
        let fc = Op::Gemm {
            weight: w(vec![3, 12]),
            bias: Some(Bias::F32(vec![0.1, 0.0, -0.1])),
            relu: false,
        };
        g.push("fc", fc, vec![c]).unwrap();
        let folded = fold_bn(g.clone()).unwrap();
        folded.validate().unwrap();
        assert!(!folded
            .nodes
            .iter()
            .any(|n| matches!(n.op, Op::BatchNorm { .. })));
        let (a, b) = (
            interp::run(&g, &x).unwrap(),
            interp::run(&folded, &x).unwrap(),
        );
        for (u, v) in a.iter().zip(&b) {
            assert!((u - v).abs() < 1e-5, "{a:?} vs {b:?}");
        }
    }

    #[test]
    fn a_batch_norm_before_a_padded_conv_is_refused_by_name() {
        let (mut g, _) = input();
        let r = g.push("relu", Op::Relu, vec![0]).unwrap();
        let b = g.push("bn", bn(2), vec![r]).unwrap();
        let conv = Op::Conv {
            weight: w(vec![2, 2, 3, 3]),
            bias: None,
            stride: 1,
            padding: 1,
            relu: false,
        };
        let c = g.push("conv", conv, vec![b]).unwrap();
        g.push("gap", Op::GlobalAvgPool, vec![c]).unwrap();
        let e = fold_bn(g).unwrap_err();
        assert_eq!(e.node(), Some("bn"));
        assert!(e.to_string().contains("unpadded"), "{e}");
    }
}
