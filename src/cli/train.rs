//! `kvpacket train`: learn a header/trailer adapter by self-supervised KL distillation.

use super::ModelArgs;
use super::adapter::BridgeArgs;
use crate::model::WeightMode;
use crate::train::samples::SampleSpec;
use crate::train::student::LossKind;
use crate::train::teacher::TeacherCache;
use crate::train::{Outcome, RunDir, TrainConfig, Trainer, plot_log};
use anyhow::Result;
use clap::Args;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

#[derive(Args)]
pub struct TrainArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    /// Training data: files in the shared format (never the evaluation files) or synthetic
    /// sets (synth:biography[:K], synth:niah[:K]).
    #[arg(long = "data", required_unless_present = "plot")]
    pub data: Vec<PathBuf>,
    /// Samples to draw (each: a document set + its questions; a biography set is generated
    /// with --questions questions about its own people, a data-file entry keeps its
    /// paragraphs and its question).
    #[arg(long, default_value_t = 256)]
    pub samples: usize,
    /// People per biography set, drawn uniformly from --k-min..=--k-max (the evaluation asks
    /// over 5 and 10); with --distractors, the documents a data-file sample is filled up to.
    #[arg(long, default_value_t = 2)]
    pub k_min: usize,
    #[arg(long, default_value_t = 10)]
    pub k_max: usize,
    /// Questions per biography set (distinct; each about one of its people; at most 6 per
    /// person), or per data-file entry with --title-questions. The documents are run once for
    /// all of them, in teacher and student alike.
    #[arg(long, default_value_t = 8)]
    pub questions: usize,
    /// Paragraphs kept per data-file entry: the supporting ones (`is_supporting`), then
    /// others at random up to this many (0: all of them, as the reference recipe).
    #[arg(long, default_value_t = 0)]
    pub max_docs: usize,
    /// Cut each document to this many tokens (0: no cut; windows of --chunk-tokens are never
    /// cut).
    #[arg(long, default_value_t = 200)]
    pub max_doc_tokens: usize,
    /// Probability of a generic instruction (summary, "main fact") instead of the entry's
    /// question. The reference recipe has none.
    #[arg(long, default_value_t = 0.0)]
    pub generic_task_prob: f64,
    /// Data-file entries become consecutive windows of this many tokens of their joined
    /// texts (like musique_s's 512-token chunks); 0 keeps their documents. Synthetic sets
    /// keep their documents.
    #[arg(long, default_value_t = 0)]
    pub chunk_tokens: usize,
    /// Tokens from one window's start to the next's; below --chunk-tokens the windows
    /// overlap, like musique_s's retrieved chunks, whose text recurs in 2–5 of a sample's
    /// windows (0: no overlap; at most --chunk-tokens, so no text is skipped).
    #[arg(long, default_value_t = 0)]
    pub chunk_stride: usize,
    /// Fill samples whose entry has fewer documents (windows) than the drawn k with random
    /// documents of other entries, in shuffled order (like MuSiQue's distractor passages).
    #[arg(long)]
    pub distractors: bool,
    /// Lowercase the data files' documents (the evaluation's MuSiQue passages are lowercased);
    /// questions keep their case.
    #[arg(long)]
    pub lowercase_docs: bool,
    /// Only this data file (one of --data; repeatable) is re-cut by --chunk-tokens and
    /// lowercased by --lowercase-docs, e.g. MuSiQue into musique_s's shape while HotpotQA keeps
    /// its titled paragraphs. Default: every data file.
    #[arg(long = "reshape-data")]
    pub reshape_data: Vec<PathBuf>,
    /// Data-file entries also get questions about single titled paragraphs, by title, up to
    /// --questions in all (training draws only; validation keeps the entry's own question):
    /// more questions per document pass, from the data's structure, never its answers.
    #[arg(long)]
    pub title_questions: bool,
    /// Training draws of data-file entries also ask their own question with a request to
    /// reason over the passages first, over the same document pass: long teacher answers,
    /// as the reference's chain-of-thought teachers (validation keeps the bare question).
    #[arg(long)]
    pub reasoning: bool,
    /// Every this many entries of a validation data file, the last one is held out for
    /// validation (default 10).
    #[arg(long)]
    pub holdout_every: Option<usize>,
    /// Validation draws from this data file only (one of --data; repeatable). The other
    /// files then hold nothing out. Default: every data file.
    #[arg(long = "val-data")]
    pub val_data: Vec<PathBuf>,
    #[command(flatten)]
    pub init: super::adapter::InitArgs,
    #[arg(long, default_value_t = 8)]
    pub header: usize,
    #[arg(long, default_value_t = 8)]
    pub trailer: usize,
    /// Teacher continuation length G.
    #[arg(long, default_value_t = 64)]
    pub gen_tokens: usize,
    /// Teacher log-probs kept per step for the KL (the rest is one bucket).
    #[arg(long, default_value_t = 128)]
    pub top_k: usize,
    #[arg(long, value_enum, default_value = "kl")]
    pub loss: LossKind,
    #[arg(long, default_value_t = 5e-4)]
    pub lr: f64,
    #[arg(long, default_value_t = 0.0)]
    pub weight_decay: f64,
    /// Samples per optimizer step (gradient accumulation); the gradient is the mean over
    /// their questions.
    #[arg(long, default_value_t = 8)]
    pub batch: usize,
    #[arg(long, default_value_t = 10)]
    pub epochs: usize,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    #[arg(long, default_value_t = 1)]
    pub checkpoint_every: usize,
    /// Recompute each layer in the backward pass (less memory, ~1.3× slower).
    #[arg(long)]
    pub grad_checkpoint: bool,
    /// Train only the trailer; the header stays at its start (--init-from's or --init's). Each
    /// document's header and text are then constants computed by one inference forward, and only
    /// the trailer and prompt rows take the differentiable path: same loss and trailer gradient,
    /// 3× cheaper per sample of 10 × 512 tokens on Qwen2.5 (scripts/bench_freeze_header.sh).
    #[arg(long)]
    pub freeze_header: bool,
    #[command(flatten)]
    pub bridge: BridgeArgs,
    /// With --freeze-header, keep the trailer too: only the bridge (and any key factors) learn,
    /// and every packet row is a constant of one inference forward. The packets stay those of
    /// the --init-from adapter.
    #[arg(long)]
    pub freeze_trailer: bool,
    /// Weight of the first teacher token's loss (the others weigh 1): the first answer token is
    /// where the answer's form and entity are chosen, and what the evaluation's KL measures.
    #[arg(long, default_value_t = 1.0)]
    pub first_token_weight: f32,
    /// Held-out samples (disjoint entries or seeds) scored by first-answer-token KL; the run's
    /// result is the adapter with the lowest, not the last (0: no validation).
    #[arg(long, default_value_t = 8)]
    pub val_samples: usize,
    /// Validate after every this many steps.
    #[arg(long, default_value_t = 1)]
    pub val_every: usize,
    /// Stop early once this many validations in a row found nothing better than the best so
    /// far; the result is the best checkpoint (0: run every step).
    #[arg(long, default_value_t = 0)]
    pub patience: usize,
    /// Learn a key factor per layer and kv head with the header and trailer: packets store
    /// their keys times it, so each head of the question reads the documents at its own
    /// attention temperature (starts at the --init-from adapter's factors, else 1).
    #[arg(long)]
    pub learn_key_scale: bool,
    /// The learned key factors' learning rate relative to --lr (they learn ln(factor)); 100
    /// moved them ±10% in 4 steps at --lr 3e-4 and raised validation KL (runs/ctx-ks).
    #[arg(long, default_value_t = 10.0)]
    pub key_scale_gain: f32,
    /// Run the student's layer products (forward and backward) with bf16 operands and f32 sums
    /// on CPUs with AVX512-BF16 (AMD Zen 4, Intel Sapphire Rapids or later): about 1.4× the
    /// training pass's speed (`kvpacket bench prefill` measures it), gradients within bf16
    /// rounding of f32's. The teacher and the validation stay in f32. A speed setting, not part
    /// of the run's config: a run may resume either way, and the adapter's metadata records
    /// whether the session that wrote it used it.
    #[arg(long)]
    pub bf16_products: bool,
    /// Run directory (config.json, checkpoint.safetensors, best.safetensors, log.jsonl,
    /// val.jsonl, val_plain.json with plain packets' validation KL, loss.svg): small, so it can
    /// be committed and resumed on another machine (teacher outputs missing there are
    /// recomputed).
    #[arg(long)]
    pub run_dir: Option<PathBuf>,
    /// Where to write the trained adapter.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Where teacher outputs are cached (default: $KVPACKET_HOME/teacher). A folder inside the
    /// run directory can be committed with it, so that a fresh machine resumes without
    /// recomputing the teacher (~50 KB a sample).
    #[arg(long)]
    pub teacher_dir: Option<PathBuf>,
    /// Continue from the run directory's checkpoint.
    #[arg(long)]
    pub resume: bool,
    /// Stop after this many more steps (a checkpoint is saved).
    #[arg(long)]
    pub max_steps: Option<usize>,
    /// Only draw the loss curve of the run directory's log.
    #[arg(long)]
    pub plot: bool,
    /// Only score adapters (files, shipped names, or `none`) on this run's validation samples:
    /// mean first-answer-token KL, as the run's val.jsonl reports it. Repeatable.
    #[arg(long)]
    pub score: Vec<String>,
}

pub fn run(a: TrainArgs) -> Result<()> {
    let run = RunDir(
        a.run_dir
            .clone()
            .unwrap_or_else(|| crate::model::fetch::home().join("runs").join(&a.model.model)),
    );
    let steps_per_epoch = a.samples.div_ceil(a.batch.max(1));
    if a.plot {
        plot_log(&run.log(), &run.plot(), steps_per_epoch)?;
        println!("{}", run.plot().display());
        return Ok(());
    }
    // f32 for the student's differentiable path, plus the 8-bit copy that single-token calls
    // use: the teacher's greedy decode is memory-bound (4× fewer bytes per token). This is not
    // the default weight mode (the GGUF file's own blocks), whose decode can differ in a rare
    // greedy tie; it stays so that a resumed run that regenerates a missing teacher output
    // reproduces the committed ones.
    let mut model = crate::model::Model::load(&crate::model::fetch::resolve(&a.model.model)?, WeightMode::F32Q8Decode)?;
    if a.bf16_products {
        model.weights.pack_bf16_training()?;
    }
    let config = TrainConfig {
        samples: SampleSpec {
            files: a.data.clone(),
            count: a.samples,
            k_min: a.k_min,
            k_max: a.k_max,
            max_docs: a.max_docs,
            questions: a.questions,
            max_doc_tokens: a.max_doc_tokens,
            generic_task_prob: a.generic_task_prob,
            chunk_tokens: a.chunk_tokens,
            chunk_stride: a.chunk_stride,
            distractors: a.distractors,
            lowercase_docs: a.lowercase_docs,
            reshape_files: a.reshape_data.clone(),
            title_questions: a.title_questions,
            reasoning: a.reasoning,
            holdout_every: a.holdout_every.unwrap_or(0),
            val_files: a.val_data.clone(),
            seed: a.seed,
        },
        init: a.init.to_init()?,
        context_header: a.init.context_header()?,
        n_header: a.header,
        n_trailer: a.trailer,
        gen_tokens: a.gen_tokens,
        top_k: a.top_k,
        loss: a.loss,
        lr: a.lr,
        weight_decay: a.weight_decay,
        batch: a.batch,
        epochs: a.epochs,
        seed: a.seed,
        checkpoint_every: a.checkpoint_every,
        grad_checkpoint: a.grad_checkpoint,
        freeze_header: a.freeze_header,
        n_bridge: a.bridge.bridge,
        freeze_trailer: a.freeze_trailer,
        bridge_place: a.bridge.bridge_place,
        bridge_text: a.bridge.bridge_text.clone(),
        first_token_weight: a.first_token_weight,
        val_samples: a.val_samples,
        val_every: a.val_every,
        patience: a.patience,
        learn_key_scale: a.learn_key_scale,
        // Runs that learn no factors keep the field's default, so their configs stay as they were.
        key_scale_gain: if a.learn_key_scale {
            a.key_scale_gain
        } else {
            crate::train::LEGACY_KEY_SCALE_GAIN
        },
    };
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    ctrlc::set_handler(move || flag.store(true, Ordering::SeqCst))?;
    let trainer = Trainer {
        model: &model,
        config,
        teacher_cache: TeacherCache::new(
            &a.teacher_dir
                .clone()
                .unwrap_or_else(|| crate::model::fetch::home().join("teacher")),
        ),
        run,
        stop,
        progress: true,
    };
    if !a.score.is_empty() {
        let val = trainer.prepare_validation()?;
        anyhow::ensure!(!val.is_empty(), "--score needs validation samples (--val-samples > 0)");
        for name in &a.score {
            let adapter = match name.as_str() {
                "none" => crate::adapter::Adapter::empty(&model)?,
                other => crate::adapter::named(&model, other)?,
            };
            let line = trainer.validate(&adapter, &val)?;
            println!(
                "{name}: first-token KL {:.4} over {} validation questions",
                line.first_token_kl, line.questions
            );
        }
        return Ok(());
    }
    match trainer.train(a.resume, a.max_steps)? {
        Outcome::Interrupted(step) => {
            plot_log(&trainer.run.log(), &trainer.run.plot(), steps_per_epoch)?;
            let best = trainer.run.best();
            let best = match best.exists() {
                true => format!("; best by validation so far: {}", best.display()),
                false => String::new(),
            };
            eprintln!("stopped: checkpoint saved at step {step}{best}; continue with --resume");
        }
        Outcome::Finished(adapter) => {
            plot_log(&trainer.run.log(), &trainer.run.plot(), steps_per_epoch)?;
            let out = a
                .out
                .clone()
                .unwrap_or_else(|| trainer.run.0.join("adapter.safetensors"));
            adapter.save(&out)?;
            println!("{} (loss curve: {})", out.display(), trainer.run.plot().display());
        }
    }
    Ok(())
}
