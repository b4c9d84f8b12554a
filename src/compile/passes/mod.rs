//! Graph-to-graph passes, run by the [`driver`] from one named list. Each pass returns a graph that passes
//! [`Graph::validate`](crate::compile::ir::Graph::validate) (the driver validates after every pass) and never
//! changes what the float graph computes beyond rounding, except quantisation, whose error is bounded by its
//! tests. Passes edit node lists through [`rewrite::Rewrite`].
pub mod driver;
pub mod fold_bn;
pub mod fuse;
pub mod layout;
pub mod quantize;
pub mod rewrite;
