//! OpenAI chat-completions shapes (requests, responses, stream chunks, errors) and kvpacket's
//! extensions: `documents` and `kv_method` in the request, packet usage in `usage`.

use crate::data::Document;
use crate::engine::{DocumentRef, EngineError, Reply, Request};
use crate::model::generate::{Finish, Sampling};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

/// One chat message. `content` is a string, or a list of `{"type": "text", "text": …}` parts.
#[derive(Debug, Deserialize)]
pub struct Message {
    /// `system`, `developer`, `user` or `assistant`.
    pub role: String,
    #[serde(default)]
    /// The message's text, or its text parts.
    pub content: Value,
}

/// A document of the `documents` extension: a stored packet's id or a text.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DocumentIn {
    /// A stored packet's id (exclusive with `text`).
    pub id: Option<String>,
    /// A document's text, packed unless already stored.
    pub text: Option<String>,
    /// The text's title line.
    pub title: Option<String>,
}

/// `stop` is one string or a list of them.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum Stop {
    /// A single stop string.
    One(String),
    /// Up to 4 stop strings.
    Many(Vec<String>),
}

/// The body of `POST /v1/chat/completions`.
#[derive(Debug, Deserialize)]
pub struct ChatRequest {
    /// Accepted for client compatibility; the server answers with the one model it loaded.
    pub model: Option<String>,
    /// An optional system (or developer) message, then one user message: the question.
    pub messages: Vec<Message>,
    /// Older name of `max_completion_tokens`, used when that is absent.
    pub max_tokens: Option<usize>,
    /// Tokens the answer may have at most (the server's default when absent).
    pub max_completion_tokens: Option<usize>,
    /// 0 or absent: greedy.
    pub temperature: Option<f32>,
    /// Nucleus mass kept when sampling (absent: 1).
    pub top_p: Option<f32>,
    /// Seed of the sampling draws (absent: 0).
    pub seed: Option<u64>,
    /// Text that ends the answer, not included in it.
    pub stop: Option<Stop>,
    #[serde(default)]
    /// Stream the answer as server-sent events.
    pub stream: bool,
    /// Choices to return; only 1 is supported.
    pub n: Option<usize>,
    /// kvpacket: the documents the answer reads, in context order.
    #[serde(default)]
    pub documents: Vec<DocumentIn>,
    /// kvpacket: how document KV is obtained (`kvpacket`, `full`, `none`, …).
    pub kv_method: Option<String>,
}

fn text_of(content: &Value) -> Result<String, EngineError> {
    match content {
        Value::String(s) => Ok(s.clone()),
        Value::Array(parts) => parts
            .iter()
            .map(|p| match (p["type"].as_str(), p["text"].as_str()) {
                (Some("text"), Some(t)) => Ok(t.to_string()),
                _ => Err(EngineError::BadRequest("only text content parts are supported".into())),
            })
            .collect::<Result<Vec<_>, _>>()
            .map(|v| v.join("")),
        _ => Err(EngineError::BadRequest(
            "a message's content must be a string or text parts".into(),
        )),
    }
}

impl ChatRequest {
    /// The engine request: the last message is the user's question; an optional system message
    /// may come first. Longer conversations are refused (400).
    pub fn to_request(&self, default_max_tokens: usize) -> Result<Request, EngineError> {
        let bad = |m: &str| EngineError::BadRequest(m.to_string());
        if self.n.is_some_and(|n| n != 1) {
            return Err(bad("only n = 1 is supported"));
        }
        let (system, rest) = match self.messages.split_first() {
            Some((first, rest)) if first.role == "system" || first.role == "developer" => {
                (Some(text_of(&first.content)?), rest)
            }
            _ => (None, &self.messages[..]),
        };
        let question = match rest {
            [m] if m.role == "user" => text_of(&m.content)?,
            [] => return Err(bad("messages must end with a user message")),
            [.., last] if last.role != "user" => return Err(bad("messages must end with a user message")),
            _ => {
                return Err(bad(
                    "multi-turn conversations are not supported: send an optional system message and one user message",
                ));
            }
        };
        let documents = self
            .documents
            .iter()
            .map(|d| match (&d.id, &d.text) {
                (Some(id), None) => Ok(DocumentRef::Id(id.clone())),
                (None, Some(text)) => Ok(DocumentRef::Text(Document {
                    title: d.title.clone().unwrap_or_default(),
                    text: text.clone(),
                    ..Default::default()
                })),
                _ => Err(bad("each document needs exactly one of `id` and `text`")),
            })
            .collect::<Result<Vec<_>, _>>()?;
        let stop = match &self.stop {
            None => Vec::new(),
            Some(Stop::One(s)) => vec![s.clone()],
            Some(Stop::Many(v)) => v.clone(),
        };
        if stop.len() > 4 {
            return Err(bad("at most 4 stop strings"));
        }
        Ok(Request {
            documents,
            question,
            system,
            method: self.kv_method.clone().unwrap_or_else(|| "kvpacket".into()),
            max_tokens: self
                .max_completion_tokens
                .or(self.max_tokens)
                .unwrap_or(default_max_tokens),
            sampling: Sampling {
                temperature: self.temperature.unwrap_or(0.0),
                top_p: self.top_p.unwrap_or(1.0),
                seed: self.seed.unwrap_or(0),
            },
            stop,
            cached_only: false,
        })
    }
}

/// The `finish_reason` of a reply.
pub fn finish_reason(f: Finish) -> &'static str {
    match f {
        Finish::Stop | Finish::Cancelled => "stop",
        Finish::Length => "length",
    }
}

/// `usage`: OpenAI's fields plus what the packets saved.
pub fn usage(r: &Reply) -> Value {
    json!({
        "prompt_tokens": r.prompt_tokens,
        "completion_tokens": r.completion_tokens,
        "total_tokens": r.prompt_tokens + r.completion_tokens,
        "reused_tokens": r.acct.reused_tokens,
        "recomputed_tokens": r.acct.recomputed_tokens,
        "doc_flops": r.acct.doc_flops,
        "ttft_ms": r.acct.ttft_ms,
        "packet_load_ms": r.acct.load_ms,
    })
}

/// A whole (non-streamed) completion.
pub fn completion(id: &str, created: u64, model: &str, r: &Reply) -> Value {
    json!({
        "id": id,
        "object": "chat.completion",
        "created": created,
        "model": model,
        "choices": [{
            "index": 0,
            "message": {"role": "assistant", "content": r.text},
            "finish_reason": finish_reason(r.finish),
        }],
        "usage": usage(r),
        "kv_method": r.method,
    })
}

/// One stream chunk with a `delta`, a finish reason, and (last chunk only) usage.
pub fn chunk(id: &str, created: u64, model: &str, delta: Value, finish: Option<&str>, usage: Option<Value>) -> Value {
    let mut c = json!({
        "id": id,
        "object": "chat.completion.chunk",
        "created": created,
        "model": model,
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
    });
    if let Some(u) = usage {
        c["usage"] = u;
    }
    c
}

/// An error body in OpenAI's shape.
#[derive(Debug, Serialize)]
pub struct ErrorBody {
    /// What went wrong.
    pub error: ErrorDetail,
}

/// The `error` object: message, type and code.
#[derive(Debug, Serialize)]
pub struct ErrorDetail {
    /// A sentence for the user.
    pub message: String,
    #[serde(rename = "type")]
    /// OpenAI's error type, e.g. `invalid_request_error`.
    pub kind: String,
    /// A machine-readable code, when there is one.
    pub code: Option<String>,
}
