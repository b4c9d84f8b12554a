//! Models as data: architectures, their layer graphs and initialisation.

pub mod init;
pub mod loss;
pub mod spec;

pub use spec::{Arch, Graph, LeNet5Variant, ModelSpec, Node, Op, Shortcut, TensorInfo, TensorRole};
