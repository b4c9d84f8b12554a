//! Fuses each ReLU into the conv, gemm or add before it (when that op feeds nothing else), and removes each
//! flatten whose readers are all gemms (a gemm reads any shape as its flattened vector).

use crate::compile::ir::{Graph, Op};
use crate::compile::passes::bypass;
use crate::error::Result;

/// Returns the graph with ReLUs fused and flattens before gemms removed.
pub fn fuse(mut graph: Graph) -> Result<Graph> {
    let mut at = 1;
    while at < graph.nodes.len() {
        let src = graph.nodes[at].inputs.first().copied().unwrap_or(0);
        let last_ok = at + 1 < graph.nodes.len() || src + 1 == at;
        let consumers = graph.consumers();
        let done = match graph.nodes[at].op {
            Op::Relu if consumers[src] == 1 && last_ok => match &mut graph.nodes[src].op {
                Op::Conv { relu, .. } | Op::Gemm { relu, .. } | Op::Add { relu } => {
                    *relu = true;
                    true
                }
                _ => false,
            },
            Op::Flatten if at + 1 < graph.nodes.len() => {
                let readers: Vec<&Op> = graph
                    .nodes
                    .iter()
                    .filter(|n| n.inputs.contains(&at))
                    .map(|n| &n.op)
                    .collect();
                !readers.is_empty() && readers.iter().all(|op| matches!(op, Op::Gemm { .. }))
            }
            _ => false,
        };
        if done {
            bypass(&mut graph, at);
        } else {
            at += 1;
        }
    }
    graph.validate()?;
    Ok(graph)
}
