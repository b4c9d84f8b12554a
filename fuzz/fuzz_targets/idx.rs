//! Fuzz target `idx`: see `sculpt::fuzz::idx`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = sculpt::fuzz::idx(data);
});
