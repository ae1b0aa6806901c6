#![no_main]
//! See `kvpacket::fuzzing::gguf_header`.

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| kvpacket::fuzzing::gguf_header(data));
