//! kvpacket: reuse each document's KV cache in any context with zero recomputation.
//!
//! [`model`] is the transformer runtime; [`adapter`] the header/trailer soft tokens;
//! [`packet`] builds and composes document KV packets; [`store`] keeps them; [`methods`]
//! answers questions with full prefill, packets, or baselines.

// Every public item, field and variant says what it is; `cargo check` warns where one does not.
#![warn(missing_docs)]

pub mod adapter;
pub mod bench;
pub mod cli;
pub mod data;
pub mod engine;
pub mod eval;
pub mod fuzzing;
pub mod io;
pub mod methods;
pub mod model;
pub mod packet;
pub mod plot;
pub mod server;
pub mod store;
pub mod train;
