//! Entry points of the fuzz targets (`fuzz/`, `cargo fuzz run NAME`) and of the corpus replay
//! in the test suite (`tests/fuzz_corpus.rs`). Each takes arbitrary bytes and must return:
//! an error is fine, a panic or an unbounded allocation is a bug.

use crate::adapter::Adapter;
use crate::engine::Limits;
use crate::model::Model;
use crate::model::config::Config;
use crate::model::tokenizer::Tokenizer;
use crate::packet::Packet;
use crate::server::openai::ChatRequest;

/// The targets by name, for the corpus replay (the tokenizer target needs a model).
pub const TARGETS: [&str; 6] = [
    "packet_file",
    "adapter_file",
    "gguf_header",
    "safetensors_header",
    "data_file",
    "chat_request",
];

/// A packet file as the stores read it.
pub fn packet_file(data: &[u8]) {
    let _ = Packet::from_bytes(data);
}

/// An adapter file.
pub fn adapter_file(data: &[u8]) {
    let _ = Adapter::from_bytes(data);
}

/// A GGUF header, then the model config and tokenizer read from its metadata.
pub fn gguf_header(data: &[u8]) {
    if let Ok(ct) = candle_core::quantized::gguf_file::Content::read(&mut std::io::Cursor::new(data)) {
        let _ = Config::from_gguf(&ct);
        let _ = Tokenizer::from_gguf(&ct);
    }
}

/// A safetensors header with kvpacket metadata, and an HF `config.json`.
pub fn safetensors_header(data: &[u8]) {
    let _ = crate::io::safetensors_meta(data);
    let _ = safetensors::SafeTensors::deserialize(data);
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = Config::from_hf_json(text);
    }
}

/// A data file in the shared format.
pub fn data_file(data: &[u8]) {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = crate::data::parse_samples(text);
    }
}

/// A chat-completions request body, turned into an engine request and checked.
pub fn chat_request(data: &[u8]) {
    if let Ok(r) = serde_json::from_slice::<ChatRequest>(data)
        && let Ok(req) = r.to_request(256)
    {
        let _ = req.check(&Limits::default());
    }
}

/// Arbitrary bytes (as lossy UTF-8) through `model`'s tokenizer and back.
pub fn tokenizer(model: &Model, data: &[u8]) {
    if let Ok(ids) = model.tokenizer.encode(&String::from_utf8_lossy(data)) {
        let _ = model.tokenizer.decode(&ids);
    }
}

/// Runs the target `name` (one of [`TARGETS`]) on `data`.
pub fn run(name: &str, data: &[u8]) {
    match name {
        "packet_file" => packet_file(data),
        "adapter_file" => adapter_file(data),
        "gguf_header" => gguf_header(data),
        "safetensors_header" => safetensors_header(data),
        "data_file" => data_file(data),
        "chat_request" => chat_request(data),
        other => panic!("no fuzz target `{other}`"),
    }
}
