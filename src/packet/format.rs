//! The packet file: safetensors with `k.{layer}` and `v.{layer}` tensors
//! [len, kv_heads, head_dim] (f16 or f32) and the JSON metadata under `kvpacket`.
//! Reading verifies version, size, payload checksum, content id and every shape.

use super::{FORMAT_VERSION, Packet, PacketMeta, PayloadHash, codec, packet_id};
use crate::adapter::short;
use crate::io::{safetensors_bytes, safetensors_header_meta, safetensors_meta};
use anyhow::Context;
use std::io::Read;
use std::path::Path;

/// Why a packet file was refused. Each cause is distinct so callers and users can tell them apart.
#[derive(Debug, thiserror::Error)]
pub enum PacketError {
    /// The file ends before its header or payload does.
    #[error("packet file is truncated ({got} of {want} bytes)")]
    Truncated {
        /// Bytes the file has.
        got: usize,
        /// Bytes its header says it needs.
        want: usize,
    },
    /// A checksum or a header field does not match; the message says which.
    #[error("packet file is corrupt: {0}")]
    Corrupt(String),
    /// Written by another kvpacket format version.
    #[error("packet format version {found} is not supported (this kvpacket reads version {expected})")]
    WrongVersion {
        /// The file's version.
        found: u32,
        /// The version this build reads.
        expected: u32,
    },
    /// Built for another model.
    #[error("packet was built for model {} but the loaded model is {}", short(.packet), short(.expected))]
    WrongModel {
        /// The model fingerprint in the packet.
        packet: String,
        /// The loaded model's fingerprint.
        expected: String,
    },
    /// Built with another adapter.
    #[error("packet was built with adapter {} but the requested adapter is {}", short(.packet), short(.expected))]
    WrongAdapter {
        /// The adapter fingerprint in the packet.
        packet: String,
        /// The requested adapter's fingerprint.
        expected: String,
    },
}

impl PacketMeta {
    /// Reads the metadata of a packet file without reading its K,V payload (nothing beyond
    /// the header is read or verified: use [`Packet::from_bytes`] before trusting the data).
    pub fn read_file(path: &Path) -> anyhow::Result<Self> {
        let mut f = std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
        let mut len = [0u8; 8];
        f.read_exact(&mut len).context("packet file is truncated")?;
        let header_len = u64::from_le_bytes(len) as usize;
        anyhow::ensure!(header_len <= 100_000_000, "packet header length is implausible");
        let mut header = vec![0u8; header_len];
        f.read_exact(&mut header).context("packet header is truncated")?;
        Ok(Self::from_json(safetensors_header_meta(&header)?)?)
    }

    /// Packet metadata from its JSON, refusing other format versions.
    fn from_json(meta: serde_json::Value) -> Result<Self, PacketError> {
        let version = meta["format_version"]
            .as_u64()
            .ok_or_else(|| PacketError::Corrupt("no format version".into()))? as u32;
        if version != FORMAT_VERSION {
            return Err(PacketError::WrongVersion {
                found: version,
                expected: FORMAT_VERSION,
            });
        }
        serde_json::from_value(meta).map_err(|e| PacketError::Corrupt(format!("bad metadata: {e}")))
    }
}

impl Packet {
    /// The packet as file bytes.
    pub fn to_bytes(&self) -> anyhow::Result<Vec<u8>> {
        safetensors_bytes(&self.stored_tensors(), &serde_json::to_value(&self.meta)?)
    }

    /// Parses and verifies packet file bytes.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, PacketError> {
        let corrupt = |m: &str| PacketError::Corrupt(m.to_string());
        if bytes.len() < 8 {
            return Err(PacketError::Truncated {
                got: bytes.len(),
                want: 8,
            });
        }
        let header_len = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
        if header_len > 100_000_000 {
            return Err(corrupt("header length is implausible"));
        }
        if bytes.len() < 8 + header_len {
            return Err(PacketError::Truncated {
                got: bytes.len(),
                want: 8 + header_len,
            });
        }
        let header: serde_json::Value = serde_json::from_slice(&bytes[8..8 + header_len])
            .map_err(|e| PacketError::Corrupt(format!("unreadable header: {e}")))?;
        let data_len = header
            .as_object()
            .map(|o| {
                o.values()
                    .filter_map(|t| t["data_offsets"][1].as_u64())
                    .max()
                    .unwrap_or(0)
            })
            .unwrap_or(0) as usize;
        let want = 8 + header_len + data_len;
        if bytes.len() < want {
            return Err(PacketError::Truncated { got: bytes.len(), want });
        }
        let meta = PacketMeta::from_json(safetensors_meta(bytes).map_err(|e| PacketError::Corrupt(e.to_string()))?)?;
        let st = safetensors::SafeTensors::deserialize(bytes).map_err(|e| PacketError::Corrupt(e.to_string()))?;
        let len = meta.n_header + meta.tokens.len() + meta.n_trailer;
        let shape = [len, meta.n_kv_heads, meta.head_dim];
        let mut k = Vec::with_capacity(meta.n_layers);
        let mut v = Vec::with_capacity(meta.n_layers);
        // The checksum is over the stored bytes, so it is taken on them as read (no re-encoding).
        let mut hash = PayloadHash::new();
        for l in 0..meta.n_layers {
            for (name, out) in [("k", &mut k), ("v", &mut v)] {
                let name = format!("{name}.{l}");
                let parts = codec::tensor_names(meta.dtype, &name)
                    .iter()
                    .map(|n| st.tensor(n).map_err(|_| PacketError::Corrupt(format!("missing {n}"))))
                    .collect::<Result<Vec<_>, _>>()?;
                parts.iter().for_each(|t| hash.update(t.data()));
                out.push(
                    codec::decode(meta.dtype, &parts, shape)
                        .map_err(|e| PacketError::Corrupt(format!("{name}: {e}")))?,
                );
            }
        }
        if hash.finish() != meta.payload_xxh3 {
            return Err(corrupt("K,V checksum mismatch"));
        }
        let p = Packet { meta, k, v };
        let id = packet_id(
            &p.meta.model_fingerprint,
            &p.meta.adapter_fingerprint,
            &p.meta.tokens,
            p.meta.dtype,
        );
        if id != p.meta.id {
            return Err(corrupt("metadata does not match the packet id"));
        }
        Ok(p)
    }
}
