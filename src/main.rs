//! The `kvpacket` command line: a thin shell over the library's `cli` module.

use mimalloc::MiMalloc;

#[global_allocator]
static GLOBAL: MiMalloc = MiMalloc;

/// mimalloc's `mi_option_purge_delay` (index 15 of `mi_option_e` in both its v2 and v3 headers;
/// libmimalloc-sys does not export the constant).
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;
/// mimalloc's `mi_option_allow_thp` (index 43 of `mi_option_e` in the v3 header, the version
/// libmimalloc-sys builds by default and this crate uses; not exported either).
const MI_OPTION_ALLOW_THP: libmimalloc_sys::mi_option_t = 43;

/// Freed memory stays with the process for reuse and is not handed back to the OS (as with
/// PyTorch's caching allocator): a training step or prefill frees and reallocates gigabytes of
/// activations, and every purge made the next step fault them in again. With mimalloc's
/// default (10 ms) page zeroing was ~20% of a training pass; a 10 s delay still purged 2.7 GiB
/// over two SmolLM2 training passes (system time 3.1-4.4 s against 2.0 s with no purge). The
/// resident size therefore stays at the process's peak. `MIMALLOC_PURGE_DELAY` in the
/// environment still wins (e.g. `=10000` for a server that should shrink after a burst).
fn keep_freed_memory_warm() {
    if std::env::var_os("MIMALLOC_PURGE_DELAY").is_none() {
        // SAFETY: sets a plain integer option; mimalloc allows this at any time.
        unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, -1) };
    }
}

/// mimalloc asks for transparent huge pages (`madvise(MADV_HUGEPAGE)`) on its large regions by
/// default. Faulting in fresh 2 MB pages was the bulk of loading a model on the project's VMs:
/// Qwen2.5-0.5B took 33 s to load, 21 s of it system time in the kernel zeroing huge pages,
/// against 5.7 s (2.5 s system) with 4 KB pages (AMD EPYC Zen 4 VM, 2026-12-04); prefill, decode
/// and the training pass stayed within that machine's noise (`kvpacket bench prefill` and a
/// 2,401-token `generate`, each way alternately). `MIMALLOC_ALLOW_THP` in the environment still
/// wins.
fn no_transparent_huge_pages() {
    if std::env::var_os("MIMALLOC_ALLOW_THP").is_none() {
        // SAFETY: sets a plain integer option, read at each OS allocation.
        unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_ALLOW_THP, 0) };
    }
}

/// A closed stdout (`kvpacket adapter show A | head -1`) ends the process quietly, as it does
/// other Unix tools, instead of a panic inside `println!`: Rust's runtime ignores SIGPIPE, so a
/// write to a closed pipe returns an error that `println!` turns into a panic. The server keeps
/// SIGPIPE ignored: a client that hangs up must never end it.
#[cfg(unix)]
fn quiet_on_closed_stdout() {
    if std::env::args().nth(1).as_deref() != Some("serve") {
        // SAFETY: restores the default action of one signal before any other thread starts.
        unsafe { libc::signal(libc::SIGPIPE, libc::SIG_DFL) };
    }
}

fn main() {
    #[cfg(unix)]
    quiet_on_closed_stdout();
    keep_freed_memory_warm();
    no_transparent_huge_pages();
    if let Err(e) = kvpacket::cli::run() {
        // One line: candle errors may carry a backtrace after their message.
        let msg = format!("{e:#}");
        eprintln!("error: {}", msg.lines().next().unwrap_or_default());
        std::process::exit(1);
    }
}
