//! The stand-in for the libtorch engine in builds without the `tch` feature.

use ndarray::{Array2, ArrayD, ArrayView4, ArrayViewD};

use crate::engine::device::{Device, TchDevice};
use crate::engine::{Network, Objective};
use crate::error::{Error, Result};
use crate::nn::{ModelSpec, TensorInfo};
use crate::optim::SgdConfig;
use crate::sparsity::Mask;

/// A libtorch network that cannot exist in this build: [`TchNetwork::new`] always fails with
/// [`Error::EngineNotCompiled`], so no value of this type is ever made.
#[derive(Debug)]
pub enum TchNetwork {}

impl TchNetwork {
    /// Fails: this build has no libtorch engine.
    pub fn new(_spec: &ModelSpec, _seed: u64, device: TchDevice) -> Result<Self> {
        Err(Error::EngineNotCompiled {
            device: Device::Tch(device).to_string(),
        })
    }
}

/// Nothing to wait for: this build runs nothing on a GPU.
pub fn synchronize_cuda(_device: usize) {}

impl Network for TchNetwork {
    fn spec(&self) -> &ModelSpec {
        match *self {}
    }
    fn tensors(&self) -> &[TensorInfo] {
        match *self {}
    }
    fn read(&self, _path: &str) -> Result<ArrayD<f32>> {
        match *self {}
    }
    fn write(&mut self, _path: &str, _value: ArrayViewD<f32>) -> Result<()> {
        match *self {}
    }
    fn set_mask(&mut self, _path: &str, _mask: Option<&Mask>) -> Result<()> {
        match *self {}
    }
    fn mask(&self, _path: &str) -> Option<Mask> {
        match *self {}
    }
    fn forward_backward(
        &mut self,
        _images: ArrayView4<f32>,
        _train_mode: bool,
        _objective: &Objective,
    ) -> Result<(f64, Array2<f32>)> {
        match *self {}
    }
    fn grad(&self, _path: &str) -> Result<ArrayD<f32>> {
        match *self {}
    }
    fn sgd_step(&mut self, _cfg: &SgdConfig, _lr: f32) {
        match *self {}
    }
    fn optimizer_state(&self) -> Vec<(String, ArrayD<f32>)> {
        match *self {}
    }
    fn set_optimizer_state(&mut self, _state: &[(String, ArrayD<f32>)]) -> Result<()> {
        match *self {}
    }
    fn reset_optimizer(&mut self) {
        match *self {}
    }
    fn predict(&mut self, _images: ArrayView4<f32>) -> Result<Array2<f32>> {
        match *self {}
    }
    fn forward_train(&mut self, _images: ArrayView4<f32>) -> Result<()> {
        match *self {}
    }
    fn set_bn_momentum(&mut self, _momentum: Option<f32>) {
        match *self {}
    }
}
