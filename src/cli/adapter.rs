//! `kvpacket adapter init|show`.

use super::ModelArgs;
use crate::adapter::Adapter;
use anyhow::Result;
use clap::Subcommand;
use std::path::PathBuf;

#[derive(Subcommand)]
pub enum AdapterAction {
    /// Write an untrained adapter (entries ~ N(mean, std) of the model's embeddings).
    Init {
        #[command(flatten)]
        model: ModelArgs,
        /// Header soft tokens (N_h).
        #[arg(long, default_value_t = 8)]
        header: usize,
        /// Trailer soft tokens (N_t).
        #[arg(long, default_value_t = 8)]
        trailer: usize,
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// Output safetensors file.
        #[arg(long)]
        out: PathBuf,
    },
    /// Print an adapter's metadata as JSON.
    Show { file: PathBuf },
}

pub fn run(action: AdapterAction) -> Result<()> {
    match action {
        AdapterAction::Init {
            model,
            header,
            trailer,
            seed,
            out,
        } => {
            let m = model.load()?;
            let a = Adapter::init(&m, header, trailer, seed)?;
            a.save(&out)?;
            println!(
                "{} ({}+{} soft tokens, fingerprint {})",
                out.display(),
                header,
                trailer,
                a.fingerprint()?
            );
            Ok(())
        }
        AdapterAction::Show { file } => {
            let a = Adapter::load(&file, None)?;
            let mut v = serde_json::to_value(&a.meta)?;
            v["fingerprint"] = a.fingerprint()?.into();
            println!("{}", serde_json::to_string_pretty(&v)?);
            Ok(())
        }
    }
}
