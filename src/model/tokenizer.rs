//! Tokenizers: byte-level BPE rebuilt from GGUF metadata (pre-tokenizer chosen by
//! `tokenizer.ggml.pre`, as llama.cpp does), or a Hugging Face `tokenizer.json`.

use anyhow::{Context, Result, anyhow, bail};
use candle_core::quantized::gguf_file;
use serde_json::{Value, json};

/// Qwen2 pre-tokenizer regex (as in llama.cpp and the HF tokenizer.json).
const QWEN2_REGEX: &str = r"(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";
/// Llama-3 pre-tokenizer regex.
const LLAMA3_REGEX: &str = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";

/// A tokenizer plus the special ids generation needs.
pub struct Tokenizer {
    inner: tokenizers::Tokenizer,
    /// BOS id, when the model's tokenizer adds one at the start of a prompt.
    pub bos_to_add: Option<u32>,
    /// Ids that end generation (EOS and end-of-turn tokens).
    pub stop_ids: Vec<u32>,
    /// The BOS token's text, for chat templates.
    pub bos_text: String,
    /// The EOS token's text, for chat templates.
    pub eos_text: String,
}

fn byte_level(use_regex: bool) -> Value {
    json!({"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": use_regex})
}

fn split(regex: &str) -> Value {
    json!({"type": "Split", "pattern": {"Regex": regex}, "behavior": "Isolated", "invert": false})
}

/// The pre-tokenizer llama.cpp applies for a `tokenizer.ggml.pre` value.
fn pre_tokenizer(pre: &str) -> Result<Value> {
    let seq = match pre {
        "smollm" => vec![json!({"type": "Digits", "individual_digits": true}), byte_level(true)],
        "qwen2" | "deepseek-r1-qwen" => vec![split(QWEN2_REGEX), byte_level(false)],
        "llama-bpe" | "llama3" => vec![split(LLAMA3_REGEX), byte_level(false)],
        "gpt-2" | "gpt2" | "default" => vec![byte_level(true)],
        other => bail!("unsupported GGUF pre-tokenizer `{other}` (supported: smollm, qwen2, llama-bpe, gpt-2)"),
    };
    Ok(json!({"type": "Sequence", "pretokenizers": seq}))
}

const STOP_TEXTS: [&str; 5] = ["<|im_end|>", "<|endoftext|>", "<|eot_id|>", "<|end_of_text|>", "</s>"];

impl Tokenizer {
    /// Rebuilds the tokenizer from GGUF metadata (byte-level BPE only).
    pub fn from_gguf(ct: &gguf_file::Content) -> Result<Self> {
        let md = |k: &str| {
            ct.metadata
                .get(k)
                .with_context(|| format!("GGUF metadata key `{k}` missing"))
        };
        let model = md("tokenizer.ggml.model")?.to_string()?;
        if model != "gpt2" {
            bail!("unsupported GGUF tokenizer model `{model}` (supported: gpt2 byte-level BPE)");
        }
        let pre = ct
            .metadata
            .get("tokenizer.ggml.pre")
            .and_then(|v| v.to_string().ok())
            .map_or("default", |s| s);
        let tokens: Vec<String> = md("tokenizer.ggml.tokens")?
            .to_vec()?
            .iter()
            .map(|v| Ok(v.to_string()?.clone()))
            .collect::<Result<_>>()?;
        let types: Vec<i32> = match ct.metadata.get("tokenizer.ggml.token_type") {
            Some(v) => v.to_vec()?.iter().map(|t| Ok(t.to_i32()?)).collect::<Result<_>>()?,
            None => vec![1; tokens.len()],
        };
        let merges: Vec<String> = md("tokenizer.ggml.merges")?
            .to_vec()?
            .iter()
            .map(|v| Ok(v.to_string()?.clone()))
            .collect::<Result<_>>()?;
        let vocab: serde_json::Map<String, Value> =
            tokens.iter().enumerate().map(|(i, t)| (t.clone(), json!(i))).collect();
        // Control (3) and user-defined (4) tokens are matched whole in the text, before BPE.
        let added: Vec<Value> = tokens
            .iter()
            .zip(&types)
            .enumerate()
            .filter(|(_, (_, ty))| **ty == 3 || **ty == 4)
            .map(|(i, (t, ty))| {
                json!({"id": i, "content": t, "single_word": false, "lstrip": false, "rstrip": false,
                       "normalized": false, "special": *ty == 3})
            })
            .collect();
        let spec = json!({
            "version": "1.0", "truncation": null, "padding": null, "added_tokens": added,
            "normalizer": null, "pre_tokenizer": pre_tokenizer(pre)?, "post_processor": null,
            "decoder": {"type": "ByteLevel", "add_prefix_space": true, "trim_offsets": true, "use_regex": true},
            "model": {"type": "BPE", "dropout": null, "unk_token": null, "continuing_subword_prefix": null,
                      "end_of_word_suffix": null, "fuse_unk": false, "byte_fallback": false,
                      "ignore_merges": false, "vocab": vocab, "merges": merges}
        });
        let inner = tokenizers::Tokenizer::from_bytes(serde_json::to_vec(&spec)?)
            .map_err(|e| anyhow!("building the tokenizer from GGUF metadata: {e}"))?;
        let id = |k: &str| ct.metadata.get(k).and_then(|v| v.to_u32().ok());
        let add_bos = ct
            .metadata
            .get("tokenizer.ggml.add_bos_token")
            .and_then(|v| v.to_bool().ok())
            .unwrap_or(false);
        let text_of = |i: Option<u32>| i.and_then(|i| tokens.get(i as usize).cloned()).unwrap_or_default();
        let bos = id("tokenizer.ggml.bos_token_id");
        let eos = id("tokenizer.ggml.eos_token_id");
        Ok(Self::assemble(
            inner,
            if add_bos { bos } else { None },
            eos,
            text_of(bos),
            text_of(eos),
        ))
    }

    /// Loads `tokenizer.json`, with BOS/EOS and `add_bos_token` from `tokenizer_config.json`.
    pub fn from_hf(tokenizer_json: &std::path::Path, config: &Value) -> Result<Self> {
        let inner = tokenizers::Tokenizer::from_file(tokenizer_json)
            .map_err(|e| anyhow!("reading {}: {e}", tokenizer_json.display()))?;
        let text = |k: &str| match &config[k] {
            Value::String(s) => s.clone(),
            Value::Object(o) => o.get("content").and_then(|c| c.as_str()).unwrap_or("").to_string(),
            _ => String::new(),
        };
        let (bos_text, eos_text) = (text("bos_token"), text("eos_token"));
        let bos = inner.token_to_id(&bos_text);
        let add_bos = config["add_bos_token"].as_bool().unwrap_or(false);
        let eos = inner.token_to_id(&eos_text);
        Ok(Self::assemble(
            inner,
            if add_bos { bos } else { None },
            eos,
            bos_text,
            eos_text,
        ))
    }

    fn assemble(
        inner: tokenizers::Tokenizer,
        bos_to_add: Option<u32>,
        eos: Option<u32>,
        bos_text: String,
        eos_text: String,
    ) -> Self {
        let mut stop_ids: Vec<u32> = eos.into_iter().collect();
        for t in STOP_TEXTS {
            if let Some(i) = inner.token_to_id(t)
                && !stop_ids.contains(&i)
            {
                stop_ids.push(i);
            }
        }
        Self {
            inner,
            bos_to_add,
            stop_ids,
            bos_text,
            eos_text,
        }
    }

    /// Token ids of `text`, without BOS; special-token texts (e.g. `<|im_start|>`) map to their ids.
    pub fn encode(&self, text: &str) -> Result<Vec<u32>> {
        let enc = self.inner.encode(text, false).map_err(|e| anyhow!("tokenizing: {e}"))?;
        Ok(enc.get_ids().to_vec())
    }

    /// Text of `ids`, special tokens dropped.
    pub fn decode(&self, ids: &[u32]) -> Result<String> {
        self.inner.decode(ids, true).map_err(|e| anyhow!("detokenizing: {e}"))
    }

    /// Size of the vocabulary, added tokens included.
    pub fn vocab_size(&self) -> usize {
        self.inner.get_vocab_size(true)
    }
}
