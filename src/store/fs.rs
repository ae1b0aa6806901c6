//! A directory of packet files, `DIR/ab/abcdef….kvp`, written atomically, optionally bounded
//! in bytes: the least recently used packets are deleted once a put takes it over budget.

use super::PacketStore;
use crate::io::atomic_write;
use crate::packet::{Packet, PacketError, PacketMeta};
use anyhow::{Context, Result};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

/// Packets as files in a directory. A crash during `put` never leaves a partial packet
/// visible: files appear by rename once complete. With a byte budget, the store is a cache:
/// after a put takes the directory over budget, the least recently used packets (file
/// modification time, refreshed by every `get`) are deleted down to 90 % of it; the packet
/// just stored is never among them.
pub struct FsStore {
    dir: PathBuf,
    budget: Option<u64>,
    /// This process's estimate of the directory's bytes (None until first needed). Other
    /// processes sharing the directory are only seen when the estimate crosses the budget,
    /// which triggers a real listing.
    used: Mutex<Option<u64>>,
}

impl FsStore {
    /// A store rooted at `dir` (created if missing), unbounded.
    pub fn new(dir: PathBuf) -> Result<Self> {
        std::fs::create_dir_all(&dir).with_context(|| format!("creating packet store {}", dir.display()))?;
        Ok(Self {
            dir,
            budget: None,
            used: Mutex::new(None),
        })
    }

    /// The same store, keeping at most `bytes` of packets on disk (see [`FsStore`]).
    pub fn with_budget(mut self, bytes: u64) -> Self {
        self.budget = Some(bytes);
        self
    }

    /// After `added` bytes were stored as `keep`: when over budget, deletes the least recently
    /// used packets (never `keep`) until the directory holds at most 90 % of the budget. Lists
    /// the directory only when this process's estimate is unknown or over budget.
    fn enforce_budget(&self, added: u64, keep: &Path) -> Result<()> {
        let Some(budget) = self.budget else { return Ok(()) };
        let mut used = self.used.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(u) = *used
            && u + added <= budget
        {
            *used = Some(u + added);
            return Ok(());
        }
        let mut files = Vec::new();
        for path in self.packet_files()? {
            // A file may vanish under a concurrent eviction: skip it.
            if let Ok(m) = std::fs::metadata(&path) {
                files.push((m.modified().unwrap_or(SystemTime::UNIX_EPOCH), m.len(), path));
            }
        }
        let mut total: u64 = files.iter().map(|f| f.1).sum();
        if total > budget {
            files.sort();
            let target = budget / 10 * 9;
            for (_, bytes, path) in files {
                if total <= target {
                    break;
                }
                if path != keep && std::fs::remove_file(&path).is_ok() {
                    total -= bytes;
                }
            }
        }
        *used = Some(total);
        Ok(())
    }

    /// Paths of every packet file, in path order (unfinished temporary files excluded; those
    /// left by writers that were killed are deleted on the way).
    fn packet_files(&self) -> Result<Vec<PathBuf>> {
        let mut out = Vec::new();
        for shard in read_dir_sorted(&self.dir)? {
            if shard.is_dir() {
                for p in read_dir_sorted(&shard)? {
                    if p.extension().and_then(|e| e.to_str()) == Some("kvp") {
                        out.push(p);
                    } else if crate::io::is_stale_temp(&p) {
                        let _ = std::fs::remove_file(&p);
                    }
                }
            }
        }
        Ok(out)
    }

    /// The file a packet id is stored in.
    pub fn path(&self, id: &str) -> PathBuf {
        let shard = &id[..id.len().min(2)];
        self.dir.join(shard).join(format!("{id}.kvp"))
    }

    /// The store's directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Every packet file in the store with its size and metadata (None when the header
    /// cannot be read), in path order. Unfinished writes (temporary files) are not listed.
    pub fn list(&self) -> Result<Vec<StoredPacket>> {
        let mut out = Vec::new();
        for path in self.packet_files()? {
            let bytes = std::fs::metadata(&path)?.len();
            let meta = PacketMeta::read_file(&path).ok();
            out.push(StoredPacket { path, bytes, meta });
        }
        Ok(out)
    }
}

/// One file of an [`FsStore`], as listed by [`FsStore::list`].
pub struct StoredPacket {
    /// The packet file.
    pub path: PathBuf,
    /// File size in bytes.
    pub bytes: u64,
    /// The packet's metadata; None when its header is unreadable (damaged or foreign file).
    pub meta: Option<PacketMeta>,
}

fn read_dir_sorted(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut paths = std::fs::read_dir(dir)
        .with_context(|| format!("listing {}", dir.display()))?
        .map(|e| e.map(|e| e.path()))
        .collect::<std::io::Result<Vec<_>>>()?;
    paths.sort();
    Ok(paths)
}

fn valid_id(id: &str) -> Result<()> {
    anyhow::ensure!(
        crate::packet::is_packet_id(id),
        "`{id}` is not a packet id (hex digits expected)"
    );
    Ok(())
}

impl PacketStore for FsStore {
    fn get(&self, id: &str) -> Result<Option<Arc<Packet>>> {
        valid_id(id)?;
        let path = self.path(id);
        let bytes = match std::fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
        };
        let p = Packet::from_bytes(&bytes).with_context(|| format!("packet {}", path.display()))?;
        if p.meta.id != id {
            return Err(PacketError::Corrupt(format!("file holds packet {} instead", p.meta.id)))
                .with_context(|| format!("packet {}", path.display()));
        }
        if self.budget.is_some() {
            // Marks the packet recently used for eviction; a failure only weakens the LRU order.
            let _ = std::fs::File::options()
                .write(true)
                .open(&path)
                .and_then(|f| f.set_modified(SystemTime::now()));
        }
        Ok(Some(Arc::new(p)))
    }

    fn put(&self, packet: &Packet) -> Result<()> {
        valid_id(&packet.meta.id)?;
        let path = self.path(&packet.meta.id);
        if path.exists() {
            return Ok(());
        }
        let bytes = packet.to_bytes()?;
        atomic_write(&path, &bytes)?;
        self.enforce_budget(bytes.len() as u64, &path)
    }

    fn contains(&self, id: &str) -> Result<bool> {
        valid_id(id)?;
        Ok(self.path(id).exists())
    }

    fn remove(&self, id: &str) -> Result<bool> {
        valid_id(id)?;
        match std::fs::remove_file(self.path(id)) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(e).with_context(|| format!("deleting packet {id}")),
        }
    }
}

/// Errors unless `id` looks like a packet id (hex digits), so no id can name another path.
pub(super) fn check_id(id: &str) -> Result<()> {
    valid_id(id)
}
