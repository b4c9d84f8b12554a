//! The libtorch engine: the same [`crate::nn::ModelSpec`] graph built from libtorch ops, on the CPU or a CUDA
//! GPU, behind the `tch` feature (the `tch` crate 0.24, libtorch 2.11).
//!
//! [`TchNetwork`] keeps every tensor of the graph on its device under the parameter paths of the CPU engine,
//! draws its initial weights from the same seeded generator, and implements the whole [`super::Network`]
//! contract with the same semantics: batch norm with PyTorch's momentum (0.1, or a cumulative average) and
//! epsilon ([`crate::engine::cpu::BN_EPS`]), masks that keep pruned weights exactly zero through SGD, dense
//! gradients at masked positions, and the SGD update of [`crate::optim::sgd`] (momentum, Nesterov, weight decay by
//! role). Checkpoints are written through the `Network` trait, so a run trained on one engine resumes or
//! compiles from the other.
//!
//! Determinism: on the CPU libtorch runs with as many threads as the calling rayon pool, and the same weights,
//! inputs and thread count give bit-identical results. On a GPU cuDNN's benchmark mode is off, but libtorch does
//! not promise bit-identical reductions there.
//!
//! Without the feature, [`TchNetwork`] is an uninhabited stand-in whose constructor returns
//! [`crate::Error::EngineNotCompiled`], which says how to build with the feature.

#[cfg(feature = "tch")]
mod convert;
#[cfg(feature = "tch")]
mod cuda;
#[cfg(feature = "tch")]
mod forward;
#[cfg(feature = "tch")]
mod network;
#[cfg(not(feature = "tch"))]
mod not_compiled;
#[cfg(feature = "tch")]
mod sgd;

#[cfg(feature = "tch")]
pub use cuda::synchronize_cuda;
#[cfg(feature = "tch")]
pub use network::TchNetwork;
#[cfg(not(feature = "tch"))]
pub use not_compiled::{synchronize_cuda, TchNetwork};
