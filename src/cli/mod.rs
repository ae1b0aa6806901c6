//! Command-line interface: argument parsing and one function per sub-command.

mod adapter;
mod ask;
mod bench;
mod data;
mod eval;
mod generate;
mod models;
mod pack;
mod serve;
mod store;
mod train;

use crate::adapter::Adapter;
use crate::engine::{Engine, EngineConfig, Limits};
use crate::model::{Model, WeightMode, fetch};
use crate::packet::KvDtype;
use crate::store::StoreSpec;
use anyhow::Result;
use clap::{Args, Parser, Subcommand};

/// kvpacket: reuse document KV caches in any context with zero recomputation.
#[derive(Parser)]
#[command(name = "kvpacket", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// List or fetch the known models.
    Models {
        #[command(subcommand)]
        action: models::ModelsAction,
    },
    /// Generate a greedy continuation of a prompt.
    Generate(generate::GenerateArgs),
    /// Print the token ids of a text (chat template applied unless --raw).
    Tokenize(generate::TokenizeArgs),
    /// Create or inspect adapters.
    Adapter {
        #[command(subcommand)]
        action: adapter::AdapterAction,
    },
    /// Build packets for documents into the store.
    Pack(pack::PackArgs),
    /// Inspect or prune the packet store.
    Store {
        #[command(subcommand)]
        action: store::StoreAction,
    },
    /// Answer a question over documents with one method.
    Ask(ask::AskArgs),
    /// Evaluate methods on datasets (F1, fidelity to full, TTFT, FLOPs) with a report.
    Eval(eval::EvalArgs),
    /// Print a dataset's samples (a file, a slice of one, or a synthetic set) as JSON.
    Data(data::DataArgs),
    /// Train an adapter by self-supervised KL distillation.
    Train(Box<train::TrainArgs>),
    /// Serve an OpenAI-compatible HTTP API with packet reuse.
    Serve(serve::ServeArgs),
    /// Measure speed.
    Bench {
        #[command(subcommand)]
        what: bench::BenchWhat,
    },
}

/// How to load a model: shared by every command that runs one.
#[derive(Args, Clone)]
pub struct ModelArgs {
    /// A known model name (smollm2, qwen2.5-0.5b) or a path to a GGUF file or HF folder.
    #[arg(long, default_value = "smollm2")]
    pub model: String,
    /// Weights in memory: f32 (exact); f32 plus the GGUF file's own quantized blocks for
    /// decode (the default, fast decode) or plus an 8-bit copy; that plus bf16 copies for
    /// prefill (about twice as fast, on CPUs with AVX512-BF16); or the file's quantization
    /// only (slow prefill).
    #[arg(long, value_enum, default_value = "f32-gguf-decode")]
    pub weights: WeightMode,
}

impl ModelArgs {
    /// Resolves and loads the model.
    pub fn load(&self) -> Result<Model> {
        let path = fetch::resolve(&self.model)?;
        Model::load(&path, self.weights)
    }

    /// An engine over this model and the default packet store (bounded on disk), with
    /// `adapter` (a file or shipped name; None: the shipped default) for `kvpacket`.
    pub fn engine(&self, adapter: Option<&str>, kv_dtype: KvDtype, memory_bytes: usize) -> Result<Engine> {
        let cfg = EngineConfig {
            model: self.model.clone(),
            weights: self.weights,
            adapter: adapter.map(str::to_string),
            store: StoreSpec::default_dir()?,
            memory_bytes,
            kv_dtype,
            limits: Limits::default(),
        };
        Ok(Engine::new(&cfg)?)
    }
}

/// Which adapter packets are built with.
#[derive(Args, Clone)]
pub struct AdapterChoice {
    /// Adapter file (safetensors) made by `kvpacket adapter init` or `kvpacket train`, or the
    /// name of an adapter shipped in adapters/ for the loaded model: `default` (general), or a
    /// domain's (`kvpacket adapter list` shows them).
    #[arg(long, conflicts_with = "no_adapter")]
    pub adapter: Option<String>,
    /// Build plain packets without an adapter (the `none` baseline).
    #[arg(long)]
    pub no_adapter: bool,
}

impl AdapterChoice {
    /// The adapter given, if any (the empty one for --no-adapter).
    pub fn chosen(&self, model: &Model) -> Result<Option<Adapter>> {
        match &self.adapter {
            Some(name) => Ok(Some(crate::adapter::named(model, name)?)),
            None if self.no_adapter => Ok(Some(Adapter::empty(model)?)),
            None => Ok(None),
        }
    }

    /// The adapter to pack with: the one given, else the empty one (plain packets).
    pub fn load(&self, model: &Model) -> Result<Adapter> {
        match self.chosen(model)? {
            Some(a) => Ok(a),
            None => Adapter::empty(model),
        }
    }
}

/// Parses the command line and runs the command.
pub fn run() -> Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Models { action } => models::run(action),
        Command::Generate(a) => generate::run(a),
        Command::Tokenize(a) => generate::tokenize(a),
        Command::Bench { what } => bench::run(what),
        Command::Adapter { action } => adapter::run(action),
        Command::Pack(a) => pack::run(a),
        Command::Store { action } => store::run(action),
        Command::Ask(a) => ask::run(a),
        Command::Train(a) => train::run(*a),
        Command::Eval(a) => eval::run(a),
        Command::Data(a) => data::run(a),
        Command::Serve(a) => serve::run(a),
    }
}
