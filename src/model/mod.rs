//! The transformer runtime: configuration, weights, tokenizer, chat template and a forward
//! pass with explicit positions, masks and KV cache, plus a differentiable path.

pub mod attention;
pub mod block_gemv;
pub mod block_op;
pub mod chat;
pub mod config;
pub mod fetch;
pub mod forward;
pub mod fused;
pub mod generate;
pub mod kv;
pub mod mask;
pub mod product;
pub mod product_bf16;
pub mod qkv_attention;
pub mod rope;
pub mod tiny;
pub mod tokenizer;
pub mod weights;

pub use config::{Arch, Config};
pub use forward::{FrozenKv, GraphGrad, Input, Rows};
pub use kv::KvCache;
pub use mask::{AttnMask, Segment};
pub use weights::WeightMode;

use anyhow::{Context, Result, bail};
use candle_core::quantized::gguf_file;
use chat::ChatTemplate;
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use tokenizer::Tokenizer;
use weights::Weights;

/// A loaded model: everything needed to tokenize, template and run it.
pub struct Model {
    /// Shape and hyperparameters.
    pub config: Config,
    /// Embeddings, layers and output head.
    pub weights: Weights,
    /// Text to token ids and back.
    pub tokenizer: Tokenizer,
    /// The model's chat template, when its files have one.
    pub chat: Option<ChatTemplate>,
    /// Identifies the exact weights: hex sha256 over the architecture and the weight file(s).
    pub fingerprint: String,
    /// Where the model was loaded from.
    pub source: PathBuf,
    inv_freqs: Vec<f32>,
}

/// Hex sha256 of a file's bytes.
pub fn sha256_file(path: &Path) -> Result<String> {
    let mut f = std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = std::io::Read::read(&mut f, &mut buf)?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(hex::encode(h.finalize()))
}

fn fingerprint(cfg: &Config, file_hashes: &[String]) -> String {
    let mut h = Sha256::new();
    h.update(serde_json::to_vec(cfg).unwrap_or_default());
    for f in file_hashes {
        h.update(f.as_bytes());
    }
    hex::encode(h.finalize())
}

impl Model {
    /// Loads a GGUF file or a Hugging Face folder (config.json + *.safetensors + tokenizer.json).
    pub fn load(path: &Path, mode: WeightMode) -> Result<Self> {
        if path.is_dir() {
            if mode == WeightMode::Quantized {
                bail!("quantized weights need a GGUF file; {} is a folder", path.display());
            }
            Self::load_hf(path, mode)
        } else {
            Self::load_gguf(path, mode)
        }
    }

    fn load_gguf(path: &Path, mode: WeightMode) -> Result<Self> {
        let mut f = std::fs::File::open(path).with_context(|| format!("opening model {}", path.display()))?;
        let ct = gguf_file::Content::read(&mut f)
            .map_err(|e| anyhow::anyhow!("{} is not a readable GGUF file: {e}", path.display()))?;
        let config = Config::from_gguf(&ct)?;
        let tokenizer = Tokenizer::from_gguf(&ct)?;
        let weights = Weights::from_gguf(&ct, path, &config, mode)
            .with_context(|| format!("loading weights from {} (truncated or corrupt file?)", path.display()))?;
        let chat = ct
            .metadata
            .get("tokenizer.chat_template")
            .and_then(|v| v.to_string().ok())
            .map(|s| ChatTemplate::new(s.clone(), tokenizer.bos_text.clone(), tokenizer.eos_text.clone()));
        let fp = fingerprint(&config, &[sha256_file(path)?]);
        Ok(Self::assemble(config, weights, tokenizer, chat, fp, path))
    }

    /// A Hugging Face folder: f32 weights, with the bf16 copies of `bf16-gguf-decode` when asked
    /// (every other mode is f32 here).
    fn load_hf(dir: &Path, mode: WeightMode) -> Result<Self> {
        let read = |name: &str| {
            std::fs::read_to_string(dir.join(name)).with_context(|| format!("reading {}", dir.join(name).display()))
        };
        let config = Config::from_hf_json(&read("config.json")?)?;
        let tok_cfg: serde_json::Value = match read("tokenizer_config.json") {
            Ok(t) => serde_json::from_str(&t).context("tokenizer_config.json is not valid JSON")?,
            Err(_) => serde_json::Value::Null,
        };
        let tokenizer = Tokenizer::from_hf(&dir.join("tokenizer.json"), &tok_cfg)?;
        let mut files: Vec<PathBuf> = std::fs::read_dir(dir)?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|e| e == "safetensors"))
            .collect();
        files.sort();
        if files.is_empty() {
            bail!("no *.safetensors files in {}", dir.display());
        }
        let weights = Weights::from_safetensors(&files, &config, mode == WeightMode::Bf16GgufDecode)?;
        // The template is in tokenizer_config.json (a string, or a list of named templates), or
        // in chat_template.jinja, where current transformers writes it.
        let in_config = match &tok_cfg["chat_template"] {
            serde_json::Value::String(s) => Some(s.clone()),
            serde_json::Value::Array(named) => named
                .iter()
                .find(|t| t["name"] == "default")
                .and_then(|t| t["template"].as_str())
                .map(String::from),
            _ => None,
        };
        let chat = in_config
            .or_else(|| read("chat_template.jinja").ok())
            .map(|s| ChatTemplate::new(s, tokenizer.bos_text.clone(), tokenizer.eos_text.clone()));
        let hashes = files.iter().map(|f| sha256_file(f)).collect::<Result<Vec<_>>>()?;
        let fp = fingerprint(&config, &hashes);
        Ok(Self::assemble(config, weights, tokenizer, chat, fp, dir))
    }

    fn assemble(
        config: Config,
        weights: Weights,
        tokenizer: Tokenizer,
        chat: Option<ChatTemplate>,
        fingerprint: String,
        source: &Path,
    ) -> Self {
        let inv_freqs = config.inv_freqs();
        Self {
            config,
            weights,
            tokenizer,
            chat,
            fingerprint,
            source: source.to_path_buf(),
            inv_freqs,
        }
    }

    /// The chat template, or an error naming the model when it has none.
    pub fn chat_template(&self) -> Result<&ChatTemplate> {
        self.chat.as_ref().with_context(|| {
            format!(
                "{} has no chat template (a raw prompt needs none)",
                self.source.display()
            )
        })
    }

    /// Token ids of the chat template's suffix after a user message (end of the user turn and
    /// the assistant header), as they end every task prompt (`methods::layout`).
    pub fn prompt_suffix_tokens(&self) -> Result<Vec<u32>> {
        let (_, post) = self.chat_template()?.split_with_system(None)?;
        self.tokenizer.encode(&post)
    }

    /// Token ids of a prompt: BOS (when the tokenizer adds one) followed by the text's ids.
    pub fn encode_prompt(&self, text: &str) -> Result<Vec<u32>> {
        let mut ids: Vec<u32> = self.tokenizer.bos_to_add.into_iter().collect();
        ids.extend(self.tokenizer.encode(text)?);
        Ok(ids)
    }
}
