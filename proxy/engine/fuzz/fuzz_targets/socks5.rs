#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| gost_fuzz::socks5(data));
