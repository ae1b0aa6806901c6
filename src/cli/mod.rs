//! Command-line interface: argument parsing and one function per sub-command.

mod bench;
mod generate;
mod models;

use crate::model::{Model, WeightMode, fetch};
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
    /// Weights in memory: f32 (exact), f32 plus an 8-bit copy for decode (fast decode), or the
    /// GGUF's own quantization (candle's quantized matmul; slow prefill on this CPU).
    #[arg(long, value_enum, default_value = "f32-q8-decode")]
    pub weights: WeightMode,
}

impl ModelArgs {
    /// Resolves and loads the model.
    pub fn load(&self) -> Result<Model> {
        let path = fetch::resolve(&self.model)?;
        Model::load(&path, self.weights)
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
    }
}
