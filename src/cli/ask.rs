//! `kvpacket ask`: answer a question over documents with one method.

use super::{AdapterChoice, ModelArgs};
use crate::data::load_samples;
use crate::engine::{DocumentRef, Request};
use crate::packet::KvDtype;
use anyhow::{Context, Result, bail};
use clap::Args;
use std::path::PathBuf;

#[derive(Args)]
pub struct AskArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    /// full | full-reversed | none | question-only | kvpacket[=ADAPTER] | cacheblend:R | epic:K | random:R |
    /// kvpacket[=ADAPTER]+cacheblend:R|+epic:K|+random:R (recompute on top of adapter
    /// packets). Plain `kvpacket` uses --adapter, else the model's shipped default.
    #[arg(long, default_value = "kvpacket")]
    pub method: String,
    #[command(flatten)]
    pub adapter: AdapterChoice,
    /// Packet ids (as printed by `kvpacket pack`), in context order.
    #[arg(long = "doc")]
    pub doc_ids: Vec<String>,
    /// A data file in the shared format; use with --sample.
    #[arg(long)]
    pub docs: Option<PathBuf>,
    /// Index of the sample in --docs whose documents (and question) to use.
    #[arg(long)]
    pub sample: Option<usize>,
    /// Element type of packets built on the fly.
    #[arg(long, value_enum, default_value = "f16")]
    pub kv_dtype: KvDtype,
    /// Fail instead of building packets missing from the store.
    #[arg(long)]
    pub cached_only: bool,
    #[arg(long, default_value_t = 32)]
    pub max_tokens: usize,
    /// Print one JSON object.
    #[arg(long)]
    pub json: bool,
    /// The question (defaults to the sample's own question).
    pub question: Option<String>,
}

fn request(a: &AskArgs) -> Result<Request> {
    let (documents, question) = match (&a.docs, a.sample, a.doc_ids.is_empty()) {
        (Some(file), Some(i), true) => {
            let samples = load_samples(file)?;
            let s = samples.get(i).with_context(|| {
                format!(
                    "{} has {} samples; --sample {i} is out of range",
                    file.display(),
                    samples.len()
                )
            })?;
            let q = a.question.clone().unwrap_or_else(|| s.question.clone());
            (s.ctxs.iter().cloned().map(DocumentRef::Text).collect(), q)
        }
        (None, None, false) => {
            let q = a.question.clone().context("give the QUESTION with --doc")?;
            (a.doc_ids.iter().cloned().map(DocumentRef::Id).collect(), q)
        }
        _ => bail!("give either --doc ID… or --docs FILE --sample N"),
    };
    Ok(Request {
        method: a.method.clone(),
        max_tokens: a.max_tokens,
        cached_only: a.cached_only,
        ..Request::new(&question, documents)
    })
}

pub fn run(a: AskArgs) -> Result<()> {
    let engine = a.model.engine(a.adapter.adapter.as_deref(), a.kv_dtype, 1 << 30)?;
    let reply = engine.answer(&request(&a)?, &mut |_| true)?;
    let answer = reply.text.lines().map(str::trim).find(|l| !l.is_empty()).unwrap_or("");
    let c = &reply.acct;
    if a.json {
        let mut v = serde_json::to_value(c)?;
        v["method"] = reply.method.clone().into();
        v["answer"] = answer.into();
        println!("{v}");
    } else {
        println!("{answer}");
        eprintln!(
            "[{}: ttft {:.1} ms, load {:.1} ms, {} reused / {} recomputed doc tokens, {:.3e} doc FLOPs, {} context tokens]",
            reply.method, c.ttft_ms, c.load_ms, c.reused_tokens, c.recomputed_tokens, c.doc_flops, c.context_tokens
        );
    }
    Ok(())
}
