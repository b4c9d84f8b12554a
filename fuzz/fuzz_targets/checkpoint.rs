//! Fuzz target `checkpoint`: see `sculpt::fuzz::checkpoint`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = sculpt::fuzz::checkpoint(data);
});
