//! Graph edits collected first and applied at once, so a pass never shifts node indices by hand.
//!
//! A [`Rewrite`] records nodes to remove, each with the earlier node its readers read instead. [`Rewrite::apply`]
//! follows chains of replacements, drops the removed nodes, renumbers every input and keeps the topological
//! order. The output node may be removed only when its replacement is the last node that remains.

use crate::compile::ir::Graph;
use crate::error::{Error, Result};

/// Pending removals of a graph of `len` nodes (see the module docs).
#[derive(Debug, Clone)]
pub struct Rewrite {
    by: Vec<Option<usize>>,
}

impl Rewrite {
    /// No edits yet, for `graph`.
    pub fn new(graph: &Graph) -> Self {
        Rewrite {
            by: vec![None; graph.nodes.len()],
        }
    }

    /// Removes node `at`; its readers read node `by < at` instead. Panics on a contract violation (`by ≥ at`,
    /// removing the input node), which is a bug in the pass.
    pub fn bypass(&mut self, at: usize, by: usize) {
        assert!(
            at > 0 && by < at,
            "bypass({at}, {by}): the replacement must be an earlier node"
        );
        self.by[at] = Some(by);
    }

    /// Whether node `at` is to be removed.
    pub fn removes(&self, at: usize) -> bool {
        self.by.get(at).copied().flatten().is_some()
    }

    /// Whether there is nothing to apply.
    pub fn is_empty(&self) -> bool {
        self.by.iter().all(Option::is_none)
    }

    fn resolve(&self, mut at: usize) -> usize {
        while let Some(b) = self.by[at] {
            at = b;
        }
        at
    }

    /// Applies the edits to `graph` (the graph the rewrite was made for). Errors when the output would be
    /// replaced by a node that is not the last one left.
    pub fn apply(self, mut graph: Graph) -> Result<Graph> {
        let n = graph.nodes.len();
        if self.by.len() != n {
            return Err(Error::Invalid(format!(
                "rewrite made for {} nodes applied to a graph of {n}",
                self.by.len()
            )));
        }
        let last_kept = (0..n).rev().find(|&i| !self.removes(i)).unwrap_or(0);
        if self.removes(n - 1) && self.resolve(n - 1) != last_kept {
            let out = &graph.nodes[n - 1];
            return Err(Error::Invalid(format!(
                "rewrite: removing the output '{}' would make '{}' the output, which is not the last node left",
                out.name,
                graph.nodes[self.resolve(n - 1)].name
            )));
        }
        let mut new_index = vec![usize::MAX; n];
        let mut next = 0;
        for (i, slot) in new_index.iter_mut().enumerate() {
            if !self.removes(i) {
                *slot = next;
                next += 1;
            }
        }
        let old = std::mem::take(&mut graph.nodes);
        for (i, mut node) in old.into_iter().enumerate() {
            if self.removes(i) {
                continue;
            }
            for input in node.inputs.iter_mut() {
                *input = new_index[self.resolve(*input)];
            }
            graph.nodes.push(node);
        }
        Ok(graph)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compile::ir::{InputSpec, Op, Weight};

    fn chain() -> Graph {
        let mut g = Graph::new(InputSpec {
            shape: [1, 2, 2],
            mean: vec![0.0],
            std: vec![1.0],
        });
        let a = g.push("flat", Op::Flatten, vec![0]).unwrap();
        let r1 = g.push("r1", Op::Relu, vec![a]).unwrap();
        let r2 = g.push("r2", Op::Relu, vec![r1]).unwrap();
        let fc = Op::Gemm {
            weight: Weight::dense(vec![2, 4], vec![1.0; 8]),
            bias: None,
            relu: false,
        };
        g.push("fc", fc, vec![r2]).unwrap();
        g
    }

    #[test]
    fn chains_of_bypasses_renumber_inputs() {
        let g = chain();
        let mut r = Rewrite::new(&g);
        r.bypass(2, 1);
        r.bypass(3, 2);
        let g = r.apply(g).unwrap();
        let names: Vec<&str> = g.nodes.iter().map(|n| n.name.as_str()).collect();
        assert_eq!(names, ["input", "flat", "fc"]);
        assert_eq!(g.nodes[2].inputs, vec![1]);
        g.validate().unwrap();
    }

    #[test]
    fn the_output_is_replaced_only_by_the_last_node_left() {
        let g = chain();
        let mut r = Rewrite::new(&g);
        r.bypass(4, 1);
        let e = r.apply(g.clone()).unwrap_err().to_string();
        assert!(e.contains("'fc'") && e.contains("'flat'"), "{e}");
        let mut r = Rewrite::new(&g);
        for at in [2, 3, 4] {
            r.bypass(at, at - 1);
        }
        let g = r.apply(g).unwrap();
        assert_eq!(g.nodes.last().unwrap().name, "flat");
    }
}
