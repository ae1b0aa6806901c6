//! A directory of packet files, `DIR/ab/abcdef….kvp`, written atomically.

use super::PacketStore;
use crate::io::atomic_write;
use crate::packet::{Packet, PacketError, PacketMeta};
use anyhow::{Context, Result};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Packets as files in a directory. A crash during `put` never leaves a partial packet
/// visible: files appear by rename once complete.
pub struct FsStore {
    dir: PathBuf,
}

impl FsStore {
    /// A store rooted at `dir` (created if missing).
    pub fn new(dir: PathBuf) -> Result<Self> {
        std::fs::create_dir_all(&dir).with_context(|| format!("creating packet store {}", dir.display()))?;
        Ok(Self { dir })
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
        for shard in read_dir_sorted(&self.dir)? {
            if !shard.is_dir() {
                continue;
            }
            for path in read_dir_sorted(&shard)? {
                if path.extension().and_then(|e| e.to_str()) != Some("kvp") {
                    continue;
                }
                let bytes = std::fs::metadata(&path)?.len();
                let meta = PacketMeta::read_file(&path).ok();
                out.push(StoredPacket { path, bytes, meta });
            }
        }
        Ok(out)
    }

    /// Deletes the packet with this id; false when the store did not have it.
    pub fn remove(&self, id: &str) -> Result<bool> {
        valid_id(id)?;
        match std::fs::remove_file(self.path(id)) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(e).with_context(|| format!("deleting packet {id}")),
        }
    }
}

/// One file of an [`FsStore`], as listed by [`FsStore::list`].
pub struct StoredPacket {
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
        !id.is_empty() && id.len() <= 128 && id.chars().all(|c| c.is_ascii_hexdigit()),
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
        Ok(Some(Arc::new(p)))
    }

    fn put(&self, packet: &Packet) -> Result<()> {
        valid_id(&packet.meta.id)?;
        let path = self.path(&packet.meta.id);
        if path.exists() {
            return Ok(());
        }
        atomic_write(&path, &packet.to_bytes()?)
    }

    fn contains(&self, id: &str) -> Result<bool> {
        valid_id(id)?;
        Ok(self.path(id).exists())
    }
}
