pub mod binary;
pub mod c;
pub mod c_harness;
pub mod onnx;
pub mod rice;
