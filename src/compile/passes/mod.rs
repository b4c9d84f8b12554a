//! Graph-to-graph passes. Each pass returns a graph that passes [`Graph::validate`](crate::compile::ir::Graph::validate)
//! (the pipeline re-validates after every pass) and never changes what the float graph computes beyond
//! rounding, except quantisation, whose error is bounded by its tests.
pub mod fold_bn;
pub mod fuse;
pub mod layout;
pub mod quantize;

use crate::compile::ir::Graph;

/// Removes node `at`, whose single input replaces it wherever it is read; later indices shift down by one.
/// When `at` is the output node, its input must be the node just before it (which becomes the output).
pub(crate) fn bypass(graph: &mut Graph, at: usize) {
    let src = graph.nodes[at].inputs[0];
    assert!(
        at + 1 < graph.nodes.len() || src + 1 == at,
        "bypassing the output needs its input just before it"
    );
    graph.nodes.remove(at);
    for n in graph.nodes.iter_mut().skip(at) {
        for i in n.inputs.iter_mut() {
            if *i == at {
                *i = src;
            } else if *i > at {
                *i -= 1;
            }
        }
    }
}
