//! A tiny random-weight model written as a Hugging Face folder (config.json, safetensors,
//! byte-level tokenizer.json with a ChatML template). Used by the test suites so that every
//! code path of the runtime runs on a model built on the spot.

use super::config::Arch;
use anyhow::Result;
use candle_core::{Device, Tensor};
use rand::SeedableRng;
use rand::rngs::StdRng;
use rand_distr::{Distribution, Normal};
use serde_json::json;
use std::collections::HashMap;
use std::path::Path;

/// Shape of the tiny model.
#[derive(Debug, Clone, Copy)]
pub struct TinySpec {
    /// Architecture family.
    pub arch: Arch,
    /// Hidden size.
    pub hidden: usize,
    /// Transformer blocks.
    pub layers: usize,
    /// Query heads.
    pub heads: usize,
    /// Key/value heads.
    pub kv_heads: usize,
    /// MLP width.
    pub intermediate: usize,
    /// Llama-3.1 rope scaling in config.json.
    pub llama3_scaling: bool,
    /// Output head shares the token embeddings.
    pub tie_embeddings: bool,
    /// Seed of the random weights.
    pub seed: u64,
}

impl Default for TinySpec {
    fn default() -> Self {
        Self {
            arch: Arch::Llama,
            hidden: 64,
            layers: 2,
            heads: 4,
            kv_heads: 2,
            intermediate: 96,
            llama3_scaling: false,
            tie_embeddings: true,
            seed: 7,
        }
    }
}

const SPECIALS: [&str; 3] = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"];
const CHATML: &str = "{% for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n{% endfor %}\
{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}";

/// The 256 byte-level characters GPT-2 style tokenizers use, one per byte value.
fn byte_alphabet() -> Vec<char> {
    let mut bs: Vec<u32> = (b'!' as u32..=b'~' as u32)
        .chain(0xA1..=0xAC)
        .chain(0xAE..=0xFF)
        .collect();
    let mut cs = bs.clone();
    let mut n = 0;
    for b in 0..256u32 {
        if !bs.contains(&b) {
            bs.push(b);
            cs.push(256 + n);
            n += 1;
        }
    }
    let mut pairs: Vec<(u32, u32)> = bs.into_iter().zip(cs).collect();
    pairs.sort();
    pairs.into_iter().map(|(_, c)| char::from_u32(c).unwrap()).collect()
}

/// Writes the tiny model into `dir` (created if missing). Its vocabulary is the 256 bytes, a
/// few merges, and the ChatML special tokens.
pub fn write_tiny_model(dir: &Path, spec: TinySpec) -> Result<()> {
    std::fs::create_dir_all(dir)?;
    let alphabet = byte_alphabet();
    let mut vocab: Vec<String> = alphabet.iter().map(|c| c.to_string()).collect();
    let merges = ["Ġ t", "h e", "Ġt he", "i n", "e r"];
    for m in merges {
        vocab.push(m.replace(' ', ""));
    }
    let first_special = vocab.len();
    vocab.extend(SPECIALS.iter().map(|s| s.to_string()));
    let v = vocab.len();
    let vocab_map: serde_json::Map<String, serde_json::Value> =
        vocab.iter().enumerate().map(|(i, t)| (t.clone(), json!(i))).collect();
    let added: Vec<_> = SPECIALS
        .iter()
        .enumerate()
        .map(|(i, s)| {
            json!({"id": first_special + i, "content": s, "single_word": false, "lstrip": false,
                              "rstrip": false, "normalized": false, "special": true})
        })
        .collect();
    let tok = json!({
        "version": "1.0", "truncation": null, "padding": null, "added_tokens": added, "normalizer": null,
        "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": true},
        "post_processor": null,
        "decoder": {"type": "ByteLevel", "add_prefix_space": true, "trim_offsets": true, "use_regex": true},
        "model": {"type": "BPE", "dropout": null, "unk_token": null, "continuing_subword_prefix": null,
                  "end_of_word_suffix": null, "fuse_unk": false, "byte_fallback": false, "ignore_merges": false,
                  "vocab": vocab_map, "merges": merges}
    });
    std::fs::write(dir.join("tokenizer.json"), serde_json::to_string(&tok)?)?;
    let tok_cfg =
        json!({"chat_template": CHATML, "eos_token": "<|im_end|>", "bos_token": null, "add_bos_token": false});
    std::fs::write(dir.join("tokenizer_config.json"), serde_json::to_string(&tok_cfg)?)?;
    let hd = spec.hidden / spec.heads;
    let mut cfg = json!({
        "architectures": [match spec.arch { Arch::Llama => "LlamaForCausalLM", Arch::Qwen2 => "Qwen2ForCausalLM" }],
        "hidden_size": spec.hidden, "intermediate_size": spec.intermediate, "num_hidden_layers": spec.layers,
        "num_attention_heads": spec.heads, "num_key_value_heads": spec.kv_heads, "vocab_size": v,
        "rms_norm_eps": 1e-5, "rope_theta": 10000.0, "max_position_embeddings": 4096,
        "tie_word_embeddings": spec.tie_embeddings,
    });
    if spec.llama3_scaling {
        cfg["rope_scaling"] = json!({"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
                                     "high_freq_factor": 4.0, "original_max_position_embeddings": 64});
    }
    std::fs::write(dir.join("config.json"), serde_json::to_string_pretty(&cfg)?)?;

    let mut rng = StdRng::seed_from_u64(spec.seed);
    let mut rand_t = |shape: &[usize], std: f32, mean: f32| -> Result<Tensor> {
        let n: usize = shape.iter().product();
        let dist = Normal::new(mean, std)?;
        let data: Vec<f32> = (0..n).map(|_| dist.sample(&mut rng)).collect();
        Ok(Tensor::from_vec(data, shape, &Device::Cpu)?)
    };
    let d = spec.hidden;
    let (qd, kvd) = (spec.heads * hd, spec.kv_heads * hd);
    let w = 1.0 / (d as f32).sqrt();
    let mut t: HashMap<String, Tensor> = HashMap::new();
    t.insert("model.embed_tokens.weight".into(), rand_t(&[v, d], 1.0, 0.0)?);
    t.insert("model.norm.weight".into(), rand_t(&[d], 0.1, 1.0)?);
    if !spec.tie_embeddings {
        t.insert("lm_head.weight".into(), rand_t(&[v, d], w, 0.0)?);
    }
    for l in 0..spec.layers {
        let p = |s: &str| format!("model.layers.{l}.{s}");
        t.insert(p("input_layernorm.weight"), rand_t(&[d], 0.1, 1.0)?);
        t.insert(p("post_attention_layernorm.weight"), rand_t(&[d], 0.1, 1.0)?);
        t.insert(p("self_attn.q_proj.weight"), rand_t(&[qd, d], 2.0 * w, 0.0)?);
        t.insert(p("self_attn.k_proj.weight"), rand_t(&[kvd, d], 2.0 * w, 0.0)?);
        t.insert(p("self_attn.v_proj.weight"), rand_t(&[kvd, d], w, 0.0)?);
        t.insert(p("self_attn.o_proj.weight"), rand_t(&[d, qd], w, 0.0)?);
        t.insert(p("mlp.gate_proj.weight"), rand_t(&[spec.intermediate, d], w, 0.0)?);
        t.insert(p("mlp.up_proj.weight"), rand_t(&[spec.intermediate, d], w, 0.0)?);
        t.insert(p("mlp.down_proj.weight"), rand_t(&[d, spec.intermediate], w, 0.0)?);
        if spec.arch == Arch::Qwen2 {
            t.insert(p("self_attn.q_proj.bias"), rand_t(&[qd], 0.1, 0.0)?);
            t.insert(p("self_attn.k_proj.bias"), rand_t(&[kvd], 0.1, 0.0)?);
            t.insert(p("self_attn.v_proj.bias"), rand_t(&[kvd], 0.1, 0.0)?);
        }
    }
    candle_core::safetensors::save(&t, dir.join("model.safetensors"))?;
    Ok(())
}

/// Largest absolute difference between two tensors of the same shape (test helper).
pub fn max_abs_diff(a: &Tensor, b: &Tensor) -> Result<f32> {
    Ok((a - b)?.abs()?.flatten_all()?.max(0)?.to_scalar::<f32>()?)
}
