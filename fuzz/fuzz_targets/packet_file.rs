#![no_main]
//! See `kvpacket::fuzzing::packet_file`.

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| kvpacket::fuzzing::packet_file(data));
