//! Fuzz target `onnx`: see `sculpt::fuzz::onnx`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = sculpt::fuzz::onnx(data);
});
