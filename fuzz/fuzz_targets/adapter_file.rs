#![no_main]
//! See `kvpacket::fuzzing::adapter_file`.

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| kvpacket::fuzzing::adapter_file(data));
