//! `kvpacket adapter init|show`.

use super::ModelArgs;
use crate::adapter::{Adapter, AdapterInit, BridgePlace, HEADER_TEXT, TRAILER_TEXT, provenance, shipped_list};
use anyhow::Result;
use clap::{Args, Subcommand, ValueEnum};
use std::path::PathBuf;

/// How a fresh adapter starts.
#[derive(Clone, Copy, ValueEnum)]
pub enum InitKind {
    /// Entries ~ N(mean, std) of the model's embeddings (seeded).
    Random,
    /// Token embeddings of --header-text / --trailer-text.
    Text,
}

/// Flags choosing a fresh adapter's start, shared by `adapter init` and `train`.
#[derive(Args, Clone)]
pub struct InitArgs {
    #[arg(long, value_enum, default_value = "random")]
    pub init: InitKind,
    /// Header text for `--init text` (its tokens repeat to fill N_h).
    #[arg(long, default_value = HEADER_TEXT)]
    pub header_text: String,
    /// Trailer text for `--init text` (its tokens repeat to fill N_t).
    #[arg(long, default_value = TRAILER_TEXT)]
    pub trailer_text: String,
    /// Start from this adapter file's values instead (continue training a trained adapter).
    /// --header / --trailer may be larger than the file's: the added rows start as copies of
    /// its rows, after them.
    #[arg(long, conflicts_with = "init")]
    pub init_from: Option<PathBuf>,
    /// Make the header context-only: each document is computed after it, but packets keep
    /// only the document and trailer rows (a file's own setting is kept otherwise).
    #[arg(long)]
    pub context_header: bool,
}

impl InitArgs {
    /// Whether the adapter's header is context-only: asked by --context-header, or so in the
    /// --init-from file.
    pub fn context_header(&self) -> Result<bool> {
        Ok(self.context_header
            || match &self.init_from {
                Some(p) => Adapter::load(p, None)?.meta.context_header,
                None => false,
            })
    }

    /// The chosen start (reads the --init-from file to record its fingerprint).
    pub fn to_init(&self) -> Result<AdapterInit> {
        if let Some(p) = &self.init_from {
            return Ok(AdapterInit::File {
                path: p.display().to_string(),
                fingerprint: Adapter::load(p, None)?.fingerprint()?,
            });
        }
        Ok(match self.init {
            InitKind::Random => AdapterInit::Random,
            InitKind::Text => AdapterInit::Text {
                header: self.header_text.clone(),
                trailer: self.trailer_text.clone(),
            },
        })
    }
}

/// Flags of an adapter's bridge, shared by `adapter init` and `train`.
#[derive(Args, Clone)]
pub struct BridgeArgs {
    /// Bridge rows: soft tokens prefilled once per request between the last packet and the
    /// question, attending to every document in the request's order (no document token is
    /// recomputed). An --init-from adapter's bridge is kept or grown (its rows repeated, after
    /// them); new rows start from a short instruction's token embeddings.
    #[arg(long, default_value_t = 0)]
    pub bridge: usize,
    /// Where a new bridge sits: before the question (it reads the documents only), after the
    /// question inside the user's turn (it reads the question too), or after the whole task
    /// prompt (the first answer token is then read from its last row). An --init-from
    /// adapter's bridge must already sit there, unless `adapter init --move-bridge` moves it.
    #[arg(long, value_enum, default_value = "before-question")]
    pub bridge_place: BridgePlace,
    /// The text whose token embeddings (repeated) a new bridge starts from.
    #[arg(long, default_value = crate::adapter::BRIDGE_TEXT)]
    pub bridge_text: String,
}

#[derive(Subcommand)]
pub enum AdapterAction {
    /// Write an untrained adapter (random or text start, see --init).
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
        #[command(flatten)]
        init: InitArgs,
        #[command(flatten)]
        bridge: BridgeArgs,
        /// Move the --init-from adapter's bridge to --bridge-place, keeping its rows (a start
        /// for training the bridge at its new place).
        #[arg(long, requires = "init_from")]
        move_bridge: bool,
        /// Output safetensors file.
        #[arg(long)]
        out: PathBuf,
    },
    /// Say what made an adapter (training data, steps, question passes, time) and print its
    /// metadata as JSON. ADAPTER is a file, or a shipped name with --model.
    Show {
        adapter: String,
        /// The model whose shipped adapters a name refers to.
        #[arg(long)]
        model: Option<String>,
    },
    /// Write a copy of an adapter whose packets' keys are scaled by SCALE as later tokens
    /// read them (an attention temperature of 1/SCALE over packets; 1 removes it). Everything
    /// else, what made it included, is kept. Packets of the copy are new packets. Training
    /// from the copy (`train --init-from`) keeps the scale and trains under it.
    KeyScale {
        /// The adapter file.
        adapter: PathBuf,
        /// Multiplier on packet keys, in (0, 4].
        scale: f32,
        /// Output safetensors file.
        #[arg(long)]
        out: PathBuf,
    },
    /// List the adapters shipped for a model, with what made each.
    List {
        #[command(flatten)]
        model: ModelArgs,
    },
}

pub fn run(action: AdapterAction) -> Result<()> {
    match action {
        AdapterAction::Init {
            model,
            header,
            trailer,
            seed,
            init,
            bridge,
            move_bridge,
            out,
        } => {
            let m = model.load()?;
            let mut a = Adapter::fresh(&m, header, trailer, &init.to_init()?, seed)?
                .with_context_header(init.context_header()?)?;
            if move_bridge {
                a = a.with_bridge_moved(bridge.bridge_place)?;
            }
            let a = a.with_bridge(&m, bridge.bridge, bridge.bridge_place, &bridge.bridge_text)?;
            a.save(&out)?;
            println!(
                "{} ({}, fingerprint {})",
                out.display(),
                provenance(&a.meta),
                a.fingerprint()?
            );
            Ok(())
        }
        AdapterAction::Show { adapter, model } => {
            let a = match (model, std::path::Path::new(&adapter).exists()) {
                (_, true) => Adapter::load(std::path::Path::new(&adapter), None)?,
                (Some(m), false) => crate::adapter::named(
                    &ModelArgs {
                        model: m,
                        weights: crate::model::WeightMode::F32,
                    }
                    .load()?,
                    &adapter,
                )?,
                (None, false) => anyhow::bail!("no adapter file `{adapter}` (for a shipped name, add --model)"),
            };
            eprintln!("{}", provenance(&a.meta));
            let mut v = serde_json::to_value(&a.meta)?;
            v["fingerprint"] = a.fingerprint()?.into();
            if let Some([_, heads]) = a.meta.head_key_scale {
                // One row of factors per layer.
                v["head_key_scale_values"] = a
                    .head_key_scale
                    .chunks(heads)
                    .map(|l| l.to_vec())
                    .collect::<Vec<_>>()
                    .into();
            }
            println!("{}", serde_json::to_string_pretty(&v)?);
            Ok(())
        }
        AdapterAction::KeyScale { adapter, scale, out } => {
            let a = Adapter::load(&adapter, None)?.with_key_scale(scale)?;
            a.save(&out)?;
            println!(
                "{} ({}, fingerprint {})",
                out.display(),
                provenance(&a.meta),
                a.fingerprint()?
            );
            Ok(())
        }
        AdapterAction::List { model } => {
            let m = model.load()?;
            for (name, file) in shipped_list(&m) {
                let a = Adapter::load(&file, Some(&m))?;
                println!("{name:<10} {}  {}", file.display(), provenance(&a.meta));
            }
            Ok(())
        }
    }
}
