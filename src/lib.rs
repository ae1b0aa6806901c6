//! kvpacket: reuse each document's KV cache in any context with zero recomputation.
//!
//! Modules: [`model`] is the transformer runtime everything else builds on.

pub mod bench;
pub mod cli;
pub mod model;
