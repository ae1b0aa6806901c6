//! Packet stores: a small trait, a directory store (the default) and an in-memory LRU tier
//! bounded in bytes that sits in front of any store.

mod fs;
mod lru;

pub use fs::{FsStore, StoredPacket};
pub use lru::LruStore;

use crate::packet::Packet;
use anyhow::Result;
use std::sync::Arc;

/// Where packets live. Implementations verify what they return (integrity and id) and make
/// `put` idempotent; a packet written by one caller is readable by all others.
pub trait PacketStore: Send + Sync {
    /// The verified packet with this id, or None when the store does not have it.
    fn get(&self, id: &str) -> Result<Option<Arc<Packet>>>;
    /// Stores a packet under its id. Storing the same id twice is harmless.
    fn put(&self, packet: &Packet) -> Result<()>;
    /// True when the store has a packet with this id (without verifying it).
    fn contains(&self, id: &str) -> Result<bool>;
}

/// The directory of the default store: `$KVPACKET_HOME/packets`.
pub fn default_dir() -> std::path::PathBuf {
    crate::model::fetch::home().join("packets")
}

/// The default store: a directory under `$KVPACKET_HOME/packets` with an LRU tier of
/// `memory_bytes` in front of it.
pub fn default_store(memory_bytes: usize) -> Result<LruStore<FsStore>> {
    Ok(LruStore::new(FsStore::new(default_dir())?, memory_bytes))
}
