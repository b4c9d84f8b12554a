pub mod binary;
pub mod c;
pub mod onnx;
