#![no_main]
//! See `kvpacket::fuzzing::chat_request`.

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| kvpacket::fuzzing::chat_request(data));
