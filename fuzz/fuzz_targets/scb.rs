//! Fuzz target `scb`: see `sculpt::fuzz::scb`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = sculpt::fuzz::scb(data);
});
