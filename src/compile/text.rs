//! A readable text form of the IR, for `sculpt compile --dump-ir` and for people diffing two stages.
//!
//! One header line (node count, model hash), one line for the input spec, then one line per node:
//!
//! ```text
//! %3 layer1.0.conv1 = conv(%2) k3 s1 p1 relu : [16, 32, 32]  weight [16, 16, 3, 3] f32 csr/gap8 nnz 230/2304 #1a2b3c4d  bias f32[16]  scale 0.0123
//! ```
//!
//! Constants are summarised (shape, value type, storage, nonzeros) with `#` and the first 8 hex digits of the
//! SHA-256 of their values, so a pass that changes a weight shows as a changed line. The form is for reading;
//! nothing parses it back.

use sha2::{Digest, Sha256};

use crate::compile::emit::onnx::hex;
use crate::compile::ir::{Bias, Graph, Op, Storage, Weight};

fn digest(bytes: impl Iterator<Item = [u8; 4]>) -> String {
    let mut h = Sha256::new();
    for b in bytes {
        h.update(b);
    }
    hex(&h.finalize()[..4])
}

fn floats(v: &[f32]) -> String {
    digest(v.iter().map(|x| x.to_le_bytes()))
}

fn weight(w: &Weight) -> String {
    let storage = match &w.storage {
        Storage::Dense(_) => "dense".to_string(),
        Storage::Csr { index, .. } => format!("csr/{}", index.name()),
    };
    let mut s = format!(
        "weight {:?} {} {storage} nnz {}/{} #{}",
        w.shape,
        w.dtype.name(),
        w.nnz(),
        w.rows() * w.cols(),
        floats(&w.to_dense())
    );
    if let Some(sc) = &w.scales {
        s.push_str(&format!(" scales #{}", floats(sc)));
    }
    s
}

fn bias(b: &Option<Bias>) -> String {
    match b {
        None => String::new(),
        Some(Bias::F32(v)) => format!("  bias f32[{}] #{}", v.len(), floats(v)),
        Some(Bias::I32(v)) => format!(
            "  bias i32[{}] #{}",
            v.len(),
            digest(v.iter().map(|x| x.to_le_bytes()))
        ),
    }
}

fn attrs(op: &Op) -> String {
    let relu = |r: bool| if r { " relu" } else { "" };
    match op {
        Op::Conv {
            weight,
            stride,
            padding,
            relu: r,
            ..
        } => format!(
            " k{} s{stride} p{padding}{}",
            weight.shape.get(2).copied().unwrap_or(0),
            relu(*r)
        ),
        Op::Gemm { relu: r, .. } | Op::Add { relu: r } => relu(*r).to_string(),
        Op::BatchNorm { eps, .. } => format!(" eps {eps:e}"),
        Op::MaxPool { kernel, stride } | Op::AvgPool { kernel, stride } => {
            format!(" k{kernel} s{stride}")
        }
        Op::SubsamplePad {
            stride,
            pad_before,
            pad_after,
        } => format!(" s{stride} pad {pad_before}+{pad_after}"),
        Op::Input | Op::Relu | Op::GlobalAvgPool | Op::Flatten => String::new(),
    }
}

fn constants(op: &Op) -> String {
    match op {
        Op::Conv {
            weight: w, bias: b, ..
        }
        | Op::Gemm {
            weight: w, bias: b, ..
        } => {
            format!("  {}{}", weight(w), bias(b))
        }
        Op::BatchNorm {
            gamma,
            beta,
            mean,
            var,
            ..
        } => format!(
            "  gamma #{} beta #{} mean #{} var #{}",
            floats(gamma),
            floats(beta),
            floats(mean),
            floats(var)
        ),
        _ => String::new(),
    }
}

/// The text form of `graph` (see the module docs).
pub fn print(graph: &Graph) -> String {
    let mut s = format!(
        "sculpt-ir v1: {} nodes, model hash {}\n",
        graph.nodes.len(),
        hex(&graph.model_hash())
    );
    s.push_str(&format!(
        "input {:?} mean {:?} std {:?}\n",
        graph.input.shape, graph.input.mean, graph.input.std
    ));
    for (i, n) in graph.nodes.iter().enumerate() {
        let ins: Vec<String> = n.inputs.iter().map(|j| format!("%{j}")).collect();
        s.push_str(&format!(
            "%{i} {} = {}({}){} : {:?}{}",
            n.name,
            n.op.kind(),
            ins.join(", "),
            attrs(&n.op),
            n.shape,
            constants(&n.op)
        ));
        if let Some(sc) = n.scale {
            s.push_str(&format!("  scale {sc:e}"));
        }
        s.push('\n');
    }
    s
}
