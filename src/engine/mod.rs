//! The owned engine every client stands on (CLI, evaluation, HTTP server): the model, the
//! adapters, the packet store with its memory tier, the method registry and the limits, behind
//! one `Send + Sync` value. One call per request: [`Engine::answer`]. Errors are typed
//! ([`EngineError`]) so that clients map them to HTTP statuses or messages.

mod request;

pub use request::{DocumentRef, Reply, Request};

use crate::adapter::{Adapter, named, shipped};
use crate::data::Document;
use crate::methods::layout::{document_tokens, segments_with_system};
use crate::methods::{Answer, Method, Resources, Segments, method_by_name};
use crate::model::generate::{Sampler, decode};
use crate::model::{Model, WeightMode, fetch};
use crate::packet::{KvDtype, Packet, PacketMeta};
use crate::store::{LruStore, PacketStore, StoreSpec};
use std::sync::Arc;
use std::time::Instant;

/// What went wrong with a request, by who must act: the caller (bad request, not found), the
/// caller later (overloaded, unavailable), or the operator (internal).
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// The request itself is wrong (shape, sizes, names); retrying it unchanged fails again.
    #[error("{0}")]
    BadRequest(String),
    /// A named thing (packet id, adapter) does not exist.
    #[error("{0}")]
    NotFound(String),
    /// Too much work queued now; retry later.
    #[error("{0}")]
    Overloaded(String),
    /// A service the engine needs (the shared packet store) cannot be reached now.
    #[error("{0}")]
    Unavailable(String),
    /// A fault inside the engine.
    #[error("{0:#}")]
    Internal(anyhow::Error),
}

impl From<anyhow::Error> for EngineError {
    /// A store outage ([`crate::store::StoreUnavailable`] anywhere in the chain) is
    /// `Unavailable`; anything else is internal.
    fn from(e: anyhow::Error) -> Self {
        match e.downcast_ref::<crate::store::StoreUnavailable>() {
            Some(u) => EngineError::Unavailable(u.to_string()),
            None => EngineError::Internal(e),
        }
    }
}

/// Sizes a request may not exceed.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Limits {
    /// Documents per request.
    pub max_documents: usize,
    /// Prompt tokens (preamble + documents + question) per request; the model's context also
    /// bounds it, with room for the answer.
    pub max_context_tokens: usize,
    /// Tokens one answer may generate.
    pub max_new_tokens: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_documents: 64,
            max_context_tokens: 32_768,
            max_new_tokens: 2048,
        }
    }
}

/// How to build an [`Engine`].
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// A known model name or a path to a GGUF file or HF folder.
    pub model: String,
    /// How projection matrices are held in memory.
    pub weights: WeightMode,
    /// The adapter of `kvpacket` (a file or a shipped name); None: the shipped `default`, or
    /// no `kvpacket` method when the model has none.
    pub adapter: Option<String>,
    /// Where packets live.
    pub store: StoreSpec,
    /// Bytes of packets kept in memory in front of the store.
    pub memory_bytes: usize,
    /// Element type of packets built here.
    pub kv_dtype: KvDtype,
    /// Sizes a request may not exceed.
    pub limits: Limits,
}

/// The engine: owns the model, the adapter of `kvpacket`, and the packet store; shareable
/// across threads (`Send + Sync`), each request running on the caller's thread.
pub struct Engine {
    model: Model,
    adapter: Option<Adapter>,
    store: Box<dyn PacketStore>,
    kv_dtype: KvDtype,
    limits: Limits,
}

fn check_packet_id(id: &str) -> Result<(), EngineError> {
    match crate::packet::is_packet_id(id) {
        true => Ok(()),
        false => Err(EngineError::BadRequest(format!(
            "`{id}` is not a packet id (hex digits expected)"
        ))),
    }
}

fn ms(t0: Instant) -> f64 {
    t0.elapsed().as_secs_f64() * 1e3
}

impl Engine {
    /// Loads the model and adapter and opens the store.
    pub fn new(cfg: &EngineConfig) -> Result<Self, EngineError> {
        let path = fetch::resolve(&cfg.model).map_err(|e| EngineError::NotFound(format!("{e:#}")))?;
        let model = Model::load(&path, cfg.weights)?;
        let adapter = match &cfg.adapter {
            Some(name) => Some(named(&model, name).map_err(|e| EngineError::NotFound(format!("{e:#}")))?),
            None => shipped(&model).ok(),
        };
        let store = cfg.store.open()?;
        let tiered = match cfg.store {
            StoreSpec::Redis { .. } => LruStore::shared(store, cfg.memory_bytes),
            StoreSpec::Dir { .. } => LruStore::new(store, cfg.memory_bytes),
        };
        Ok(Self::from_parts(
            model,
            adapter,
            Box::new(tiered),
            cfg.kv_dtype,
            cfg.limits,
        ))
    }

    /// An engine over an already loaded model and an opened store.
    pub fn from_parts(
        model: Model,
        adapter: Option<Adapter>,
        store: Box<dyn PacketStore>,
        kv_dtype: KvDtype,
        limits: Limits,
    ) -> Self {
        Self {
            model,
            adapter,
            store,
            kv_dtype,
            limits,
        }
    }

    /// The model.
    pub fn model(&self) -> &Model {
        &self.model
    }

    /// The adapter of `kvpacket`, if any.
    pub fn adapter(&self) -> Option<&Adapter> {
        self.adapter.as_ref()
    }

    /// The packet store (memory tier included).
    pub fn store(&self) -> &dyn PacketStore {
        self.store.as_ref()
    }

    /// The request limits.
    pub fn limits(&self) -> Limits {
        self.limits
    }

    /// The method resources for a request (packets missing from the store are built unless
    /// `cached_only`).
    pub fn resources(&self, cached_only: bool) -> Resources<'_> {
        Resources {
            model: &self.model,
            store: self.store.as_ref(),
            kv_dtype: self.kv_dtype,
            cached_only,
            decode_room: 1,
        }
    }

    /// The method named `spec` (see [`crate::methods::registry`]), `kvpacket` with this
    /// engine's adapter.
    pub fn method(&self, spec: &str) -> Result<Box<dyn Method>, EngineError> {
        method_by_name(spec, &self.model, self.adapter.as_ref()).map_err(|e| EngineError::BadRequest(format!("{e:#}")))
    }

    /// Packs documents with `adapter` (None: this engine's kvpacket adapter): each packet is
    /// loaded when stored, else built and stored. Returns (packet, built now?, ms) per document.
    pub fn pack(
        &self,
        docs: &[Document],
        adapter: Option<&Adapter>,
    ) -> Result<Vec<(Arc<Packet>, bool, f64)>, EngineError> {
        let adapter = match adapter.or(self.adapter.as_ref()) {
            Some(a) => a,
            None => {
                return Err(EngineError::BadRequest(
                    "no adapter to pack with: this model has none shipped".into(),
                ));
            }
        };
        let res = self.resources(false);
        docs.iter()
            .map(|d| {
                if d.text.trim().is_empty() {
                    return Err(EngineError::BadRequest("a document's text is empty".into()));
                }
                let tokens = document_tokens(&self.model, d)?;
                self.check_fits(tokens.len(), 0)?;
                Ok(res.packet(adapter, &tokens)?)
            })
            .collect()
    }

    /// A stored packet's metadata, or NotFound.
    pub fn packet_meta(&self, id: &str) -> Result<PacketMeta, EngineError> {
        check_packet_id(id)?;
        match self.store.get(id)? {
            Some(p) => Ok(p.meta.clone()),
            None => Err(EngineError::NotFound(format!("no packet `{id}` in the store"))),
        }
    }

    /// Deletes a stored packet; NotFound when there is none.
    pub fn delete_packet(&self, id: &str) -> Result<(), EngineError> {
        check_packet_id(id)?;
        match self.store.remove(id)? {
            true => Ok(()),
            false => Err(EngineError::NotFound(format!("no packet `{id}` in the store"))),
        }
    }

    fn check_fits(&self, prompt: usize, max_new: usize) -> Result<(), EngineError> {
        let ctx = self.model.config.max_position_embeddings;
        if prompt + max_new > ctx {
            return Err(EngineError::BadRequest(format!(
                "{prompt} prompt tokens + {max_new} to generate exceed the model's context of {ctx} tokens"
            )));
        }
        if prompt > self.limits.max_context_tokens {
            return Err(EngineError::BadRequest(format!(
                "{prompt} prompt tokens exceed this server's limit of {}",
                self.limits.max_context_tokens
            )));
        }
        Ok(())
    }

    /// The segments of a request (DESIGN §4 layout), after checking its sizes.
    fn segments(&self, req: &Request) -> Result<Segments, EngineError> {
        req.check(&self.limits)?;
        let mut docs = Vec::with_capacity(req.documents.len());
        for d in &req.documents {
            docs.push(match d {
                DocumentRef::Id(id) => {
                    let p = self
                        .store
                        .get(id)?
                        .ok_or_else(|| EngineError::NotFound(format!("no packet `{id}` in the store")))?;
                    p.check_compatible(&self.model.fingerprint, None)
                        .map_err(|e| EngineError::BadRequest(format!("packet `{id}`: {e}")))?;
                    p.meta.tokens.clone()
                }
                DocumentRef::Text(doc) => document_tokens(&self.model, doc)?,
            });
        }
        let mut seg = segments_with_system(&self.model, &[], &req.question, req.system.as_deref())?;
        if docs.is_empty() {
            // No documents: a plain chat turn, not the passages layout.
            let (pre, post) = self.model.chat_template()?.split_with_system(req.system.as_deref())?;
            seg.preamble = Vec::new();
            seg.prompt = self.model.encode_prompt(&format!("{pre}{}{post}", req.question))?;
        }
        seg.docs = docs;
        let adapter_rows = match (&self.adapter, seg.docs.len()) {
            (Some(a), n) if n > 0 => a.packet_extra_rows() * n + a.meta.n_bridge,
            _ => 0,
        };
        self.check_fits(seg.concat().len() + adapter_rows, req.max_tokens)?;
        Ok(seg)
    }

    /// Answers one request: resolves its documents (stored packets by id, texts packed now or
    /// loaded when known), runs its method, and decodes with its sampling, handing each piece
    /// of text to `on_text` as it settles (return false to stop: the work is freed).
    pub fn answer(&self, req: &Request, on_text: &mut dyn FnMut(&str) -> bool) -> Result<Reply, EngineError> {
        let seg = self.segments(req)?;
        let method = self.method(&req.method)?;
        let res = Resources {
            decode_room: req.max_tokens + 1,
            ..self.resources(req.cached_only)
        };
        let t0 = Instant::now();
        let mut pre = method.prefill(&res, &seg)?;
        let prompt_tokens = pre.cache.len();
        let mut sampler = Sampler::new(req.sampling);
        let out = decode(
            &self.model,
            &mut pre.cache,
            &pre.first_logits,
            req.max_tokens,
            &mut sampler,
            &req.stop,
            on_text,
        )?;
        Ok(Reply {
            method: method.name(),
            text: out.text,
            completion_tokens: out.tokens.len(),
            prompt_tokens,
            finish: out.finish,
            acct: pre.acct,
            total_ms: ms(t0),
        })
    }

    /// Greedy answer of `method` over prepared segments (the evaluation's path).
    pub fn answer_segments(&self, method: &dyn Method, seg: &Segments, max_new: usize) -> Result<Answer, EngineError> {
        Ok(self.resources(false).answer(method, seg, max_new)?)
    }
}

/// The engine is shared by the server's workers: it must stay `Send + Sync`.
const _: fn() = || {
    fn shareable<T: Send + Sync>() {}
    shareable::<Engine>();
};
