//! A directory of packet files, `DIR/ab/abcdef….kvp`, written atomically.

use super::PacketStore;
use crate::io::atomic_write;
use crate::packet::{Packet, PacketError};
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
