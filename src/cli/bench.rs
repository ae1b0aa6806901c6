//! `kvpacket bench prefill`: prefill, decode and forward+backward speed.

use super::ModelArgs;
use anyhow::Result;
use clap::Subcommand;

#[derive(Subcommand)]
pub enum BenchWhat {
    /// Prefill tokens/s at several lengths, decode tokens/s, 1000-token forward+backward.
    Prefill {
        #[command(flatten)]
        model: ModelArgs,
        /// Prompt lengths to prefill.
        #[arg(long, value_delimiter = ',', default_values_t = [512usize, 2048, 4096])]
        lengths: Vec<usize>,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
}

pub fn run(what: BenchWhat) -> Result<()> {
    match what {
        BenchWhat::Prefill { model, lengths, json } => {
            let m = model.load()?;
            let r = crate::bench::prefill_bench(&m, &lengths)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&r)?);
            } else {
                print!("{}", r.table());
            }
            Ok(())
        }
    }
}
