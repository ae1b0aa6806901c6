#![no_main]
//! See `kvpacket::fuzzing::safetensors_header`.

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| kvpacket::fuzzing::safetensors_header(data));
