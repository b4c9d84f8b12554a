//! Constant tensors of the ONNX importer: dims with f32 or i64 values, decoded from `TensorProto`s.

use onnx_protobuf::{tensor_proto::DataType, TensorProto};

use crate::budget::Budget;

/// The most elements a constant may hold, whether read from the file or computed by folding.
pub const MAX_ELEMENTS: usize = 1 << 31;

/// Element values, row-major.
#[derive(Debug, Clone, PartialEq)]
pub enum Data {
    F32(Vec<f32>),
    I64(Vec<i64>),
}

/// A dense constant tensor; `dims` is empty for a scalar. Invariant: the data holds `dims`' product values.
#[derive(Debug, Clone, PartialEq)]
pub struct Tensor {
    pub dims: Vec<usize>,
    pub data: Data,
}

impl Tensor {
    pub fn f32(dims: Vec<usize>, v: Vec<f32>) -> Self {
        debug_assert_eq!(dims.iter().product::<usize>(), v.len());
        Tensor {
            dims,
            data: Data::F32(v),
        }
    }

    pub fn i64(dims: Vec<usize>, v: Vec<i64>) -> Self {
        debug_assert_eq!(dims.iter().product::<usize>(), v.len());
        Tensor {
            dims,
            data: Data::I64(v),
        }
    }

    pub fn len(&self) -> usize {
        match &self.data {
            Data::F32(v) => v.len(),
            Data::I64(v) => v.len(),
        }
    }

    /// The ONNX name of the element type.
    pub fn type_name(&self) -> &'static str {
        match self.data {
            Data::F32(_) => "float",
            Data::I64(_) => "int64",
        }
    }

    /// The values as f32 (int64 values converted).
    pub fn to_f32(&self) -> Vec<f32> {
        match &self.data {
            Data::F32(v) => v.clone(),
            Data::I64(v) => v.iter().map(|&x| x as f32).collect(),
        }
    }

    /// The values when the tensor is int64.
    pub fn as_i64(&self) -> Option<&[i64]> {
        match &self.data {
            Data::I64(v) => Some(v),
            Data::F32(_) => None,
        }
    }

    /// The tensor of the same type with dims `dims` whose element `k` is element `from[k]` of this one.
    /// Contract: every index in `from` is in range and `dims` holds `from.len()` elements.
    pub fn pick(&self, dims: Vec<usize>, from: &[usize]) -> Tensor {
        match &self.data {
            Data::F32(v) => Tensor::f32(dims, from.iter().map(|&i| v[i]).collect()),
            Data::I64(v) => Tensor::i64(dims, from.iter().map(|&i| v[i]).collect()),
        }
    }
}

/// The number of elements of `dims`, or an error when it or any single dim exceeds [`MAX_ELEMENTS`] (an empty
/// tensor with a huge dim would still make index tables of that length).
pub fn numel(dims: &[usize]) -> Result<usize, String> {
    dims.iter()
        .try_fold(1usize, |a, &d| {
            if d > MAX_ELEMENTS {
                None
            } else {
                a.checked_mul(d)
            }
        })
        .filter(|&n| n <= MAX_ELEMENTS)
        .ok_or_else(|| format!("a tensor of dims {dims:?} is too large"))
}

/// Decodes a FLOAT or INT64 tensor from its raw or typed fields, charging its values to `budget` before
/// decoding them; errors name the tensor.
pub fn from_proto(t: &TensorProto, budget: &Budget) -> Result<Tensor, String> {
    let name = &t.name;
    let dims: Vec<usize> = t
        .dims
        .iter()
        .map(|&d| {
            usize::try_from(d).map_err(|_| {
                format!(
                    "tensor {} has a negative dimension",
                    crate::error::quote(name)
                )
            })
        })
        .collect::<Result<_, _>>()?;
    let name = crate::error::quote(name);
    let n = numel(&dims).map_err(|_| format!("tensor {name} is too large"))?;
    if !t.external_data.is_empty() {
        return Err(format!(
            "tensor {name} uses external data, which is not supported"
        ));
    }
    let width = if t.data_type == DataType::INT64 as i32 {
        8
    } else {
        4
    };
    budget
        .charge_elements(format!("tensor {name}"), n, width)
        .map_err(|e| e.to_string())?;
    let (got, width, data) = if t.data_type == DataType::FLOAT as i32 {
        let v: Vec<f32> = if t.raw_data.is_empty() {
            t.float_data.clone()
        } else {
            t.raw_data
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect()
        };
        (v.len(), 4, Data::F32(v))
    } else if t.data_type == DataType::INT64 as i32 {
        let v: Vec<i64> = if t.raw_data.is_empty() {
            t.int64_data.clone()
        } else {
            t.raw_data
                .chunks_exact(8)
                .map(|b| i64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]))
                .collect()
        };
        (v.len(), 8, Data::I64(v))
    } else {
        return Err(format!(
            "tensor {name} has unsupported data type {}",
            t.data_type
        ));
    };
    if got != n || !(t.raw_data.is_empty() || t.raw_data.len() == n * width) {
        return Err(format!(
            "tensor {name} holds {got} values, its dims {dims:?} need {n}"
        ));
    }
    Ok(Tensor { dims, data })
}
