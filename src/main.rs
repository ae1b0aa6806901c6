//! The `kvpacket` command line: a thin shell over the library's `cli` module.

use mimalloc::MiMalloc;

#[global_allocator]
static GLOBAL: MiMalloc = MiMalloc;

fn main() {
    if let Err(e) = kvpacket::cli::run() {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}
