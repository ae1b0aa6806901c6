//! `kvpacket bench prefill|questions|fwd-bwd`: prefill, decode and forward+backward speed, and
//! the training cost per question with shared documents.

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
    /// Training cost per question of one document set with many questions, shared (one
    /// document pass) against separate (one pass per question), teacher and student.
    Questions {
        #[command(flatten)]
        model: ModelArgs,
        #[arg(long, default_value_t = 10)]
        people: usize,
        #[arg(long, default_value_t = 8)]
        questions: usize,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// One forward+backward of 1000 positions into 16 soft tokens (f32 weights); prints JSON
    /// with seconds and this process's peak RSS. `bench prefill` runs it in a child process.
    FwdBwd {
        /// Model name or path.
        #[arg(long, default_value = "smollm2")]
        model: String,
        /// Use gradient checkpointing.
        #[arg(long)]
        checkpoint: bool,
    },
}

pub fn run(what: BenchWhat) -> Result<()> {
    match what {
        BenchWhat::FwdBwd { model, checkpoint } => {
            let m = crate::model::Model::load(&crate::model::fetch::resolve(&model)?, crate::model::WeightMode::F32)?;
            let (s, mb) = crate::bench::fwd_bwd(&m, 1000, 16, 64, checkpoint)?;
            println!("{}", serde_json::json!({"fwd_bwd_s": s, "peak_mb": mb}));
            Ok(())
        }
        BenchWhat::Questions {
            model,
            people,
            questions,
            json,
        } => {
            let m = model.load()?;
            let r = crate::bench::shared_questions(&m, people, questions)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&r)?);
            } else {
                print!("{}", r.table());
            }
            Ok(())
        }
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
