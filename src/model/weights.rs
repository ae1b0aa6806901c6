//! Model weights from a GGUF file (dequantized at load, or kept quantized) or from Hugging
//! Face safetensors, in one layout: fused q|k|v and gate|up projections.

use super::config::{Arch, Config};
use anyhow::{Context, Result, bail};
use candle_core::backend::BackendStorage;
use candle_core::quantized::{GgmlDType, QMatMul, QTensor, gguf_file};
use candle_core::{CpuStorage, CustomOp1, DType, Device, Layout, Module, Shape, Storage, Tensor};
use std::path::Path;
use std::sync::Arc;

/// How projection matrices are held in memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, clap::ValueEnum)]
pub enum WeightMode {
    /// Dequantized to f32 everywhere: exact math, the reference; required for training.
    #[default]
    F32,
    /// f32 for prefill plus an 8-bit (Q8_0) copy used for calls of at most
    /// [`Q8_MAX_ROWS`] tokens: decode is memory-bound, and 8-bit weights move 4× fewer bytes.
    #[value(name = "f32-q8-decode")]
    F32Q8Decode,
    /// Kept in the file's quantized format (GGUF only), using candle's quantized matmul.
    Quantized,
}

/// Largest call (in tokens) that uses the Q8_0 copy in [`WeightMode::F32Q8Decode`].
pub const Q8_MAX_ROWS: usize = 8;

/// A projection `y = x·Wᵀ`; a fused projection's outputs are its parts side by side.
/// Holds an f32 matrix, quantized parts, or both (f32 for large calls, quantized for small).
pub struct Linear {
    /// f32 matrix [out, in].
    dense: Option<Tensor>,
    /// Quantized parts whose outputs are concatenated along the last dimension.
    quant: Vec<QMatMul>,
}

impl Linear {
    fn dense(w: Tensor) -> Self {
        Self {
            dense: Some(w),
            quant: vec![],
        }
    }

    /// Adds a Q8_0 copy of the f32 matrix, when its input width allows (multiple of 32).
    fn add_q8(&mut self) -> Result<()> {
        if let Some(w) = &self.dense
            && w.dim(1)? % 32 == 0
        {
            self.quant = vec![QMatMul::from_qtensor(QTensor::quantize(w, GgmlDType::Q8_0)?)?];
        }
        Ok(())
    }

    /// Applies the projection to `x` [tokens, in] (inference: no gradient).
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let small = x.dim(0)? <= Q8_MAX_ROWS;
        match &self.dense {
            Some(w) if self.quant.is_empty() || !small => Ok(x.matmul(&w.t()?)?),
            _ => {
                let outs = self
                    .quant
                    .iter()
                    .map(|p| p.forward(x))
                    .collect::<candle_core::Result<Vec<_>>>()?;
                Ok(if outs.len() == 1 {
                    outs.into_iter().next().unwrap()
                } else {
                    Tensor::cat(&outs, 1)?
                })
            }
        }
    }

    /// The projection on the differentiable path: f32 only, and the backward pass computes
    /// the input's gradient alone (candle's matmul would also compute the frozen weight's).
    pub fn forward_graph(&self, x: &Tensor) -> Result<Tensor> {
        let Some(w) = &self.dense else {
            bail!("the differentiable path needs f32 weights")
        };
        Ok(x.apply_op1(FrozenLinear(w.clone()))?)
    }

    /// True when an f32 matrix is held (the differentiable path needs this).
    pub fn is_dense(&self) -> bool {
        self.dense.is_some()
    }

    /// The f32 matrix [out, in], when held.
    pub fn dense_weight(&self) -> Option<&Tensor> {
        self.dense.as_ref()
    }
}

/// `x·Wᵀ` for `x` [m, k] in CPU storage (any layout candle's matmul accepts) and a CPU tensor
/// `w` [n, k]: the result [m, n] as contiguous CPU storage.
pub(super) fn matmul_wt(x: &CpuStorage, xl: &Layout, w: &Tensor) -> candle_core::Result<(CpuStorage, Shape)> {
    let (m, k) = xl.shape().dims2()?;
    let wt = w.t()?;
    let (guard, wl) = wt.storage_and_layout();
    let Storage::Cpu(ws) = &*guard else {
        candle_core::bail!("frozen weights live on the CPU")
    };
    let n = wl.dims()[1];
    Ok((x.matmul(ws, (1, m, n, k), xl, wl)?, Shape::from((m, n))))
}

/// `x·Wᵀ` with W frozen: forward is one gemm, backward is `grad·W`.
struct FrozenLinear(Tensor);

impl CustomOp1 for FrozenLinear {
    fn name(&self) -> &'static str {
        "frozen-linear"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        matmul_wt(s, l, &self.0)
    }

    fn bwd(&self, _x: &Tensor, _res: &Tensor, grad: &Tensor) -> candle_core::Result<Option<Tensor>> {
        Ok(Some(grad.matmul(&self.0)?))
    }
}

/// One transformer block's parameters.
pub struct Layer {
    pub attn_norm: Tensor,
    /// Fused q|k|v projection: outputs [n_heads·hd | n_kv·hd | n_kv·hd].
    pub qkv: Linear,
    pub qkv_bias: Option<Tensor>,
    pub o: Linear,
    pub ffn_norm: Tensor,
    /// Fused gate|up projection: outputs [intermediate | intermediate].
    pub gate_up: Linear,
    pub down: Linear,
}

/// All parameters of a model.
pub struct Weights {
    /// Token embeddings [vocab, hidden], f32.
    pub embed: Tensor,
    pub layers: Vec<Layer>,
    pub norm: Tensor,
    pub lm_head: Linear,
}

/// Where tensors come from, addressed by their GGUF names.
enum Source<'a> {
    Gguf {
        ct: &'a gguf_file::Content,
        file: std::cell::RefCell<std::fs::File>,
    },
    Hf(candle_core::safetensors::MmapedSafetensors),
}

impl Source<'_> {
    fn hf_name(name: &str) -> String {
        let map = [
            ("token_embd.weight", "model.embed_tokens.weight"),
            ("output_norm.weight", "model.norm.weight"),
            ("output.weight", "lm_head.weight"),
        ];
        if let Some((_, hf)) = map.iter().find(|(g, _)| *g == name) {
            return hf.to_string();
        }
        let rest = name.strip_prefix("blk.").expect("layer tensor name");
        let (idx, leaf) = rest.split_once('.').expect("layer tensor name");
        let leaf = match leaf {
            "attn_norm.weight" => "input_layernorm.weight",
            "ffn_norm.weight" => "post_attention_layernorm.weight",
            "attn_q.weight" => "self_attn.q_proj.weight",
            "attn_k.weight" => "self_attn.k_proj.weight",
            "attn_v.weight" => "self_attn.v_proj.weight",
            "attn_q.bias" => "self_attn.q_proj.bias",
            "attn_k.bias" => "self_attn.k_proj.bias",
            "attn_v.bias" => "self_attn.v_proj.bias",
            "attn_output.weight" => "self_attn.o_proj.weight",
            "ffn_gate.weight" => "mlp.gate_proj.weight",
            "ffn_up.weight" => "mlp.up_proj.weight",
            "ffn_down.weight" => "mlp.down_proj.weight",
            other => other,
        };
        format!("model.layers.{idx}.{leaf}")
    }

    fn has(&self, name: &str) -> bool {
        match self {
            Source::Gguf { ct, .. } => ct.tensor_infos.contains_key(name),
            Source::Hf(st) => st.get(&Self::hf_name(name)).is_ok(),
        }
    }

    fn qtensor(&self, name: &str) -> Result<QTensor> {
        match self {
            Source::Gguf { ct, file } => {
                let mut f = file.borrow_mut();
                ct.tensor(&mut *f, name, &Device::Cpu)
                    .with_context(|| format!("reading GGUF tensor `{name}`"))
            }
            Source::Hf(_) => bail!("quantized weights need a GGUF file"),
        }
    }

    fn f32(&self, name: &str) -> Result<Tensor> {
        match self {
            Source::Gguf { .. } => Ok(self.qtensor(name)?.dequantize(&Device::Cpu)?),
            Source::Hf(st) => {
                let hf = Self::hf_name(name);
                Ok(st
                    .load(&hf, &Device::Cpu)
                    .with_context(|| format!("reading tensor `{hf}`"))?
                    .to_dtype(DType::F32)?)
            }
        }
    }

    fn linear(&self, names: &[String], mode: WeightMode) -> Result<Linear> {
        if mode == WeightMode::Quantized {
            let quant = names
                .iter()
                .map(|n| Ok(QMatMul::from_arc(Arc::new(self.qtensor(n)?))?))
                .collect::<Result<_>>()?;
            return Ok(Linear { dense: None, quant });
        }
        let parts = names.iter().map(|n| self.f32(n)).collect::<Result<Vec<_>>>()?;
        let mut lin = Linear::dense(if parts.len() == 1 {
            parts[0].clone()
        } else {
            Tensor::cat(&parts, 0)?
        });
        if mode == WeightMode::F32Q8Decode {
            lin.add_q8()?;
        }
        Ok(lin)
    }
}

fn check_shape(t: &Tensor, want: &[usize], name: &str) -> Result<()> {
    if t.dims() != want {
        bail!("tensor `{name}` has shape {:?}, expected {want:?}", t.dims());
    }
    Ok(())
}

impl Weights {
    /// Loads every tensor of a GGUF file, checking shapes against `cfg`.
    pub fn from_gguf(ct: &gguf_file::Content, path: &Path, cfg: &Config, mode: WeightMode) -> Result<Self> {
        let file = std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
        Self::load(
            &Source::Gguf {
                ct,
                file: std::cell::RefCell::new(file),
            },
            cfg,
            mode,
        )
    }

    /// Loads `*.safetensors` files of a Hugging Face folder (f32 only).
    pub fn from_safetensors(files: &[std::path::PathBuf], cfg: &Config) -> Result<Self> {
        // SAFETY: the files are memory-mapped read-only and not modified while loaded.
        let st = unsafe { candle_core::safetensors::MmapedSafetensors::multi(files)? };
        Self::load(&Source::Hf(st), cfg, WeightMode::F32)
    }

    fn load(src: &Source, cfg: &Config, mode: WeightMode) -> Result<Self> {
        let (d, hd) = (cfg.hidden_size, cfg.head_dim);
        let (qd, kvd) = (cfg.n_heads * hd, cfg.n_kv_heads * hd);
        let embed = src.f32("token_embd.weight")?;
        check_shape(&embed, &[cfg.vocab_size, d], "token_embd.weight")?;
        let mut layers = Vec::with_capacity(cfg.n_layers);
        for i in 0..cfg.n_layers {
            let n = |leaf: &str| format!("blk.{i}.{leaf}");
            let qkv = src.linear(&[n("attn_q.weight"), n("attn_k.weight"), n("attn_v.weight")], mode)?;
            let qkv_bias = if cfg.arch == Arch::Qwen2 {
                let b = [n("attn_q.bias"), n("attn_k.bias"), n("attn_v.bias")];
                let parts = b.iter().map(|b| src.f32(b)).collect::<Result<Vec<_>>>()?;
                Some(Tensor::cat(&parts, 0)?)
            } else {
                None
            };
            let layer = Layer {
                attn_norm: src.f32(&n("attn_norm.weight"))?,
                qkv,
                qkv_bias,
                o: src.linear(&[n("attn_output.weight")], mode)?,
                ffn_norm: src.f32(&n("ffn_norm.weight"))?,
                gate_up: src.linear(&[n("ffn_gate.weight"), n("ffn_up.weight")], mode)?,
                down: src.linear(&[n("ffn_down.weight")], mode)?,
            };
            if let Some(w) = &layer.qkv.dense {
                check_shape(w, &[qd + 2 * kvd, d], &n("attn_qkv"))?;
            }
            if let Some(w) = &layer.gate_up.dense {
                check_shape(w, &[2 * cfg.intermediate_size, d], &n("ffn_gate_up"))?;
            }
            if let Some(b) = &layer.qkv_bias {
                check_shape(b, &[qd + 2 * kvd], &n("attn_qkv.bias"))?;
            }
            layers.push(layer);
        }
        let norm = src.f32("output_norm.weight")?;
        let lm_head = if src.has("output.weight") && !cfg.tie_word_embeddings {
            src.linear(&["output.weight".to_string()], mode)?
        } else {
            let mut head = Linear::dense(embed.clone());
            if mode == WeightMode::F32Q8Decode {
                head.add_q8()?;
            }
            head
        };
        Ok(Self {
            embed,
            layers,
            norm,
            lm_head,
        })
    }
}
