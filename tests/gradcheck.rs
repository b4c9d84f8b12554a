//! Gradient checks of the CPU engine: analytic gradients (f32) against central finite differences of an
//! independent double-precision reference forward pass written directly from each op's definition.

use std::collections::BTreeMap;

use ndarray::{Array2, Array4, ArrayView2};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use sculpt::engine::cpu::cost::SparsePolicy;
use sculpt::engine::cpu::simd::KernelPath;
use sculpt::engine::cpu::{CpuNetwork, GraphNetwork};
use sculpt::engine::{GradientMode, Network};
use sculpt::nn::{Arch, Graph, ModelSpec, Node, Op, Shortcut};
use sculpt::sparsity::Mask;

const EPS: f64 = 1e-5;

type Params = BTreeMap<String, Vec<f64>>;

/// Reference forward of `graph` in f64 on `x` (`n` samples); BN uses batch statistics when `train`.
fn reference_forward(graph: &Graph, p: &Params, x: &[f64], n: usize, train: bool) -> Vec<f64> {
    let mut acts: Vec<Vec<f64>> = Vec::with_capacity(graph.nodes.len());
    for (i, node) in graph.nodes.iter().enumerate() {
        let ins = |k: usize| -> (&Vec<f64>, &Vec<usize>) {
            let j = node.inputs[k];
            (&acts[j], &graph.shapes[j])
        };
        let out_len: usize = graph.shapes[i].iter().product();
        let mut y = vec![0.0; n * out_len];
        let par = |s: &str| &p[&format!("{}.{s}", node.name)];
        match &node.op {
            Op::Input => y.copy_from_slice(x),
            &Op::Conv2d {
                in_channels: ci,
                out_channels: co,
                kernel: k,
                stride: s,
                padding: pd,
                bias,
            } => {
                let (xa, xs) = ins(0);
                let (h, w) = (xs[1], xs[2]);
                let (oh, ow) = (graph.shapes[i][1], graph.shapes[i][2]);
                let wt = par("weight");
                for b in 0..n {
                    for o in 0..co {
                        for oy in 0..oh {
                            for ox in 0..ow {
                                let mut acc = if bias { par("bias")[o] } else { 0.0 };
                                for c in 0..ci {
                                    for ky in 0..k {
                                        for kx in 0..k {
                                            let iy = (oy * s + ky) as isize - pd as isize;
                                            let ix = (ox * s + kx) as isize - pd as isize;
                                            if iy < 0
                                                || ix < 0
                                                || iy >= h as isize
                                                || ix >= w as isize
                                            {
                                                continue;
                                            }
                                            let xv = xa[((b * ci + c) * h + iy as usize) * w
                                                + ix as usize];
                                            acc += xv * wt[((o * ci + c) * k + ky) * k + kx];
                                        }
                                    }
                                }
                                y[((b * co + o) * oh + oy) * ow + ox] = acc;
                            }
                        }
                    }
                }
            }
            &Op::Linear {
                in_features: fi,
                out_features: fo,
                bias,
            } => {
                let (xa, _) = ins(0);
                for b in 0..n {
                    for o in 0..fo {
                        let mut acc = if bias { par("bias")[o] } else { 0.0 };
                        for j in 0..fi {
                            acc += par("weight")[o * fi + j] * xa[b * fi + j];
                        }
                        y[b * fo + o] = acc;
                    }
                }
            }
            &Op::BatchNorm2d { channels: c } => {
                let (xa, xs) = ins(0);
                let hw = xs[1] * xs[2];
                for ch in 0..c {
                    let vals: Vec<f64> = (0..n)
                        .flat_map(|b| xa[(b * c + ch) * hw..(b * c + ch + 1) * hw].to_vec())
                        .collect();
                    let (mean, var) = if train {
                        let m = vals.iter().sum::<f64>() / vals.len() as f64;
                        (
                            m,
                            vals.iter().map(|v| (v - m) * (v - m)).sum::<f64>() / vals.len() as f64,
                        )
                    } else {
                        (par("running_mean")[ch], par("running_var")[ch])
                    };
                    let inv = 1.0 / (var + EPS).sqrt();
                    for b in 0..n {
                        for q in 0..hw {
                            let at = (b * c + ch) * hw + q;
                            y[at] = par("weight")[ch] * (xa[at] - mean) * inv + par("bias")[ch];
                        }
                    }
                }
            }
            Op::Relu => y
                .iter_mut()
                .zip(ins(0).0)
                .for_each(|(o, v)| *o = v.max(0.0)),
            &Op::MaxPool2d {
                kernel: k,
                stride: s,
            }
            | &Op::AvgPool2d {
                kernel: k,
                stride: s,
            } => {
                let (xa, xs) = ins(0);
                let (c, h, w) = (xs[0], xs[1], xs[2]);
                let (oh, ow) = (graph.shapes[i][1], graph.shapes[i][2]);
                let is_max = matches!(node.op, Op::MaxPool2d { .. });
                for pl in 0..n * c {
                    for oy in 0..oh {
                        for ox in 0..ow {
                            let win = (0..k * k)
                                .map(|q| xa[pl * h * w + (oy * s + q / k) * w + ox * s + q % k]);
                            y[pl * oh * ow + oy * ow + ox] = if is_max {
                                win.fold(f64::NEG_INFINITY, f64::max)
                            } else {
                                win.sum::<f64>() / (k * k) as f64
                            };
                        }
                    }
                }
            }
            Op::GlobalAvgPool => {
                let (xa, xs) = ins(0);
                let hw = xs[1] * xs[2];
                for (o, pl) in y.iter_mut().zip(xa.chunks(hw)) {
                    *o = pl.iter().sum::<f64>() / hw as f64;
                }
            }
            Op::Flatten => y.copy_from_slice(ins(0).0),
            Op::Add => {
                let (a, _) = ins(0);
                let (b, _) = ins(1);
                y.iter_mut()
                    .zip(a.iter().zip(b))
                    .for_each(|(o, (u, v))| *o = u + v);
            }
            &Op::SubsamplePad {
                stride: s,
                pad_before,
                ..
            } => {
                let (xa, xs) = ins(0);
                let (c, h, w) = (xs[0], xs[1], xs[2]);
                let (co, oh, ow) = (graph.shapes[i][0], graph.shapes[i][1], graph.shapes[i][2]);
                for b in 0..n {
                    for ch in 0..c {
                        for oy in 0..oh {
                            for ox in 0..ow {
                                y[((b * co + ch + pad_before) * oh + oy) * ow + ox] =
                                    xa[((b * c + ch) * h + oy * s) * w + ox * s];
                            }
                        }
                    }
                }
            }
        }
        acts.push(y);
    }
    acts.pop().unwrap()
}

fn objective_weights(n: usize, k: usize, seed: u64) -> Array2<f32> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    Array2::from_shape_fn((n, k), |_| rng.gen_range(-1.0f32..1.0))
}

/// Runs forward_backward of `fb` with objective L = Σ r ⊙ logits and compares every sampled parameter gradient
/// (and the logits) with the f64 reference. `fb` returns the logits and a gradient reader.
#[allow(clippy::too_many_arguments)]
fn check(
    graph: &Graph,
    params: &Params,
    x: &Array4<f32>,
    train: bool,
    logits: ArrayView2<f32>,
    grad: &dyn Fn(&str) -> Vec<f32>,
    r: &Array2<f32>,
    samples_per_tensor: usize,
) {
    let n = x.shape()[0];
    let xf: Vec<f64> = x.iter().map(|&v| v as f64).collect();
    let rf: Vec<f64> = r.iter().map(|&v| v as f64).collect();
    let loss = |p: &Params| -> f64 {
        reference_forward(graph, p, &xf, n, train)
            .iter()
            .zip(&rf)
            .map(|(a, b)| a * b)
            .sum()
    };
    let ref_logits = reference_forward(graph, params, &xf, n, train);
    let scale = ref_logits
        .iter()
        .fold(0.0f64, |a, v| a.max(v.abs()))
        .max(1e-3);
    for (a, b) in logits.iter().zip(&ref_logits) {
        assert!(
            (*a as f64 - b).abs() <= 1e-4 * scale,
            "logit {a} vs reference {b}"
        );
    }
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    let mut checked = 0;
    for t in graph.tensors().iter().filter(|t| t.is_param()) {
        let g = grad(&t.path);
        let rms = (g.iter().map(|v| (*v as f64).powi(2)).sum::<f64>() / g.len() as f64).sqrt();
        let picks: Vec<usize> = if g.len() <= samples_per_tensor {
            (0..g.len()).collect()
        } else {
            (0..samples_per_tensor)
                .map(|_| rng.gen_range(0..g.len()))
                .collect()
        };
        for q in picks {
            let mut p = params.clone();
            let base = p[&t.path][q];
            let h = 1e-6 * base.abs().max(1.0);
            p.get_mut(&t.path).unwrap()[q] = base + h;
            let up = loss(&p);
            p.get_mut(&t.path).unwrap()[q] = base - h;
            let down = loss(&p);
            let fd = (up - down) / (2.0 * h);
            let a = g[q] as f64;
            assert!(
                (a - fd).abs() <= 2e-3 * (fd.abs() + rms) + 1e-6,
                "{}[{q}]: analytic {a} vs finite difference {fd} (rms {rms})",
                t.path
            );
            checked += 1;
        }
    }
    assert!(checked > 0);
}

fn params_of(graph: &Graph, read: &dyn Fn(&str) -> Vec<f32>) -> Params {
    graph
        .tensors()
        .iter()
        .map(|t| {
            (
                t.path.clone(),
                read(&t.path).iter().map(|&v| v as f64).collect(),
            )
        })
        .collect()
}

fn random_images(shape: (usize, usize, usize, usize), seed: u64) -> Array4<f32> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    Array4::from_shape_fn(shape, |_| rng.gen_range(-1.0f32..1.0))
}

/// Perturbs BN scales, shifts, biases and running statistics away from their initial values so that every
/// term of the backward matters.
fn perturb_non_weights(net: &mut GraphNetwork, seed: u64) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let infos = net.tensors().to_vec();
    for t in infos.iter().filter(|t| !t.is_prunable()) {
        let v = net.read(&t.path).unwrap();
        let new = v.mapv(|a| {
            let d: f32 = rng.gen_range(-0.3..0.3);
            if t.path.ends_with("running_var") || t.path.ends_with(".weight") {
                (a + d).abs() + 0.2
            } else {
                a + d
            }
        });
        net.write(&t.path, new.view()).unwrap();
    }
}

fn check_graph_network(graph: Graph, batch: usize, train: bool, seed: u64) {
    let mut net = GraphNetwork::new(graph.clone(), seed).unwrap();
    perturb_non_weights(&mut net, seed + 1);
    let s = &graph.shapes[0];
    let x = random_images((batch, s[0], s[1], s[2]), seed + 2);
    let k = graph.shapes.last().unwrap()[0];
    let r = objective_weights(batch, k, seed + 3);
    let rr = r.clone();
    let obj = move |l: ArrayView2<f32>| ((&l * &rr).sum() as f64, rr.clone());
    let params = params_of(&graph, &|p| net.read(p).unwrap().iter().copied().collect());
    let (_, logits) = net.forward_backward(x.view(), train, &obj).unwrap();
    let grad = |p: &str| net.grad(p).unwrap().iter().copied().collect::<Vec<f32>>();
    check(&graph, &params, &x, train, logits.view(), &grad, &r, 40);
}

fn check_spec(spec: &ModelSpec, batch: usize, seed: u64, samples: usize) {
    let graph = spec.graph().unwrap();
    let mut net = CpuNetwork::new(spec, seed).unwrap();
    perturb_non_weights(net.graph_network(), seed + 1);
    let [c, h, w] = spec.input;
    let x = random_images((batch, c, h, w), seed + 2);
    let r = objective_weights(batch, spec.classes, seed + 3);
    let rr = r.clone();
    let obj = move |l: ArrayView2<f32>| ((&l * &rr).sum() as f64, rr.clone());
    let params = params_of(&graph, &|p| net.read(p).unwrap().iter().copied().collect());
    let (_, logits) = net.forward_backward(x.view(), true, &obj).unwrap();
    let grad = |p: &str| net.grad(p).unwrap().iter().copied().collect::<Vec<f32>>();
    check(&graph, &params, &x, true, logits.view(), &grad, &r, samples);
}

/// Builds a graph from (name, op, inputs), inferring shapes by the textbook formulas.
fn build(input: [usize; 3], layers: &[(&str, Op, &[usize])]) -> Graph {
    let mut nodes = vec![Node {
        name: "input".into(),
        op: Op::Input,
        inputs: vec![],
    }];
    let mut shapes = vec![input.to_vec()];
    for (name, op, inputs) in layers {
        let s = shapes[inputs[0]].clone();
        let shape = match op {
            Op::Input => unreachable!(),
            Op::Conv2d {
                out_channels,
                kernel,
                stride,
                padding,
                ..
            } => vec![
                *out_channels,
                (s[1] + 2 * padding - kernel) / stride + 1,
                (s[2] + 2 * padding - kernel) / stride + 1,
            ],
            Op::Linear { out_features, .. } => vec![*out_features],
            Op::BatchNorm2d { .. } | Op::Relu | Op::Add => s,
            Op::MaxPool2d { kernel, stride } | Op::AvgPool2d { kernel, stride } => {
                vec![
                    s[0],
                    (s[1] - kernel) / stride + 1,
                    (s[2] - kernel) / stride + 1,
                ]
            }
            Op::GlobalAvgPool => vec![s[0]],
            Op::Flatten => vec![s.iter().product()],
            Op::SubsamplePad {
                stride,
                pad_before,
                pad_after,
            } => vec![
                s[0] + pad_before + pad_after,
                s[1].div_ceil(*stride),
                s[2].div_ceil(*stride),
            ],
        };
        nodes.push(Node {
            name: name.to_string(),
            op: op.clone(),
            inputs: inputs.to_vec(),
        });
        shapes.push(shape);
    }
    Graph { nodes, shapes }
}

fn conv(cin: usize, cout: usize, k: usize, s: usize, p: usize, bias: bool) -> Op {
    Op::Conv2d {
        in_channels: cin,
        out_channels: cout,
        kernel: k,
        stride: s,
        padding: p,
        bias,
    }
}

fn linear(i: usize, o: usize, bias: bool) -> Op {
    Op::Linear {
        in_features: i,
        out_features: o,
        bias,
    }
}

#[test]
fn conv_stride2_padding_bias_relu_avgpool_linear() {
    let g = build(
        [2, 7, 7],
        &[
            ("c", conv(2, 3, 3, 2, 1, true), &[0]),
            ("r", Op::Relu, &[1]),
            (
                "p",
                Op::AvgPool2d {
                    kernel: 2,
                    stride: 1,
                },
                &[2],
            ),
            ("f", Op::Flatten, &[3]),
            ("fc", linear(27, 4, true), &[4]),
        ],
    );
    check_graph_network(g, 3, true, 11);
}

#[test]
fn batchnorm_train_maxpool_pointwise_conv_global_pool() {
    let g = build(
        [3, 6, 6],
        &[
            ("c1", conv(3, 4, 3, 1, 1, false), &[0]),
            ("bn", Op::BatchNorm2d { channels: 4 }, &[1]),
            ("r", Op::Relu, &[2]),
            (
                "mp",
                Op::MaxPool2d {
                    kernel: 3,
                    stride: 2,
                },
                &[3],
            ),
            ("c2", conv(4, 5, 1, 1, 0, true), &[4]),
            ("gap", Op::GlobalAvgPool, &[5]),
            ("fc", linear(5, 3, true), &[6]),
        ],
    );
    check_graph_network(g.clone(), 4, true, 21);
    check_graph_network(g, 4, false, 22);
}

#[test]
fn unfused_relu_shared_inputs_subsample_pad_and_add() {
    let g = build(
        [2, 5, 5],
        &[
            ("c1", conv(2, 3, 3, 1, 1, false), &[0]),
            ("r", Op::Relu, &[1]),
            ("a1", Op::Add, &[2, 1]),
            ("a2", Op::Add, &[3, 3]),
            (
                "sp",
                Op::SubsamplePad {
                    stride: 2,
                    pad_before: 1,
                    pad_after: 2,
                },
                &[4],
            ),
            ("c2", conv(6, 2, 3, 2, 1, false), &[5]),
            ("f", Op::Flatten, &[6]),
            ("fc", linear(8, 3, false), &[7]),
        ],
    );
    check_graph_network(g, 2, true, 31);
}

#[test]
fn mlp_linear_layers() {
    let spec = ModelSpec {
        arch: Arch::Mlp { hidden: vec![7, 5] },
        input: [1, 4, 3],
        classes: 3,
    };
    check_spec(&spec, 5, 41, 30);
}

#[test]
fn lenet5_conv_padding_bias_maxpool() {
    let spec = ModelSpec::from_name("lenet5", [1, 28, 28], 10).unwrap();
    check_spec(&spec, 2, 51, 8);
}

#[test]
fn resnet_basic_blocks_with_both_shortcuts() {
    for shortcut in [Shortcut::Identity, Shortcut::Projection] {
        let spec = ModelSpec {
            arch: Arch::ResNetCifar { depth: 8, shortcut },
            input: [3, 8, 8],
            classes: 4,
        };
        check_spec(&spec, 3, 61, 6);
    }
}

/// Masks every prunable weight of `net` at `density` (a random pattern from `seed`).
fn mask_all(net: &mut CpuNetwork, density: f64, seed: u64) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let infos = net.tensors().to_vec();
    for t in infos.iter().filter(|t| t.is_prunable()) {
        let n: usize = t.shape.iter().product();
        let keep: Vec<bool> = (0..n).map(|_| rng.gen_bool(density)).collect();
        net.set_mask(&t.path, Some(&Mask::from_keep(&t.shape, &keep)))
            .unwrap();
    }
}

/// Residual blocks (both shortcuts) whose convolutions and linear layer all run on the sparse kernels, on every
/// kernel path of this CPU: the dense gradient, masked positions included, against finite differences.
#[test]
fn sparse_residual_blocks_on_every_kernel_path() {
    for path in KernelPath::available() {
        for shortcut in [Shortcut::Identity, Shortcut::Projection] {
            let spec = ModelSpec {
                arch: Arch::ResNetCifar { depth: 8, shortcut },
                input: [3, 8, 8],
                classes: 4,
            };
            let graph = spec.graph().unwrap();
            let mut net = CpuNetwork::new(&spec, 71).unwrap();
            net.set_kernel_path(path).unwrap();
            net.graph_network().set_sparse_policy(SparsePolicy::Always);
            mask_all(&mut net, 0.3, 72);
            let sparse = net.graph_network().sparse_layers().len();
            let prunable = graph.tensors().iter().filter(|t| t.is_prunable()).count();
            assert_eq!(sparse, prunable, "{path:?}: every masked layer runs sparse");
            perturb_non_weights(net.graph_network(), 73);
            let x = random_images((3, 3, 8, 8), 74);
            let r = objective_weights(3, spec.classes, 75);
            let rr = r.clone();
            let obj = move |l: ArrayView2<f32>| ((&l * &rr).sum() as f64, rr.clone());
            let params = params_of(&graph, &|p| net.read(p).unwrap().iter().copied().collect());
            net.set_gradient_mode(GradientMode::Dense);
            let (_, logits) = net.forward_backward(x.view(), true, &obj).unwrap();
            let grad = |p: &str| net.grad(p).unwrap().iter().copied().collect::<Vec<f32>>();
            check(&graph, &params, &x, true, logits.view(), &grad, &r, 8);
        }
    }
}
