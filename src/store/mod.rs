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

/// Disk budget of the default store when `KVPACKET_STORE_MAX_GB` is not set.
pub const DEFAULT_DISK_GB: f64 = 20.0;

/// The default store's disk budget in bytes: `$KVPACKET_STORE_MAX_GB` gigabytes (10⁹ bytes),
/// else [`DEFAULT_DISK_GB`]; a value that is not a positive number is an error.
pub fn default_disk_budget() -> Result<u64> {
    match std::env::var("KVPACKET_STORE_MAX_GB") {
        Err(_) => Ok((DEFAULT_DISK_GB * 1e9) as u64),
        Ok(v) => match v.trim().parse::<f64>() {
            Ok(gb) if gb.is_finite() && gb > 0.0 => Ok((gb * 1e9) as u64),
            _ => anyhow::bail!("KVPACKET_STORE_MAX_GB=`{v}` is not a positive number of gigabytes"),
        },
    }
}

/// The default store: a directory under `$KVPACKET_HOME/packets`, bounded on disk by
/// [`default_disk_budget`] (least recently used packets go first; they are rebuilt when next
/// needed), with an LRU tier of `memory_bytes` in front of it.
pub fn default_store(memory_bytes: usize) -> Result<LruStore<FsStore>> {
    let disk = FsStore::new(default_dir())?.with_budget(default_disk_budget()?);
    Ok(LruStore::new(disk, memory_bytes))
}
