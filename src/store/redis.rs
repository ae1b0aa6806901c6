//! Packets in Redis, shared by every server that points at it. A packet of any size is
//! written as chunks under a key unique to the writer, then published by setting its index
//! key (`kvpacket:packet:{id}` = "{writer}:{chunks}:{bytes}") only if absent, so two servers
//! packing the same document at once leave one complete packet (the loser deletes its
//! chunks) and a reader never sees a partial one. Reads verify the packet (checksum, id)
//! like the directory store. Any Redis failure is a [`StoreUnavailable`] error, never a
//! wrong answer.

use super::{PacketStore, StoreUnavailable, fs::check_id};
use crate::packet::Packet;
use anyhow::{Context, Result};
use rand::RngExt;
use redis::Commands;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Bytes per chunk (Redis strings may hold 512 MB; smaller values keep each command short).
const CHUNK: usize = 4 << 20;

/// A packet store in a Redis database. One connection, re-opened after a failure.
pub struct RedisStore {
    client: redis::Client,
    url: String,
    conn: Mutex<Option<redis::Connection>>,
}

fn index_key(id: &str) -> String {
    format!("kvpacket:packet:{id}")
}

fn chunk_key(id: &str, writer: &str, i: usize) -> String {
    format!("kvpacket:chunk:{id}:{writer}:{i}")
}

/// A parsed index value: (writer, chunks, total bytes).
fn parse_index(v: &str) -> Option<(String, usize, usize)> {
    let mut it = v.split(':');
    let (w, n, b) = (it.next()?, it.next()?.parse().ok()?, it.next()?.parse().ok()?);
    Some((w.to_string(), n, b))
}

impl RedisStore {
    /// A store at `url` (`redis://host:port/[db]`); the server is contacted on first use.
    pub fn new(url: &str) -> Result<Self> {
        let client = redis::Client::open(url).with_context(|| format!("`{url}` is not a Redis URL"))?;
        Ok(Self {
            client,
            url: url.to_string(),
            conn: Mutex::new(None),
        })
    }

    /// Runs `f` on the connection (opened if needed); on any Redis error the connection is
    /// dropped (re-opened next time) and the error is a [`StoreUnavailable`].
    fn with<T>(&self, f: impl FnOnce(&mut redis::Connection) -> redis::RedisResult<T>) -> Result<T> {
        let mut guard = self.conn.lock().unwrap_or_else(|e| e.into_inner());
        let result = (|| {
            if guard.is_none() {
                let c = self.client.get_connection_with_timeout(Duration::from_secs(2))?;
                c.set_read_timeout(Some(Duration::from_secs(30)))?;
                c.set_write_timeout(Some(Duration::from_secs(30)))?;
                *guard = Some(c);
            }
            f(guard.as_mut().expect("connected above"))
        })();
        result.map_err(|e| {
            *guard = None;
            anyhow::Error::new(StoreUnavailable(format!("redis at {}: {e}", self.url)))
        })
    }

    fn index(&self, id: &str) -> Result<Option<(String, usize, usize)>> {
        let v: Option<String> = self.with(|c| c.get(index_key(id)))?;
        Ok(v.and_then(|v| parse_index(&v)))
    }
}

impl PacketStore for RedisStore {
    fn get(&self, id: &str) -> Result<Option<Arc<Packet>>> {
        check_id(id)?;
        let Some((writer, n, total)) = self.index(id)? else {
            return Ok(None);
        };
        let keys: Vec<String> = (0..n).map(|i| chunk_key(id, &writer, i)).collect();
        let chunks: Vec<Option<Vec<u8>>> = match keys.is_empty() {
            true => Vec::new(),
            false => self.with(|c| c.mget(&keys))?,
        };
        let mut bytes = Vec::with_capacity(total);
        for c in chunks {
            match c {
                Some(c) => bytes.extend_from_slice(&c),
                // Deleted between the index read and now: the packet is gone.
                None => return Ok(None),
            }
        }
        let p = Packet::from_bytes(&bytes).with_context(|| format!("packet {id} in redis"))?;
        anyhow::ensure!(p.meta.id == id, "redis key of packet {id} holds packet {}", p.meta.id);
        Ok(Some(Arc::new(p)))
    }

    fn put(&self, packet: &Packet) -> Result<()> {
        let id = &packet.meta.id;
        check_id(id)?;
        if self.contains(id)? {
            return Ok(());
        }
        let bytes = packet.to_bytes()?;
        let writer = format!("{:016x}", rand::rng().random::<u64>());
        let keys: Vec<String> = (0..bytes.len().div_ceil(CHUNK))
            .map(|i| chunk_key(id, &writer, i))
            .collect();
        for (key, chunk) in keys.iter().zip(bytes.chunks(CHUNK)) {
            self.with(|c| c.set::<_, _, ()>(key, chunk))?;
        }
        let index = format!("{writer}:{}:{}", keys.len(), bytes.len());
        let published: bool = self.with(|c| c.set_nx(index_key(id), &index))?;
        if !published && !keys.is_empty() {
            // Another writer published the same packet first: ours is not needed.
            self.with(|c| c.del::<_, ()>(&keys))?;
        }
        Ok(())
    }

    fn contains(&self, id: &str) -> Result<bool> {
        check_id(id)?;
        self.with(|c| c.exists(index_key(id)))
    }

    fn remove(&self, id: &str) -> Result<bool> {
        check_id(id)?;
        let Some((writer, n, _)) = self.index(id)? else {
            return Ok(false);
        };
        let removed: usize = self.with(|c| c.del(index_key(id)))?;
        let keys: Vec<String> = (0..n).map(|i| chunk_key(id, &writer, i)).collect();
        if !keys.is_empty() {
            self.with(|c| c.del::<_, ()>(&keys))?;
        }
        Ok(removed > 0)
    }
}
