//! `kvpacket pack`: build packets for every document of a file into the store.

use super::{AdapterChoice, ModelArgs};
use crate::data::load_documents;
use crate::packet::KvDtype;
use anyhow::Result;
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use std::io::Write;
use std::path::PathBuf;

#[derive(Args)]
pub struct PackArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    #[command(flatten)]
    pub adapter: AdapterChoice,
    /// Documents: a JSON array in the shared data format (every `ctxs` entry) or JSONL of
    /// {"id"?, "title"?, "text"}.
    #[arg(long)]
    pub docs: PathBuf,
    /// Element type of stored K,V.
    #[arg(long, value_enum, default_value = "f16")]
    pub kv_dtype: KvDtype,
    /// Print one JSON object per packet.
    #[arg(long)]
    pub json: bool,
}

pub fn run(a: PackArgs) -> Result<()> {
    let engine = a.model.engine(None, a.kv_dtype, 0)?;
    let adapter = a.adapter.load(engine.model())?;
    let docs = load_documents(&a.docs)?;
    let bar = ProgressBar::new(docs.len() as u64);
    bar.set_style(ProgressStyle::with_template(
        "{bar:40} {pos}/{len} packets [{elapsed_precise} < {eta}] {msg}",
    )?);
    for doc in &docs {
        let (p, built, ms) = engine.pack(std::slice::from_ref(doc), Some(&adapter))?.remove(0);
        let (tokens, bytes) = (p.meta.tokens.len(), p.payload_bytes());
        let line = serde_json::json!({"id": p.meta.id, "doc": doc.id, "title": doc.title, "tokens": tokens,
            "positions": p.len(), "bytes": bytes, "built": built, "ms": ms});
        let text = if a.json {
            line.to_string()
        } else {
            format!(
                "{}  {:>5} tokens  {:>9} bytes  {}",
                p.meta.id,
                tokens,
                bytes,
                if built { "built" } else { "cached" }
            )
        };
        bar.suspend(|| writeln!(std::io::stdout().lock(), "{text}"))?;
        bar.inc(1);
    }
    bar.finish_and_clear();
    Ok(())
}
