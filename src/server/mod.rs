//! `kvpacket serve`: an OpenAI-compatible HTTP server (axum) on the owned [`Engine`], with
//! packet endpoints, Prometheus metrics, a bounded worker pool and queue, request limits,
//! optional bearer auth and graceful shutdown. Documents sent with a request are packed once
//! and reused by every later request, on every server sharing the store.

pub mod metrics;
pub mod openai;

use crate::data::Document;
use crate::engine::{Engine, EngineError, Reply};
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, Path, Request as HttpRequest, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use metrics::Metrics;
use openai::{ChatRequest, ErrorBody, ErrorDetail};
use serde::Deserialize;
use serde_json::json;
use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};
use tokio::sync::{Semaphore, mpsc};

/// Server settings besides the engine's.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// The model name reported by `/v1/models` and in completions.
    pub model_name: String,
    /// Bearer token every `/v1/*` request must carry (None: no auth).
    pub api_key: Option<String>,
    /// Requests computed at once (each uses every core in its matrix products).
    pub workers: usize,
    /// Requests waiting for a worker; beyond it, 429 with `Retry-After`.
    pub queue: usize,
    /// Largest request body in bytes (413 beyond it).
    pub max_body_bytes: usize,
    /// Answer length when a request gives none.
    pub default_max_tokens: usize,
}

/// Shared by every handler.
struct AppState {
    engine: Arc<Engine>,
    cfg: ServerConfig,
    /// Admission: workers + queue permits; none left means 429.
    admitted: Arc<Semaphore>,
    /// Execution: one permit per worker.
    running: Arc<Semaphore>,
    metrics: Metrics,
}

/// An error response in OpenAI's shape.
struct ApiError {
    status: StatusCode,
    message: String,
    kind: &'static str,
}

impl ApiError {
    fn new(status: StatusCode, kind: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
            kind,
        }
    }
}

impl From<EngineError> for ApiError {
    fn from(e: EngineError) -> Self {
        let (status, kind) = match &e {
            EngineError::BadRequest(_) => (StatusCode::BAD_REQUEST, "invalid_request_error"),
            EngineError::NotFound(_) => (StatusCode::NOT_FOUND, "not_found_error"),
            EngineError::Overloaded(_) => (StatusCode::TOO_MANY_REQUESTS, "overloaded_error"),
            EngineError::Unavailable(_) => (StatusCode::SERVICE_UNAVAILABLE, "unavailable_error"),
            EngineError::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal_error"),
        };
        Self::new(status, kind, e.to_string())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            error: ErrorDetail {
                message: self.message,
                kind: self.kind.to_string(),
                code: self.status.as_str().to_string().into(),
            },
        };
        let mut r = (self.status, Json(body)).into_response();
        if matches!(
            self.status,
            StatusCode::TOO_MANY_REQUESTS | StatusCode::SERVICE_UNAVAILABLE
        ) {
            r.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        r
    }
}

type ApiResult<T> = Result<T, ApiError>;

/// The router over `engine`.
pub fn router(engine: Arc<Engine>, cfg: ServerConfig) -> anyhow::Result<Router> {
    let state = Arc::new(AppState {
        admitted: Arc::new(Semaphore::new(cfg.workers + cfg.queue)),
        running: Arc::new(Semaphore::new(cfg.workers)),
        metrics: Metrics::new()?,
        engine,
        cfg,
    });
    let v1 = Router::new()
        .route("/v1/chat/completions", post(chat))
        .route("/v1/packets", post(create_packets))
        .route("/v1/packets/{id}", get(packet_meta).delete(delete_packet))
        .route("/v1/models", get(models))
        .route_layer(middleware::from_fn_with_state(state.clone(), auth));
    Ok(Router::new()
        .merge(v1)
        .route("/health", get(health))
        .route("/metrics", get(metrics_text))
        .layer(DefaultBodyLimit::max(state.cfg.max_body_bytes))
        .with_state(state))
}

async fn auth(State(st): State<Arc<AppState>>, req: HttpRequest, next: Next) -> Response {
    if let Some(key) = &st.cfg.api_key {
        let given = req
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "));
        if given != Some(key.as_str()) {
            st.metrics.errors.with_label_values(&["unauthorized"]).inc();
            return ApiError::new(
                StatusCode::UNAUTHORIZED,
                "authentication_error",
                "missing or wrong API key",
            )
            .into_response();
        }
    }
    next.run(req).await
}

/// Parses a JSON body, mapping a too-large body to 413 and malformed JSON to 400.
fn parse_body<T: for<'de> Deserialize<'de>>(body: Result<Bytes, BytesRejection>) -> ApiResult<T> {
    let bytes = body.map_err(|e| {
        let status = e.status();
        let msg = match status {
            StatusCode::PAYLOAD_TOO_LARGE => "the request body is larger than this server accepts".to_string(),
            _ => e.body_text(),
        };
        ApiError::new(status, "invalid_request_error", msg)
    })?;
    serde_json::from_slice(&bytes).map_err(|e| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_request_error",
            format!("bad JSON body: {e}"),
        )
    })
}

fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

fn completion_id() -> String {
    use rand::RngExt;
    format!("chatcmpl-{:016x}", rand::rng().random::<u64>())
}

/// Counts a request in flight from creation to drop (whatever ends it: reply, error, or the
/// client going away).
struct InFlight(prometheus::IntGauge);

impl InFlight {
    fn new(g: &prometheus::IntGauge) -> Self {
        g.inc();
        Self(g.clone())
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.dec();
    }
}

/// Sets its flag when dropped before being disarmed: a handler future dropped because the
/// client went away tells its blocking work to stop.
struct CancelOnDrop(Arc<AtomicBool>, bool);

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        if !self.1 {
            self.0.store(true, Ordering::SeqCst);
        }
    }
}

impl AppState {
    /// A queue slot now (or 429), then a worker (waiting in the queue).
    async fn admit(&self) -> ApiResult<(tokio::sync::OwnedSemaphorePermit, tokio::sync::OwnedSemaphorePermit)> {
        let slot = self.admitted.clone().try_acquire_owned().map_err(|_| {
            self.metrics.errors.with_label_values(&["overloaded"]).inc();
            ApiError::from(EngineError::Overloaded(format!(
                "{} requests are running or queued; retry later",
                self.cfg.workers + self.cfg.queue
            )))
        })?;
        let worker = self
            .running
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| ApiError::from(EngineError::Overloaded("the server is shutting down".into())))?;
        Ok((slot, worker))
    }

    fn fail(&self, e: EngineError) -> ApiError {
        let kind = match &e {
            EngineError::BadRequest(_) => "bad_request",
            EngineError::NotFound(_) => "not_found",
            EngineError::Overloaded(_) => "overloaded",
            EngineError::Unavailable(_) => "unavailable",
            EngineError::Internal(_) => "internal",
        };
        self.metrics.errors.with_label_values(&[kind]).inc();
        if let EngineError::Internal(err) = &e {
            eprintln!("internal error: {err:#}");
        }
        e.into()
    }
}

/// Runs blocking engine work on the blocking pool; a panic becomes an internal error.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, EngineError> + Send + 'static,
) -> Result<T, EngineError> {
    tokio::task::spawn_blocking(f).await.unwrap_or_else(|e| {
        Err(EngineError::Internal(anyhow::anyhow!(
            "the request's worker failed: {e}"
        )))
    })
}

async fn chat(State(st): State<Arc<AppState>>, body: Result<Bytes, BytesRejection>) -> ApiResult<Response> {
    st.metrics.requests.with_label_values(&["chat"]).inc();
    let req: ChatRequest =
        parse_body(body).inspect_err(|_| st.metrics.errors.with_label_values(&["bad_request"]).inc())?;
    let request = req.to_request(st.cfg.default_max_tokens).map_err(|e| st.fail(e))?;
    let (slot, worker) = st.admit().await?;
    let (id, created, model) = (completion_id(), now(), st.cfg.model_name.clone());
    let engine = st.engine.clone();
    if !req.stream {
        let cancelled = Arc::new(AtomicBool::new(false));
        let mut guard = CancelOnDrop(cancelled.clone(), false);
        let _in_flight = InFlight::new(&st.metrics.in_flight);
        let reply = blocking(move || {
            let _permits = (slot, worker);
            engine.answer(&request, &mut |_| !cancelled.load(Ordering::SeqCst))
        })
        .await;
        guard.1 = true;
        let reply = reply.map_err(|e| st.fail(e))?;
        st.metrics.observe(&reply);
        return Ok(Json(openai::completion(&id, created, &model, &reply)).into_response());
    }
    // Streaming: text pieces flow through a bounded channel; when the client goes away the
    // receiver is dropped, the next send fails and decoding stops.
    let (tx, mut rx) = mpsc::channel::<Result<String, Result<Reply, EngineError>>>(64);
    let in_flight = InFlight::new(&st.metrics.in_flight);
    let done_tx = tx.clone();
    tokio::task::spawn_blocking(move || {
        let _permits = (slot, worker);
        let result = engine.answer(&request, &mut |t| tx.blocking_send(Ok(t.to_string())).is_ok());
        let _ = done_tx.blocking_send(Err(result));
    });
    // An error before the first token (bad document id, store down) is a plain HTTP error.
    let first = rx.recv().await;
    let first = match first {
        Some(Err(Err(e))) => return Err(st.fail(e)),
        Some(m) => m,
        None => return Err(st.fail(EngineError::Internal(anyhow::anyhow!("the request's worker stopped")))),
    };
    let role = openai::chunk(
        &id,
        created,
        &model,
        json!({"role": "assistant", "content": ""}),
        None,
        None,
    );
    let state = st.clone();
    let stream = async_stream(first, rx, move |msg| match msg {
        Ok(text) => vec![openai::chunk(&id, created, &model, json!({"content": text}), None, None).to_string()],
        Err(Ok(reply)) => {
            let _ = &in_flight;
            state.metrics.observe(&reply);
            let finish = openai::finish_reason(reply.finish);
            vec![
                openai::chunk(
                    &id,
                    created,
                    &model,
                    json!({}),
                    Some(finish),
                    Some(openai::usage(&reply)),
                )
                .to_string(),
                "[DONE]".to_string(),
            ]
        }
        Err(Err(e)) => {
            let e = state.fail(e);
            vec![
                json!({"error": {"message": e.message, "type": e.kind}}).to_string(),
                "[DONE]".to_string(),
            ]
        }
    });
    let events =
        futures_util::stream::once(async move { Ok::<_, Infallible>(Event::default().data(role.to_string())) })
            .chain(stream);
    Ok(Sse::new(events).keep_alive(KeepAlive::default()).into_response())
}

use futures_util::StreamExt;

/// The SSE events of a stream: `first`, then every message of `rx`, each turned into event
/// data lines by `render`.
fn async_stream<M: Send + 'static>(
    first: M,
    rx: mpsc::Receiver<M>,
    render: impl FnMut(M) -> Vec<String> + Send + 'static,
) -> impl futures_util::Stream<Item = Result<Event, Infallible>> + Send {
    let msgs = futures_util::stream::once(async move { first })
        .chain(futures_util::stream::unfold(rx, |mut rx| async move {
            rx.recv().await.map(|m| (m, rx))
        }));
    msgs.map(render)
        .flat_map(|lines| futures_util::stream::iter(lines.into_iter().map(|l| Ok(Event::default().data(l)))))
}

/// Body of `POST /v1/packets`: texts (or titled documents) to pack now.
#[derive(Deserialize)]
struct PacketsIn {
    #[serde(default)]
    texts: Vec<String>,
    #[serde(default)]
    documents: Vec<openai::DocumentIn>,
}

async fn create_packets(State(st): State<Arc<AppState>>, body: Result<Bytes, BytesRejection>) -> ApiResult<Response> {
    st.metrics.requests.with_label_values(&["packets"]).inc();
    let input: PacketsIn = parse_body(body)?;
    let mut docs: Vec<Document> = input
        .texts
        .into_iter()
        .map(|text| Document {
            text,
            ..Default::default()
        })
        .collect();
    for d in input.documents {
        match (d.text, d.id) {
            (Some(text), None) => docs.push(Document {
                title: d.title.unwrap_or_default(),
                text,
                ..Default::default()
            }),
            _ => {
                return Err(st.fail(EngineError::BadRequest(
                    "each document to pack needs a `text` (and no `id`)".into(),
                )));
            }
        }
    }
    if docs.is_empty() || docs.len() > st.engine.limits().max_documents {
        return Err(st.fail(EngineError::BadRequest(format!(
            "give 1 to {} texts to pack",
            st.engine.limits().max_documents
        ))));
    }
    let (slot, worker) = st.admit().await?;
    let engine = st.engine.clone();
    let packed = blocking(move || {
        let _permits = (slot, worker);
        engine.pack(&docs, None)
    })
    .await
    .map_err(|e| st.fail(e))?;
    let data: Vec<_> = packed
        .iter()
        .map(|(p, built, ms)| json!({"id": p.meta.id, "tokens": p.meta.tokens.len(), "positions": p.len(), "built": built, "ms": ms}))
        .collect();
    Ok(Json(json!({"object": "list", "data": data})).into_response())
}

async fn packet_meta(State(st): State<Arc<AppState>>, Path(id): Path<String>) -> ApiResult<Response> {
    st.metrics.requests.with_label_values(&["packet_meta"]).inc();
    let engine = st.engine.clone();
    let meta = blocking(move || engine.packet_meta(&id))
        .await
        .map_err(|e| st.fail(e))?;
    Ok(Json(json!({
        "id": meta.id,
        "object": "packet",
        "tokens": meta.tokens.len(),
        "model_fingerprint": meta.model_fingerprint,
        "adapter_fingerprint": meta.adapter_fingerprint,
        "n_header": meta.n_header,
        "n_trailer": meta.n_trailer,
        "dtype": meta.dtype,
    }))
    .into_response())
}

async fn delete_packet(State(st): State<Arc<AppState>>, Path(id): Path<String>) -> ApiResult<Response> {
    st.metrics.requests.with_label_values(&["packet_delete"]).inc();
    let engine = st.engine.clone();
    let gone = id.clone();
    blocking(move || engine.delete_packet(&gone))
        .await
        .map_err(|e| st.fail(e))?;
    Ok(Json(json!({"id": id, "object": "packet", "deleted": true})).into_response())
}

async fn models(State(st): State<Arc<AppState>>) -> Response {
    st.metrics.requests.with_label_values(&["models"]).inc();
    Json(json!({"object": "list", "data": [{
        "id": st.cfg.model_name, "object": "model", "created": 0, "owned_by": "kvpacket",
        "fingerprint": st.engine.model().fingerprint,
        "adapter": st.engine.adapter().map(|a| a.fingerprint().unwrap_or_default()),
    }]}))
    .into_response()
}

async fn health() -> Response {
    Json(json!({"status": "ok"})).into_response()
}

async fn metrics_text(State(st): State<Arc<AppState>>) -> Response {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        st.metrics.render(),
    )
        .into_response()
}

/// Serves `router` on `listener` until SIGTERM or Ctrl-C, then stops accepting and lets the
/// requests in flight finish.
pub async fn serve(listener: tokio::net::TcpListener, router: Router) -> anyhow::Result<()> {
    let shutdown = async {
        let term = async {
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(mut s) => {
                    s.recv().await;
                }
                Err(_) => std::future::pending::<()>().await,
            }
        };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {},
            _ = term => {},
        }
        eprintln!("shutting down: finishing the requests in flight");
    };
    axum::serve(listener, router).with_graceful_shutdown(shutdown).await?;
    Ok(())
}
