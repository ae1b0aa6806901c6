//! Packets: the KV cache of `[header; document tokens; trailer]` computed alone at local
//! positions 0.., immutable, content-addressed, and composable at any offset by re-rotating
//! its keys.

pub mod codec;
mod format;

pub use format::PacketError;

use crate::adapter::Adapter;
use crate::model::{AttnMask, Input, KvCache, Model, Rows};
use anyhow::Result;
use candle_core::Tensor;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// Version of the packet format; packets of another version are refused.
pub const FORMAT_VERSION: u32 = 2;

/// The payload checksum of a packet: XXH3-128 over its stored tensors' bytes in file order,
/// as 32 hex digits.
pub(crate) struct PayloadHash(xxhash_rust::xxh3::Xxh3);

impl PayloadHash {
    pub(crate) fn new() -> Self {
        Self(xxhash_rust::xxh3::Xxh3::new())
    }
    pub(crate) fn update(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }
    pub(crate) fn finish(&self) -> String {
        format!("{:032x}", self.0.digest128())
    }
}

/// Element type of stored K,V.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum KvDtype {
    /// IEEE half precision: half the bytes of f32, answers identical on the issue-15 check.
    F16,
    /// Full precision: the values exactly as computed.
    F32,
    /// int8 with an f16 scale per group of 32 values: about half the bytes of f16.
    Q8,
}

/// Everything about a packet except its K,V arrays.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct PacketMeta {
    /// The on-disk format version the packet was written in (see `format.rs`).
    pub format_version: u32,
    /// sha256 of (format version, model fingerprint, adapter fingerprint, dtype, token ids).
    pub id: String,
    /// Fingerprint of the model whose KV this is; a packet is only used with that model.
    pub model_fingerprint: String,
    /// Fingerprint of the adapter (header/trailer) it was built with; "none" for plain packets.
    pub adapter_fingerprint: String,
    /// The document's token ids (no BOS, no header/trailer).
    pub tokens: Vec<u32>,
    /// Header rows the packet's K,V hold before the document (0 for a context-only header).
    pub n_header: usize,
    /// Trailer rows the packet's K,V hold after the document.
    pub n_trailer: usize,
    /// Transformer layers: `k` and `v` have one entry per layer.
    pub n_layers: usize,
    /// Key/value heads per row.
    pub n_kv_heads: usize,
    /// Values per head.
    pub head_dim: usize,
    /// Element type of the stored K,V.
    pub dtype: KvDtype,
    /// RoPE base the keys were rotated with; composition re-rotates with the same base.
    pub rope_theta: f32,
    /// True when rotary pairs are adjacent lanes (2i, 2i+1); false for the half-split layout.
    pub rope_interleaved: bool,
    /// XXH3-128 of the stored K,V bytes (hex), checked on every read. A checksum against
    /// damage, not an authenticator: format 1's sha256 ran at ~1.4 GB/s and was half of a
    /// warm packet load; XXH3 runs at memory speed.
    pub payload_xxh3: String,
}

/// A packet in memory. K,V are f32 here but hold exactly the values stored (already rounded
/// to f16 for f16 packets), so a packet behaves the same whether just built or loaded.
/// Per layer, `k[l]` and `v[l]` are [len, kv_heads, head_dim] token-major, keys rotated at
/// local positions 0..len.
#[derive(Debug, Clone)]
pub struct Packet {
    /// Identity, shape and checksum.
    pub meta: PacketMeta,
    /// Keys per layer, [len, kv_heads, head_dim], rotated at local positions 0..len.
    pub k: Vec<Vec<f32>>,
    /// Values per layer, [len, kv_heads, head_dim]; position-free, never changed by composition.
    pub v: Vec<Vec<f32>>,
}

/// True when `id` has the form of a packet id (1 to 128 hex digits), so it can name no path.
pub fn is_packet_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= 128 && id.chars().all(|c| c.is_ascii_hexdigit())
}

/// The content address of a packet.
pub fn packet_id(model_fp: &str, adapter_fp: &str, tokens: &[u32], dtype: KvDtype) -> String {
    let mut h = Sha256::new();
    h.update(format!(
        "kvpacket-v{FORMAT_VERSION}\n{model_fp}\n{adapter_fp}\n{dtype:?}\n"
    ));
    for t in tokens {
        h.update(t.to_le_bytes());
    }
    hex::encode(h.finalize())
}

impl Packet {
    /// Positions the packet occupies: header + document + trailer.
    pub fn len(&self) -> usize {
        self.meta.n_header + self.meta.tokens.len() + self.meta.n_trailer
    }

    /// True when the packet holds no position.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Bytes of K,V as stored (f16 or f32 elements), without the file's header.
    pub fn payload_bytes(&self) -> usize {
        let per = codec::bytes_per_value(self.meta.dtype, self.meta.head_dim);
        let values: usize = self.k.iter().chain(&self.v).map(|x| x.len()).sum();
        (values as f64 * per).round() as usize
    }

    /// Bytes of K,V held in memory.
    pub fn memory_bytes(&self) -> usize {
        self.k.iter().chain(&self.v).map(|x| x.len() * 4).sum()
    }

    /// Computes the packet of `tokens` wrapped by `adapter`: one causal forward of
    /// `[header; Emb(tokens); trailer]` at positions 0.., nothing before it. A context-only
    /// header's rows are then dropped and the remaining keys rotated back by N_h, so the
    /// packet is `[D; T]` at positions 0.. (RoPE: R(−N_h)·R(N_h + j) = R(j)). The stored keys
    /// are multiplied by the adapter's key factor of their layer and kv head
    /// ([`Adapter::key_factor`]; values never).
    pub fn build(model: &Model, adapter: &Adapter, tokens: &[u32], dtype: KvDtype) -> Result<Self> {
        let c = &model.config;
        if let Some(shape) = adapter.meta.head_key_scale {
            anyhow::ensure!(
                shape == [c.n_layers, c.n_kv_heads],
                "the adapter's key scales are for {} layers × {} kv heads, the model has {} × {}",
                shape[0],
                shape[1],
                c.n_layers,
                c.n_kv_heads
            );
        }
        let n = adapter.meta.n_header + tokens.len() + adapter.meta.n_trailer;
        anyhow::ensure!(n > 0, "cannot pack an empty document without an adapter");
        let x = Tensor::cat(&[&adapter.header, &model.embed(tokens)?, &adapter.trailer], 0)?;
        let positions: Vec<i64> = (0..n as i64).collect();
        let mut cache = model.new_cache(n);
        anyhow::ensure!(
            cache.capacity() >= n,
            "document of {n} positions exceeds the model's context"
        );
        model.forward(
            Input::Embeddings(&x),
            &positions,
            &AttnMask::causal(0, n),
            &mut cache,
            &Rows::None,
        )?;
        let (mut k, mut v): (Vec<_>, Vec<_>) = cache.into_layers().into_iter().map(|l| (l.k, l.v)).unzip();
        let dropped = adapter.meta.n_header - adapter.packet_header_rows();
        if dropped > 0 {
            let row = c.n_kv_heads * c.head_dim;
            let back = model.rope_table(&[-(dropped as i64)]);
            for x in k.iter_mut().chain(v.iter_mut()) {
                x.drain(..dropped * row);
            }
            k.iter_mut().for_each(|x| back.apply(x, c.n_kv_heads));
        }
        if adapter.meta.key_scale != 1.0 || adapter.meta.head_key_scale.is_some() {
            for (l, layer) in k.iter_mut().enumerate() {
                for (i, head) in layer.chunks_exact_mut(c.head_dim).enumerate() {
                    let f = adapter.key_factor(l, i % c.n_kv_heads);
                    head.iter_mut().for_each(|x| *x *= f);
                }
            }
        }
        k.iter_mut()
            .chain(v.iter_mut())
            .for_each(|x| codec::round(dtype, x, c.head_dim));
        let adapter_fp = adapter.packet_fingerprint()?;
        let meta = PacketMeta {
            format_version: FORMAT_VERSION,
            id: packet_id(&model.fingerprint, &adapter_fp, tokens, dtype),
            model_fingerprint: model.fingerprint.clone(),
            adapter_fingerprint: adapter_fp,
            tokens: tokens.to_vec(),
            n_header: adapter.packet_header_rows(),
            n_trailer: adapter.meta.n_trailer,
            n_layers: c.n_layers,
            n_kv_heads: c.n_kv_heads,
            head_dim: c.head_dim,
            dtype,
            rope_theta: c.rope_theta,
            rope_interleaved: c.rope_interleaved,
            payload_xxh3: String::new(),
        };
        let mut p = Self { meta, k, v };
        p.meta.payload_xxh3 = p.payload_hash();
        Ok(p)
    }

    /// Appends this packet to `cache` at the next positions: keys re-rotated by the offset
    /// (K(s+j) = R(s)·K(j)), values copied unchanged. Returns the re-rotation FLOPs spent,
    /// counted as (4 + 3·kv_heads)·head_dim per token per layer.
    pub fn append_to(&self, model: &Model, cache: &mut KvCache) -> Result<f64> {
        self.check_compatible(&model.fingerprint, None)?;
        let n = self.len();
        let offset = cache.len() as i64;
        let rot = (offset != 0).then(|| model.rope_table(&[offset]));
        cache.append_rows(n, &self.k, &self.v, rot.as_ref(), self.meta.n_kv_heads)?;
        let per_token_layer = (4 + 3 * self.meta.n_kv_heads) * self.meta.head_dim;
        Ok(if offset == 0 {
            0.0
        } else {
            (n * self.meta.n_layers * per_token_layer) as f64
        })
    }

    /// Refuses a packet made for another model (or, when given, another adapter).
    pub fn check_compatible(&self, model_fp: &str, adapter_fp: Option<&str>) -> Result<(), PacketError> {
        if self.meta.model_fingerprint != model_fp {
            return Err(PacketError::WrongModel {
                packet: self.meta.model_fingerprint.clone(),
                expected: model_fp.to_string(),
            });
        }
        if let Some(a) = adapter_fp
            && self.meta.adapter_fingerprint != a
        {
            return Err(PacketError::WrongAdapter {
                packet: self.meta.adapter_fingerprint.clone(),
                expected: a.to_string(),
            });
        }
        Ok(())
    }

    fn payload_hash(&self) -> String {
        let mut h = PayloadHash::new();
        for t in self.stored_tensors() {
            h.update(&t.bytes);
        }
        h.finish()
    }

    /// The stored tensors of every layer's K then V, in file and checksum order.
    fn stored_tensors(&self) -> Vec<crate::io::RawTensor> {
        let m = &self.meta;
        let shape = [self.len(), m.n_kv_heads, m.head_dim];
        (0..m.n_layers)
            .flat_map(|l| {
                codec::encode(m.dtype, &format!("k.{l}"), &self.k[l], shape)
                    .into_iter()
                    .chain(codec::encode(m.dtype, &format!("v.{l}"), &self.v[l], shape))
            })
            .collect()
    }
}
