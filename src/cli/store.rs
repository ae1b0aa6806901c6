//! `kvpacket store stats|prune`: what the packet store holds per model and adapter, and
//! deleting the packets of adapters no longer used (the store is a cache: a deleted packet is
//! rebuilt when next needed).

use crate::adapter::{Adapter, short};
use crate::store::{FsStore, PacketStore, StoredPacket, default_dir, default_disk_budget};
use anyhow::{Result, bail};
use clap::Subcommand;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

#[derive(Subcommand)]
pub enum StoreAction {
    /// Packets, document tokens and bytes per model and adapter fingerprint.
    Stats {
        /// Store directory (default: $KVPACKET_HOME/packets).
        #[arg(long)]
        dir: Option<PathBuf>,
    },
    /// Delete every packet built with the given adapters.
    Prune {
        /// An adapter: its fingerprint or a prefix of at least 8 hex digits (as `store stats`
        /// prints), `none` for plain packets, or an adapter file. Repeatable.
        #[arg(long = "adapter", required = true)]
        adapters: Vec<String>,
        /// Only packets of this model (fingerprint prefix of at least 8 hex digits).
        #[arg(long)]
        model: Option<String>,
        /// List what would be deleted, delete nothing.
        #[arg(long)]
        dry_run: bool,
        #[arg(long)]
        dir: Option<PathBuf>,
    },
}

pub fn run(action: StoreAction) -> Result<()> {
    match action {
        StoreAction::Stats { dir } => {
            let store = open(dir)?;
            print_groups(&store.list()?);
            println!(
                "disk budget of kvpacket's store: {:.1} GB (KVPACKET_STORE_MAX_GB); least recently used packets go first",
                default_disk_budget()? as f64 / 1e9
            );
            Ok(())
        }
        StoreAction::Prune {
            adapters,
            model,
            dry_run,
            dir,
        } => {
            let wanted = adapters.iter().map(|a| adapter_key(a)).collect::<Result<Vec<_>>>()?;
            if let Some(m) = &model {
                check_prefix(m)?;
            }
            let store = open(dir)?;
            let doomed: Vec<StoredPacket> = store
                .list()?
                .into_iter()
                .filter(|p| {
                    p.meta.as_ref().is_some_and(|m| {
                        wanted.iter().any(|a| matches(&m.adapter_fingerprint, a))
                            && model.as_ref().is_none_or(|want| m.model_fingerprint.starts_with(want))
                    })
                })
                .collect();
            print_groups(&doomed);
            if dry_run {
                println!("dry run: nothing deleted");
                return Ok(());
            }
            let (mut deleted, mut freed) = (0, 0);
            for p in &doomed {
                if let Some(m) = &p.meta
                    && store.remove(&m.id)?
                {
                    deleted += 1;
                    freed += p.bytes;
                }
            }
            println!("deleted {deleted} packets, freed {:.2} GB", freed as f64 / 1e9);
            Ok(())
        }
    }
}

fn open(dir: Option<PathBuf>) -> Result<FsStore> {
    let dir = dir.unwrap_or_else(default_dir);
    if !dir.is_dir() {
        bail!("no packet store at {}", dir.display());
    }
    FsStore::new(dir)
}

/// An adapter argument as a fingerprint (prefix): a file's own fingerprint, `none`, or hex.
fn adapter_key(a: &str) -> Result<String> {
    if a == "none" {
        return Ok(a.into());
    }
    if Path::new(a).is_file() {
        return Adapter::load(Path::new(a), None)?.packet_fingerprint();
    }
    check_prefix(a)?;
    Ok(a.to_ascii_lowercase())
}

fn check_prefix(p: &str) -> Result<()> {
    if p.len() < 8 || !p.chars().all(|c| c.is_ascii_hexdigit()) {
        bail!("`{p}` is neither a file nor a fingerprint prefix of at least 8 hex digits");
    }
    Ok(())
}

fn matches(fingerprint: &str, key: &str) -> bool {
    if key == "none" {
        fingerprint == "none"
    } else {
        fingerprint.starts_with(key)
    }
}

/// Prints one row per (model, adapter): packets, document tokens, gigabytes.
fn print_groups(packets: &[StoredPacket]) {
    let mut groups: BTreeMap<(String, String), (usize, usize, u64)> = BTreeMap::new();
    for p in packets {
        let key = match &p.meta {
            Some(m) => (
                short(&m.model_fingerprint).to_string(),
                short(&m.adapter_fingerprint).to_string(),
            ),
            None => ("unreadable".into(), "-".into()),
        };
        let g = groups.entry(key).or_default();
        g.0 += 1;
        g.1 += p.meta.as_ref().map_or(0, |m| m.tokens.len());
        g.2 += p.bytes;
    }
    println!(
        "{:<14} {:<14} {:>9} {:>12} {:>9}",
        "model", "adapter", "packets", "doc tokens", "GB"
    );
    for ((model, adapter), (n, tokens, bytes)) in &groups {
        println!(
            "{model:<14} {adapter:<14} {n:>9} {tokens:>12} {:>9.2}",
            *bytes as f64 / 1e9
        );
    }
}
