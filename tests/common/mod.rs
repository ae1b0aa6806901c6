//! Scratch directories for integration tests.
//!
//! Each test binary writes under `CARGO_TARGET_TMPDIR/kvpacket-<binary>-<pid>/`. The first call
//! in a process deletes the folders that earlier runs of the same binary left behind, unless
//! their process is still alive, so repeated `cargo test` runs do not fill the disk (a run's
//! files stay for inspection until the next run). `tempfile::TempDir` would delete them at
//! drop instead, but many tests hand paths to models and stores that outlive one scope.
// Each test binary compiles this module and uses only some of its helpers.
#![allow(dead_code)]

use kvpacket::model::tiny::{TinySpec, write_tiny_model};
use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};

/// `CARGO_TARGET_TMPDIR/kvpacket-<binary>-<pid>/<name>`, created; older runs' folders of this
/// binary whose process has exited are removed first (once per process).
pub fn scratch(binary: &str, name: &str) -> PathBuf {
    static ROOT: OnceLock<PathBuf> = OnceLock::new();
    let root = ROOT.get_or_init(|| {
        let base = Path::new(env!("CARGO_TARGET_TMPDIR"));
        let prefix = format!("kvpacket-{binary}-");
        for entry in std::fs::read_dir(base).into_iter().flatten().flatten() {
            let file_name = entry.file_name();
            let pid = file_name
                .to_str()
                .and_then(|n| n.strip_prefix(&prefix))
                .and_then(|p| p.parse::<u32>().ok());
            if let Some(pid) = pid
                && pid != std::process::id()
                && !Path::new(&format!("/proc/{pid}")).exists()
            {
                let _ = std::fs::remove_dir_all(entry.path());
            }
        }
        base.join(format!("{prefix}{}", std::process::id()))
    });
    let dir = root.join(name);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// The folder `scratch(binary, name)` holding a tiny model of `spec`, written once per process:
/// tests running in parallel that ask for the same name wait for the first writer instead of
/// reading a half-written file. One name must always come with the same spec.
pub fn tiny_model(binary: &str, name: &str, spec: TinySpec) -> PathBuf {
    static WRITTEN: Mutex<Option<HashSet<PathBuf>>> = Mutex::new(None);
    let dir = scratch(binary, name);
    let mut written = WRITTEN.lock().unwrap_or_else(|e| e.into_inner());
    if written.get_or_insert_with(HashSet::new).insert(dir.clone()) {
        write_tiny_model(&dir, spec).unwrap();
    }
    dir
}
