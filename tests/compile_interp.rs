//! The reference interpreter against an independent forward pass written here (im2col + matrix products over
//! the model graph and its named tensors), and the passes against the interpreter.

mod compile_util;

use std::collections::BTreeMap;

use compile_util::*;
use ndarray::{Array2, ArrayD};
use sculpt::compile::interp;
use sculpt::compile::ir::{IndexEncoding, Op, Storage, ValueType};
use sculpt::compile::passes::{fold_bn::fold_bn, fuse::fuse, layout, quantize};
use sculpt::nn::spec::{ModelSpec, Op as NnOp};

/// Forward of one sample over the model graph, written independently of the compiler.
fn independent_forward(spec: &ModelSpec, t: &BTreeMap<String, ArrayD<f32>>, x: &[f32]) -> Vec<f32> {
    let g = spec.graph().unwrap();
    let m = meta(spec);
    let [c0, h0, w0] = spec.input;
    let mut input = ndarray::Array3::from_shape_vec((c0, h0, w0), x.to_vec()).unwrap();
    for c in 0..c0 {
        input
            .index_axis_mut(ndarray::Axis(0), c)
            .mapv_inplace(|v| (v - m.mean[c]) / m.std[c]);
    }
    let mut vals: Vec<ArrayD<f32>> = vec![input.into_dyn()];
    for node in g.nodes.iter().skip(1) {
        let a = &vals[node.inputs[0]];
        let p = |s: &str| &t[&format!("{}.{s}", node.name)];
        let y: ArrayD<f32> = match &node.op {
            NnOp::Conv2d {
                in_channels,
                out_channels,
                kernel,
                stride,
                padding,
                bias,
            } => {
                let (h, w) = (a.shape()[1], a.shape()[2]);
                let (k, s, pd) = (*kernel, *stride, *padding);
                let (oh, ow) = ((h + 2 * pd - k) / s + 1, (w + 2 * pd - k) / s + 1);
                let mut cols = Array2::<f32>::zeros((in_channels * k * k, oh * ow));
                for ci in 0..*in_channels {
                    for ky in 0..k {
                        for kx in 0..k {
                            let row = (ci * k + ky) * k + kx;
                            for oy in 0..oh {
                                for ox in 0..ow {
                                    let iy = (oy * s + ky) as i64 - pd as i64;
                                    let ix = (ox * s + kx) as i64 - pd as i64;
                                    if iy >= 0 && ix >= 0 && (iy as usize) < h && (ix as usize) < w
                                    {
                                        cols[[row, oy * ow + ox]] =
                                            a[[ci, iy as usize, ix as usize]];
                                    }
                                }
                            }
                        }
                    }
                }
                let wm = p("weight")
                    .clone()
                    .into_shape_with_order((*out_channels, in_channels * k * k))
                    .unwrap();
                let mut y = wm.dot(&cols);
                if *bias {
                    for (o, mut row) in y.outer_iter_mut().enumerate() {
                        row += p("bias")[[o]];
                    }
                }
                y.into_shape_with_order((*out_channels, oh, ow))
                    .unwrap()
                    .into_dyn()
            }
            NnOp::Linear {
                in_features,
                out_features,
                ..
            } => {
                let v = a.clone().into_shape_with_order(*in_features).unwrap();
                let wm = p("weight")
                    .clone()
                    .into_shape_with_order((*out_features, *in_features))
                    .unwrap();
                (wm.dot(&v)
                    + p("bias")
                        .clone()
                        .into_shape_with_order(*out_features)
                        .unwrap())
                .into_dyn()
            }
            NnOp::BatchNorm2d { channels } => {
                let mut y = a.clone();
                for c in 0..*channels {
                    let (g, b, mu, var) = (
                        p("weight")[[c]],
                        p("bias")[[c]],
                        p("running_mean")[[c]],
                        p("running_var")[[c]],
                    );
                    y.index_axis_mut(ndarray::Axis(0), c)
                        .mapv_inplace(|v| g * (v - mu) / (var + 1e-5).sqrt() + b);
                }
                y
            }
            NnOp::Relu => a.mapv(|v| v.max(0.0)),
            NnOp::MaxPool2d { kernel, stride } | NnOp::AvgPool2d { kernel, stride } => {
                let (c, h, w) = (a.shape()[0], a.shape()[1], a.shape()[2]);
                let (oh, ow) = ((h - kernel) / stride + 1, (w - kernel) / stride + 1);
                let is_max = matches!(node.op, NnOp::MaxPool2d { .. });
                ndarray::Array3::from_shape_fn((c, oh, ow), |(ch, y, x)| {
                    let win = a.slice(ndarray::s![
                        ch,
                        y * stride..y * stride + kernel,
                        x * stride..x * stride + kernel
                    ]);
                    if is_max {
                        win.fold(f32::MIN, |m, v| m.max(*v))
                    } else {
                        win.sum() / (kernel * kernel) as f32
                    }
                })
                .into_dyn()
            }
            NnOp::GlobalAvgPool => a
                .mean_axis(ndarray::Axis(2))
                .unwrap()
                .mean_axis(ndarray::Axis(1))
                .unwrap(),
            NnOp::Flatten => {
                let n = a.len();
                a.clone().into_shape_with_order(n).unwrap().into_dyn()
            }
            NnOp::Add => a + &vals[node.inputs[1]],
            NnOp::SubsamplePad {
                stride,
                pad_before,
                pad_after,
            } => {
                let sub = a.slice(ndarray::s![.., ..;*stride, ..;*stride]);
                let (c, h, w) = (sub.shape()[0], sub.shape()[1], sub.shape()[2]);
                let mut y = ndarray::Array3::<f32>::zeros((c + pad_before + pad_after, h, w));
                y.slice_mut(ndarray::s![*pad_before..pad_before + c, .., ..])
                    .assign(&sub);
                y.into_dyn()
            }
            NnOp::Input => unreachable!(),
        };
        vals.push(y);
    }
    vals.pop().unwrap().iter().copied().collect()
}

fn check_against_independent(spec: ModelSpec, sparsity: f64) {
    let (t, masks) = tensors(&spec, sparsity, 7);
    let g = graph(&spec, sparsity, 7);
    let map: BTreeMap<String, ArrayD<f32>> = t.into_iter().collect();
    if sparsity > 0.0 {
        assert!(!masks.is_empty());
        assert!(g
            .nodes
            .iter()
            .any(|n| matches!(n.op.weight().map(|w| &w.storage), Some(Storage::Csr { .. }))));
    }
    let per: usize = spec.input.iter().product();
    let xs = inputs(&spec, 4, 11);
    for x in xs.chunks(per) {
        let want = independent_forward(&spec, &map, x);
        let got = interp::run(&g, x).unwrap();
        let d = max_abs_diff(&want, &got);
        assert!(
            d <= 1e-4 * max_abs(&want).max(1.0),
            "{}: |Δ| = {d}",
            spec.name()
        );
    }
}

#[test]
fn interpreter_matches_independent_forward_lenet5() {
    check_against_independent(lenet5(), 0.0);
    check_against_independent(lenet5(), 0.95);
}

#[test]
fn interpreter_matches_independent_forward_resnet() {
    check_against_independent(resnet_small(), 0.0);
    check_against_independent(resnet_small(), 0.9);
}

#[test]
fn bn_folding_and_relu_fusion_preserve_outputs() {
    let spec = resnet_small();
    let g = graph(&spec, 0.5, 3);
    let bns = g
        .nodes
        .iter()
        .filter(|n| matches!(n.op, Op::BatchNorm { .. }))
        .count();
    assert!(bns > 0);
    let folded = fold_bn(g.clone()).unwrap();
    assert_eq!(folded.nodes.len(), g.nodes.len() - bns);
    assert!(!folded
        .nodes
        .iter()
        .any(|n| matches!(n.op, Op::BatchNorm { .. })));
    let fused = fuse(folded.clone()).unwrap();
    assert!(
        !fused.nodes.iter().any(|n| matches!(n.op, Op::Relu)),
        "every ReLU here follows a conv or add"
    );
    assert!(fused
        .nodes
        .iter()
        .any(|n| matches!(n.op, Op::Add { relu: true })));
    let xs = inputs(&spec, 3, 5);
    for x in xs.chunks(spec.input.iter().product()) {
        let a = interp::run(&g, x).unwrap();
        for h in [&folded, &fused] {
            let b = interp::run(h, x).unwrap();
            assert!(max_abs_diff(&a, &b) <= 1e-4 * max_abs(&a).max(1.0));
        }
    }
    // the CSR pattern survives folding
    let w0 = g.nodes[1].op.weight().unwrap();
    let w1 = folded.nodes[1].op.weight().unwrap();
    match (&w0.storage, &w1.storage) {
        (Storage::Csr { indices: a, .. }, Storage::Csr { indices: b, .. }) => assert_eq!(a, b),
        other => panic!("expected CSR before and after folding, got {other:?}"),
    }
}

#[test]
fn layout_picks_the_smallest_encoding_and_keeps_outputs() {
    let spec = lenet5();
    let g = fuse(fold_bn(graph(&spec, 0.95, 9)).unwrap()).unwrap();
    let all = [
        IndexEncoding::CsrGap8,
        IndexEncoding::CsrIdx16,
        IndexEncoding::CsrIdx32,
        IndexEncoding::Rice,
    ];
    let l = layout::layout(g.clone(), &all).unwrap();
    for n in &l.nodes {
        if let Some(w) = n.op.weight() {
            let chosen = match &w.storage {
                Storage::Dense(_) => None,
                Storage::Csr { index, .. } => Some(*index),
            };
            let c = layout::cost(w, chosen).unwrap();
            assert!(c <= layout::cost(w, None).unwrap());
            for f in all {
                if let Some(o) = layout::cost(w, Some(f)) {
                    assert!(c <= o, "{}: {chosen:?} costs {c} > {f:?} {o}", n.name);
                }
            }
        }
    }
    let dense = layout::layout(g.clone(), &[]).unwrap();
    assert!(dense.nodes.iter().all(|n| n
        .op
        .weight()
        .is_none_or(|w| matches!(w.storage, Storage::Dense(_)))));
    let x = inputs(&spec, 1, 1);
    assert_eq!(
        interp::run(&l, &x).unwrap(),
        interp::run(&dense, &x).unwrap()
    );
    // a dense layer at 0% sparsity stays dense
    let d0 = layout::layout(fold_bn(graph(&spec, 0.0, 9)).unwrap(), &all).unwrap();
    assert!(d0.nodes.iter().all(|n| n
        .op
        .weight()
        .is_none_or(|w| matches!(w.storage, Storage::Dense(_)))));
}

/// Int8 quantisation: logits within 10% of the float logit range and top-1 agreement of at least 90% on
/// random inputs (the stated tolerance), every weight int8, and the int8 run deterministic.
#[test]
fn quantisation_stays_within_tolerance() {
    for (spec, sp) in [(lenet5(), 0.0), (lenet5(), 0.9), (resnet_small(), 0.5)] {
        let g = fuse(fold_bn(graph(&spec, sp, 21)).unwrap()).unwrap();
        let calib = inputs(&spec, 32, 100);
        let q = quantize::quantize(&g, &calib).unwrap();
        assert!(q.is_quantized());
        assert!(q
            .nodes
            .iter()
            .all(|n| n.op.weight().is_none_or(|w| w.dtype == ValueType::I8)));
        let per: usize = spec.input.iter().product();
        let xs = inputs(&spec, 64, 200);
        let mut agree = 0;
        let mut worst = 0.0f32;
        for x in xs.chunks(per) {
            let f = interp::run(&g, x).unwrap();
            let (qq, s) = interp::run_int8(&q, x).unwrap();
            let d: Vec<f32> = qq.iter().map(|&v| v as f32 * s).collect();
            assert_eq!(interp::run_int8(&q, x).unwrap().0, qq);
            let range = f.iter().cloned().fold(f32::MIN, f32::max)
                - f.iter().cloned().fold(f32::MAX, f32::min);
            worst = worst.max(max_abs_diff(&f, &d) / range.max(1e-6));
            agree += usize::from(argmax(&f) == argmax(&d));
        }
        println!(
            "{} at {sp}: worst |Δ|/range = {worst:.4}, top-1 agreement {agree}/64",
            spec.name()
        );
        assert!(
            worst <= 0.10,
            "{}: worst relative logit error {worst}",
            spec.name()
        );
        assert!(agree >= 58, "{}: top-1 agreement {agree}/64", spec.name());
    }
}
