#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| gost_operator_fuzz::render(data));
