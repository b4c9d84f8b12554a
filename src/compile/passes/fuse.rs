//! Fuses each ReLU into the conv, gemm or add before it (when that op feeds nothing else), and removes each
//! flatten whose readers are all gemms (a gemm reads any shape as its flattened vector).

use crate::compile::ir::{Graph, Op};
use crate::compile::passes::rewrite::Rewrite;
use crate::error::Result;

/// Returns the graph with ReLUs fused and flattens before gemms removed (repeated until nothing changes, so a
/// chain of ReLUs fuses whole).
pub fn fuse(mut graph: Graph) -> Result<Graph> {
    loop {
        let (next, changed) = fuse_once(graph)?;
        graph = next;
        if !changed {
            return Ok(graph);
        }
    }
}

fn fuse_once(mut graph: Graph) -> Result<(Graph, bool)> {
    let mut edits = Rewrite::new(&graph);
    let consumers = graph.consumers();
    let last = graph.nodes.len() - 1;
    for at in 1..graph.nodes.len() {
        let src = graph.nodes[at].inputs.first().copied().unwrap_or(0);
        let last_ok = at < last || src + 1 == at;
        let done = match graph.nodes[at].op {
            Op::Relu if consumers[src] == 1 && last_ok && !edits.removes(src) => {
                match &mut graph.nodes[src].op {
                    Op::Conv { relu, .. } | Op::Gemm { relu, .. } | Op::Add { relu } => {
                        *relu = true;
                        true
                    }
                    _ => false,
                }
            }
            Op::Flatten if at < last => {
                let mut readers = graph.nodes.iter().filter(|n| n.inputs.contains(&at));
                let mut any = false;
                readers.all(|n| {
                    any = true;
                    matches!(n.op, Op::Gemm { .. })
                }) && any
            }
            _ => false,
        };
        if done {
            edits.bypass(at, src);
        }
    }
    let changed = !edits.is_empty();
    Ok((edits.apply(graph)?, changed))
}
