//! `kvpacket ask`: answer a question over documents with one method.

use super::{AdapterChoice, ModelArgs};
use crate::data::load_samples;
use crate::methods::layout::segments;
use crate::methods::{Resources, Segments, method_by_name};
use crate::model::Model;
use crate::packet::KvDtype;
use crate::store::{PacketStore, default_store};
use anyhow::{Context, Result, bail};
use clap::Args;
use std::path::PathBuf;

#[derive(Args)]
pub struct AskArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    /// full | none | question-only | kvpacket[=ADAPTER] | cacheblend:R | epic:K | random:R |
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

fn request(a: &AskArgs, model: &Model, store: &dyn PacketStore) -> Result<Segments> {
    match (&a.docs, a.sample, a.doc_ids.is_empty()) {
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
            segments(model, &s.ctxs, &q)
        }
        (None, None, false) => {
            let q = a.question.clone().context("give the QUESTION with --doc")?;
            let mut seg = segments(model, &[], &q)?;
            for id in &a.doc_ids {
                let p = store
                    .get(id)?
                    .with_context(|| format!("no packet `{id}` in the store (run `kvpacket pack`)"))?;
                p.check_compatible(&model.fingerprint, None)?;
                seg.docs.push(p.meta.tokens.clone());
            }
            Ok(seg)
        }
        _ => bail!("give either --doc ID… or --docs FILE --sample N"),
    }
}

pub fn run(a: AskArgs) -> Result<()> {
    let model = a.model.load()?;
    let store = default_store(1 << 30)?;
    let seg = request(&a, &model, &store)?;
    let method = method_by_name(&a.method, &model, a.adapter.chosen(&model)?.as_ref())?;
    let engine = Resources {
        model: &model,
        store: &store,
        kv_dtype: a.kv_dtype,
        cached_only: a.cached_only,
        decode_room: 64,
    };
    let ans = engine.answer(method.as_ref(), &seg, a.max_tokens)?;
    if a.json {
        let mut v = serde_json::to_value(&ans)?;
        if let Some(o) = v.as_object_mut() {
            o.remove("tokens");
            o.remove("text");
        }
        println!("{v}");
    } else {
        println!("{}", ans.answer);
        let c = &ans.acct;
        eprintln!(
            "[{}: ttft {:.1} ms, load {:.1} ms, {} reused / {} recomputed doc tokens, {:.3e} doc FLOPs, {} context tokens]",
            ans.method, c.ttft_ms, c.load_ms, c.reused_tokens, c.recomputed_tokens, c.doc_flops, c.context_tokens
        );
    }
    Ok(())
}
