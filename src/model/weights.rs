//! Model weights from a GGUF file (dequantized at load, or kept quantized) or from Hugging
//! Face safetensors, in one layout: fused q|k|v and gate|up projections.

use super::block_gemv::BlockMatrix;
use super::config::{Arch, Config};
use super::fused::with_f32;
use super::product::{Rhs, product};
use super::product_bf16::PackedBf16;
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
    /// [`DECODE_MAX_ROWS`] tokens (the default up to session 15).
    #[value(name = "f32-q8-decode")]
    F32Q8Decode,
    /// f32 for prefill plus the GGUF file's own quantized blocks for calls of at most
    /// [`DECODE_MAX_ROWS`] tokens: decode is memory-bound and moves 0.6-0.8 bytes a weight
    /// (Q4_1 / Q5_0 / k-quants) instead of 1.06; the weights are exactly the ones the f32 path
    /// dequantizes. Safetensors models get a Q8_0 copy instead.
    #[value(name = "f32-gguf-decode")]
    F32GgufDecode,
    /// The layers' projections in bf16 for calls of more than [`DECODE_MAX_ROWS`] tokens
    /// (prefill: products of bf16-rounded activations and weights with f32 sums, ~2× the f32
    /// products' speed) and the GGUF file's own blocks for smaller calls (decode), as
    /// `f32-gguf-decode`. Their f32 matrices are dropped once packed, so the model takes about
    /// half the memory and cannot train (the output head stays as in `f32-gguf-decode`); from
    /// a Hugging Face folder, which has no blocks, decode stays on the kept f32 matrices.
    /// Needs a CPU with AVX512-BF16 (AMD Zen 4, Intel Sapphire Rapids or later).
    #[value(name = "bf16-gguf-decode")]
    Bf16GgufDecode,
    /// Kept in the file's quantized format (GGUF only), for calls of every size.
    Quantized,
}

/// Largest call (in tokens) that uses the quantized parts in the `f32-*-decode` modes.
pub const DECODE_MAX_ROWS: usize = 8;

/// A quantized part of a projection: the file's Q4_1 / Q5_0 / Q8_0 blocks under this crate's
/// kernels (consecutive tensors of one format stacked into one matrix), or candle's quantized
/// matmul (k-quants, float tensors, Q8_0 copies).
enum QuantPart {
    Blocks(BlockMatrix),
    Candle { mm: QMatMul, rows: usize },
}

impl QuantPart {
    /// A GGUF tensor [rows, cols] as stored.
    fn from_qtensor(t: QTensor) -> Result<Self> {
        if let Some(b) = BlockMatrix::from_qtensor(&t)? {
            return Ok(Self::Blocks(b));
        }
        let rows = t.shape().dims2()?.0;
        Ok(Self::Candle {
            mm: QMatMul::from_arc(Arc::new(t))?,
            rows,
        })
    }

    /// A Q8_0 copy of an f32 matrix [rows, cols], when `cols` is a multiple of 32.
    fn q8_copy(w: &Tensor) -> Result<Option<Self>> {
        let (rows, cols) = w.dims2()?;
        if cols % 32 != 0 {
            return Ok(None);
        }
        Ok(Some(Self::Candle {
            mm: QMatMul::from_qtensor(QTensor::quantize(w, GgmlDType::Q8_0)?)?,
            rows,
        }))
    }

    fn rows(&self) -> usize {
        match self {
            Self::Blocks(b) => b.rows(),
            Self::Candle { rows, .. } => *rows,
        }
    }
}

/// A projection `y = x·Wᵀ`; a fused projection's outputs are its parts side by side.
/// Holds an f32 matrix, quantized parts, or both (f32 for large calls, quantized for small).
pub struct Linear {
    /// f32 matrix [out, in].
    dense: Option<Tensor>,
    /// Quantized parts whose outputs are concatenated along the last dimension.
    quant: Vec<QuantPart>,
    /// A bf16 copy of `dense` for inference calls of more than [`DECODE_MAX_ROWS`] tokens.
    bf16: Option<PackedBf16>,
    /// bf16 copies of `dense` for the differentiable path's products (training), apart from
    /// `bf16` so that inference (the teacher, validation) stays as the weight mode says.
    train_bf16: Option<Arc<TrainBf16>>,
}

/// A frozen matrix W [out, in] packed twice in bf16: as W for the forward `x·Wᵀ` and as Wᵀ
/// for the input gradient `g·W`.
struct TrainBf16 {
    w: PackedBf16,
    wt: PackedBf16,
}

/// A frozen projection matrix W [out, in] as the differentiable path reads it: the f32 matrix,
/// and bf16 copies when the model was packed for training in bf16
/// ([`Weights::pack_bf16_training`]); the forward `x·Wᵀ` and the input gradient `g·W` then
/// round their operands to bf16 and keep f32 sums. Cloning shares the data.
#[derive(Clone)]
pub struct Frozen {
    /// The f32 matrix [out, in].
    pub w: Tensor,
    bf16: Option<Arc<TrainBf16>>,
}

impl From<Tensor> for Frozen {
    /// The f32 matrix alone: f32 products.
    fn from(w: Tensor) -> Self {
        Self { w, bf16: None }
    }
}

impl Frozen {
    /// True when the products run in bf16.
    pub fn is_bf16(&self) -> bool {
        self.bf16.is_some()
    }
}

impl Linear {
    /// A projection that holds only the f32 matrix `w` [out, in]: every call, large or small,
    /// goes through the direct gemm path the model's prefill and training use.
    pub fn from_dense(w: Tensor) -> Self {
        Self {
            dense: Some(w),
            quant: Vec::new(),
            bf16: None,
            train_bf16: None,
        }
    }

    /// Adds a bf16 copy of the f32 matrix, which inference calls of more than
    /// [`DECODE_MAX_ROWS`] tokens then use. Fails without an f32 matrix or without AVX512-BF16.
    pub fn pack_bf16(&mut self) -> Result<()> {
        bf16_available()?;
        let Some(w) = &self.dense else {
            bail!("a bf16 copy is made from f32 weights")
        };
        let (n, k) = w.dims2()?;
        self.bf16 = Some(with_f32(w, |wv| PackedBf16::pack(wv, n, k))?);
        Ok(())
    }

    /// Adds the bf16 copies of the f32 matrix that the differentiable path then uses for its
    /// forward and backward products ([`Frozen`]); inference is unchanged. Fails without an
    /// f32 matrix or without AVX512-BF16.
    pub fn pack_bf16_training(&mut self) -> Result<()> {
        bf16_available()?;
        let Some(w) = &self.dense else {
            bail!("bf16 training copies are made from f32 weights")
        };
        let (n, k) = w.dims2()?;
        let (w, wt) = with_f32(w, |wv| {
            let t: Vec<f32> = (0..k * n).map(|i| wv[(i % n) * k + i / n]).collect();
            (PackedBf16::pack(wv, n, k), PackedBf16::pack(&t, k, n))
        })?;
        self.train_bf16 = Some(Arc::new(TrainBf16 { w, wt }));
        Ok(())
    }

    /// The matrix for the differentiable path (with its bf16 copies when packed for training),
    /// when an f32 matrix is held.
    pub fn frozen(&self) -> Option<Frozen> {
        self.dense.as_ref().map(|w| Frozen {
            w: w.clone(),
            bf16: self.train_bf16.clone(),
        })
    }

    /// Applies the projection to `x` [tokens, in] (inference: no gradient).
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let small = x.dim(0)? <= DECODE_MAX_ROWS;
        if let (Some(p), false) = (&self.bf16, small) {
            let m = x.dim(0)?;
            let out = with_f32(x, |xv| p.product(xv, m, candle_core::utils::get_num_threads()))?;
            return Ok(Tensor::from_vec(out, (m, p.n()), x.device())?);
        }
        match &self.dense {
            Some(w) if self.quant.is_empty() || !small => Ok(x.apply_op1_no_bwd(&FrozenLinear(w.clone().into()))?),
            _ => self.forward_quant(x),
        }
    }

    /// The quantized parts' outputs, written side by side into one [tokens, out] buffer.
    fn forward_quant(&self, x: &Tensor) -> Result<Tensor> {
        if let [QuantPart::Candle { mm, .. }] = self.quant.as_slice() {
            return Ok(mm.forward(x)?);
        }
        let m = x.dim(0)?;
        let ld: usize = self.quant.iter().map(QuantPart::rows).sum();
        let xs = x.flatten_all()?.to_vec1::<f32>()?;
        let mut out = vec![0f32; m * ld];
        let mut col0 = 0;
        for part in &self.quant {
            match part {
                QuantPart::Blocks(b) => b.matmul_into(&xs, m, &mut out, ld, col0),
                QuantPart::Candle { mm, rows } => {
                    let y = mm.forward(x)?.flatten_all()?.to_vec1::<f32>()?;
                    for (o, yr) in out.chunks_exact_mut(ld).zip(y.chunks_exact(*rows)) {
                        o[col0..col0 + rows].copy_from_slice(yr);
                    }
                }
            }
            col0 += part.rows();
        }
        Ok(Tensor::from_vec(out, (m, ld), x.device())?)
    }

    /// The projection on the differentiable path: f32 only, and the backward pass computes
    /// the input's gradient alone (candle's matmul would also compute the frozen weight's).
    pub fn forward_graph(&self, x: &Tensor) -> Result<Tensor> {
        let Some(w) = &self.dense else {
            bail!("the differentiable path needs f32 weights")
        };
        Ok(x.apply_op1(FrozenLinear(w.clone().into()))?)
    }

    /// True when an f32 matrix is held (the differentiable path needs this).
    pub fn is_dense(&self) -> bool {
        self.dense.is_some()
    }
}

/// An error unless this CPU runs the bf16 kernel.
fn bf16_available() -> Result<()> {
    if !PackedBf16::available() {
        bail!(
            "bf16 products need a CPU with AVX512-BF16 (AMD Zen 4, Intel Sapphire Rapids or later); this one has none: use f32-gguf-decode"
        )
    }
    Ok(())
}

/// `x·Wᵀ` for `x` [m, k] in CPU storage (any layout candle's matmul accepts) and a CPU tensor
/// `w` [n, k]: the result [m, n] as contiguous CPU storage (in bf16 products when `w` has its
/// bf16 copies and `x` is contiguous f32).
pub(super) fn matmul_wt(x: &CpuStorage, xl: &Layout, w: &Frozen) -> candle_core::Result<(CpuStorage, Shape)> {
    let (m, k) = xl.shape().dims2()?;
    if let (Some(p), CpuStorage::F32(xv), Some((x0, x1))) = (&w.bf16, x, xl.contiguous_offsets()) {
        let out = p.w.product(&xv[x0..x1], m, candle_core::utils::get_num_threads());
        return Ok((CpuStorage::F32(out), Shape::from((m, p.w.n()))));
    }
    let (guard, wl) = w.w.storage_and_layout();
    let Storage::Cpu(ws) = &*guard else {
        candle_core::bail!("frozen weights live on the CPU")
    };
    let n = wl.dims()[0];
    match (x, xl.contiguous_offsets(), ws, wl.contiguous_offsets()) {
        (CpuStorage::F32(xv), Some((x0, x1)), CpuStorage::F32(wv), Some((w0, w1))) => {
            let out = gemm_xwt(&xv[x0..x1], &wv[w0..w1], m, k, n);
            Ok((CpuStorage::F32(out), Shape::from((m, n))))
        }
        _ => {
            let wt = wl.transpose(0, 1)?;
            Ok((x.matmul(ws, (1, m, n, k), xl, &wt)?, Shape::from((m, n))))
        }
    }
}

/// `x·Wᵀ` for row-major `x` [m, k] and `w` [n, k]: row-major [m, n], on candle's thread
/// count. Calls the gemm crate (the kernel candle's matmul calls) directly, split by columns
/// ([`product`]), so that the output is written once: candle's matmul zero-fills its output
/// first, ~2.5% of a long prefill.
fn gemm_xwt(x: &[f32], w: &[f32], m: usize, k: usize, n: usize) -> Vec<f32> {
    assert!(x.len() == m * k && w.len() == n * k, "matrix sizes disagree");
    let wt = Rhs { data: w, rs: 1, cs: k };
    product(x, m, k, wt, n, candle_core::utils::get_num_threads())
}

/// `g·W` for `g` [m, n] and a frozen CPU matrix `W` [n, k]: the input gradient of `x·Wᵀ`, by
/// the same column-split product as the forward, read in place where both are contiguous (or
/// by the bf16 copy of Wᵀ when `w` has one).
pub(super) fn matmul_w(g: &Tensor, w: &Frozen) -> candle_core::Result<Tensor> {
    let (m, n) = g.dims2()?;
    let (wn, k) = w.w.dims2()?;
    if wn != n {
        candle_core::bail!("gradient [{m}, {n}] against weights [{wn}, {k}]")
    }
    let threads = candle_core::utils::get_num_threads();
    let out = match &w.bf16 {
        Some(p) => with_f32(g, |gv| p.wt.product(gv, m, threads))?,
        None => with_f32(g, |gv| {
            with_f32(&w.w, |wv| product(gv, m, n, Rhs { data: wv, rs: k, cs: 1 }, k, threads))
        })??,
    };
    Tensor::from_vec(out, (m, k), g.device())
}

/// `x·Wᵀ` with W frozen: forward is one gemm, backward is `grad·W`.
struct FrozenLinear(Frozen);

impl CustomOp1 for FrozenLinear {
    fn name(&self) -> &'static str {
        "frozen-linear"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        matmul_wt(s, l, &self.0)
    }

    fn bwd(&self, _x: &Tensor, _res: &Tensor, grad: &Tensor) -> candle_core::Result<Option<Tensor>> {
        Ok(Some(matmul_w(grad, &self.0)?))
    }
}

/// One transformer block's parameters.
pub struct Layer {
    /// RMSNorm weight before attention [hidden].
    pub attn_norm: Tensor,
    /// Fused q|k|v projection: outputs [n_heads·hd | n_kv·hd | n_kv·hd].
    pub qkv: Linear,
    /// Bias of the fused q|k|v projection (Qwen2), laid out like its outputs.
    pub qkv_bias: Option<Tensor>,
    /// Attention output projection.
    pub o: Linear,
    /// RMSNorm weight before the MLP [hidden].
    pub ffn_norm: Tensor,
    /// Fused gate|up projection: outputs [intermediate | intermediate].
    pub gate_up: Linear,
    /// MLP down projection [hidden, intermediate].
    pub down: Linear,
}

/// All parameters of a model.
pub struct Weights {
    /// Token embeddings [vocab, hidden], f32.
    pub embed: Tensor,
    /// The transformer blocks, in order.
    pub layers: Vec<Layer>,
    /// Final RMSNorm weight [hidden].
    pub norm: Tensor,
    /// Output projection to vocabulary logits (the embeddings when tied).
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

    /// The projection made of the tensors `names` (outputs side by side), held as `mode` says;
    /// `dense` is its f32 form when that is already loaded (the tied output head).
    fn linear(&self, names: &[String], mode: WeightMode, dense: Option<Tensor>) -> Result<Linear> {
        let gguf = matches!(self, Source::Gguf { .. });
        if mode == WeightMode::Quantized && !gguf {
            bail!("quantized weights need a GGUF file");
        }
        let file_blocks = gguf
            && matches!(
                mode,
                WeightMode::F32GgufDecode | WeightMode::Bf16GgufDecode | WeightMode::Quantized
            );
        let mut stored = if file_blocks && dense.is_none() {
            names.iter().map(|n| self.qtensor(n)).collect::<Result<Vec<_>>>()?
        } else {
            vec![]
        };
        let dense = match dense {
            Some(d) => Some(d),
            None if mode == WeightMode::Quantized => None,
            None => {
                let parts = if file_blocks {
                    stored
                        .iter()
                        .map(|t| Ok(t.dequantize(&Device::Cpu)?))
                        .collect::<Result<Vec<_>>>()?
                } else {
                    names.iter().map(|n| self.f32(n)).collect::<Result<Vec<_>>>()?
                };
                Some(Tensor::cat(&parts, 0)?)
            }
        };
        let quant = if file_blocks {
            if stored.is_empty() {
                stored = names.iter().map(|n| self.qtensor(n)).collect::<Result<_>>()?;
            }
            let mut parts: Vec<QuantPart> = vec![];
            for t in stored {
                let part = QuantPart::from_qtensor(t)?;
                match (parts.last_mut(), part) {
                    (Some(QuantPart::Blocks(prev)), QuantPart::Blocks(b)) if prev.format() == b.format() => {
                        prev.append(b)?
                    }
                    (_, part) => parts.push(part),
                }
            }
            parts
        } else if matches!(mode, WeightMode::F32 | WeightMode::Bf16GgufDecode) {
            // f32 decode (bf16-gguf-decode on safetensors, which have no file blocks)
            vec![]
        } else {
            let w = dense
                .as_ref()
                .expect("f32 weights are loaded in every mode but quantized");
            QuantPart::q8_copy(w)?.into_iter().collect()
        };
        Ok(Linear {
            dense,
            quant,
            bf16: None,
            train_bf16: None,
        })
    }
}

fn check_shape(t: &Tensor, want: &[usize], name: &str) -> Result<()> {
    if t.dims() != want {
        bail!("tensor `{name}` has shape {:?}, expected {want:?}", t.dims());
    }
    Ok(())
}

impl Weights {
    /// Packs every layer's projections in bf16 for the differentiable path (training's forward
    /// and backward products, about twice the f32 products' speed); the f32 matrices stay, and
    /// inference keeps the weight mode's products. Fails without f32 matrices (the `quantized`
    /// and `bf16-gguf-decode` modes) or without AVX512-BF16.
    pub fn pack_bf16_training(&mut self) -> Result<()> {
        for layer in &mut self.layers {
            for lin in [&mut layer.qkv, &mut layer.o, &mut layer.gate_up, &mut layer.down] {
                lin.pack_bf16_training()?;
            }
        }
        Ok(())
    }

    /// True when the layers are packed for bf16 training products ([`Self::pack_bf16_training`]).
    pub fn trains_in_bf16(&self) -> bool {
        self.layers.first().is_some_and(|l| l.qkv.train_bf16.is_some())
    }

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

    /// Loads `*.safetensors` files of a Hugging Face folder: f32, plus bf16 copies of the layers'
    /// projections for prefill when `bf16` (the f32 matrices stay: decode uses them).
    pub fn from_safetensors(files: &[std::path::PathBuf], cfg: &Config, bf16: bool) -> Result<Self> {
        // SAFETY: the files are memory-mapped read-only and not modified while loaded.
        let st = unsafe { candle_core::safetensors::MmapedSafetensors::multi(files)? };
        let mode = if bf16 {
            WeightMode::Bf16GgufDecode
        } else {
            WeightMode::F32
        };
        Self::load(&Source::Hf(st), cfg, mode)
    }

    fn load(src: &Source, cfg: &Config, mode: WeightMode) -> Result<Self> {
        let (d, hd) = (cfg.hidden_size, cfg.head_dim);
        let (qd, kvd) = (cfg.n_heads * hd, cfg.n_kv_heads * hd);
        let embed = src.f32("token_embd.weight")?;
        check_shape(&embed, &[cfg.vocab_size, d], "token_embd.weight")?;
        let mut layers = Vec::with_capacity(cfg.n_layers);
        for i in 0..cfg.n_layers {
            let n = |leaf: &str| format!("blk.{i}.{leaf}");
            let qkv = src.linear(
                &[n("attn_q.weight"), n("attn_k.weight"), n("attn_v.weight")],
                mode,
                None,
            )?;
            let qkv_bias = if cfg.arch == Arch::Qwen2 {
                let b = [n("attn_q.bias"), n("attn_k.bias"), n("attn_v.bias")];
                let parts = b.iter().map(|b| src.f32(b)).collect::<Result<Vec<_>>>()?;
                Some(Tensor::cat(&parts, 0)?)
            } else {
                None
            };
            let mut layer = Layer {
                attn_norm: src.f32(&n("attn_norm.weight"))?,
                qkv,
                qkv_bias,
                o: src.linear(&[n("attn_output.weight")], mode, None)?,
                ffn_norm: src.f32(&n("ffn_norm.weight"))?,
                gate_up: src.linear(&[n("ffn_gate.weight"), n("ffn_up.weight")], mode, None)?,
                down: src.linear(&[n("ffn_down.weight")], mode, None)?,
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
            if mode == WeightMode::Bf16GgufDecode {
                for lin in [&mut layer.qkv, &mut layer.o, &mut layer.gate_up, &mut layer.down] {
                    lin.pack_bf16()?;
                    if !lin.quant.is_empty() {
                        lin.dense = None; // every call now has a faster path than f32
                    }
                }
            }
            layers.push(layer);
        }
        let norm = src.f32("output_norm.weight")?;
        let lm_head = if src.has("output.weight") && !cfg.tie_word_embeddings {
            src.linear(&["output.weight".to_string()], mode, None)?
        } else {
            src.linear(&["token_embd.weight".to_string()], mode, Some(embed.clone()))?
        };
        Ok(Self {
            embed,
            layers,
            norm,
            lm_head,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::attention::tests::rand_vec;

    #[test]
    fn direct_gemm_equals_candles_matmul() {
        for (m, k, n) in [(1, 3, 2), (7, 33, 17), (130, 64, 96), (4, 0, 3), (0, 5, 4)] {
            let (x, w) = (rand_vec(m * k, 1), rand_vec(n * k, 2));
            let got = gemm_xwt(&x, &w, m, k, n);
            let xt = Tensor::from_vec(x, (m, k), &Device::Cpu).unwrap();
            let wt = Tensor::from_vec(w, (n, k), &Device::Cpu).unwrap();
            let want = xt.matmul(&wt.t().unwrap()).unwrap();
            let want = want.flatten_all().unwrap().to_vec1::<f32>().unwrap();
            assert_eq!(got.len(), want.len());
            for (a, b) in got.iter().zip(&want) {
                assert!((a - b).abs() <= 1e-5 * (1.0 + b.abs()), "{m}x{k}x{n}: {a} vs {b}");
            }
        }
    }

    #[test]
    fn strided_activations_take_candles_path_with_the_same_result() {
        let (m, k, n) = (5, 8, 6);
        let w = Tensor::from_vec(rand_vec(n * k, 3), (n, k), &Device::Cpu).unwrap();
        let xt = Tensor::from_vec(rand_vec(k * m, 4), (k, m), &Device::Cpu).unwrap();
        let x = xt.t().unwrap();
        let (s, l) = x.storage_and_layout();
        let Storage::Cpu(s) = &*s else { unreachable!() };
        assert!(l.contiguous_offsets().is_none());
        let (got, shape) = matmul_wt(s, l, &w.clone().into()).unwrap();
        assert_eq!(shape.dims(), &[m, n]);
        let CpuStorage::F32(got) = got else {
            panic!("f32 in, f32 out")
        };
        let got = Tensor::from_vec(got, shape, &Device::Cpu).unwrap();
        let want = x.matmul(&w.t().unwrap()).unwrap();
        let diff = (got - want).unwrap().abs().unwrap().max_all().unwrap();
        assert!(diff.to_scalar::<f32>().unwrap() < 1e-5);
    }

    #[test]
    fn bf16_training_copies_give_products_of_bf16_rounded_operands_both_ways() {
        if !PackedBf16::available() {
            eprintln!("skipped: this CPU has no AVX512-BF16");
            return;
        }
        let round = |v: &[f32]| -> Vec<f64> { v.iter().map(|&x| half::bf16::from_f32(x).to_f64()).collect() };
        for (m, k, n) in [(1, 3, 2), (37, 50, 70), (64, 97, 33)] {
            let (x, wv, g) = (rand_vec(m * k, 5), rand_vec(n * k, 6), rand_vec(m * n, 7));
            let mut lin = Linear::from_dense(Tensor::from_vec(wv.clone(), (n, k), &Device::Cpu).unwrap());
            assert!(!lin.frozen().unwrap().is_bf16());
            lin.pack_bf16_training().unwrap();
            let w = lin.frozen().unwrap();
            assert!(w.is_bf16());
            let (xr, wr, gr) = (round(&x), round(&wv), round(&g));
            let (s, shape) = matmul_wt(&CpuStorage::F32(x), &Layout::contiguous((m, k)), &w).unwrap();
            assert_eq!(shape.dims(), &[m, n]);
            let CpuStorage::F32(fwd) = s else { panic!("f32 out") };
            let bwd = matmul_w(&Tensor::from_vec(g, (m, n), &Device::Cpu).unwrap(), &w)
                .unwrap()
                .flatten_all()
                .unwrap()
                .to_vec1::<f32>()
                .unwrap();
            for (i, got) in fwd.iter().enumerate() {
                let want: f64 = (0..k).map(|p| xr[i / n * k + p] * wr[i % n * k + p]).sum();
                assert!(
                    (*got as f64 - want).abs() < 1e-4 * (1.0 + want.abs()),
                    "x·Wᵀ {m}x{k}x{n}"
                );
            }
            for (i, got) in bwd.iter().enumerate() {
                let want: f64 = (0..n).map(|j| gr[i / k * n + j] * wr[j * k + i % k]).sum();
                assert!(
                    (*got as f64 - want).abs() < 1e-4 * (1.0 + want.abs()),
                    "g·W {m}x{k}x{n}"
                );
            }
        }
    }
}
