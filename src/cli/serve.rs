//! `kvpacket serve`: the OpenAI-compatible HTTP server.

use super::ModelArgs;
use crate::engine::{Engine, EngineConfig, Limits};
use crate::packet::KvDtype;
use crate::server::{ServerConfig, router, serve};
use crate::store::StoreSpec;
use anyhow::{Context, Result};
use clap::Args;
use std::sync::Arc;

#[derive(Args)]
pub struct ServeArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    /// Adapter of the `kvpacket` method: a file or a shipped name (default: the model's
    /// shipped `default`).
    #[arg(long)]
    pub adapter: Option<String>,
    /// Packet store: a directory, or `redis://host:port/[db]` to share packets between
    /// servers (default: the local store under $KVPACKET_HOME, bounded by
    /// KVPACKET_STORE_MAX_GB).
    #[arg(long)]
    pub store: Option<String>,
    /// Packets kept in memory in front of the store, in GB.
    #[arg(long, default_value_t = 2.0)]
    pub memory_gb: f64,
    #[arg(long, default_value = "127.0.0.1")]
    pub host: String,
    #[arg(long, default_value_t = 8080)]
    pub port: u16,
    /// Require `Authorization: Bearer KEY` on /v1/* (also read from KVPACKET_API_KEY).
    #[arg(long, env = "KVPACKET_API_KEY", hide_env_values = true)]
    pub api_key: Option<String>,
    /// Requests computed at once. Each request's matrix products already use every core, so
    /// more than 1–2 only adds latency on a small machine (README: measured on 2 cores).
    #[arg(long, default_value_t = 1)]
    pub workers: usize,
    /// Requests that may wait for a worker; beyond it the server answers 429 with Retry-After.
    #[arg(long, default_value_t = 32)]
    pub queue: usize,
    /// Largest request body, in bytes (413 beyond).
    #[arg(long, default_value_t = 8 << 20)]
    pub max_body_bytes: usize,
    /// Documents per request.
    #[arg(long, default_value_t = 64)]
    pub max_documents: usize,
    /// Prompt tokens per request (the model's context also bounds it).
    #[arg(long, default_value_t = 32_768)]
    pub max_context_tokens: usize,
    /// Largest max_tokens a request may ask for.
    #[arg(long, default_value_t = 2048)]
    pub max_tokens_limit: usize,
    /// Answer length of requests that give no max_tokens.
    #[arg(long, default_value_t = 256)]
    pub default_max_tokens: usize,
    /// Element type of packets built by this server.
    #[arg(long, value_enum, default_value = "f16")]
    pub kv_dtype: KvDtype,
}

pub fn run(a: ServeArgs) -> Result<()> {
    anyhow::ensure!(a.workers >= 1, "--workers must be at least 1");
    anyhow::ensure!(
        a.memory_gb.is_finite() && a.memory_gb >= 0.0,
        "--memory-gb must be a number ≥ 0"
    );
    let store = match &a.store {
        Some(s) => StoreSpec::parse(s),
        None => StoreSpec::default_dir()?,
    };
    let cfg = EngineConfig {
        model: a.model.model.clone(),
        weights: a.model.weights,
        adapter: a.adapter.clone(),
        store,
        memory_bytes: (a.memory_gb * 1e9) as usize,
        kv_dtype: a.kv_dtype,
        limits: Limits {
            max_documents: a.max_documents,
            max_context_tokens: a.max_context_tokens,
            max_new_tokens: a.max_tokens_limit,
        },
    };
    let engine = Arc::new(Engine::new(&cfg).map_err(anyhow::Error::new)?);
    let server = ServerConfig {
        model_name: a.model.model.clone(),
        api_key: a.api_key.clone().filter(|k| !k.is_empty()),
        workers: a.workers,
        queue: a.queue,
        max_body_bytes: a.max_body_bytes,
        default_max_tokens: a.default_max_tokens,
    };
    let app = router(engine, server)?;
    let rt = tokio::runtime::Runtime::new()?;
    rt.block_on(async move {
        let addr = format!("{}:{}", a.host, a.port);
        let listener = tokio::net::TcpListener::bind(&addr)
            .await
            .with_context(|| format!("listening on {addr}"))?;
        eprintln!(
            "kvpacket serving {} on http://{}",
            a.model.model,
            listener.local_addr()?
        );
        serve(listener, app).await
    })
}
