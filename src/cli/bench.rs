//! `kvpacket bench prefill|questions|ask|fwd-bwd`: prefill, decode and forward+backward speed, a
//! warm `ask` against its floor, and
//! the training cost per question with shared documents.

use super::ModelArgs;
use crate::model::WeightMode;
use crate::model::product_bf16::PackedBf16;
use anyhow::{Context, Result};
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
    /// A warm `ask` (packets already stored) split into packet load, composition and the
    /// prompt's prefill, against the floor: the same prefill over the already composed cache.
    Ask {
        #[command(flatten)]
        model: ModelArgs,
        /// A data file in the shared format.
        #[arg(long, default_value = "../shared/data/musique_s.json")]
        docs: std::path::PathBuf,
        /// Index of the sample whose documents and question to use.
        #[arg(long, default_value_t = 0)]
        sample: usize,
        /// The adapter (a file or a shipped name; default: the model's shipped default).
        #[arg(long)]
        adapter: Option<String>,
        #[arg(long, default_value_t = 5)]
        reps: usize,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Decode tokens/s of several weight modes, all loaded in one process and measured in
    /// alternation (same prompt, same sitting): an A/B of how weights are held for decode.
    Decode {
        /// Model name or path.
        #[arg(long, default_value = "smollm2")]
        model: String,
        /// Weight modes to compare.
        #[arg(long, value_enum, value_delimiter = ',', default_values_t = [WeightMode::F32Q8Decode, WeightMode::F32GgufDecode])]
        modes: Vec<WeightMode>,
        /// Tokens decoded per round (at most 128).
        #[arg(long, default_value_t = 64)]
        tokens: usize,
        /// Rounds; each mode runs once per round, and the median is reported.
        #[arg(long, default_value_t = 5)]
        reps: usize,
    },
    /// Forward+backward of 1000 positions into 16 soft tokens (f32 weights), `reps` times in
    /// one process (as training steps repeat); prints JSON with the median seconds, every
    /// repetition's seconds and this process's peak RSS. `bench prefill` runs it in a child
    /// process.
    FwdBwd {
        /// Model name or path.
        #[arg(long, default_value = "smollm2")]
        model: String,
        /// Use gradient checkpointing.
        #[arg(long)]
        checkpoint: bool,
        /// Run the layers' products in bf16, as `train --bf16-products` does (needs AVX512-BF16).
        #[arg(long)]
        bf16: bool,
        /// Repetitions (the median is reported).
        #[arg(long, default_value_t = 3)]
        reps: usize,
    },
}

pub fn run(what: BenchWhat) -> Result<()> {
    match what {
        BenchWhat::Decode {
            model,
            modes,
            tokens,
            reps,
        } => {
            anyhow::ensure!(reps > 0 && tokens > 0, "--reps and --tokens must be at least 1");
            let path = crate::model::fetch::resolve(&model)?;
            let models = modes
                .iter()
                .map(|&m| crate::model::Model::load(&path, m))
                .collect::<Result<Vec<_>>>()?;
            let mut rounds = vec![vec![]; modes.len()];
            for _ in 0..reps {
                for (m, r) in models.iter().zip(&mut rounds) {
                    r.push(crate::bench::decode_tok_s(m, tokens)?);
                }
            }
            println!("| weights | decode tok/s (median of {reps}) | rounds |\n|---|---|---|");
            for (mode, r) in modes.iter().zip(rounds) {
                let all = r.iter().map(|v| format!("{v:.1}")).collect::<Vec<_>>().join(" ");
                println!("| {mode:?} | {:.1} | {all} |", crate::bench::median(r.clone()));
            }
            Ok(())
        }
        BenchWhat::FwdBwd {
            model,
            checkpoint,
            bf16,
            reps,
        } => {
            anyhow::ensure!(reps > 0, "--reps must be at least 1");
            let mut m =
                crate::model::Model::load(&crate::model::fetch::resolve(&model)?, crate::model::WeightMode::F32)?;
            if bf16 {
                m.weights.pack_bf16_training()?;
            }
            let times = (0..reps)
                .map(|_| crate::bench::fwd_bwd(&m, 1000, 16, 64, checkpoint))
                .collect::<Result<Vec<f64>>>()?;
            let json = serde_json::json!({
                "fwd_bwd_s": crate::bench::median(times.clone()),
                "reps_s": times,
                "peak_mb": crate::bench::peak_rss_mb(),
            });
            println!("{json}");
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
        BenchWhat::Ask {
            model,
            docs,
            sample,
            adapter,
            reps,
            json,
        } => {
            let m = model.load()?;
            let a = match adapter {
                Some(name) => crate::adapter::named(&m, &name)?,
                None => crate::adapter::shipped(&m)?,
            };
            let samples = crate::data::load_samples(&docs)?;
            let s = samples.get(sample).with_context(|| {
                format!(
                    "{} has {} samples; --sample {sample} is out of range",
                    docs.display(),
                    samples.len()
                )
            })?;
            let r = crate::bench::warm_ask(&m, &a, &s.ctxs, &s.question, reps)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&r)?);
            } else {
                print!("{}", r.table());
            }
            Ok(())
        }
        BenchWhat::Prefill { model, lengths, json } => {
            let m = model.load()?;
            let mut r = crate::bench::prefill_bench(&m, &lengths)?;
            let source = m.source.clone();
            drop(m);
            // Where the CPU can, prefill with bf16 products too (loaded after the f32 model is
            // dropped, so that both never hold memory at once).
            if PackedBf16::available() && model.weights != WeightMode::Bf16GgufDecode {
                let bf16 = ModelArgs {
                    weights: WeightMode::Bf16GgufDecode,
                    ..model.clone()
                };
                r.prefill_bf16_tok_s = Some(crate::bench::prefill_speeds(&bf16.load()?, &lengths)?);
                let (s, mb) = crate::bench::fwd_bwd_in_child(&source, false, true)?;
                (r.fwd_bwd_bf16_1000_s, r.fwd_bwd_bf16_peak_mb) = (Some(s), Some(mb));
            }
            if json {
                println!("{}", serde_json::to_string_pretty(&r)?);
            } else {
                print!("{}", r.table());
            }
            Ok(())
        }
    }
}
