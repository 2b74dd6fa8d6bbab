#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    at_gateway_fuzz::targets::plaintext(data);
});
