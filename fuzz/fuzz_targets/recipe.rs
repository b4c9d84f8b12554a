//! Fuzz target `recipe`: see `sculpt::fuzz::recipe`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = sculpt::fuzz::recipe(data);
});
