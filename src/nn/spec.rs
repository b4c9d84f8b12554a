//! Architectures as data. A [`ModelSpec`] names an architecture and its hyperparameters; [`ModelSpec::graph`]
//! expands it into a [`Graph`] of layers whose parameters carry stable, PyTorch-style paths.

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// Shortcut used by CIFAR ResNets when the shape changes between blocks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Shortcut {
    /// Option A of He et al.: spatial subsampling and zero-padded channels, no parameters.
    Identity,
    /// Option B: 1x1 convolution + batch norm.
    Projection,
}

/// Which LeNet-5.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LeNet5Variant {
    /// conv 6@5x5 (padding 2), conv 16@5x5, fc 120, fc 84, fc classes.
    Classic,
    /// The Caffe variant: conv 20@5x5, conv 50@5x5, fc 500, fc classes.
    Caffe,
}

/// Architecture family and its hyperparameters.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "arch", rename_all = "snake_case", deny_unknown_fields)]
pub enum Arch {
    /// Fully connected network with ReLU between layers.
    Mlp { hidden: Vec<usize> },
    #[serde(rename = "lenet5")]
    LeNet5 { variant: LeNet5Variant },
    /// CIFAR ResNet of depth 6n+2 (20, 32, 56, ...).
    #[serde(rename = "resnet_cifar")]
    ResNetCifar { depth: usize, shortcut: Shortcut },
    /// ResNet-18 with the CIFAR stem (3x3 stride-1 conv, no max-pool).
    #[serde(rename = "resnet18")]
    ResNet18,
    /// VGG-16 with batch norm, CIFAR head (global average pool, one fc).
    #[serde(rename = "vgg16_bn")]
    Vgg16Bn,
}

/// A model: architecture, input shape (C, H, W) and number of classes. Unknown keys are rejected by the
/// flattened `arch` variant (serde cannot combine `flatten` with `deny_unknown_fields` on this struct).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModelSpec {
    #[serde(flatten)]
    pub arch: Arch,
    pub input: [usize; 3],
    pub classes: usize,
}

/// One operation of the layer graph.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Op {
    /// The network input, shape (C, H, W) per sample.
    Input,
    Conv2d {
        in_channels: usize,
        out_channels: usize,
        kernel: usize,
        stride: usize,
        padding: usize,
        bias: bool,
    },
    Linear {
        in_features: usize,
        out_features: usize,
        bias: bool,
    },
    BatchNorm2d {
        channels: usize,
    },
    Relu,
    MaxPool2d {
        kernel: usize,
        stride: usize,
    },
    AvgPool2d {
        kernel: usize,
        stride: usize,
    },
    GlobalAvgPool,
    Flatten,
    /// Elementwise sum of the two inputs.
    Add,
    /// Option-A shortcut: take every `stride`-th pixel, then zero-pad channels `pad_before` / `pad_after`.
    SubsamplePad {
        stride: usize,
        pad_before: usize,
        pad_after: usize,
    },
}

/// A node: its name (the parameter prefix), operation and the indices of its input nodes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Node {
    pub name: String,
    pub op: Op,
    pub inputs: Vec<usize>,
}

/// Layer graph in topological order; node 0 is the input and the last node is the output (logits).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Graph {
    pub nodes: Vec<Node>,
    /// Per-sample output shape of every node (C, H, W) or (F,).
    pub shapes: Vec<Vec<usize>>,
}

/// What a named tensor is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TensorRole {
    /// Conv or linear weight: prunable.
    Weight,
    Bias,
    BnWeight,
    BnBias,
    /// BatchNorm running statistics: not trained by SGD.
    RunningMean,
    RunningVar,
}

/// A named tensor of the model: parameter or buffer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TensorInfo {
    pub path: String,
    pub shape: Vec<usize>,
    pub role: TensorRole,
    /// The node that owns it.
    pub node: usize,
}

impl TensorInfo {
    /// Trained by the optimiser (everything but BN running statistics).
    pub fn is_param(&self) -> bool {
        !matches!(self.role, TensorRole::RunningMean | TensorRole::RunningVar)
    }
    /// Conv and linear weights; biases and BN are never pruned.
    pub fn is_prunable(&self) -> bool {
        self.role == TensorRole::Weight
    }
    /// An [`Error::Shape`] naming this tensor unless `got` is its shape.
    pub fn check_shape(&self, got: &[usize]) -> Result<()> {
        if got != self.shape.as_slice() {
            return Err(Error::Shape {
                name: self.path.clone(),
                expected: self.shape.clone(),
                got: got.to_vec(),
            });
        }
        Ok(())
    }
}

impl ModelSpec {
    /// Builds a spec from a short name: `mlp`, `lenet300`, `lenet5`, `lenet5caffe`, `resnet20`, `resnet20b`,
    /// `resnet32`, `resnet56`, `resnet18`, `vgg16`, for the given input shape and classes.
    pub fn from_name(name: &str, input: [usize; 3], classes: usize) -> Result<Self> {
        let arch = match name {
            "mlp" | "lenet300" | "lenet-300-100" => Arch::Mlp {
                hidden: vec![300, 100],
            },
            "lenet5" => Arch::LeNet5 {
                variant: LeNet5Variant::Classic,
            },
            "lenet5caffe" | "lenet5-caffe" => Arch::LeNet5 {
                variant: LeNet5Variant::Caffe,
            },
            "resnet20" | "resnet32" | "resnet56" | "resnet20b" | "resnet32b" | "resnet56b" => {
                let depth = name[6..8].parse().expect("two-digit depth");
                let shortcut = if name.ends_with('b') {
                    Shortcut::Projection
                } else {
                    Shortcut::Identity
                };
                Arch::ResNetCifar { depth, shortcut }
            }
            "resnet18" => Arch::ResNet18,
            "vgg16" | "vgg16bn" => Arch::Vgg16Bn,
            other => {
                return Err(Error::Model(format!(
                    "unknown model {} (known: mlp, lenet300, lenet5, lenet5caffe, resnet20, resnet20b, \
                     resnet32, resnet32b, resnet56, resnet56b, resnet18, vgg16)",
                    crate::error::quote(other)
                )))
            }
        };
        let spec = ModelSpec {
            arch,
            input,
            classes,
        };
        spec.graph()?;
        Ok(spec)
    }

    /// Expands the architecture into its layer graph, checking that the input shape fits and that every size
    /// is within [`MAX_ELEMENTS`], [`MAX_HIDDEN_LAYERS`] and [`MAX_RESNET_DEPTH`]; all size arithmetic is
    /// checked, so a spec read from a file with absurd numbers is an error, never a wrapped size.
    pub fn graph(&self) -> Result<Graph> {
        self.check_sizes()?;
        let mut b = GraphBuilder::new(self.input);
        let x = 0;
        let out = match &self.arch {
            Arch::Mlp { hidden } => {
                let mut h = b.push("flatten", Op::Flatten, vec![x])?;
                let mut dims = vec![b.numel(h)];
                dims.extend(hidden.iter().copied());
                for (i, w) in dims.windows(2).enumerate() {
                    h = b.linear(&format!("fc{}", i + 1), h, w[1])?;
                    h = b.push(&format!("relu{}", i + 1), Op::Relu, vec![h])?;
                }
                b.linear(&format!("fc{}", dims.len()), h, self.classes)?
            }
            Arch::LeNet5 { variant } => {
                let (c1, c2, pad, fcs): (usize, usize, usize, &[usize]) = match variant {
                    LeNet5Variant::Classic => (6, 16, 2, &[120, 84]),
                    LeNet5Variant::Caffe => (20, 50, 0, &[500]),
                };
                let mut h = b.conv("conv1", x, c1, 5, 1, pad, true)?;
                h = b.push("relu1", Op::Relu, vec![h])?;
                h = b.push(
                    "pool1",
                    Op::MaxPool2d {
                        kernel: 2,
                        stride: 2,
                    },
                    vec![h],
                )?;
                h = b.conv("conv2", h, c2, 5, 1, 0, true)?;
                h = b.push("relu2", Op::Relu, vec![h])?;
                h = b.push(
                    "pool2",
                    Op::MaxPool2d {
                        kernel: 2,
                        stride: 2,
                    },
                    vec![h],
                )?;
                h = b.push("flatten", Op::Flatten, vec![h])?;
                for (i, &f) in fcs.iter().enumerate() {
                    h = b.linear(&format!("fc{}", i + 1), h, f)?;
                    h = b.push(&format!("relu{}", i + 3), Op::Relu, vec![h])?;
                }
                b.linear(&format!("fc{}", fcs.len() + 1), h, self.classes)?
            }
            Arch::ResNetCifar { depth, shortcut } => {
                if *depth < 8 || (depth - 2) % 6 != 0 {
                    return Err(Error::Model(format!(
                        "CIFAR ResNet depth must be 6n+2 (20, 32, 56, ...), got {depth}"
                    )));
                }
                let n = (depth - 2) / 6;
                let mut h = b.conv("conv1", x, 16, 3, 1, 1, false)?;
                h = b.bn("bn1", h)?;
                h = b.push("relu", Op::Relu, vec![h])?;
                for (stage, (width, stride)) in [(16, 1), (32, 2), (64, 2)].into_iter().enumerate()
                {
                    for i in 0..n {
                        let s = if i == 0 { stride } else { 1 };
                        h = b.basic_block(
                            &format!("layer{}.{i}", stage + 1),
                            h,
                            width,
                            s,
                            *shortcut,
                        )?;
                    }
                }
                h = b.push("avgpool", Op::GlobalAvgPool, vec![h])?;
                b.linear("fc", h, self.classes)?
            }
            Arch::ResNet18 => {
                let mut h = b.conv("conv1", x, 64, 3, 1, 1, false)?;
                h = b.bn("bn1", h)?;
                h = b.push("relu", Op::Relu, vec![h])?;
                for (stage, (width, stride)) in [(64, 1), (128, 2), (256, 2), (512, 2)]
                    .into_iter()
                    .enumerate()
                {
                    for i in 0..2 {
                        let s = if i == 0 { stride } else { 1 };
                        h = b.basic_block(
                            &format!("layer{}.{i}", stage + 1),
                            h,
                            width,
                            s,
                            Shortcut::Projection,
                        )?;
                    }
                }
                h = b.push("avgpool", Op::GlobalAvgPool, vec![h])?;
                b.linear("fc", h, self.classes)?
            }
            Arch::Vgg16Bn => {
                const CFG: [usize; 18] = [
                    64, 64, 0, 128, 128, 0, 256, 256, 256, 0, 512, 512, 512, 0, 512, 512, 512, 0,
                ];
                let mut h = x;
                let mut conv_i = 0;
                for (i, &c) in CFG.iter().enumerate() {
                    if c == 0 {
                        h = b.push(
                            &format!("pool{i}"),
                            Op::MaxPool2d {
                                kernel: 2,
                                stride: 2,
                            },
                            vec![h],
                        )?;
                    } else {
                        conv_i += 1;
                        h = b.conv(&format!("conv{conv_i}"), h, c, 3, 1, 1, false)?;
                        h = b.bn(&format!("bn{conv_i}"), h)?;
                        h = b.push(&format!("relu{conv_i}"), Op::Relu, vec![h])?;
                    }
                }
                h = b.push("avgpool", Op::GlobalAvgPool, vec![h])?;
                b.linear("fc", h, self.classes)?
            }
        };
        debug_assert_eq!(out + 1, b.nodes.len());
        let g = Graph {
            nodes: b.nodes,
            shapes: b.shapes,
        };
        let mut total = 0usize;
        for t in g.tensors() {
            let n = checked_numel(&t.shape)
                .filter(|&n| n <= MAX_ELEMENTS)
                .ok_or_else(|| {
                    Error::Model(format!(
                        "tensor {} of shape {:?} has more than {MAX_ELEMENTS} elements",
                        t.path, t.shape
                    ))
                })?;
            total = total.saturating_add(n);
        }
        if total > MAX_ELEMENTS {
            return Err(Error::Model(format!(
                "the model has {total} parameter and buffer elements, more than {MAX_ELEMENTS}"
            )));
        }
        Ok(g)
    }

    /// The size limits that hold before the graph is expanded: positive input dims and classes, bounded
    /// hidden layers and depth.
    fn check_sizes(&self) -> Result<()> {
        let bad = |m: String| Err(Error::Model(m));
        if self.input.contains(&0) || checked_numel(&self.input).is_none_or(|n| n > MAX_ELEMENTS) {
            return bad(format!(
                "input shape {:?} must have positive dimensions and at most {MAX_ELEMENTS} values",
                self.input
            ));
        }
        if self.classes == 0 || self.classes > MAX_ELEMENTS {
            return bad(format!(
                "classes must be in 1..={MAX_ELEMENTS}, got {}",
                self.classes
            ));
        }
        match &self.arch {
            Arch::Mlp { hidden } => {
                if hidden.len() > MAX_HIDDEN_LAYERS {
                    return bad(format!(
                        "an MLP may have at most {MAX_HIDDEN_LAYERS} hidden layers, got {}",
                        hidden.len()
                    ));
                }
                if let Some(i) = hidden.iter().position(|&h| h == 0 || h > MAX_ELEMENTS) {
                    return bad(format!(
                        "hidden layer {i} has {} units, expected 1..={MAX_ELEMENTS}",
                        hidden[i]
                    ));
                }
            }
            Arch::ResNetCifar { depth, .. } if *depth > MAX_RESNET_DEPTH => {
                return bad(format!(
                    "CIFAR ResNet depth must be at most {MAX_RESNET_DEPTH}, got {depth}"
                ));
            }
            _ => {}
        }
        Ok(())
    }

    /// A short human-readable name, e.g. `resnet20`.
    pub fn name(&self) -> String {
        match &self.arch {
            Arch::Mlp { hidden } => format!(
                "mlp-{}",
                hidden
                    .iter()
                    .map(|h| h.to_string())
                    .collect::<Vec<_>>()
                    .join("-")
            ),
            Arch::LeNet5 {
                variant: LeNet5Variant::Classic,
            } => "lenet5".into(),
            Arch::LeNet5 {
                variant: LeNet5Variant::Caffe,
            } => "lenet5caffe".into(),
            Arch::ResNetCifar { depth, shortcut } => match shortcut {
                Shortcut::Identity => format!("resnet{depth}"),
                Shortcut::Projection => format!("resnet{depth}b"),
            },
            Arch::ResNet18 => "resnet18".into(),
            Arch::Vgg16Bn => "vgg16bn".into(),
        }
    }
}

impl Graph {
    /// Every named tensor (parameters then buffers of each node, in node order).
    pub fn tensors(&self) -> Vec<TensorInfo> {
        let mut out = Vec::new();
        for (i, n) in self.nodes.iter().enumerate() {
            let mut add = |suffix: &str, shape: Vec<usize>, role| {
                out.push(TensorInfo {
                    path: format!("{}.{suffix}", n.name),
                    shape,
                    role,
                    node: i,
                })
            };
            match &n.op {
                Op::Conv2d {
                    in_channels,
                    out_channels,
                    kernel,
                    bias,
                    ..
                } => {
                    add(
                        "weight",
                        vec![*out_channels, *in_channels, *kernel, *kernel],
                        TensorRole::Weight,
                    );
                    if *bias {
                        add("bias", vec![*out_channels], TensorRole::Bias);
                    }
                }
                Op::Linear {
                    in_features,
                    out_features,
                    bias,
                } => {
                    add(
                        "weight",
                        vec![*out_features, *in_features],
                        TensorRole::Weight,
                    );
                    if *bias {
                        add("bias", vec![*out_features], TensorRole::Bias);
                    }
                }
                Op::BatchNorm2d { channels } => {
                    add("weight", vec![*channels], TensorRole::BnWeight);
                    add("bias", vec![*channels], TensorRole::BnBias);
                    add("running_mean", vec![*channels], TensorRole::RunningMean);
                    add("running_var", vec![*channels], TensorRole::RunningVar);
                }
                _ => {}
            }
        }
        out
    }

    /// Multiply-accumulates of one forward pass for one sample.
    pub fn forward_macs(&self) -> u64 {
        self.nodes
            .iter()
            .enumerate()
            .map(|(i, n)| match &n.op {
                Op::Conv2d {
                    in_channels,
                    kernel,
                    ..
                } => {
                    let s = &self.shapes[i];
                    (s.iter().product::<usize>() * in_channels * kernel * kernel) as u64
                }
                Op::Linear {
                    in_features,
                    out_features,
                    ..
                } => (in_features * out_features) as u64,
                _ => 0,
            })
            .sum()
    }
}

/// The most elements of one tensor, of one sample's activation, and of all parameters of a model together.
pub const MAX_ELEMENTS: usize = 1 << 31;
/// The most hidden layers of an MLP.
pub const MAX_HIDDEN_LAYERS: usize = 1000;
/// The largest depth of a CIFAR ResNet (ResNet-1202, the deepest in He et al., is well within it).
pub const MAX_RESNET_DEPTH: usize = 10_000;

/// The product of `dims`, `None` on overflow.
fn checked_numel(dims: &[usize]) -> Option<usize> {
    dims.iter().try_fold(1usize, |a, &d| a.checked_mul(d))
}

struct GraphBuilder {
    nodes: Vec<Node>,
    shapes: Vec<Vec<usize>>,
}

impl GraphBuilder {
    fn new(input: [usize; 3]) -> Self {
        GraphBuilder {
            nodes: vec![Node {
                name: "input".into(),
                op: Op::Input,
                inputs: vec![],
            }],
            shapes: vec![input.to_vec()],
        }
    }

    /// Elements of node `i`'s output; [`GraphBuilder::push`] keeps it at most [`MAX_ELEMENTS`].
    fn numel(&self, i: usize) -> usize {
        self.shapes[i].iter().product()
    }

    fn chw(&self, i: usize, who: &str) -> Result<(usize, usize, usize)> {
        match self.shapes[i][..] {
            [c, h, w] => Ok((c, h, w)),
            _ => Err(Error::Model(format!(
                "{who} needs a (C, H, W) input, got {:?}",
                self.shapes[i]
            ))),
        }
    }

    fn push(&mut self, name: &str, op: Op, inputs: Vec<usize>) -> Result<usize> {
        let shape = self.infer(name, &op, &inputs)?;
        if checked_numel(&shape).is_none_or(|n| n > MAX_ELEMENTS) {
            return Err(Error::Model(format!(
                "{name}: output shape {shape:?} has more than {MAX_ELEMENTS} values"
            )));
        }
        self.nodes.push(Node {
            name: name.into(),
            op,
            inputs,
        });
        self.shapes.push(shape);
        Ok(self.nodes.len() - 1)
    }

    fn infer(&self, name: &str, op: &Op, inputs: &[usize]) -> Result<Vec<usize>> {
        let x = inputs[0];
        let overflow = || Error::Model(format!("{name}: a size overflows"));
        let pooled = |k: usize, s: usize, h: usize| -> Result<usize> {
            if k == 0 || s == 0 {
                Err(Error::Model(format!(
                    "{name}: window {k} and stride {s} must be positive"
                )))
            } else if h < k {
                Err(Error::Model(format!(
                    "{name}: input of size {h} is smaller than the window {k}"
                )))
            } else {
                Ok((h - k) / s + 1)
            }
        };
        Ok(match op {
            Op::Input => unreachable!("the input node is created by the builder"),
            Op::Conv2d {
                in_channels,
                out_channels,
                kernel,
                stride,
                padding,
                ..
            } => {
                let (c, h, w) = self.chw(x, name)?;
                if c != *in_channels {
                    return Err(Error::Model(format!(
                        "{name}: expects {in_channels} channels, got {c}"
                    )));
                }
                let pad2 = padding.checked_mul(2).ok_or_else(overflow)?;
                let oh = pooled(*kernel, *stride, h.checked_add(pad2).ok_or_else(overflow)?)?;
                let ow = pooled(*kernel, *stride, w.checked_add(pad2).ok_or_else(overflow)?)?;
                vec![*out_channels, oh, ow]
            }
            Op::Linear {
                in_features,
                out_features,
                ..
            } => {
                if self.numel(x) != *in_features || self.shapes[x].len() != 1 {
                    return Err(Error::Model(format!(
                        "{name}: expects {in_features} features, got shape {:?}",
                        self.shapes[x]
                    )));
                }
                vec![*out_features]
            }
            Op::BatchNorm2d { .. } | Op::Relu => self.shapes[x].clone(),
            Op::MaxPool2d { kernel, stride } | Op::AvgPool2d { kernel, stride } => {
                let (c, h, w) = self.chw(x, name)?;
                vec![
                    c,
                    pooled(*kernel, *stride, h)?,
                    pooled(*kernel, *stride, w)?,
                ]
            }
            Op::GlobalAvgPool => vec![self.chw(x, name)?.0],
            Op::Flatten => vec![self.numel(x)],
            Op::Add => {
                if self.shapes[inputs[0]] != self.shapes[inputs[1]] {
                    return Err(Error::Model(format!(
                        "{name}: cannot add shapes {:?} and {:?}",
                        self.shapes[inputs[0]], self.shapes[inputs[1]]
                    )));
                }
                self.shapes[x].clone()
            }
            Op::SubsamplePad {
                stride,
                pad_before,
                pad_after,
            } => {
                let (c, h, w) = self.chw(x, name)?;
                if *stride == 0 {
                    return Err(Error::Model(format!("{name}: stride must be positive")));
                }
                let c = c
                    .checked_add(*pad_before)
                    .and_then(|c| c.checked_add(*pad_after))
                    .ok_or_else(overflow)?;
                vec![c, h.div_ceil(*stride), w.div_ceil(*stride)]
            }
        })
    }

    #[allow(clippy::too_many_arguments)]
    fn conv(
        &mut self,
        name: &str,
        x: usize,
        out: usize,
        k: usize,
        s: usize,
        p: usize,
        bias: bool,
    ) -> Result<usize> {
        let (c, _, _) = self.chw(x, name)?;
        self.push(
            name,
            Op::Conv2d {
                in_channels: c,
                out_channels: out,
                kernel: k,
                stride: s,
                padding: p,
                bias,
            },
            vec![x],
        )
    }

    fn linear(&mut self, name: &str, x: usize, out: usize) -> Result<usize> {
        let x = if self.shapes[x].len() == 1 {
            x
        } else {
            self.push(&format!("{name}.flatten"), Op::Flatten, vec![x])?
        };
        let inf = self.numel(x);
        self.push(
            name,
            Op::Linear {
                in_features: inf,
                out_features: out,
                bias: true,
            },
            vec![x],
        )
    }

    fn bn(&mut self, name: &str, x: usize) -> Result<usize> {
        let (c, _, _) = self.chw(x, name)?;
        self.push(name, Op::BatchNorm2d { channels: c }, vec![x])
    }

    fn basic_block(
        &mut self,
        p: &str,
        x: usize,
        width: usize,
        stride: usize,
        shortcut: Shortcut,
    ) -> Result<usize> {
        let (cin, _, _) = self.chw(x, p)?;
        let mut h = self.conv(&format!("{p}.conv1"), x, width, 3, stride, 1, false)?;
        h = self.bn(&format!("{p}.bn1"), h)?;
        h = self.push(&format!("{p}.relu1"), Op::Relu, vec![h])?;
        h = self.conv(&format!("{p}.conv2"), h, width, 3, 1, 1, false)?;
        h = self.bn(&format!("{p}.bn2"), h)?;
        let sc = if stride == 1 && cin == width {
            x
        } else {
            match shortcut {
                Shortcut::Identity => {
                    let pad = width.checked_sub(cin).ok_or_else(|| {
                        Error::Model(format!(
                            "{p}: an identity shortcut cannot narrow {cin} channels to {width} \
                             (use the projection variant)"
                        ))
                    })?;
                    self.push(
                        &format!("{p}.shortcut"),
                        Op::SubsamplePad {
                            stride,
                            pad_before: pad / 2,
                            pad_after: pad - pad / 2,
                        },
                        vec![x],
                    )?
                }
                Shortcut::Projection => {
                    let s = self.conv(&format!("{p}.shortcut.0"), x, width, 1, stride, 0, false)?;
                    self.bn(&format!("{p}.shortcut.1"), s)?
                }
            }
        };
        h = self.push(&format!("{p}.add"), Op::Add, vec![h, sc])?;
        self.push(&format!("{p}.relu2"), Op::Relu, vec![h])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn count_params(spec: &ModelSpec) -> usize {
        spec.graph()
            .unwrap()
            .tensors()
            .iter()
            .filter(|t| t.is_param())
            .map(|t| t.shape.iter().product::<usize>())
            .sum()
    }

    #[test]
    fn parameter_counts_match_the_literature() {
        let mnist = [1, 28, 28];
        let cifar = [3, 32, 32];
        assert_eq!(
            count_params(&ModelSpec::from_name("lenet300", mnist, 10).unwrap()),
            266_610
        );
        assert_eq!(
            count_params(&ModelSpec::from_name("lenet5", mnist, 10).unwrap()),
            61_706
        );
        assert_eq!(
            count_params(&ModelSpec::from_name("lenet5caffe", mnist, 10).unwrap()),
            431_080
        );
        assert_eq!(
            count_params(&ModelSpec::from_name("resnet20", cifar, 10).unwrap()),
            269_722
        );
        assert_eq!(
            count_params(&ModelSpec::from_name("resnet56", cifar, 10).unwrap()),
            853_018
        );
        assert_eq!(
            count_params(&ModelSpec::from_name("resnet18", cifar, 10).unwrap()),
            11_173_962
        );
    }

    #[test]
    fn unknown_model_and_bad_input_are_errors() {
        assert!(ModelSpec::from_name("alexnet", [1, 28, 28], 10).is_err());
        assert!(ModelSpec::from_name("lenet5caffe", [1, 8, 8], 10).is_err());
        let bad = ModelSpec {
            arch: Arch::ResNetCifar {
                depth: 21,
                shortcut: Shortcut::Identity,
            },
            input: [3, 32, 32],
            classes: 10,
        };
        assert!(bad.graph().is_err());
    }

    #[test]
    fn absurd_sizes_are_errors_not_wrapped_numbers() {
        let spec = |arch: Arch, input: [usize; 3], classes: usize| ModelSpec {
            arch,
            input,
            classes,
        };
        let mlp = |hidden: Vec<usize>| Arch::Mlp { hidden };
        let cases = [
            (
                spec(mlp(vec![8]), [1, usize::MAX / 2, 4], 10),
                "input shape",
            ),
            (spec(mlp(vec![8]), [1, 0, 4], 10), "input shape"),
            (spec(mlp(vec![1 << 40]), [1, 2, 2], 10), "hidden layer 0"),
            (
                spec(mlp(vec![1 << 20, 1 << 20]), [1, 2, 2], 10),
                "fc2.weight",
            ),
            (spec(mlp(vec![4; 5000]), [1, 2, 2], 10), "hidden layers"),
            (spec(mlp(vec![4]), [1, 2, 2], 0), "classes"),
            (
                spec(
                    Arch::ResNetCifar {
                        depth: 6 * 100_000_000 + 2,
                        shortcut: Shortcut::Identity,
                    },
                    [3, 32, 32],
                    10,
                ),
                "depth",
            ),
        ];
        for (s, needle) in cases {
            let e = s.graph().unwrap_err().to_string();
            assert!(e.contains(needle), "{:?}: {e}", s.arch);
        }
    }

    #[test]
    fn serde_round_trip_rejects_unknown_keys() {
        let spec = ModelSpec::from_name("resnet20b", [3, 32, 32], 10).unwrap();
        let json = serde_json::to_string(&spec).unwrap();
        assert_eq!(serde_json::from_str::<ModelSpec>(&json).unwrap(), spec);
        let bad = json.replace("\"classes\"", "\"clases\"");
        assert!(serde_json::from_str::<ModelSpec>(&bad).is_err());
    }

    #[test]
    fn stable_paths() {
        let g = ModelSpec::from_name("resnet20b", [3, 32, 32], 10)
            .unwrap()
            .graph()
            .unwrap();
        let names: Vec<_> = g.tensors().into_iter().map(|t| t.path).collect();
        assert!(names.contains(&"layer2.0.shortcut.0.weight".to_string()));
        assert!(names.contains(&"layer3.2.bn2.running_var".to_string()));
        assert_eq!(names.first().unwrap(), "conv1.weight");
        assert_eq!(names.last().unwrap(), "fc.bias");
    }
}
