//! Moving tensors between ndarray on the host and libtorch on a device, and libtorch errors into sculpt's.

use ndarray::{Array2, ArrayD, ArrayViewD, IxDyn};
use tch::{Kind, TchError, Tensor};

use crate::error::Error;

/// The libtorch device of a sculpt device.
pub fn torch_device(device: crate::engine::TchDevice) -> tch::Device {
    match device {
        crate::engine::TchDevice::Cpu => tch::Device::Cpu,
        crate::engine::TchDevice::Cuda(i) => tch::Device::Cuda(i),
    }
}

/// A libtorch error as an [`Error::Engine`] of `device`.
pub fn engine_error(device: &str, what: &str, e: TchError) -> Error {
    Error::Engine {
        device: device.to_string(),
        msg: format!("{what}: {e}"),
    }
}

/// An f32 tensor on `device` holding `values` (any layout) with their shape.
pub fn to_tensor(
    values: ArrayViewD<f32>,
    device: tch::Device,
) -> std::result::Result<Tensor, TchError> {
    let shape: Vec<i64> = values.shape().iter().map(|&d| d as i64).collect();
    let host = match values.as_slice() {
        Some(s) => Tensor::f_from_slice(s)?,
        None => Tensor::f_from_slice(&values.iter().copied().collect::<Vec<f32>>())?,
    };
    host.f_reshape(shape)?.f_to(device)
}

/// The values of an f32 tensor (on any device) as a host array of the given shape.
pub fn to_array(t: &Tensor, shape: &[usize]) -> std::result::Result<ArrayD<f32>, TchError> {
    let n: usize = shape.iter().product();
    if t.numel() != n || t.f_kind()? != Kind::Float {
        return Err(TchError::Shape(format!(
            "tensor of {} {:?} values where {n} f32 values of shape {shape:?} were expected",
            t.numel(),
            t.f_kind()?
        )));
    }
    let mut data = vec![0.0f32; n];
    t.f_copy_data(&mut data, n)?;
    ArrayD::from_shape_vec(IxDyn(shape), data).map_err(|e| TchError::Shape(e.to_string()))
}

/// A (rows × columns) f32 tensor as a host matrix.
pub fn to_array2(t: &Tensor) -> std::result::Result<Array2<f32>, TchError> {
    let size = t.size();
    let [rows, cols] = size[..] else {
        return Err(TchError::Shape(format!(
            "expected a matrix, got shape {size:?}"
        )));
    };
    let a = to_array(t, &[rows as usize, cols as usize])?;
    a.into_dimensionality()
        .map_err(|e| TchError::Shape(e.to_string()))
}
