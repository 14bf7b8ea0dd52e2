#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| steward_fuzz::label::label_expr(data));
