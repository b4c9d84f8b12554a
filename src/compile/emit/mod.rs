pub mod binary;
pub mod c;
pub mod onnx;
pub mod rice;
