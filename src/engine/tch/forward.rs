//! The forward pass of a layer [`Graph`] in libtorch ops, node by node; autograd records it when gradients are
//! enabled.

use tch::{TchError, Tensor};

use crate::engine::cpu::BN_EPS;
use crate::nn::{Graph, Op};

/// How a forward pass treats batch norm.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum BnMode {
    /// Running statistics.
    Eval,
    /// Batch statistics; the running statistics move towards them by `factor`.
    Train { factor: f64 },
}

/// Runs `graph` on the batch `x` (N, C, H, W) and returns the logits (N, classes). `values` holds the graph's
/// tensors in [`Graph::tensors`] order and `first_tensor[i]` the index of node `i`'s first tensor. An activation
/// is dropped after its last consumer, so only what autograd saved stays alive.
pub fn forward(
    graph: &Graph,
    values: &[Tensor],
    first_tensor: &[Option<usize>],
    x: &Tensor,
    bn: BnMode,
) -> Result<Tensor, TchError> {
    let nodes = &graph.nodes;
    let mut last_use = vec![0usize; nodes.len()];
    for (i, n) in nodes.iter().enumerate() {
        for &j in &n.inputs {
            last_use[j] = i;
        }
    }
    let mut acts: Vec<Option<Tensor>> = (0..nodes.len()).map(|_| None).collect();
    acts[0] = Some(x.shallow_clone());
    for (i, node) in nodes.iter().enumerate().skip(1) {
        let input = |k: usize| -> &Tensor {
            acts[node.inputs[k]]
                .as_ref()
                .expect("inputs precede their consumers and live until their last use")
        };
        let param = |k: usize| -> &Tensor {
            &values[first_tensor[i].expect("a node with parameters has a first tensor") + k]
        };
        let y = match &node.op {
            Op::Input => unreachable!("only node 0 is the input"),
            &Op::Conv2d {
                stride,
                padding,
                bias,
                ..
            } => {
                let (s, p) = (stride as i64, padding as i64);
                input(0).f_conv2d(param(0), bias.then(|| param(1)), [s, s], [p, p], [1, 1], 1)?
            }
            &Op::Linear { bias, .. } => input(0).f_linear(param(0), bias.then(|| param(1)))?,
            Op::BatchNorm2d { .. } => {
                let (training, factor) = match bn {
                    BnMode::Eval => (false, 0.0),
                    BnMode::Train { factor } => (true, factor),
                };
                input(0).f_batch_norm(
                    Some(param(0)),
                    Some(param(1)),
                    Some(param(2)),
                    Some(param(3)),
                    training,
                    factor,
                    BN_EPS as f64,
                    true,
                )?
            }
            Op::Relu => input(0).f_relu()?,
            &Op::MaxPool2d { kernel, stride } => {
                let (k, s) = (kernel as i64, stride as i64);
                input(0).f_max_pool2d([k, k], [s, s], [0, 0], [1, 1], false)?
            }
            &Op::AvgPool2d { kernel, stride } => {
                let (k, s) = (kernel as i64, stride as i64);
                input(0).f_avg_pool2d([k, k], [s, s], [0, 0], false, true, None)?
            }
            Op::GlobalAvgPool => input(0).f_mean_dim([2i64, 3].as_slice(), false, None)?,
            Op::Flatten => input(0).f_flatten(1, -1)?,
            Op::Add => input(0).f_add(input(1))?,
            &Op::SubsamplePad {
                stride,
                pad_before,
                pad_after,
            } => {
                let s = stride as i64;
                input(0)
                    .f_slice(2, 0, None, s)?
                    .f_slice(3, 0, None, s)?
                    .f_constant_pad_nd([0, 0, 0, 0, pad_before as i64, pad_after as i64])?
            }
        };
        for &j in &node.inputs {
            if last_use[j] == i {
                acts[j] = None;
            }
        }
        acts[i] = Some(y);
    }
    Ok(acts.pop().flatten().expect("the last node is the output"))
}
