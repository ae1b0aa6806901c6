#![no_main]
//! See `kvpacket::fuzzing::data_file`.

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| kvpacket::fuzzing::data_file(data));
