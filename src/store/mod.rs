//! Packet stores: a small trait, a directory store (the default), a Redis store shared by
//! several servers, and an in-memory LRU tier bounded in bytes that sits in front of any store.

mod fs;
mod lru;
mod redis;

pub use fs::{FsStore, StoredPacket};
pub use lru::LruStore;
pub use redis::RedisStore;

use crate::packet::Packet;
use anyhow::Result;
use std::path::PathBuf;
use std::sync::Arc;

/// A store that cannot be reached now (e.g. its Redis server is down): the request may succeed
/// later; it never gets a wrong or partial packet.
#[derive(Debug, thiserror::Error)]
#[error("the packet store is unavailable: {0}")]
pub struct StoreUnavailable(pub String);

/// Where packets live. Implementations verify what they return (integrity and id) and make
/// `put` idempotent; a packet written by one caller is readable by all others.
pub trait PacketStore: Send + Sync {
    /// The verified packet with this id, or None when the store does not have it.
    fn get(&self, id: &str) -> Result<Option<Arc<Packet>>>;
    /// Stores a packet under its id. Storing the same id twice is harmless.
    fn put(&self, packet: &Packet) -> Result<()>;
    /// True when the store has a packet with this id (without verifying it).
    fn contains(&self, id: &str) -> Result<bool>;
    /// Deletes the packet with this id; false when the store did not have it.
    fn remove(&self, id: &str) -> Result<bool>;
}

impl<S: PacketStore + ?Sized> PacketStore for Box<S> {
    fn get(&self, id: &str) -> Result<Option<Arc<Packet>>> {
        (**self).get(id)
    }
    fn put(&self, packet: &Packet) -> Result<()> {
        (**self).put(packet)
    }
    fn contains(&self, id: &str) -> Result<bool> {
        (**self).contains(id)
    }
    fn remove(&self, id: &str) -> Result<bool> {
        (**self).remove(id)
    }
}

/// Where packets live, as a user names it: a directory (bounded on disk when `max_bytes` is
/// set) or a Redis server (`redis://host:port/[db]`).
#[derive(Debug, Clone, PartialEq)]
pub enum StoreSpec {
    /// A local directory of packet files.
    Dir {
        /// The directory.
        path: PathBuf,
        /// Bytes the directory may hold; least recently used packets are evicted beyond it.
        max_bytes: Option<u64>,
    },
    /// A Redis server shared by several kvpacket servers.
    Redis {
        /// `redis://host:port/[db]`.
        url: String,
    },
}

impl StoreSpec {
    /// `redis://…` (or `rediss://…`) is a Redis server; anything else a directory, unbounded.
    pub fn parse(s: &str) -> Self {
        if s.starts_with("redis://") || s.starts_with("rediss://") || s.starts_with("redis+unix://") {
            StoreSpec::Redis { url: s.to_string() }
        } else {
            StoreSpec::Dir {
                path: s.into(),
                max_bytes: None,
            }
        }
    }

    /// The default store's directory with its disk budget ([`default_disk_budget`]).
    pub fn default_dir() -> Result<Self> {
        Ok(StoreSpec::Dir {
            path: default_dir(),
            max_bytes: Some(default_disk_budget()?),
        })
    }

    /// Opens the store (a Redis server is contacted lazily, on first use).
    pub fn open(&self) -> Result<Box<dyn PacketStore>> {
        Ok(match self {
            StoreSpec::Dir { path, max_bytes } => {
                let s = FsStore::new(path.clone())?;
                Box::new(match max_bytes {
                    Some(b) => s.with_budget(*b),
                    None => s,
                })
            }
            StoreSpec::Redis { url } => Box::new(RedisStore::new(url)?),
        })
    }
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
