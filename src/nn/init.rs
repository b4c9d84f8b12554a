//! Initial values of a model's tensors.

use ndarray::ArrayD;
use rand::Rng;
use rand_distr::{Distribution, Normal};

use super::spec::{Graph, TensorInfo, TensorRole};

/// Kaiming (He) normal initialisation for conv and linear weights, std = sqrt(2 / fan_in); biases and BN shifts
/// zero, BN scales one, running means zero and running variances one. Tensors come in [`Graph::tensors`] order.
pub fn kaiming_init<R: Rng>(graph: &Graph, rng: &mut R) -> Vec<(TensorInfo, ArrayD<f32>)> {
    graph
        .tensors()
        .into_iter()
        .map(|t| {
            let shape = ndarray::IxDyn(&t.shape);
            let value = match t.role {
                TensorRole::Weight => {
                    let fan_in: usize = t.shape[1..].iter().product();
                    let normal =
                        Normal::new(0.0f32, (2.0 / fan_in as f32).sqrt()).expect("finite std");
                    ArrayD::from_shape_simple_fn(shape, || normal.sample(rng))
                }
                TensorRole::BnWeight | TensorRole::RunningVar => ArrayD::ones(shape),
                TensorRole::Bias | TensorRole::BnBias | TensorRole::RunningMean => {
                    ArrayD::zeros(shape)
                }
            };
            (t, value)
        })
        .collect()
}
