//! Ways to answer a question over documents, all through one code path: `full` (prefill
//! everything), `none` and `kvpacket` (compose stored packets, prefill only the question),
//! and `question-only`. Each reports what it reused, recomputed and spent.

mod flops;
pub mod layout;
pub mod recompute;
pub mod registry;

pub use flops::{forward_flops, layer_flops};
pub use layout::Segments;
pub use recompute::Recompute;
pub use registry::method_by_name;

use crate::adapter::Adapter;
use crate::model::generate::{greedy_continue, last_row};
use crate::model::{KvCache, Model, Rows};
use crate::packet::{KvDtype, Packet, packet_id};
use crate::store::PacketStore;
use anyhow::{Result, bail};
use rayon::prelude::*;
use serde::Serialize;
use std::sync::Arc;
use std::time::Instant;

/// What one answer cost. `recomputed_tokens` counts document tokens whose KV this call
/// computed (the question's prefill is not counted); `doc_flops` is the analytic FLOPs spent
/// on document KV (re-rotation included); `ttft_ms` runs from "packets in memory" to the
/// first token's logits; `load_ms` is the time to fetch packets from the store.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct Accounting {
    /// Document tokens whose KV came from packets.
    pub reused_tokens: usize,
    /// Document tokens whose KV this call computed.
    pub recomputed_tokens: usize,
    /// Analytic FLOPs spent on document KV.
    pub doc_flops: f64,
    /// Milliseconds from packets in memory to the first token's logits.
    pub ttft_ms: f64,
    /// Of `ttft_ms`, the time spent placing stored KV into the request's cache (copies, key
    /// re-rotation) and repairing it, before the prompt's prefill; 0 for plain prefill.
    pub compose_ms: f64,
    /// Milliseconds spent fetching packets from the store.
    pub load_ms: f64,
    /// Tokens in the cache before the first answer token.
    pub context_tokens: usize,
    /// Document packets found in the store.
    pub packets_loaded: usize,
    /// Document packets built by this call (store misses).
    pub packets_built: usize,
}

/// The state after a method's prefill: the KV of the whole context and the first logits.
pub struct Prefilled {
    /// KV of the whole context, ready for decoding.
    pub cache: KvCache,
    /// Logits of the first answer token.
    pub first_logits: Vec<f32>,
    /// What the prefill cost.
    pub acct: Accounting,
}

/// A finished answer.
#[derive(Debug, Clone, Serialize)]
pub struct Answer {
    /// The method's label.
    pub method: String,
    /// First non-empty line of the generated text, trimmed (a summary: the whole text, trimmed).
    pub answer: String,
    /// The whole generated text.
    pub text: String,
    /// The generated token ids.
    pub tokens: Vec<u32>,
    #[serde(flatten)]
    /// What the answer cost.
    pub acct: Accounting,
    /// Logits of the first answer token (for fidelity measures).
    #[serde(skip)]
    pub first_logits: Vec<f32>,
}

/// Shared resources of the methods: model, packet store and packing settings (borrowed; the
/// owned, shareable façade is [`crate::engine::Engine`]).
#[derive(Clone, Copy)]
pub struct Resources<'a> {
    /// The model every method runs.
    pub model: &'a Model,
    /// Where packets are read and written.
    pub store: &'a dyn PacketStore,
    /// Element type of packets built here.
    pub kv_dtype: KvDtype,
    /// Refuse to build missing packets (error instead).
    pub cached_only: bool,
    /// Tokens of room a prefill leaves in its cache for decoding ([`Resources::answer`] sets
    /// it to its decode length).
    pub decode_room: usize,
}

/// One way of producing the first-token state for a request.
pub trait Method {
    /// The method's name as given on the command line.
    fn name(&self) -> String;
    /// Builds the KV of the request's context and returns the first token's logits.
    fn prefill(&self, engine: &Resources, seg: &Segments) -> Result<Prefilled>;
    /// The adapter whose packets this method reuses, if it reuses packets.
    fn packet_adapter(&self) -> Option<Adapter> {
        None
    }
}

impl Resources<'_> {
    /// The packet of `tokens` under `adapter`: from the store, or built now (and stored)
    /// unless `cached_only`. Returns (packet, built here?, milliseconds spent).
    pub fn packet(&self, adapter: &Adapter, tokens: &[u32]) -> Result<(Arc<Packet>, bool, f64)> {
        let t0 = Instant::now();
        if let Some(p) = self.stored(adapter, tokens)? {
            return Ok((p, false, ms(t0)));
        }
        let p = self.build(adapter, tokens)?;
        Ok((p, true, ms(t0)))
    }

    /// The verified packet of `tokens` under `adapter` when the store has it.
    pub fn stored(&self, adapter: &Adapter, tokens: &[u32]) -> Result<Option<Arc<Packet>>> {
        self.store.get(&self.packet_id(adapter, tokens)?)
    }

    /// Builds the packet of `tokens` under `adapter` and stores it; an error when
    /// `cached_only` forbids building.
    fn build(&self, adapter: &Adapter, tokens: &[u32]) -> Result<Arc<Packet>> {
        if self.cached_only {
            bail!(
                "packet {} is not in the store, and building packets was not allowed (pack the documents first)",
                self.packet_id(adapter, tokens)?
            );
        }
        let p = Packet::build(self.model, adapter, tokens, self.kv_dtype)?;
        self.store.put(&p)?;
        Ok(Arc::new(p))
    }

    fn packet_id(&self, adapter: &Adapter, tokens: &[u32]) -> Result<String> {
        Ok(packet_id(
            &self.model.fingerprint,
            &adapter.packet_fingerprint()?,
            tokens,
            self.kv_dtype,
        ))
    }

    /// Runs `method` and decodes greedily up to `max_new` tokens; the answer is the first
    /// non-empty line (DESIGN §4), or the whole text for a summary.
    pub fn answer(&self, method: &dyn Method, seg: &Segments, max_new: usize) -> Result<Answer> {
        let res = Resources {
            decode_room: max_new + 1,
            ..*self
        };
        let mut pre = method.prefill(&res, seg)?;
        let (tokens, _) = greedy_continue(self.model, &mut pre.cache, &pre.first_logits, max_new)?;
        let text = self.model.tokenizer.decode(&tokens)?;
        let answer = if seg.summary {
            text.trim()
        } else {
            text.lines().map(str::trim).find(|l| !l.is_empty()).unwrap_or("")
        }
        .to_string();
        Ok(Answer {
            method: method.name(),
            answer,
            text,
            tokens,
            acct: pre.acct,
            first_logits: pre.first_logits,
        })
    }

    /// A cache with room for the request: preamble, documents (each with `adapter_len` more
    /// rows), `bridge` rows, the prompt, and the decode room.
    fn cache_for(&self, seg: &Segments, with_docs: bool, adapter_len: usize, bridge: usize) -> KvCache {
        let docs = if with_docs {
            seg.doc_tokens() + seg.docs.len() * adapter_len
        } else {
            0
        };
        self.model
            .new_cache(seg.preamble.len() + docs + bridge + seg.prompt.len() + self.decode_room)
    }
}

fn ms(t0: Instant) -> f64 {
    t0.elapsed().as_secs_f64() * 1e3
}

/// Prefill of the whole prompt, documents included: the quality and cost ceiling.
pub struct Full;

/// The prompt without any document: the floor.
pub struct QuestionOnly;

/// `full` with the documents in reverse order: the same text and the same attention, only the
/// order differs. Its fidelity to `full` is how far `full`'s own answer moves when nothing but
/// the document order changes: the noise floor that fidelity figures (F1 against `full`'s
/// answer, first-token KL) should be read against.
pub struct FullReversed;

fn plain_prefill(engine: &Resources, seg: &Segments, with_docs: bool) -> Result<Prefilled> {
    let m = engine.model;
    let ids = if with_docs {
        seg.concat()
    } else {
        [seg.preamble.clone(), seg.prompt.clone()].concat()
    };
    let mut cache = engine.cache_for(seg, with_docs, 0, 0);
    cache.reserve(ids.len() + 1)?;
    let t0 = Instant::now();
    let logits = m.prefill(&ids, &mut cache, &Rows::Last)?.expect("one row requested");
    let first_logits = last_row(&logits)?;
    let ttft_ms = ms(t0);
    let n_docs = if with_docs { seg.doc_tokens() } else { 0 };
    let acct = Accounting {
        recomputed_tokens: n_docs,
        doc_flops: forward_flops(&m.config, seg.preamble.len(), n_docs),
        ttft_ms,
        context_tokens: cache.len(),
        ..Default::default()
    };
    Ok(Prefilled {
        cache,
        first_logits,
        acct,
    })
}

impl Method for Full {
    fn name(&self) -> String {
        "full".into()
    }
    fn prefill(&self, engine: &Resources, seg: &Segments) -> Result<Prefilled> {
        plain_prefill(engine, seg, true)
    }
}

impl Method for FullReversed {
    fn name(&self) -> String {
        "full-reversed".into()
    }
    fn prefill(&self, engine: &Resources, seg: &Segments) -> Result<Prefilled> {
        let mut reversed = seg.clone();
        reversed.docs.reverse();
        plain_prefill(engine, &reversed, true)
    }
}

impl Method for QuestionOnly {
    fn name(&self) -> String {
        "question-only".into()
    }
    fn prefill(&self, engine: &Resources, seg: &Segments) -> Result<Prefilled> {
        plain_prefill(engine, seg, false)
    }
}

/// Composition of stored packets with zero recomputation: `kvpacket` with a header/trailer
/// adapter, `none` with the empty adapter (plain document KV).
pub struct Packets {
    /// The adapter packets are built with (empty for `none`).
    pub adapter: Adapter,
    /// The method's label: `none`, `kvpacket` or `kvpacket:NAME`.
    pub label: String,
}

impl Packets {
    /// `none`: plain packets built without an adapter.
    pub fn none(model: &Model) -> Result<Self> {
        Ok(Self {
            adapter: Adapter::empty(model)?,
            label: "none".into(),
        })
    }

    /// `kvpacket` with the given adapter.
    pub fn kvpacket(adapter: Adapter) -> Self {
        Self {
            adapter,
            label: "kvpacket".into(),
        }
    }
}

impl Method for Packets {
    fn name(&self) -> String {
        self.label.clone()
    }

    fn packet_adapter(&self) -> Option<Adapter> {
        Some(self.adapter.clone())
    }

    fn prefill(&self, engine: &Resources, seg: &Segments) -> Result<Prefilled> {
        compose_and_prefill(engine, seg, &self.adapter, None)
    }
}

/// Where a document's own tokens sit in a composed cache (after its header, if any).
#[derive(Debug, Clone)]
pub struct DocSpan {
    /// Cache row of the document's first token.
    pub start: usize,
    /// The document's token ids.
    pub tokens: Vec<u32>,
}

/// A repair of a composed cache before the question is prefilled (the recompute baselines).
pub trait Repair {
    /// Recomputes some document rows of `cache`; returns (tokens recomputed, FLOPs spent).
    fn repair(&self, model: &Model, cache: &mut KvCache, docs: &[DocSpan]) -> Result<(usize, f64)>;
}

/// Loads (or builds) the preamble and document packets, concatenates them with re-rotated
/// keys, applies `repair` if any, and prefills the adapter's bridge (when there are documents)
/// and the task prompt. TTFT runs from "packets in memory" to the first logits (plus the time
/// of any packet built on the fly).
pub fn compose_and_prefill(
    engine: &Resources,
    seg: &Segments,
    adapter: &Adapter,
    repair: Option<&dyn Repair>,
) -> Result<Prefilled> {
    let m = engine.model;
    let mut acct = Accounting::default();
    let mut built_ms = 0.0;
    let empty = Adapter::empty(m)?;
    let preamble = if seg.preamble.is_empty() {
        None
    } else {
        let (p, built, t) = engine.packet(&empty, &seg.preamble)?;
        if built {
            built_ms += t
        } else {
            acct.load_ms += t
        }
        Some(p)
    };
    // Stored packets are read and verified in parallel: with the page cache warm, a load is
    // bound by the checksum and the f16 decode, which split over cores. Missing ones are
    // built after, one at a time (each build is itself parallel).
    let t0 = Instant::now();
    let stored: Vec<Option<Arc<Packet>>> = seg
        .docs
        .par_iter()
        .map(|d| engine.stored(adapter, d))
        .collect::<Result<_>>()?;
    acct.load_ms += ms(t0);
    let mut packets = Vec::with_capacity(seg.docs.len());
    for (d, p) in seg.docs.iter().zip(stored) {
        let p = match p {
            Some(p) => {
                acct.packets_loaded += 1;
                acct.reused_tokens += d.len();
                p
            }
            None => {
                let t0 = Instant::now();
                let p = engine.build(adapter, d)?;
                built_ms += ms(t0);
                acct.recomputed_tokens += d.len();
                acct.packets_built += 1;
                acct.doc_flops += forward_flops(&m.config, 0, p.len());
                p
            }
        };
        packets.push(p);
    }
    // The adapter's bridge joins the prompt when there are packets to bridge.
    let bridge = if seg.docs.is_empty() { 0 } else { adapter.meta.n_bridge };
    let mut cache = engine.cache_for(seg, true, adapter.packet_extra_rows(), bridge);
    let t0 = Instant::now();
    if let Some(p) = &preamble {
        p.append_to(m, &mut cache)?;
    }
    let mut spans = Vec::with_capacity(packets.len());
    for p in &packets {
        spans.push(DocSpan {
            start: cache.len() + p.meta.n_header,
            tokens: p.meta.tokens.clone(),
        });
        acct.doc_flops += p.append_to(m, &mut cache)?;
    }
    if let Some(r) = repair {
        let (n, flops) = r.repair(m, &mut cache, &spans)?;
        acct.recomputed_tokens += n;
        acct.doc_flops += flops;
    }
    acct.compose_ms = ms(t0);
    let logits = if bridge > 0 {
        let (x, _) = adapter.question_tail(m, &seg.prompt, &[])?;
        m.prefill_embeddings(&x, &mut cache, &Rows::Last)?
    } else {
        m.prefill(&seg.prompt, &mut cache, &Rows::Last)?
    }
    .expect("one row requested");
    let first_logits = last_row(&logits)?;
    acct.ttft_ms = ms(t0) + built_ms;
    acct.context_tokens = cache.len();
    Ok(Prefilled {
        cache,
        first_logits,
        acct,
    })
}
