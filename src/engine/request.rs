//! A request to the engine and its reply.

use super::{EngineError, Limits};
use crate::data::Document;
use crate::methods::Accounting;
use crate::model::generate::{Finish, Sampling};

/// A document of a request: a stored packet's id, or a text (packed now unless stored).
#[derive(Debug, Clone, PartialEq)]
pub enum DocumentRef {
    /// A packet already in the store, by its id.
    Id(String),
    /// A document's text, packed now unless its packet is stored.
    Text(Document),
}

/// One question over documents, answered by one method.
#[derive(Debug, Clone, PartialEq)]
pub struct Request {
    /// In context order.
    pub documents: Vec<DocumentRef>,
    /// The user's question (must not be empty).
    pub question: String,
    /// A system message in place of the chat template's default one.
    pub system: Option<String>,
    /// `kvpacket`, `full`, `none`, … (see [`crate::methods::registry`]).
    pub method: String,
    /// Tokens the answer may have at most.
    pub max_tokens: usize,
    /// How the next token is picked (greedy when the temperature is 0).
    pub sampling: Sampling,
    /// Text that ends the answer (not included).
    pub stop: Vec<String>,
    /// Refuse to build packets missing from the store (an error instead).
    pub cached_only: bool,
}

impl Request {
    /// A greedy `kvpacket` request of up to 32 tokens.
    pub fn new(question: &str, documents: Vec<DocumentRef>) -> Self {
        Self {
            documents,
            question: question.to_string(),
            system: None,
            method: "kvpacket".into(),
            max_tokens: 32,
            sampling: Sampling::default(),
            stop: Vec::new(),
            cached_only: false,
        }
    }

    /// Errors (BadRequest) on what no engine could answer: an empty question or document, a
    /// bad sampling setting, sizes beyond `limits`.
    pub fn check(&self, limits: &Limits) -> Result<(), EngineError> {
        let bad = |m: String| Err(EngineError::BadRequest(m));
        if self.question.trim().is_empty() {
            return bad("the question is empty".into());
        }
        if self.documents.len() > limits.max_documents {
            return bad(format!(
                "{} documents exceed this server's limit of {}",
                self.documents.len(),
                limits.max_documents
            ));
        }
        for d in &self.documents {
            match d {
                DocumentRef::Text(doc) if doc.text.trim().is_empty() => return bad("a document's text is empty".into()),
                DocumentRef::Id(id) if !crate::packet::is_packet_id(id) => {
                    return bad(format!("`{id}` is not a packet id (hex digits expected)"));
                }
                _ => {}
            }
        }
        if self.max_tokens == 0 || self.max_tokens > limits.max_new_tokens {
            return bad(format!(
                "max_tokens must lie in 1..={} (got {})",
                limits.max_new_tokens, self.max_tokens
            ));
        }
        if self.stop.iter().any(|s| s.is_empty()) {
            return bad("a stop string is empty".into());
        }
        self.sampling
            .check()
            .map_err(|e| EngineError::BadRequest(e.to_string()))
    }
}

/// What the engine answered.
#[derive(Debug, Clone)]
pub struct Reply {
    /// The method's name.
    pub method: String,
    /// The generated text (cut before a stop string).
    pub text: String,
    /// Tokens of context the answer was generated from.
    pub prompt_tokens: usize,
    /// Tokens generated.
    pub completion_tokens: usize,
    /// Why generation stopped.
    pub finish: Finish,
    /// Reused / recomputed tokens, document FLOPs, TTFT, packet load time.
    pub acct: Accounting,
    /// Wall time of the whole request, decoding included.
    pub total_ms: f64,
}
