//! The KV Packet adapter: trainable header (N_h × d) and trailer (N_t × d) soft-token
//! embeddings wrapped around every document, one adapter per model, and an optional bridge
//! (N_b × d) of soft tokens computed once per request between the packets and the question.

use crate::io::{RawTensor, atomic_write, decode_floats, f32_bytes, safetensors_bytes, safetensors_meta};
use crate::model::Model;
use anyhow::{Context, Result, bail};
use candle_core::{Device, Tensor};
use rand::SeedableRng;
use rand::rngs::StdRng;
use rand_distr::{Distribution, Normal};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::path::Path;

/// Facts stored with an adapter. `made_by` records how it was made (init seed, or the full
/// training configuration, data, steps, wall time and final loss).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct AdapterMeta {
    /// Fingerprint of the model it was trained for; loading it with another model is refused.
    pub model_fingerprint: String,
    /// Header rows (N_h).
    pub n_header: usize,
    /// Trailer rows (N_t).
    pub n_trailer: usize,
    /// The model's hidden size, the width of every row.
    pub hidden_size: usize,
    /// How it was made, as JSON (see the struct's doc).
    pub made_by: serde_json::Value,
    /// A context-only header: each document's rows are computed after the header, but its
    /// packet keeps only `[D; T]` (re-rotated to start at position 0), so a request's cache
    /// holds no header rows and the preamble's first token stays the only attention sink.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub context_header: bool,
    /// Multiplier on the keys of a packet's rows (document and trailer) as every later token
    /// reads them: an attention temperature of 1/s over packets (s < 1 flattens the question's
    /// attention to them, as APE's temperature does). The document's own rows are computed
    /// unscaled; the scale is applied to the stored keys when the packet is built, and the
    /// training student reads them the same way. 1: none.
    #[serde(default = "unit_scale", skip_serializing_if = "is_unit_scale")]
    pub key_scale: f32,
    /// [layers, kv heads] of the adapter's learned per-head key factors
    /// ([`Adapter::head_key_scale`]); None: it has none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub head_key_scale: Option<[usize; 2]>,
    /// Bridge rows (N_b, see [`Adapter::bridge`]); absent in older adapters: 0.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub n_bridge: usize,
    /// Where the bridge sits among the question's rows; absent: before the question. Older
    /// adapters wrote `bridge_after_prompt: true|false`, read as after the prompt / before.
    #[serde(
        default,
        alias = "bridge_after_prompt",
        deserialize_with = "BridgePlace::or_legacy_flag",
        skip_serializing_if = "BridgePlace::is_before_question"
    )]
    pub bridge_place: BridgePlace,
}

/// Where an adapter's bridge ([`Adapter::bridge`]) sits among the rows a question adds after
/// the packets. The task prompt is `Question: …\nAnswer:` then the chat template's end of the
/// user turn and assistant header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum BridgePlace {
    /// Right after the last packet, before the task prompt: it reads the documents, not the
    /// question.
    #[default]
    BeforeQuestion,
    /// After the task text, before the template's end of the user turn: it reads the documents
    /// and the question, and the first answer token is still read from the assistant header.
    AfterQuestion,
    /// After the whole task prompt (after the assistant header): the first answer token is
    /// read from its last row.
    AfterPrompt,
}

impl BridgePlace {
    /// True for the default place (what configs and metadata leave out).
    pub fn is_before_question(&self) -> bool {
        *self == Self::BeforeQuestion
    }

    /// Reads a place, or the boolean `bridge_after_prompt` older adapters and configs wrote.
    pub fn or_legacy_flag<'de, D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum PlaceOrFlag {
            Place(BridgePlace),
            Flag(bool),
        }
        Ok(match PlaceOrFlag::deserialize(d)? {
            PlaceOrFlag::Place(p) => p,
            PlaceOrFlag::Flag(true) => Self::AfterPrompt,
            PlaceOrFlag::Flag(false) => Self::BeforeQuestion,
        })
    }

    /// How [`provenance`] and messages say it.
    pub fn describe(self) -> &'static str {
        match self {
            Self::BeforeQuestion => "before the question",
            Self::AfterQuestion => "after the question, inside the user's turn",
            Self::AfterPrompt => "after the task prompt",
        }
    }
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}

fn unit_scale() -> f32 {
    1.0
}

fn is_unit_scale(s: &f32) -> bool {
    *s == 1.0
}

/// How a fresh adapter's entries are set before training.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum AdapterInit {
    /// Every entry drawn from N(mean, std) of the token-embedding matrix (seeded).
    #[default]
    Random,
    /// The token embeddings of a header text and a trailer text, each repeated or cut to
    /// fill N_h / N_t rows: a real-text start, like prompt tuning's vocabulary init.
    Text {
        /// The header's text.
        header: String,
        /// The trailer's text.
        trailer: String,
    },
    /// The values of an existing adapter file (continued training); its model must match. Its
    /// N_h / N_t are kept or grown: a part asked larger than the file's (non-empty) one gets
    /// the file's rows followed by copies of them, cyclically, so the trained rows keep their
    /// positions. `fingerprint` records which values that file held when training began.
    File {
        /// The adapter file.
        path: String,
        /// Its fingerprint ([`Adapter::fingerprint`]) when training began.
        fingerprint: String,
    },
}

/// Default header text of [`AdapterInit::Text`].
pub const HEADER_TEXT: &str = "The following passage is one of several documents:\n";
/// Default trailer text of [`AdapterInit::Text`].
pub const TRAILER_TEXT: &str = "\nThis is the end of the passage.\n\n";
/// Default text a new bridge starts from ([`Adapter::with_bridge`]).
pub const BRIDGE_TEXT: &str = "Read the passages above together, in their order.\n\n";

/// Header, trailer and bridge embeddings, f32. Guarantees: shapes [n_header, d], [n_trailer, d]
/// and [n_bridge, d] with d the model's hidden size; `head_key_scale` is empty or holds the
/// layers × kv heads of `meta.head_key_scale`, every factor positive and finite.
#[derive(Debug, Clone)]
pub struct Adapter {
    /// [n_header, d] soft-token embeddings before each document.
    pub header: Tensor,
    /// [n_trailer, d] soft-token embeddings after each document.
    pub trailer: Tensor,
    /// [n_bridge, d] soft-token embeddings placed once per request after the last packet, before
    /// the task prompt, inside it or after it (`meta.bridge_place`), and computed with the
    /// prompt at request time: unlike a packet's rows they attend to every document,
    /// in the request's order. They cost N_b rows of the prompt's prefill and recompute no
    /// document token. Packets do not depend on them.
    pub bridge: Tensor,
    /// Facts stored with it.
    pub meta: AdapterMeta,
    /// Per layer and kv head (layer-major), a factor on the packet rows' keys on top of
    /// `meta.key_scale`, learned in training (`train --learn-key-scale`): each head of the
    /// question reads the packets at its own attention temperature. Empty: none.
    pub head_key_scale: Vec<f32>,
}

impl Adapter {
    /// The empty adapter (N_h = N_t = 0): documents are packed as plain text ("none").
    pub fn empty(model: &Model) -> Result<Self> {
        let d = model.config.hidden_size;
        let z = Tensor::zeros((0, d), candle_core::DType::F32, &Device::Cpu)?;
        let meta = AdapterMeta {
            model_fingerprint: model.fingerprint.clone(),
            n_header: 0,
            n_trailer: 0,
            hidden_size: d,
            made_by: serde_json::json!({"kind": "empty"}),
            context_header: false,
            key_scale: 1.0,
            head_key_scale: None,
            n_bridge: 0,
            bridge_place: BridgePlace::BeforeQuestion,
        };
        Ok(Self {
            header: z.clone(),
            trailer: z.clone(),
            bridge: z,
            meta,
            head_key_scale: Vec::new(),
        })
    }

    /// A fresh, untrained adapter: every entry drawn from a normal distribution with the
    /// mean and standard deviation of the model's token-embedding matrix (seeded).
    pub fn init(model: &Model, n_header: usize, n_trailer: usize, seed: u64) -> Result<Self> {
        let emb = model.weights.embed.flatten_all()?;
        let mean = emb.mean_all()?.to_scalar::<f32>()?;
        let std = (emb
            .broadcast_sub(&Tensor::new(mean, &Device::Cpu)?)?
            .sqr()?
            .mean_all()?
            .to_scalar::<f32>()?)
        .sqrt();
        let d = model.config.hidden_size;
        let mut rng = StdRng::seed_from_u64(seed);
        let dist = Normal::new(mean, std)?;
        let mut draw = |n: usize| -> Result<Tensor> {
            let v: Vec<f32> = (0..n * d).map(|_| dist.sample(&mut rng)).collect();
            Ok(Tensor::from_vec(v, (n, d), &Device::Cpu)?)
        };
        let meta = AdapterMeta {
            model_fingerprint: model.fingerprint.clone(),
            n_header,
            n_trailer,
            hidden_size: d,
            made_by: serde_json::json!({"kind": "init", "seed": seed, "embedding_mean": mean, "embedding_std": std}),
            context_header: false,
            key_scale: 1.0,
            head_key_scale: None,
            n_bridge: 0,
            bridge_place: BridgePlace::BeforeQuestion,
        };
        Ok(Self {
            header: draw(n_header)?,
            trailer: draw(n_trailer)?,
            bridge: draw(0)?,
            meta,
            head_key_scale: Vec::new(),
        })
    }

    /// A fresh adapter made as `init` says (`seed` is used by [`AdapterInit::Random`]).
    pub fn fresh(model: &Model, n_header: usize, n_trailer: usize, init: &AdapterInit, seed: u64) -> Result<Self> {
        match init {
            AdapterInit::Random => Self::init(model, n_header, n_trailer, seed),
            AdapterInit::Text { header, trailer } => Self::from_text(model, n_header, n_trailer, header, trailer),
            AdapterInit::File { path, fingerprint } => {
                let mut a = Self::load(Path::new(path), Some(model))?;
                if &a.fingerprint()? != fingerprint {
                    bail!(
                        "{path} changed since this run started (fingerprint {})",
                        short(fingerprint)
                    );
                }
                let (h, t) = (a.meta.n_header, a.meta.n_trailer);
                let grows = |have: usize, want: usize| want == have || (have > 0 && want > have);
                if !grows(h, n_header) || !grows(t, n_trailer) {
                    bail!(
                        "{path} has {h}+{t} header/trailer rows; {n_header}+{n_trailer} were asked for (a part can only keep its size or grow from a non-empty start)"
                    );
                }
                a.header = repeat_rows(&a.header, n_header)?;
                a.trailer = repeat_rows(&a.trailer, n_trailer)?;
                a.meta.n_header = n_header;
                a.meta.n_trailer = n_trailer;
                a.meta.made_by =
                    serde_json::json!({"kind": "init", "from": path, "fingerprint": fingerprint, "from_rows": [h, t]});
                Ok(a)
            }
        }
    }

    /// An adapter whose rows are the token embeddings of `header_text` / `trailer_text`,
    /// repeated cyclically (or cut) to exactly N_h / N_t rows. Errors on an empty text for
    /// a non-empty part.
    pub fn from_text(
        model: &Model,
        n_header: usize,
        n_trailer: usize,
        header_text: &str,
        trailer_text: &str,
    ) -> Result<Self> {
        let rows = |text: &str, n: usize, what: &str| -> Result<Tensor> {
            let ids = model.tokenizer.encode(text)?;
            if n > 0 && ids.is_empty() {
                bail!("the {what} text {text:?} has no tokens");
            }
            let ids: Vec<u32> = ids.iter().copied().cycle().take(n).collect();
            if ids.is_empty() {
                return Ok(Tensor::zeros(
                    (0, model.config.hidden_size),
                    candle_core::DType::F32,
                    &Device::Cpu,
                )?);
            }
            Ok(model.embed(&ids)?.to_dtype(candle_core::DType::F32)?)
        };
        let meta = AdapterMeta {
            model_fingerprint: model.fingerprint.clone(),
            n_header,
            n_trailer,
            hidden_size: model.config.hidden_size,
            made_by: serde_json::json!({"kind": "init", "header_text": header_text, "trailer_text": trailer_text}),
            context_header: false,
            key_scale: 1.0,
            head_key_scale: None,
            n_bridge: 0,
            bridge_place: BridgePlace::BeforeQuestion,
        };
        Ok(Self {
            header: rows(header_text, n_header, "header")?,
            trailer: rows(trailer_text, n_trailer, "trailer")?,
            bridge: rows("", 0, "bridge")?,
            meta,
            head_key_scale: Vec::new(),
        })
    }

    /// True for the empty adapter (no header, trailer or bridge).
    pub fn is_empty(&self) -> bool {
        self.meta.n_header == 0 && self.meta.n_trailer == 0 && self.meta.n_bridge == 0
    }

    /// This adapter with a bridge of `n` rows ([`Adapter::bridge`]) at `place`: its own rows
    /// when it has `n`; grown from its rows repeated cyclically when it has fewer but some; from
    /// the token embeddings of `text` repeated cyclically when it has none. Errors when asked
    /// for fewer rows than it has, for its bridge at another place, or for rows from a text
    /// without tokens.
    pub fn with_bridge(mut self, model: &Model, n: usize, place: BridgePlace, text: &str) -> Result<Self> {
        let have = self.meta.n_bridge;
        if n < have {
            bail!("the adapter has {have} bridge rows; a bridge can keep its size or grow, not shrink to {n}");
        }
        if have > 0 && place != self.meta.bridge_place {
            bail!(
                "the adapter's bridge sits {}, not {}",
                self.meta.bridge_place.describe(),
                place.describe()
            );
        }
        if n == have {
            return Ok(self);
        }
        self.meta.bridge_place = place;
        self.bridge = if have > 0 {
            repeat_rows(&self.bridge, n)?
        } else {
            let ids = model.tokenizer.encode(text)?;
            if ids.is_empty() {
                bail!("the bridge text {text:?} has no tokens");
            }
            let ids: Vec<u32> = ids.iter().copied().cycle().take(n).collect();
            model.embed(&ids)?.to_dtype(candle_core::DType::F32)?
        };
        self.meta.n_bridge = n;
        Ok(self)
    }

    /// This adapter with its bridge moved to `place`, its rows unchanged. The rows were trained
    /// where they sat, so a moved bridge is a start for training, not a finished adapter.
    /// Errors for an adapter without a bridge.
    pub fn with_bridge_moved(mut self, place: BridgePlace) -> Result<Self> {
        if self.meta.n_bridge == 0 {
            bail!("the adapter has no bridge to move (add one with --bridge N)");
        }
        self.meta.bridge_place = place;
        Ok(self)
    }

    /// This adapter with its header made context-only (`on`), or as it was: see
    /// [`AdapterMeta::context_header`]. Errors when asked for an adapter without a header.
    pub fn with_context_header(mut self, on: bool) -> Result<Self> {
        if on {
            if self.meta.n_header == 0 {
                bail!("a context-only header needs header rows (N_h > 0)");
            }
            self.meta.context_header = true;
        }
        Ok(self)
    }

    /// This adapter with the key scale `s` (see [`AdapterMeta::key_scale`]). Errors for the
    /// empty adapter (plain packets stay `none`) and for a scale outside (0, 4].
    pub fn with_key_scale(mut self, s: f32) -> Result<Self> {
        if self.is_empty() {
            bail!("a key scale needs an adapter with soft tokens (plain packets are `none`)");
        }
        if !(s > 0.0 && s <= 4.0) {
            bail!("key scale {s} is outside (0, 4]");
        }
        self.meta.key_scale = s;
        Ok(self)
    }

    /// This adapter with per-head key factors `scales` for `layers` layers of `kv_heads` kv
    /// heads (see [`Adapter::head_key_scale`]). Errors for the empty adapter, a length that is
    /// not layers × kv heads, and factors outside (0, 4].
    pub fn with_head_key_scale(mut self, scales: Vec<f32>, layers: usize, kv_heads: usize) -> Result<Self> {
        if self.is_empty() {
            bail!("key scales need an adapter with soft tokens (plain packets are `none`)");
        }
        if scales.len() != layers * kv_heads || scales.is_empty() {
            bail!(
                "{} head key scales for {layers} layers of {kv_heads} kv heads",
                scales.len()
            );
        }
        if let Some(s) = scales.iter().find(|s| !(**s > 0.0 && **s <= 4.0)) {
            bail!("head key scale {s} is outside (0, 4]");
        }
        self.head_key_scale = scales;
        self.meta.head_key_scale = Some([layers, kv_heads]);
        Ok(self)
    }

    /// The factor on the stored keys of layer `l`, kv head `h` of this adapter's packets:
    /// `meta.key_scale` times the head's learned factor, if any.
    pub fn key_factor(&self, l: usize, h: usize) -> f32 {
        let head = match self.meta.head_key_scale {
            Some([_, heads]) => self.head_key_scale[l * heads + h],
            None => 1.0,
        };
        self.meta.key_scale * head
    }

    /// Header rows a packet keeps: N_h, or 0 for a context-only header.
    pub fn packet_header_rows(&self) -> usize {
        if self.meta.context_header {
            0
        } else {
            self.meta.n_header
        }
    }

    /// Rows a packet holds besides its document's tokens.
    pub fn packet_extra_rows(&self) -> usize {
        self.packet_header_rows() + self.meta.n_trailer
    }

    /// The embedded rows a question adds after the packets, and the first bridge row among
    /// them: the bridge then `prompt`, `prompt` with the bridge before its template suffix (the
    /// end of the user turn and the assistant header), or `prompt` then the bridge, as
    /// `meta.bridge_place` says; then `rest` (in training, the teacher's tokens). Errors when
    /// the bridge goes after the question and `prompt` does not end with the model's suffix.
    pub fn question_tail(&self, model: &Model, prompt: &[u32], rest: &[u32]) -> Result<(Tensor, usize)> {
        let at = match self.meta.bridge_place {
            BridgePlace::BeforeQuestion => 0,
            BridgePlace::AfterPrompt => prompt.len(),
            BridgePlace::AfterQuestion if self.meta.n_bridge == 0 => prompt.len(),
            BridgePlace::AfterQuestion => {
                let suffix = model.prompt_suffix_tokens()?;
                if !prompt.ends_with(&suffix) {
                    bail!("the task prompt does not end with the chat template's end of turn and assistant header");
                }
                prompt.len() - suffix.len()
            }
        };
        let (before, after) = (model.embed(&prompt[..at])?, model.embed(&prompt[at..])?);
        Ok((
            Tensor::cat(&[&before, &self.bridge, &after, &model.embed(rest)?], 0)?,
            at,
        ))
    }

    /// Identifies the adapter's values: its [`Adapter::packet_fingerprint`] when it has no
    /// bridge, else a hex sha256 of that, N_b, where the bridge sits and its f32 bytes.
    pub fn fingerprint(&self) -> Result<String> {
        let packets = self.packet_fingerprint()?;
        if self.meta.n_bridge == 0 {
            return Ok(packets);
        }
        let mut h = Sha256::new();
        let after = match self.meta.bridge_place {
            BridgePlace::BeforeQuestion => "",
            BridgePlace::AfterQuestion => "q",
            BridgePlace::AfterPrompt => "a",
        };
        h.update(format!("{packets}b{}{after}", self.meta.n_bridge));
        h.update(f32_bytes(&self.bridge.flatten_all()?.to_vec1::<f32>()?));
        Ok(hex::encode(h.finalize()))
    }

    /// Identifies what the adapter's packets depend on, and so names them in a store:
    /// "none" when it packs documents plain (no header, no trailer, no key scale), else a hex
    /// sha256 of the sizes, whether the header is context-only, the key scale when it is not
    /// 1, the f32 bytes of header and trailer, and the per-head key factors when it has them
    /// (adapters without key scales keep their fingerprints). The bridge is not part of it:
    /// adapters that differ only in their bridges share packets.
    pub fn packet_fingerprint(&self) -> Result<String> {
        if self.meta.n_header == 0
            && self.meta.n_trailer == 0
            && self.meta.key_scale == 1.0
            && self.meta.head_key_scale.is_none()
        {
            return Ok("none".into());
        }
        let mut h = Sha256::new();
        h.update(format!(
            "{}x{}x{}{}",
            self.meta.n_header,
            self.meta.n_trailer,
            self.meta.hidden_size,
            if self.meta.context_header { "c" } else { "" }
        ));
        if self.meta.key_scale != 1.0 {
            h.update(format!("k{:08x}", self.meta.key_scale.to_bits()));
        }
        h.update(f32_bytes(&self.header.flatten_all()?.to_vec1::<f32>()?));
        h.update(f32_bytes(&self.trailer.flatten_all()?.to_vec1::<f32>()?));
        if let Some([l, k]) = self.meta.head_key_scale {
            h.update(format!("h{l}x{k}"));
            h.update(f32_bytes(&self.head_key_scale));
        }
        Ok(hex::encode(h.finalize()))
    }

    /// Writes the adapter as safetensors (`header`, `trailer`, `bridge` and `head_key_scale` when
    /// it has them; f32) with its metadata, atomically.
    pub fn save(&self, path: &Path) -> Result<()> {
        let d = self.meta.hidden_size;
        let t = |name: &str, x: &Tensor, n: usize| -> Result<RawTensor> {
            Ok(RawTensor {
                name: name.into(),
                dtype: safetensors::Dtype::F32,
                shape: vec![n, d],
                bytes: f32_bytes(&x.flatten_all()?.to_vec1::<f32>()?),
            })
        };
        let mut tensors = vec![
            t("header", &self.header, self.meta.n_header)?,
            t("trailer", &self.trailer, self.meta.n_trailer)?,
        ];
        if self.meta.n_bridge > 0 {
            tensors.push(t("bridge", &self.bridge, self.meta.n_bridge)?);
        }
        if let Some(shape) = self.meta.head_key_scale {
            tensors.push(RawTensor {
                name: "head_key_scale".into(),
                dtype: safetensors::Dtype::F32,
                shape: shape.to_vec(),
                bytes: f32_bytes(&self.head_key_scale),
            });
        }
        atomic_write(path, &safetensors_bytes(&tensors, &serde_json::to_value(&self.meta)?)?)
    }

    /// Reads an adapter file; with `model`, refuses an adapter made for another model.
    pub fn load(path: &Path, model: Option<&Model>) -> Result<Self> {
        let bytes = std::fs::read(path).with_context(|| format!("reading adapter {}", path.display()))?;
        let adapter = Self::from_bytes(&bytes).with_context(|| format!("adapter {}", path.display()))?;
        if let Some(m) = model
            && m.fingerprint != adapter.meta.model_fingerprint
        {
            bail!(
                "adapter {} was made for model {} but the loaded model is {} ({})",
                path.display(),
                short(&adapter.meta.model_fingerprint),
                short(&m.fingerprint),
                m.source.display()
            );
        }
        Ok(adapter)
    }

    /// Parses adapter file bytes: metadata, `header`, `trailer` (and `bridge` when it declares
    /// one) of the shapes it declares, every value finite. Any other input is an error, never a panic.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self> {
        let meta: AdapterMeta = serde_json::from_value(safetensors_meta(bytes)?).context("not a kvpacket adapter")?;
        let st = safetensors::SafeTensors::deserialize(bytes).context("not a safetensors file")?;
        let read = |name: &str, n: usize| -> Result<Tensor> {
            let v = st.tensor(name).with_context(|| format!("adapter has no `{name}`"))?;
            if v.shape() != [n, meta.hidden_size] {
                bail!(
                    "adapter `{name}` has shape {:?}, expected [{n}, {}]",
                    v.shape(),
                    meta.hidden_size
                );
            }
            Ok(Tensor::from_vec(
                decode_floats(v.data(), v.dtype())?,
                (n, meta.hidden_size),
                &Device::Cpu,
            )?)
        };
        let head_shape = meta.head_key_scale;
        let bridge = if meta.n_bridge > 0 {
            read("bridge", meta.n_bridge)?
        } else {
            Tensor::zeros((0, meta.hidden_size), candle_core::DType::F32, &Device::Cpu)?
        };
        let adapter = Self {
            header: read("header", meta.n_header)?,
            trailer: read("trailer", meta.n_trailer)?,
            bridge,
            meta,
            head_key_scale: Vec::new(),
        };
        for (name, t) in [
            ("header", &adapter.header),
            ("trailer", &adapter.trailer),
            ("bridge", &adapter.bridge),
        ] {
            if t.flatten_all()?.to_vec1::<f32>()?.iter().any(|x| !x.is_finite()) {
                bail!("its {name} holds values that are not finite (NaN or ∞)");
            }
        }
        match head_shape {
            None => Ok(adapter),
            Some([layers, heads]) => {
                let v = st.tensor("head_key_scale").context("adapter has no `head_key_scale`")?;
                if v.shape() != [layers, heads] {
                    bail!(
                        "adapter `head_key_scale` has shape {:?}, expected [{layers}, {heads}]",
                        v.shape()
                    );
                }
                let mut adapter = adapter;
                adapter.meta.head_key_scale = None;
                adapter.with_head_key_scale(decode_floats(v.data(), v.dtype())?, layers, heads)
            }
        }
    }
}

/// Folder of the adapters shipped with kvpacket: `$KVPACKET_ADAPTERS`, else `adapters/` of
/// this source tree. Adapters lie in it as `MODEL/NAME.safetensors` (or directly in it).
pub fn shipped_dir() -> std::path::PathBuf {
    match std::env::var_os("KVPACKET_ADAPTERS") {
        Some(d) if !d.is_empty() => d.into(),
        _ => Path::new(env!("CARGO_MANIFEST_DIR")).join("adapters"),
    }
}

/// The adapters shipped for `model` (matched by model fingerprint), as (name, file), sorted by
/// name. The name is the file's stem: `default` is the general one; others are by domain.
pub fn shipped_list(model: &Model) -> Vec<(String, std::path::PathBuf)> {
    let dir = shipped_dir();
    let entries = |d: &Path| -> Vec<std::path::PathBuf> {
        std::fs::read_dir(d)
            .map(|r| r.filter_map(|e| e.ok().map(|e| e.path())).collect())
            .unwrap_or_default()
    };
    let mut files: Vec<_> = entries(&dir)
        .into_iter()
        .flat_map(|p| if p.is_dir() { entries(&p) } else { vec![p] })
        .filter(|f| f.extension().is_some_and(|e| e == "safetensors"))
        .filter(|f| Adapter::load(f, Some(model)).is_ok())
        .filter_map(|f| Some((f.file_stem()?.to_str()?.to_string(), f)))
        .collect();
    files.sort();
    files
}

/// An adapter by file path, or by the name of one shipped for `model` (`default`, or a
/// domain's name such as `bio` or `qa`; see [`shipped_list`]).
pub fn named(model: &Model, spec: &str) -> Result<Adapter> {
    let path = Path::new(spec);
    if path.exists() {
        return Adapter::load(path, Some(model));
    }
    let shipped = shipped_list(model);
    match shipped.iter().find(|(name, _)| name == spec) {
        Some((_, f)) => Adapter::load(f, Some(model)),
        None if shipped.is_empty() => bail!(
            "`{spec}` is neither an adapter file nor an adapter shipped for model {} (none is shipped in {}; train one with `kvpacket train`)",
            short(&model.fingerprint),
            shipped_dir().display()
        ),
        None => bail!(
            "`{spec}` is neither an adapter file nor an adapter shipped for this model (shipped: {})",
            shipped.iter().map(|(n, _)| n.as_str()).collect::<Vec<_>>().join(", ")
        ),
    }
}

/// The shipped general adapter made for `model`.
pub fn shipped(model: &Model) -> Result<Adapter> {
    named(model, "default")
}

/// One line on what made an adapter: its training data, the adapter file it continued (if
/// any), steps, question passes and time, or how an untrained one was initialised.
pub fn provenance(meta: &AdapterMeta) -> String {
    let m = &meta.made_by;
    let context = if meta.context_header {
        " (context-only header)"
    } else {
        ""
    };
    let scale = if meta.key_scale == 1.0 {
        String::new()
    } else {
        format!(", packet keys scaled by {}", meta.key_scale)
    };
    let bridge = if meta.n_bridge > 0 {
        format!(", a {}-row bridge {}", meta.n_bridge, meta.bridge_place.describe())
    } else {
        String::new()
    };
    let size = format!(
        "{}+{} soft tokens{context}{scale}{bridge}",
        meta.n_header, meta.n_trailer
    );
    let size = match meta.head_key_scale {
        Some([l, h]) => format!("{size}, learned key scales for {l} layers × {h} kv heads"),
        None => size,
    };
    if m["kind"] != "trained" {
        return format!("{size}, untrained ({})", m);
    }
    let c = &m["config"];
    let files: Vec<String> = c["samples"]["files"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|f| f.as_str())
                .map(|f| with_shape(&c["samples"], f))
                .collect()
        })
        .unwrap_or_default();
    let passes = m["question_passes"]
        .as_u64()
        .map_or(String::new(), |q| format!(", {q} question passes"));
    let start = match (c["init"]["kind"].as_str(), c["init"]["path"].as_str()) {
        (Some("file"), Some(path)) => format!(", continued from {path}"),
        _ => String::new(),
    };
    let stopped = m["stopped_early_at"]
        .as_u64()
        .map_or(String::new(), |s| format!(", stopped early at step {s}"));
    let val = match &m["validation"] {
        serde_json::Value::Null => String::new(),
        v => format!(
            ", best by validation at step {} (first-token KL {:.4}){stopped}",
            v["best_step"],
            v["first_token_kl"].as_f64().unwrap_or(f64::NAN)
        ),
    };
    format!(
        "{size}, trained on {} ({} samples, lr {}, batch {}, {} epochs{start}): {} of {} steps{passes}, {:.1} h at {} threads{val}",
        files.join(" + "),
        c["samples"]["count"],
        c["lr"],
        c["batch"],
        c["epochs"],
        m["steps"],
        m["total_steps"],
        m["wall_time_s"].as_f64().unwrap_or(0.0) / 3600.0,
        m["threads"],
    )
}

/// A training data file as `adapter show` names it: with how its documents were reshaped
/// (windows, lowercase) when the run's sample spec reshaped it, so two adapters trained on one
/// file in different shapes read differently. Synthetic sets are never reshaped.
fn with_shape(spec: &serde_json::Value, file: &str) -> String {
    let only = spec["reshape_files"].as_array().filter(|a| !a.is_empty());
    let reshaped = !file.starts_with("synth:") && only.is_none_or(|a| a.iter().any(|f| f.as_str() == Some(file)));
    if !reshaped {
        return file.to_string();
    }
    let mut shape = Vec::new();
    if let Some(n) = spec["chunk_tokens"].as_u64().filter(|&n| n > 0) {
        let stride = spec["chunk_stride"].as_u64().filter(|&s| s > 0).unwrap_or(n);
        shape.push(format!("{n}-token windows every {stride}"));
    }
    if spec["lowercase_docs"].as_bool() == Some(true) {
        shape.push("lowercased".to_string());
    }
    if shape.is_empty() {
        file.to_string()
    } else {
        format!("{file} ({})", shape.join(", "))
    }
}

/// `rows` extended to `n` rows by repeating its rows cyclically after them (unchanged when it
/// already has `n`). Errors when it has none and `n` > 0.
fn repeat_rows(rows: &Tensor, n: usize) -> Result<Tensor> {
    let have = rows.dim(0)?;
    if have == n {
        return Ok(rows.clone());
    }
    if have == 0 {
        bail!("no rows to repeat into {n}");
    }
    let idx: Vec<u32> = (0..n).map(|i| (i % have) as u32).collect();
    Ok(rows.index_select(&Tensor::new(idx.as_slice(), &Device::Cpu)?, 0)?)
}

/// The first 12 hex digits of a fingerprint, for messages.
pub fn short(fp: &str) -> &str {
    &fp[..fp.len().min(12)]
}
