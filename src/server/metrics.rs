//! The server's Prometheus metrics: requests per endpoint, errors by kind, a TTFT histogram,
//! document tokens reused vs recomputed, packet store hits and misses, requests in flight.

use crate::engine::Reply;
use prometheus::{Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, Opts, Registry, TextEncoder};

/// Every metric the server exports, registered in its own registry.
pub struct Metrics {
    registry: Registry,
    /// `kvpacket_requests_total`, by endpoint.
    pub requests: IntCounterVec,
    /// `kvpacket_errors_total`, by kind.
    pub errors: IntCounterVec,
    /// `kvpacket_ttft_seconds` of chat completions.
    pub ttft: Histogram,
    /// `kvpacket_reused_tokens_total`: document tokens whose KV came from packets.
    pub reused_tokens: IntCounter,
    /// `kvpacket_recomputed_tokens_total`: document tokens whose KV was computed.
    pub recomputed_tokens: IntCounter,
    /// `kvpacket_store_hits_total`: document packets found in the store.
    pub store_hits: IntCounter,
    /// `kvpacket_store_misses_total`: document packets built because they were missing.
    pub store_misses: IntCounter,
    /// `kvpacket_in_flight`: requests admitted and not finished.
    pub in_flight: IntGauge,
}

impl Metrics {
    /// Fresh metrics (all zero).
    pub fn new() -> prometheus::Result<Self> {
        let registry = Registry::new();
        let requests = IntCounterVec::new(
            Opts::new("kvpacket_requests_total", "HTTP requests by endpoint"),
            &["endpoint"],
        )?;
        let errors = IntCounterVec::new(Opts::new("kvpacket_errors_total", "Failed requests by kind"), &["kind"])?;
        let ttft = Histogram::with_opts(
            HistogramOpts::new("kvpacket_ttft_seconds", "Time to first token of chat completions")
                .buckets(vec![0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0]),
        )?;
        let counter = |name: &str, help: &str| IntCounter::new(name, help);
        let reused_tokens = counter(
            "kvpacket_reused_tokens_total",
            "Document tokens whose KV came from packets",
        )?;
        let recomputed_tokens = counter(
            "kvpacket_recomputed_tokens_total",
            "Document tokens whose KV was computed",
        )?;
        let store_hits = counter("kvpacket_store_hits_total", "Document packets found in the store")?;
        let store_misses = counter(
            "kvpacket_store_misses_total",
            "Document packets built because the store lacked them",
        )?;
        let in_flight = IntGauge::new("kvpacket_in_flight", "Requests admitted and not finished")?;
        for c in [&reused_tokens, &recomputed_tokens, &store_hits, &store_misses] {
            registry.register(Box::new(c.clone()))?;
        }
        registry.register(Box::new(requests.clone()))?;
        registry.register(Box::new(errors.clone()))?;
        registry.register(Box::new(ttft.clone()))?;
        registry.register(Box::new(in_flight.clone()))?;
        Ok(Self {
            registry,
            requests,
            errors,
            ttft,
            reused_tokens,
            recomputed_tokens,
            store_hits,
            store_misses,
            in_flight,
        })
    }

    /// Records what one answered request cost.
    pub fn observe(&self, r: &Reply) {
        self.ttft.observe(r.acct.ttft_ms / 1e3);
        self.reused_tokens.inc_by(r.acct.reused_tokens as u64);
        self.recomputed_tokens.inc_by(r.acct.recomputed_tokens as u64);
        self.store_hits.inc_by(r.acct.packets_loaded as u64);
        self.store_misses.inc_by(r.acct.packets_built as u64);
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> String {
        TextEncoder::new()
            .encode_to_string(&self.registry.gather())
            .unwrap_or_else(|e| format!("# encoding failed: {e}\n"))
    }
}
