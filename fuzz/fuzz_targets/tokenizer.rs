#![no_main]
//! The tiny model's tokenizer (byte-level BPE, as the real ones) on arbitrary bytes.

use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;

fn model() -> &'static kvpacket::model::Model {
    static M: OnceLock<kvpacket::model::Model> = OnceLock::new();
    M.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("kvpacket-fuzz-tokenizer-{}", std::process::id()));
        kvpacket::model::tiny::write_tiny_model(&dir, Default::default()).unwrap();
        kvpacket::model::Model::load(&dir, kvpacket::model::WeightMode::F32).unwrap()
    })
}

fuzz_target!(|data: &[u8]| kvpacket::fuzzing::tokenizer(model(), data));
