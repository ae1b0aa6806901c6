//! An in-memory tier that keeps recently used packets up to a byte budget.

use super::PacketStore;
use crate::packet::Packet;
use anyhow::Result;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

struct Tier {
    entries: HashMap<String, (Arc<Packet>, u64)>,
    bytes: usize,
    clock: u64,
}

/// Keeps up to `budget` bytes of packets in memory in front of `inner`; the least recently
/// used are dropped first. A packet larger than the budget is never cached. In front of a
/// store shared with other processes ([`LruStore::shared`]), a memory hit is served only
/// while the store still has the packet, so a delete anywhere is seen everywhere; when the
/// store cannot be asked, the hit is served (packets are immutable: never a wrong answer).
pub struct LruStore<S> {
    inner: S,
    budget: usize,
    tier: Mutex<Tier>,
    revalidate: bool,
}

impl<S: PacketStore> LruStore<S> {
    /// Wraps `inner` with a memory tier of `budget` bytes.
    pub fn new(inner: S, budget: usize) -> Self {
        Self {
            inner,
            budget,
            tier: Mutex::new(Tier {
                entries: HashMap::new(),
                bytes: 0,
                clock: 0,
            }),
            revalidate: false,
        }
    }

    /// [`LruStore::new`] in front of a store other processes share (and may delete from).
    pub fn shared(inner: S, budget: usize) -> Self {
        Self {
            revalidate: true,
            ..Self::new(inner, budget)
        }
    }

    fn forget(&self, id: &str) -> bool {
        let mut t = self.tier.lock().unwrap();
        match t.entries.remove(id) {
            Some((p, _)) => {
                t.bytes -= p.memory_bytes();
                true
            }
            None => false,
        }
    }

    /// The store behind the memory tier.
    pub fn inner(&self) -> &S {
        &self.inner
    }

    /// Bytes of packets held in memory now.
    pub fn memory_bytes(&self) -> usize {
        self.tier.lock().unwrap().bytes
    }

    fn remember(&self, p: &Arc<Packet>) {
        let size = p.memory_bytes();
        if size > self.budget {
            return;
        }
        let mut t = self.tier.lock().unwrap();
        t.clock += 1;
        let now = t.clock;
        if let Some(e) = t.entries.get_mut(&p.meta.id) {
            e.1 = now;
            return;
        }
        while t.bytes + size > self.budget {
            let oldest = t
                .entries
                .iter()
                .min_by_key(|(_, (_, tick))| *tick)
                .map(|(k, _)| k.clone());
            let Some(k) = oldest else { break };
            let (gone, _) = t.entries.remove(&k).unwrap();
            t.bytes -= gone.memory_bytes();
        }
        t.bytes += size;
        t.entries.insert(p.meta.id.clone(), (p.clone(), now));
    }
}

impl<S: PacketStore> PacketStore for LruStore<S> {
    fn get(&self, id: &str) -> Result<Option<Arc<Packet>>> {
        let hit = {
            let mut t = self.tier.lock().unwrap();
            t.clock += 1;
            let now = t.clock;
            t.entries.get_mut(id).map(|e| {
                e.1 = now;
                e.0.clone()
            })
        };
        if hit.is_some() {
            if self.revalidate && matches!(self.inner.contains(id), Ok(false)) {
                self.forget(id);
                return Ok(None);
            }
            return Ok(hit);
        }
        let p = self.inner.get(id)?;
        if let Some(p) = &p {
            self.remember(p);
        }
        Ok(p)
    }

    fn put(&self, packet: &Packet) -> Result<()> {
        self.inner.put(packet)?;
        self.remember(&Arc::new(packet.clone()));
        Ok(())
    }

    fn contains(&self, id: &str) -> Result<bool> {
        if self.tier.lock().unwrap().entries.contains_key(id) {
            return Ok(true);
        }
        self.inner.contains(id)
    }

    fn remove(&self, id: &str) -> Result<bool> {
        let cached = self.forget(id);
        Ok(self.inner.remove(id)? || cached)
    }
}
