//! Reading documents and QA samples: the `../shared/data` JSON format
//! (`[{"question", "answers", "ctxs": [{"title", "text"}]}]`) and JSONL documents.

use anyhow::{Context, Result, bail};
use serde::Deserialize;
use std::path::Path;

/// One document: a packet's text is `"{title}\n{text}\n\n"` (the title line omitted when empty).
#[derive(Debug, Clone, Deserialize, serde::Serialize, PartialEq)]
pub struct Document {
    #[serde(default)]
    pub id: Option<String>,
    #[serde(default)]
    pub title: String,
    pub text: String,
}

/// A question over documents, with gold answers when the file has them.
#[derive(Debug, Clone, Deserialize)]
pub struct Sample {
    #[serde(default)]
    pub question: String,
    #[serde(default)]
    pub answers: Vec<String>,
    #[serde(default)]
    pub ctxs: Vec<Document>,
}

fn read_text(path: &Path) -> Result<String> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    String::from_utf8(bytes).map_err(|_| anyhow::anyhow!("{} is not valid UTF-8", path.display()))
}

/// Samples of a JSON array file in the shared data format.
pub fn load_samples(path: &Path) -> Result<Vec<Sample>> {
    let text = read_text(path)?;
    serde_json::from_str(&text).with_context(|| format!("{} is not a JSON array of samples", path.display()))
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
