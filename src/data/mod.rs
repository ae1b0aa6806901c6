//! Reading documents and QA samples: the `../shared/data` JSON format
//! (`[{"question", "answers", "ctxs": [{"title", "text"}]}]`), JSONL documents, and datasets
//! by name (files, slices of files, synthetic sets) for evaluation and training alike.

pub mod synth;

use anyhow::{Context, Result, bail};
use serde::Deserialize;
use std::path::Path;

/// One document: a packet's text is `"{title}\n{text}\n\n"` (the title line omitted when empty).
#[derive(Debug, Clone, Default, Deserialize, serde::Serialize, PartialEq)]
pub struct Document {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    /// The data file's id for the document, when it has one.
    pub id: Option<String>,
    #[serde(default)]
    /// Title line (empty: none; MuSiQue windows have none).
    pub title: String,
    /// The document's text.
    pub text: String,
    /// True for a paragraph the question needs (HotpotQA, MuSiQue); absent elsewhere.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub is_supporting: Option<bool>,
}

/// A question over documents, with gold answers when the file has them.
#[derive(Debug, Clone, Deserialize, serde::Serialize)]
pub struct Sample {
    #[serde(default)]
    /// The question (empty: the sample asks for a summary instead).
    pub question: String,
    #[serde(default)]
    /// Gold answers and their aliases (empty when the file has none).
    pub answers: Vec<String>,
    #[serde(default)]
    /// The documents, in context order; each becomes one packet.
    pub ctxs: Vec<Document>,
}

fn read_text(path: &Path) -> Result<String> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    String::from_utf8(bytes).map_err(|_| anyhow::anyhow!("{} is not valid UTF-8", path.display()))
}

/// Samples of a JSON array file in the shared data format.
pub fn load_samples(path: &Path) -> Result<Vec<Sample>> {
    parse_samples(&read_text(path)?).with_context(|| format!("{} is not a JSON array of samples", path.display()))
}

/// Samples of a JSON array text in the shared data format.
pub fn parse_samples(text: &str) -> Result<Vec<Sample>> {
    Ok(serde_json::from_str(text)?)
}

/// Documents of a file: every `ctxs` entry of a JSON array of samples, or one
/// `{"id"?, "title"?, "text"}` object per line of a JSONL file.
pub fn load_documents(path: &Path) -> Result<Vec<Document>> {
    let text = read_text(path)?;
    if text.trim_start().starts_with('[') {
        let samples: Vec<Sample> = serde_json::from_str(&text)
            .with_context(|| format!("{} is not a JSON array of samples", path.display()))?;
        return Ok(samples.into_iter().flat_map(|s| s.ctxs).collect());
    }
    let mut docs = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let d: Document = serde_json::from_str(line)
            .with_context(|| format!("{} line {}: expected {{\"text\": ...}}", path.display(), i + 1))?;
        docs.push(d);
    }
    if docs.is_empty() {
        bail!("{} holds no documents", path.display());
    }
    Ok(docs)
}

/// Splits `spec` into a path and an optional entry range `A..B` written after a `#`
/// (`file.json#0..50`: entries 0 to 49; either end may be left out).
fn split_range(spec: &str) -> Result<(&str, Option<std::ops::Range<usize>>)> {
    let Some((path, range)) = spec.rsplit_once('#') else {
        return Ok((spec, None));
    };
    let Some((a, b)) = range.split_once("..") else {
        bail!("`{spec}`: expected FILE#A..B (an entry range) after the `#`");
    };
    let num = |x: &str, default: usize| -> Result<usize> {
        match x.trim() {
            "" => Ok(default),
            x => x
                .parse()
                .with_context(|| format!("`{spec}`: `{x}` is not an entry index")),
        }
    };
    let (a, b) = (num(a, 0)?, num(b, usize::MAX)?);
    if a >= b {
        bail!("`{spec}`: the entry range {a}..{b} is empty");
    }
    Ok((path, Some(a..b)))
}

/// A dataset by name, and its name in results: a JSON file in the shared format, optionally
/// with an entry range (`file.json#50..100`), `synth:biography[:K]` (K people per sample,
/// default 10), `synth:biography-heldout[:K]` (the same in wordings training never sees) or
/// `synth:niah[:K]` (K filler documents of ~750 words, default 4), generated with `seed`.
/// At most `limit` samples.
pub fn load_dataset(spec: &str, limit: usize, seed: u64) -> Result<(String, Vec<Sample>)> {
    if let Some(rest) = spec.strip_prefix("synth:") {
        let mut parts = rest.split(':');
        let kind = parts.next().unwrap_or_default();
        let mut k = |default: usize| -> Result<usize> {
            match parts.next() {
                None => Ok(default),
                Some(k) => match k.parse() {
                    Ok(k) if k > 0 => Ok(k),
                    _ => bail!("`{spec}`: `{k}` is not a positive count"),
                },
            }
        };
        return match kind {
            "biography" | "biography-heldout" => {
                let k = k(10)?;
                let style = match kind {
                    "biography" => synth::BioStyle::Standard,
                    _ => synth::BioStyle::Heldout,
                };
                Ok((format!("synth:{kind}:{k}"), synth::biographies(limit, k, seed, style)))
            }
            "niah" => {
                let k = k(4)?;
                Ok((format!("synth:niah:{k}"), synth::needles(limit, k, 750, seed)))
            }
            _ => bail!(
                "unknown synthetic dataset `{spec}` (known: synth:biography[:K], synth:biography-heldout[:K], synth:niah[:K])"
            ),
        };
    }
    let (file, range) = match Path::new(spec).exists() {
        true => (spec, None),
        false => split_range(spec)?,
    };
    let path = Path::new(file);
    let mut samples = load_samples(path)?;
    let stem = path.file_stem().and_then(|s| s.to_str()).unwrap_or(file).to_string();
    let name = match range {
        Some(r) => {
            let (a, b) = (r.start.min(samples.len()), r.end.min(samples.len()));
            samples = samples.drain(a..b).collect();
            format!("{stem}#{a}..{b}")
        }
        None => stem,
    };
    samples.truncate(limit);
    Ok((name, samples))
}
