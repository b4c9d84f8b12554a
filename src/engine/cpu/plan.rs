//! Execution plan of a layer graph: the kernel of every node with its geometry, which activation and gradient
//! buffer it uses, and which ReLUs are fused into their producer.
//!
//! A ReLU whose producer (conv, linear, batch norm or add) has no other consumer is computed in place by the
//! producer: the ReLU node then shares the producer's activation and gradient buffers and only masks the
//! gradient in its backward (a batch norm applies that mask inside its own backward instead). A flatten
//! shares its input's buffers (same data, different per-sample shape). A convolution that feeds only a batch
//! norm hands it the statistics of its output, collected as it writes it.

use super::kernels::{conv::ConvGeom, elementwise::SubsamplePad, pool::PoolGeom};
use crate::error::{Error, Result};
use crate::nn::{Graph, Op};

/// What a node computes.
#[derive(Debug, Clone, PartialEq)]
pub enum Kernel {
    Input,
    Conv {
        geom: ConvGeom,
        bias: bool,
    },
    Linear {
        nin: usize,
        nout: usize,
        bias: bool,
    },
    BatchNorm {
        c: usize,
        hw: usize,
    },
    Relu,
    /// ReLU computed in place by its producer; backward masks the shared gradient.
    FusedRelu,
    MaxPool {
        geom: PoolGeom,
    },
    AvgPool {
        geom: PoolGeom,
    },
    GlobalAvgPool {
        hw: usize,
    },
    /// Shares its input's buffers.
    Flatten,
    Add,
    SubsamplePad(SubsamplePad),
}

/// One node of the plan.
#[derive(Debug, Clone)]
pub struct NodePlan {
    pub kernel: Kernel,
    pub inputs: Vec<usize>,
    /// Activation buffer id.
    pub act: usize,
    /// Output-gradient buffer id.
    pub grad: usize,
    /// Values per sample of the output.
    pub numel: usize,
    /// The node applies ReLU to its own output (a fused ReLU follows).
    pub relu_after: bool,
    /// Index of the node's first tensor in [`Graph::tensors`] order (weight, bias / BN weight, bias, mean, var).
    pub first_tensor: Option<usize>,
    /// The output depends on parameters, so its gradient is needed.
    pub requires_grad: bool,
    /// A convolution whose only consumer is a batch norm: train-mode forwards collect the per-channel sums of
    /// its output while writing it, and the batch norm takes its statistics from them.
    pub sums_for_bn: bool,
}

/// The plan of a whole graph.
#[derive(Debug, Clone)]
pub struct Plan {
    pub nodes: Vec<NodePlan>,
    /// Per-sample size of every buffer.
    pub buffers: Vec<usize>,
}

fn model_err(name: &str, msg: String) -> Error {
    Error::Model(format!("{name}: {msg}"))
}

impl Plan {
    /// Checks every node's shape against its op and inputs and lays out the buffers.
    pub fn new(graph: &Graph) -> Result<Self> {
        let n = graph.nodes.len();
        if n == 0 || graph.shapes.len() != n || graph.nodes[0].op != Op::Input {
            return Err(Error::Model(
                "graph must start with its input node and give every node a shape".into(),
            ));
        }
        let mut consumers = vec![0usize; n];
        for (i, node) in graph.nodes.iter().enumerate() {
            for &j in &node.inputs {
                if j >= i {
                    return Err(model_err(
                        &node.name,
                        format!("input {j} is not an earlier node"),
                    ));
                }
                consumers[j] += 1;
            }
        }
        let mut tensor_at = 0usize;
        let mut nodes: Vec<NodePlan> = Vec::with_capacity(n);
        let mut buffers = Vec::new();
        for (i, node) in graph.nodes.iter().enumerate() {
            let name = &node.name;
            let arity = match node.op {
                Op::Input => 0,
                Op::Add => 2,
                _ => 1,
            };
            if node.inputs.len() != arity {
                return Err(model_err(
                    name,
                    format!("expects {arity} inputs, got {}", node.inputs.len()),
                ));
            }
            let ins: Vec<&[usize]> = node
                .inputs
                .iter()
                .map(|&j| graph.shapes[j].as_slice())
                .collect();
            let chw = |s: &[usize]| -> Result<(usize, usize, usize)> {
                match *s {
                    [c, h, w] => Ok((c, h, w)),
                    _ => Err(model_err(
                        name,
                        format!("needs a (C, H, W) input, got {s:?}"),
                    )),
                }
            };
            let (kernel, shape, ntensors): (Kernel, Vec<usize>, usize) = match &node.op {
                Op::Input => (Kernel::Input, graph.shapes[0].clone(), 0),
                &Op::Conv2d {
                    in_channels,
                    out_channels,
                    kernel,
                    stride,
                    padding,
                    bias,
                } => {
                    let (c, h, w) = chw(ins[0])?;
                    if c != in_channels {
                        return Err(model_err(
                            name,
                            format!("expects {in_channels} channels, got {c}"),
                        ));
                    }
                    let geom = ConvGeom::new(c, out_channels, h, w, kernel, stride, padding)
                        .ok_or_else(|| model_err(name, "kernel does not fit the input".into()))?;
                    (
                        Kernel::Conv { geom, bias },
                        vec![out_channels, geom.oh, geom.ow],
                        1 + bias as usize,
                    )
                }
                &Op::Linear {
                    in_features,
                    out_features,
                    bias,
                } => {
                    if ins[0] != [in_features] {
                        return Err(model_err(
                            name,
                            format!("expects ({in_features},) features, got {:?}", ins[0]),
                        ));
                    }
                    let k = Kernel::Linear {
                        nin: in_features,
                        nout: out_features,
                        bias,
                    };
                    (k, vec![out_features], 1 + bias as usize)
                }
                &Op::BatchNorm2d { channels } => {
                    let (c, h, w) = chw(ins[0])?;
                    if c != channels {
                        return Err(model_err(
                            name,
                            format!("expects {channels} channels, got {c}"),
                        ));
                    }
                    (Kernel::BatchNorm { c, hw: h * w }, ins[0].to_vec(), 4)
                }
                Op::Relu => (Kernel::Relu, ins[0].to_vec(), 0),
                &Op::MaxPool2d { kernel, stride } | &Op::AvgPool2d { kernel, stride } => {
                    let (c, h, w) = chw(ins[0])?;
                    let geom = PoolGeom::new(h, w, kernel, stride)
                        .ok_or_else(|| model_err(name, "window does not fit the input".into()))?;
                    let k = if matches!(node.op, Op::MaxPool2d { .. }) {
                        Kernel::MaxPool { geom }
                    } else {
                        Kernel::AvgPool { geom }
                    };
                    (k, vec![c, geom.oh, geom.ow], 0)
                }
                Op::GlobalAvgPool => {
                    let (c, h, w) = chw(ins[0])?;
                    (Kernel::GlobalAvgPool { hw: h * w }, vec![c], 0)
                }
                Op::Flatten => (Kernel::Flatten, vec![ins[0].iter().product()], 0),
                Op::Add => {
                    if ins[0] != ins[1] {
                        return Err(model_err(
                            name,
                            format!("cannot add shapes {:?} and {:?}", ins[0], ins[1]),
                        ));
                    }
                    (Kernel::Add, ins[0].to_vec(), 0)
                }
                &Op::SubsamplePad {
                    stride,
                    pad_before,
                    pad_after,
                } => {
                    let (c, h, w) = chw(ins[0])?;
                    if stride == 0 {
                        return Err(model_err(name, "stride must be positive".into()));
                    }
                    let sp = SubsamplePad {
                        c,
                        h,
                        w,
                        stride,
                        pad_before,
                        pad_after,
                    };
                    (
                        Kernel::SubsamplePad(sp),
                        vec![sp.out_channels(), sp.oh(), sp.ow()],
                        0,
                    )
                }
            };
            if shape != graph.shapes[i] {
                return Err(model_err(
                    name,
                    format!(
                        "graph gives shape {:?} but the op produces {shape:?}",
                        graph.shapes[i]
                    ),
                ));
            }
            let first_tensor = (ntensors > 0).then_some(tensor_at);
            tensor_at += ntensors;
            let numel = shape.iter().product();
            let requires_grad =
                first_tensor.is_some() || node.inputs.iter().any(|&j| nodes[j].requires_grad);
            let mut kernel = kernel;
            let fuse_into = match kernel {
                Kernel::Relu => {
                    let p = node.inputs[0];
                    let fusable = matches!(
                        nodes[p].kernel,
                        Kernel::Conv { .. }
                            | Kernel::Linear { .. }
                            | Kernel::BatchNorm { .. }
                            | Kernel::Add
                    );
                    (fusable && consumers[p] == 1 && !nodes[p].relu_after).then_some(p)
                }
                _ => None,
            };
            let (act, grad) = if let Some(p) = fuse_into {
                nodes[p].relu_after = true;
                kernel = Kernel::FusedRelu;
                (nodes[p].act, nodes[p].grad)
            } else if kernel == Kernel::Flatten {
                let src = &nodes[node.inputs[0]];
                (src.act, src.grad)
            } else {
                buffers.push(numel);
                buffers.push(numel);
                (buffers.len() - 2, buffers.len() - 1)
            };
            nodes.push(NodePlan {
                kernel,
                inputs: node.inputs.clone(),
                act,
                grad,
                numel,
                relu_after: false,
                first_tensor,
                requires_grad,
                sums_for_bn: false,
            });
        }
        for i in 0..n {
            if let (Kernel::BatchNorm { .. }, Some(&p)) =
                (&nodes[i].kernel, nodes[i].inputs.first())
            {
                if consumers[p] == 1 && matches!(nodes[p].kernel, Kernel::Conv { .. }) {
                    nodes[p].sums_for_bn = true;
                }
            }
        }
        Ok(Plan { nodes, buffers })
    }
}
