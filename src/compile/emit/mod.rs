pub mod binary;
pub mod c;
