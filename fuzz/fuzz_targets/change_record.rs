#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| wkp1_fuzz_targets::change_record(data));
