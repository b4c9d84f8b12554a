//! Fuzz target `cifar`: see `sculpt::fuzz::cifar`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = sculpt::fuzz::cifar(data);
});
