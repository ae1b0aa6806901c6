//! Model hyper-parameters, read from GGUF metadata or a Hugging Face `config.json`.

use anyhow::{Context, Result, bail};
use candle_core::quantized::gguf_file;
use serde::Serialize;

/// The transformer families the runtime implements.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Arch {
    /// Llama / SmolLM2: no attention biases.
    Llama,
    /// Qwen2: biases on the q, k and v projections.
    Qwen2,
}

/// Llama-3.1 style frequency scaling (`rope_type = "llama3"`).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Llama3RopeScaling {
    /// Overall factor the low frequencies are divided by.
    pub factor: f32,
    /// Wavelengths above original_max / this are fully scaled.
    pub low_freq_factor: f32,
    /// Wavelengths below original_max / this are left as they are.
    pub high_freq_factor: f32,
    /// Context length the model was pretrained at.
    pub original_max_position_embeddings: usize,
}

/// Everything the forward pass needs to know about a model's shape.
/// Guarantees: `n_heads % n_kv_heads == 0` and `head_dim` is one the attention kernels support (checked by [`Config::validate`]).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Config {
    /// Architecture family (Llama or Qwen2).
    pub arch: Arch,
    /// Tokens in the vocabulary: rows of the embedding and of the output head.
    pub vocab_size: usize,
    /// Width of the residual stream.
    pub hidden_size: usize,
    /// Width of the MLP's gate and up projections.
    pub intermediate_size: usize,
    /// Transformer blocks.
    pub n_layers: usize,
    /// Query heads per layer.
    pub n_heads: usize,
    /// Key/value heads per layer (grouped-query attention when fewer than `n_heads`).
    pub n_kv_heads: usize,
    /// Values per head.
    pub head_dim: usize,
    /// Epsilon of every RMSNorm.
    pub rms_norm_eps: f32,
    /// RoPE base frequency.
    pub rope_theta: f32,
    /// True when rotary pairs are adjacent lanes (2i, 2i+1), as in GGUF Llama files whose
    /// Q/K rows were permuted by the converter; false for the "half split" (i, i + d/2) layout.
    pub rope_interleaved: bool,
    /// Llama-3.1 frequency scaling, when the model has it.
    pub rope_scaling: Option<Llama3RopeScaling>,
    /// Longest context the model supports; longer requests are refused.
    pub max_position_embeddings: usize,
    /// True when the output head reuses the token-embedding matrix.
    pub tie_word_embeddings: bool,
}

impl Config {
    /// Checks the invariants the kernels rely on.
    pub fn validate(&self) -> Result<()> {
        if self.n_heads == 0 || self.n_kv_heads == 0 || !self.n_heads.is_multiple_of(self.n_kv_heads) {
            bail!(
                "invalid head counts: {} heads, {} kv heads",
                self.n_heads,
                self.n_kv_heads
            );
        }
        if !super::attention::SUPPORTED_HEAD_DIMS.contains(&self.head_dim) {
            bail!(
                "head dimension {} is not supported (supported: {:?})",
                self.head_dim,
                super::attention::SUPPORTED_HEAD_DIMS
            );
        }
        if self.n_layers == 0 || self.hidden_size == 0 || self.vocab_size == 0 {
            bail!("model has an empty dimension: {self:?}");
        }
        let positive_theta = self.rope_theta.is_finite() && self.rope_theta > 0.0;
        if !(positive_theta && self.rms_norm_eps.is_finite() && self.rms_norm_eps >= 0.0) {
            bail!("rope_theta must be positive and rms_norm_eps non-negative: {self:?}");
        }
        if let Some(s) = self.rope_scaling {
            let ok = s.factor.is_finite()
                && s.factor > 0.0
                && s.low_freq_factor > 0.0
                && s.high_freq_factor > s.low_freq_factor
                && s.original_max_position_embeddings > 0;
            if !ok {
                bail!("invalid llama3 rope scaling: {s:?}");
            }
        }
        Ok(())
    }

    /// Inverse rotary frequencies θ_i, one per pair, with llama3 scaling applied when set.
    pub fn inv_freqs(&self) -> Vec<f32> {
        let d = self.head_dim;
        (0..d / 2)
            .map(|i| {
                let f = 1.0 / (self.rope_theta as f64).powf(2.0 * i as f64 / d as f64);
                match self.rope_scaling {
                    None => f as f32,
                    Some(s) => llama3_scale(f, s) as f32,
                }
            })
            .collect()
    }

    /// Reads the configuration from GGUF metadata (`general.architecture` = llama | qwen2).
    pub fn from_gguf(ct: &gguf_file::Content) -> Result<Self> {
        let md = |k: &str| {
            ct.metadata
                .get(k)
                .with_context(|| format!("GGUF metadata key `{k}` missing"))
        };
        let arch_name = md("general.architecture")?.to_string()?.clone();
        let arch = match arch_name.as_str() {
            "llama" => Arch::Llama,
            "qwen2" => Arch::Qwen2,
            other => bail!("unsupported architecture `{other}` (supported: llama, qwen2)"),
        };
        let p = |k: &str| md(&format!("{arch_name}.{k}"));
        let u = |k: &str| -> Result<usize> { Ok(p(k)?.to_u32()? as usize) };
        let hidden_size = u("embedding_length")?;
        let n_heads = u("attention.head_count")?;
        let n_kv_heads = u("attention.head_count_kv").unwrap_or(n_heads);
        let emb = ct
            .tensor_infos
            .get("token_embd.weight")
            .context("GGUF tensor `token_embd.weight` missing")?;
        let vocab_size = emb.shape.dims()[0];
        let head_dim = u("rope.dimension_count").unwrap_or(hidden_size.checked_div(n_heads).unwrap_or(0));
        let cfg = Config {
            arch,
            vocab_size,
            hidden_size,
            intermediate_size: u("feed_forward_length")?,
            n_layers: u("block_count")?,
            n_heads,
            n_kv_heads,
            head_dim,
            rms_norm_eps: p("attention.layer_norm_rms_epsilon")?.to_f32()?,
            rope_theta: p("rope.freq_base").and_then(|v| Ok(v.to_f32()?)).unwrap_or(10000.0),
            rope_interleaved: arch == Arch::Llama,
            rope_scaling: None,
            max_position_embeddings: u("context_length").unwrap_or(4096),
            tie_word_embeddings: !ct.tensor_infos.contains_key("output.weight"),
        };
        cfg.validate()?;
        Ok(cfg)
    }

    /// Reads a Hugging Face `config.json` (`LlamaForCausalLM` or `Qwen2ForCausalLM`).
    pub fn from_hf_json(text: &str) -> Result<Self> {
        let v: serde_json::Value = serde_json::from_str(text).context("config.json is not valid JSON")?;
        // `architectures` names the class; current transformers may leave it out, and then
        // `model_type` says the same.
        let archs = v["architectures"].as_array().cloned().unwrap_or_default();
        let name = archs.first().and_then(|a| a.as_str());
        let arch = match (name, v["model_type"].as_str()) {
            (Some("LlamaForCausalLM"), _) | (None, Some("llama")) => Arch::Llama,
            (Some("Qwen2ForCausalLM"), _) | (None, Some("qwen2")) => Arch::Qwen2,
            (Some(other), _) => {
                bail!("unsupported architecture `{other}` (supported: LlamaForCausalLM, Qwen2ForCausalLM)")
            }
            (None, other) => bail!(
                "config.json names no architecture and model_type `{}` is not supported (supported: llama, qwen2)",
                other.unwrap_or("")
            ),
        };
        let u = |k: &str| -> Result<usize> {
            v[k].as_u64()
                .map(|x| x as usize)
                .with_context(|| format!("config.json: `{k}` missing"))
        };
        let hidden_size = u("hidden_size")?;
        let n_heads = u("num_attention_heads")?;
        let rope_scaling = match v.get("rope_scaling") {
            Some(s) if !s.is_null() => {
                let kind = s["rope_type"].as_str().or(s["type"].as_str()).unwrap_or("");
                if kind != "llama3" {
                    bail!("unsupported rope_scaling type `{kind}` (supported: llama3)");
                }
                let f = |k: &str| s[k].as_f64().with_context(|| format!("rope_scaling.{k} missing"));
                Some(Llama3RopeScaling {
                    factor: f("factor")? as f32,
                    low_freq_factor: f("low_freq_factor")? as f32,
                    high_freq_factor: f("high_freq_factor")? as f32,
                    original_max_position_embeddings: f("original_max_position_embeddings")? as usize,
                })
            }
            _ => None,
        };
        let cfg = Config {
            arch,
            vocab_size: u("vocab_size")?,
            hidden_size,
            intermediate_size: u("intermediate_size")?,
            n_layers: u("num_hidden_layers")?,
            n_heads,
            n_kv_heads: u("num_key_value_heads").unwrap_or(n_heads),
            head_dim: u("head_dim").unwrap_or(hidden_size.checked_div(n_heads).unwrap_or(0)),
            rms_norm_eps: v["rms_norm_eps"].as_f64().unwrap_or(1e-6) as f32,
            rope_theta: v["rope_theta"].as_f64().unwrap_or(10000.0) as f32,
            rope_interleaved: false,
            rope_scaling,
            max_position_embeddings: u("max_position_embeddings").unwrap_or(4096),
            tie_word_embeddings: v["tie_word_embeddings"].as_bool().unwrap_or(false),
        };
        cfg.validate()?;
        Ok(cfg)
    }

    /// Parameters of the transformer blocks (no embedding, no output head): the count used
    /// for the analytic 2·params·tokens FLOP estimate of one token's forward pass.
    pub fn block_params(&self) -> usize {
        let d = self.hidden_size;
        let q = self.n_heads * self.head_dim;
        let kv = self.n_kv_heads * self.head_dim;
        let attn = d * (q + 2 * kv) + q * d;
        let mlp = 3 * d * self.intermediate_size;
        self.n_layers * (attn + mlp)
    }
}

/// Llama-3.1 frequency scaling: long wavelengths are divided by `factor`, short ones kept,
/// and the band between them interpolated smoothly.
fn llama3_scale(freq: f64, s: Llama3RopeScaling) -> f64 {
    let old = s.original_max_position_embeddings as f64;
    let low_wavelen = old / s.low_freq_factor as f64;
    let high_wavelen = old / s.high_freq_factor as f64;
    let wavelen = 2.0 * std::f64::consts::PI / freq;
    if wavelen < high_wavelen {
        freq
    } else if wavelen > low_wavelen {
        freq / s.factor as f64
    } else {
        let smooth = (old / wavelen - s.low_freq_factor as f64) / (s.high_freq_factor - s.low_freq_factor) as f64;
        (1.0 - smooth) * freq / s.factor as f64 + smooth * freq
    }
}
