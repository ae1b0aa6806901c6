//! Self-supervised training samples: k documents from one data entry plus a task prompt
//! (the entry's question, or a generic instruction). Gold answers are never read.

use crate::data::{Document, load_samples};
use crate::model::Model;
use anyhow::{Result, bail};
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{RngExt, SeedableRng};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::path::PathBuf;

/// Generic task prompts used instead of an entry's question.
pub const GENERIC_TASKS: [&str; 4] = [
    "",
    "What is the main fact in the passages?",
    "Which people, places or dates do the passages mention?",
    "Summarize the passages in one sentence.",
];

/// Added to the seed of synthetic generators used for training.
pub const SYNTH_SEED_OFFSET: u64 = 1_000_003;

/// One training sample. `task` empty means the summary instruction of the prompt layout.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct TrainSample {
    pub docs: Vec<Document>,
    pub task: String,
}

impl TrainSample {
    /// A stable key for caching the teacher's output for this sample.
    pub fn key(&self) -> String {
        let mut h = Sha256::new();
        h.update(serde_json::to_vec(self).unwrap_or_default());
        hex::encode(h.finalize())
    }
}

/// How samples are drawn.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct SampleSpec {
    /// Data files in the shared format, or synthetic sets (`synth:biography`, `synth:niah`).
    pub files: Vec<PathBuf>,
    pub count: usize,
    pub k_min: usize,
    pub k_max: usize,
    /// Documents are cut to this many tokens (0: no cut).
    pub max_doc_tokens: usize,
    /// Probability of a generic instruction instead of the entry's question.
    pub generic_task_prob: f64,
    /// Data-file entries are re-cut into windows of this many tokens of their joined texts
    /// (0: documents as they are; absent in older configs). Synthetic sets are not re-cut.
    #[serde(default)]
    pub chunk_tokens: usize,
    /// When an entry has fewer documents than the drawn k, fill up to k with random documents
    /// of other entries (distractors) and shuffle their order (absent in older configs: off).
    #[serde(default)]
    pub distractors: bool,
    /// Lowercase the documents (titles and texts) of data files, as the evaluation's MuSiQue
    /// passages are (absent in older configs: off). Questions keep their case.
    #[serde(default)]
    pub lowercase_docs: bool,
    /// Start of each window after the previous one, in tokens: below `chunk_tokens`, windows
    /// overlap, as musique_s's retrieved chunks do (0, and absent in older configs: equal to
    /// `chunk_tokens`, no overlap).
    #[serde(default)]
    pub chunk_stride: usize,
    pub seed: u64,
}

/// Cuts `text` to at most `max` tokens (at a token boundary, decoded back to text).
fn cut(model: &Model, text: &str, max: usize) -> Result<String> {
    let ids = model.tokenizer.encode(text)?;
    if max == 0 || ids.len() <= max {
        Ok(text.to_string())
    } else {
        model.tokenizer.decode(&ids[..max])
    }
}

/// A copy of `d` (no id) with its text cut to `max` tokens.
fn cut_document(model: &Model, d: &Document, max: usize) -> Result<Document> {
    Ok(Document {
        id: None,
        title: d.title.clone(),
        text: cut(model, &d.text, max)?,
    })
}

/// The entry's texts joined by spaces and cut into windows of `size` tokens starting every
/// `stride` tokens (`0 < stride ≤ size`), each an untitled document. Windows stop after the
/// first that reaches the end of the text; a last window shorter than `size / 4` is dropped
/// (unless it is the only one).
fn chunked(model: &Model, ctxs: &[Document], size: usize, stride: usize) -> Result<Vec<Document>> {
    let joined = ctxs.iter().map(|d| d.text.trim()).collect::<Vec<_>>().join(" ");
    let ids = model.tokenizer.encode(&joined)?;
    let n = ids.len();
    if n == 0 {
        return Ok(Vec::new());
    }
    let mut windows = Vec::new();
    let mut start = 0;
    loop {
        let end = (start + size).min(n);
        if windows.is_empty() || end - start >= size / 4 {
            windows.push(&ids[start..end]);
        }
        if end == n {
            break;
        }
        start += stride;
    }
    windows
        .into_iter()
        .map(|w| {
            Ok(Document {
                id: None,
                title: String::new(),
                text: model.tokenizer.decode(w)?,
            })
        })
        .collect()
}

/// Draws `spec.count` samples, cycling over the entries of the files in a seeded order.
pub fn draw_samples(model: &Model, spec: &SampleSpec) -> Result<Vec<TrainSample>> {
    if spec.chunk_stride > 0 && (spec.chunk_tokens == 0 || spec.chunk_stride > spec.chunk_tokens) {
        bail!(
            "--chunk-stride {} needs --chunk-tokens of at least that many (got {}); a larger stride would skip text",
            spec.chunk_stride,
            spec.chunk_tokens
        );
    }
    if spec.chunk_tokens > 0 && spec.max_doc_tokens > 0 && spec.max_doc_tokens < spec.chunk_tokens {
        bail!(
            "--max-doc-tokens {} would cut every {}-token window of --chunk-tokens; leave it out (no cut) or make the windows smaller",
            spec.max_doc_tokens,
            spec.chunk_tokens
        );
    }
    let stride = match spec.chunk_stride {
        0 => spec.chunk_tokens,
        s => s,
    };
    let mut entries = Vec::new();
    for f in &spec.files {
        let name = f.to_string_lossy();
        let loaded = if name.starts_with("synth:") {
            // Synthetic sets are drawn with a seed offset so they never coincide with the
            // evaluation's (which uses small seeds).
            crate::eval::load_dataset(&name, spec.count, spec.seed + SYNTH_SEED_OFFSET)?.1
        } else {
            let mut file = load_samples(f)?;
            for s in &mut file {
                if spec.lowercase_docs {
                    for d in &mut s.ctxs {
                        d.title = d.title.to_lowercase();
                        d.text = d.text.to_lowercase();
                    }
                }
                if spec.chunk_tokens > 0 {
                    s.ctxs = chunked(model, &s.ctxs, spec.chunk_tokens, stride)?;
                }
            }
            file
        };
        entries.extend(loaded.into_iter().filter(|s| !s.ctxs.is_empty()));
    }
    if entries.is_empty() {
        bail!("no entries with documents in the training files");
    }
    if spec.k_min == 0 || spec.k_min > spec.k_max {
        bail!("need 1 ≤ k-min ≤ k-max (got {}..{})", spec.k_min, spec.k_max);
    }
    let mut rng = StdRng::seed_from_u64(spec.seed);
    let mut order: Vec<usize> = (0..entries.len()).collect();
    let mut out = Vec::with_capacity(spec.count);
    while out.len() < spec.count {
        order.shuffle(&mut rng);
        for &e in &order {
            if out.len() == spec.count {
                break;
            }
            let entry = &entries[e];
            let want = rng.random_range(spec.k_min..=spec.k_max);
            let k = want.min(entry.ctxs.len());
            let mut idx: Vec<usize> = (0..entry.ctxs.len()).collect();
            idx.shuffle(&mut rng);
            let mut docs = idx[..k]
                .iter()
                .map(|&i| cut_document(model, &entry.ctxs[i], spec.max_doc_tokens))
                .collect::<Result<Vec<_>>>()?;
            if spec.distractors && want > k && entries.len() > 1 {
                while docs.len() < want {
                    let o = rng.random_range(0..entries.len());
                    if o != e {
                        let other = &entries[o].ctxs;
                        docs.push(cut_document(
                            model,
                            &other[rng.random_range(0..other.len())],
                            spec.max_doc_tokens,
                        )?);
                    }
                }
                docs.shuffle(&mut rng);
            }
            let generic = entry.question.trim().is_empty() || rng.random_bool(spec.generic_task_prob);
            let task = if generic {
                GENERIC_TASKS[rng.random_range(0..GENERIC_TASKS.len())].to_string()
            } else {
                entry.question.clone()
            };
            out.push(TrainSample { docs, task });
        }
    }
    Ok(out)
}
