//! The `kvpacket` command line: a thin shell over the library's `cli` module.

use mimalloc::MiMalloc;

#[global_allocator]
static GLOBAL: MiMalloc = MiMalloc;

fn main() {
    if let Err(e) = kvpacket::cli::run() {
        // One line: candle errors may carry a backtrace after their message.
        let msg = format!("{e:#}");
        eprintln!("error: {}", msg.lines().next().unwrap_or_default());
        std::process::exit(1);
    }
}
