//! `kvpacket data SPEC`: a dataset by name, printed in the shared JSON format.

use crate::data::load_dataset;
use anyhow::Result;
use clap::Args;
use std::io::Write;

#[derive(Args)]
pub struct DataArgs {
    /// A dataset as `eval` and `train` name it: a JSON file (optionally `file.json#A..B`) or a
    /// synthetic set (`synth:biography:K`, `synth:biography-heldout:K`, `synth:niah:K`).
    pub spec: String,
    /// At most this many samples (`eval`'s default too).
    #[arg(long, default_value_t = 50)]
    pub limit: usize,
    /// Seed of the synthetic generators (`eval`'s default is 0).
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
}

/// Prints the samples that `eval --data SPEC --limit N --seed S` reads, as one JSON array in
/// the `../shared/data` format, so a synthetic set can be inspected or saved as a file.
pub fn run(a: DataArgs) -> Result<()> {
    let (_, samples) = load_dataset(&a.spec, a.limit, a.seed)?;
    let mut out = std::io::stdout().lock();
    serde_json::to_writer_pretty(&mut out, &samples)?;
    writeln!(out)?;
    Ok(())
}
