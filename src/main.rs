//! The `kvpacket` command line: a thin shell over the library's `cli` module.

use mimalloc::MiMalloc;

#[global_allocator]
static GLOBAL: MiMalloc = MiMalloc;

/// mimalloc's `mi_option_purge_delay` (index 15 of `mi_option_e` in both its v2 and v3 headers;
/// libmimalloc-sys does not export the constant).
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// Freed memory is handed back to the OS after 10 s unused instead of mimalloc's 10 ms: a
/// training step or prefill frees and reallocates gigabytes of activations, and with the
/// default every step faulted them in again (page zeroing was ~20% of a training pass; this
/// cut system time by half). `MIMALLOC_PURGE_DELAY` in the environment still wins.
fn keep_freed_memory_warm() {
    if std::env::var_os("MIMALLOC_PURGE_DELAY").is_none() {
        // SAFETY: sets a plain integer option; mimalloc allows this at any time.
        unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, 10_000) };
    }
}

fn main() {
    keep_freed_memory_warm();
    if let Err(e) = kvpacket::cli::run() {
        // One line: candle errors may carry a backtrace after their message.
        let msg = format!("{e:#}");
        eprintln!("error: {}", msg.lines().next().unwrap_or_default());
        std::process::exit(1);
    }
}
