//! The fidelity reference (`full`'s answer and first-token logits) cached on disk, so adding a
//! method to a finished run, or evaluating a new adapter, does not redo the full prefill.

use crate::io::{RawTensor, atomic_write, decode_floats, safetensors_bytes, safetensors_meta};
use crate::methods::{Answer, Full, Resources, Segments};
use anyhow::{Context, Result};
use safetensors::{Dtype, SafeTensors};
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};

/// What fidelity is measured against: `full`'s answer line and its first-token logits.
#[derive(Debug, Clone, PartialEq)]
pub struct Reference {
    /// `full`'s answer line.
    pub answer: String,
    /// `full`'s logits for the first answer token, over the vocabulary.
    pub first_logits: Vec<f32>,
}

impl From<&Answer> for Reference {
    /// The reference part of `full`'s answer.
    fn from(a: &Answer) -> Self {
        Self {
            answer: a.answer.clone(),
            first_logits: a.first_logits.clone(),
        }
    }
}

/// References stored as safetensors under `dir/<model fingerprint>/`, keyed by the prompt's
/// token ids, the decode length and a `variant` naming anything else that changes the answer
/// (the weight mode). An unreadable entry is recomputed and overwritten.
pub struct ReferenceCache {
    dir: PathBuf,
    variant: String,
}

impl ReferenceCache {
    /// A cache in `dir` (created when first written); `variant` must differ whenever the same
    /// model file can give different answers (e.g. the weight mode).
    pub fn new(dir: &Path, variant: &str) -> Self {
        Self {
            dir: dir.to_path_buf(),
            variant: variant.to_string(),
        }
    }

    fn path(&self, engine: &Resources, seg: &Segments, max_new: usize) -> PathBuf {
        let mut h = Sha256::new();
        h.update(self.variant.as_bytes());
        h.update(max_new.to_le_bytes());
        for t in seg.concat() {
            h.update(t.to_le_bytes());
        }
        let key = hex::encode(h.finalize());
        self.dir
            .join(&engine.model.fingerprint[..16])
            .join(format!("{}.safetensors", &key[..32]))
    }

    fn read(path: &Path) -> Result<Reference> {
        let bytes = std::fs::read(path)?;
        let meta = safetensors_meta(&bytes)?;
        let st = SafeTensors::deserialize(&bytes)?;
        let logits = st.tensor("first_logits")?;
        Ok(Reference {
            answer: meta["answer"].as_str().context("no answer in reference")?.to_string(),
            first_logits: decode_floats(logits.data(), logits.dtype())?,
        })
    }

    /// The stored reference for this prompt, or `full`'s answer computed now and stored.
    pub fn get(&self, engine: &Resources, seg: &Segments, max_new: usize) -> Result<Reference> {
        let path = self.path(engine, seg, max_new);
        if let Ok(r) = Self::read(&path) {
            return Ok(r);
        }
        let r = Reference::from(&engine.answer(&Full, seg, max_new)?);
        self.put(&path, &r)?;
        Ok(r)
    }

    fn put(&self, path: &Path, r: &Reference) -> Result<()> {
        let t = RawTensor {
            name: "first_logits".into(),
            dtype: Dtype::F32,
            shape: vec![r.first_logits.len()],
            bytes: crate::io::f32_bytes(&r.first_logits),
        };
        atomic_write(
            path,
            &safetensors_bytes(&[t], &serde_json::json!({"answer": r.answer}))?,
        )
    }

    /// Stores `r` as the reference of this prompt (used when `full` itself was just run).
    pub fn store(&self, engine: &Resources, seg: &Segments, max_new: usize, r: &Reference) -> Result<()> {
        self.put(&self.path(engine, seg, max_new), r)
    }
}
