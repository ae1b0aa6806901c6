//! Adapter training by self-supervised KL distillation (DESIGN §2 "Training"): a cached
//! teacher (full attention, no adapter) and a block-diagonal student whose only trainable
//! parameters are the header and trailer. AdamW, one linear decay over the whole run,
//! gradient accumulation, a held-out validation split scored by first-token KL with the best
//! checkpoint kept, checkpoints, resume (also on a fresh machine from a committed run folder),
//! Ctrl-C safe.

pub mod memory;
pub mod optim;
pub mod samples;
pub mod student;
pub mod teacher;

use crate::adapter::{Adapter, AdapterInit, BridgePlace};
use crate::io::{RawTensor, atomic_write, decode_floats, f32_bytes, safetensors_bytes, safetensors_meta};
use crate::model::Model;
use anyhow::{Context, Result, bail};
use candle_core::{Device, Tensor};
use indicatif::{ProgressBar, ProgressStyle};
use optim::{AdamW, linear_lr};
use rand::SeedableRng;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use samples::{SampleSpec, Split, TrainSample, draw_samples};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;
use student::{LossKind, StudentMode, first_token_kl, student_grad, student_rows};
use teacher::TeacherCache;

/// Every training setting; recorded in the checkpoint and in the final adapter's metadata.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct TrainConfig {
    /// Which samples are drawn, from which data, in which shape.
    pub samples: SampleSpec,
    /// Header rows (N_h).
    pub n_header: usize,
    /// Trailer rows (N_t).
    pub n_trailer: usize,
    /// How the adapter starts (absent in configs of older runs: random).
    #[serde(default)]
    pub init: AdapterInit,
    /// Make the header context-only (see [`crate::adapter::AdapterMeta::context_header`]);
    /// absent in older configs: as the start has it.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub context_header: bool,
    /// Teacher tokens per sample (G).
    pub gen_tokens: usize,
    /// Teacher log-probs kept per step (the rest is one bucket).
    pub top_k: usize,
    /// The distillation loss.
    pub loss: LossKind,
    /// Peak learning rate; it decays linearly to 0 over the whole run.
    pub lr: f64,
    /// AdamW's decoupled weight decay.
    pub weight_decay: f64,
    /// Samples per optimizer step (gradient accumulation).
    pub batch: usize,
    /// Passes over the samples.
    pub epochs: usize,
    /// Seed of the adapter's start and of the sample order.
    pub seed: u64,
    /// Save a checkpoint every this many steps.
    pub checkpoint_every: usize,
    /// Gradient checkpointing (per-layer recomputation) in the student's backward pass.
    pub grad_checkpoint: bool,
    /// Train only the trailer; the header keeps its starting value (absent in older configs: false).
    #[serde(default)]
    pub freeze_header: bool,
    /// Bridge rows (N_b, [`Adapter::bridge`]): kept or grown from the start adapter's, new ones
    /// from [`crate::adapter::BRIDGE_TEXT`]'s embeddings (absent in older configs: 0).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub n_bridge: usize,
    /// Keep the trailer too at its starting value (with `freeze_header`): only the bridge and
    /// any key factors learn (absent in older configs: false).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub freeze_trailer: bool,
    /// Where a new bridge sits ([`crate::adapter::AdapterMeta::bridge_place`]); absent in older
    /// configs: before the question (those that wrote `bridge_after_prompt` are read as it says).
    #[serde(
        default,
        alias = "bridge_after_prompt",
        deserialize_with = "BridgePlace::or_legacy_flag",
        skip_serializing_if = "BridgePlace::is_before_question"
    )]
    pub bridge_place: BridgePlace,
    /// The text whose token embeddings a new bridge starts from (absent in older configs:
    /// [`crate::adapter::BRIDGE_TEXT`]).
    #[serde(default = "bridge_text", skip_serializing_if = "is_bridge_text")]
    pub bridge_text: String,
    /// Weight of each question's first teacher token's loss; the others weigh 1 (absent in
    /// older configs: 1).
    #[serde(default = "one")]
    pub first_token_weight: f32,
    /// Held-out samples scored by first-token KL after every `val_every` steps; the adapter
    /// with the lowest is kept as the run's result (0, and absent in older configs: none).
    #[serde(default)]
    pub val_samples: usize,
    #[serde(default = "one_step")]
    /// Steps between validations (absent in older configs: 1).
    pub val_every: usize,
    /// Early stop: the run ends once this many validations in a row found nothing better than
    /// its best, and its result is that best checkpoint (0, and absent in older configs: never).
    #[serde(default)]
    pub patience: usize,
    /// Learn a key factor per layer and kv head ([`Adapter::head_key_scale`], starting from the
    /// start adapter's or 1) with the header and trailer (absent in older configs: false).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub learn_key_scale: bool,
    /// The learned key factors' learning rate relative to the embeddings': they are learned as
    /// φ = ln(factor) / gain, and AdamW moves every parameter by about the learning rate a
    /// step whatever its gradient's size, which suits the embeddings (entries ~0.01-0.1) but
    /// would move a factor of ~1 by 0.03% a step. With gain 10, a step of 3e-4 moves
    /// ln(factor) by up to 0.003. Absent: [`LEGACY_KEY_SCALE_GAIN`], what the first run that
    /// learned them used (and what runs that learn none record).
    #[serde(default = "legacy_gain", skip_serializing_if = "is_legacy_gain")]
    pub key_scale_gain: f32,
}

/// The key factors' gain of runs whose config does not name one.
pub const LEGACY_KEY_SCALE_GAIN: f32 = 100.0;

fn legacy_gain() -> f32 {
    LEGACY_KEY_SCALE_GAIN
}

fn is_legacy_gain(x: &f32) -> bool {
    *x == LEGACY_KEY_SCALE_GAIN
}

fn one() -> f32 {
    1.0
}

fn bridge_text() -> String {
    crate::adapter::BRIDGE_TEXT.to_string()
}

fn is_bridge_text(t: &str) -> bool {
    t == crate::adapter::BRIDGE_TEXT
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}

fn one_step() -> usize {
    1
}

/// One line of the training log.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct LogLine {
    /// Optimizer steps done, this one included.
    pub step: usize,
    /// Epoch of the step (0-based); absent in logs of older runs.
    #[serde(default)]
    pub epoch: Option<usize>,
    /// Loss per question, averaged over the step's questions.
    pub loss: f64,
    /// Learning rate of the step.
    pub lr: f64,
    /// Samples per second of the step's wall time.
    pub samples_per_s: f64,
    /// Questions (teacher answers) the step learned from (absent in older logs).
    #[serde(default)]
    pub questions: Option<usize>,
    /// Seconds of steps since the run began, over every session.
    pub elapsed_s: f64,
    /// The process's peak resident memory so far, in GB (Linux; absent elsewhere and in older
    /// logs): what a step of this run's samples needs, to size a machine or a resume.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peak_rss_gb: Option<f64>,
}

/// One line of the validation log: mean first-answer-token KL(teacher ‖ student) over every
/// question of the held-out samples after `step` steps (step 0: the starting adapter).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ValLine {
    /// Optimizer steps done when scored (0: the start).
    pub step: usize,
    /// Mean first-answer-token KL(teacher ‖ student).
    pub first_token_kl: f64,
    /// Questions scored.
    pub questions: usize,
}

/// Trainer state saved in checkpoints (AdamW's moments as tensors beside the adapter).
#[derive(Debug, Clone, Serialize, Deserialize)]
struct State {
    config: TrainConfig,
    model_fingerprint: String,
    step: usize,
    elapsed_s: f64,
    adam: AdamW,
    /// The best validation so far: (step, mean first-token KL).
    #[serde(default)]
    best: Option<(usize, f64)>,
}

impl State {
    /// True when the run validates with a patience and its last `patience` validations (every
    /// `val_every` steps) found nothing better than its best.
    fn out_of_patience(&self) -> bool {
        let c = &self.config;
        match self.best {
            Some((best, _)) if c.patience > 0 && c.val_samples > 0 => self.step - best >= c.patience * c.val_every,
            _ => false,
        }
    }
}

/// Files of a training run inside its directory.
pub struct RunDir(pub PathBuf);

impl RunDir {
    /// The latest checkpoint: adapter, optimizer state, step, config.
    pub fn checkpoint(&self) -> PathBuf {
        self.0.join("checkpoint.safetensors")
    }
    /// The adapter with the lowest validation KL so far.
    pub fn best(&self) -> PathBuf {
        self.0.join("best.safetensors")
    }
    /// The validation log (JSONL of [`ValLine`]).
    pub fn val_log(&self) -> PathBuf {
        self.0.join("val.jsonl")
    }
    /// The run's settings, readable (also inside every checkpoint).
    pub fn config(&self) -> PathBuf {
        self.0.join("config.json")
    }
    /// The per-step loss log (JSONL).
    pub fn log(&self) -> PathBuf {
        self.0.join("log.jsonl")
    }
    /// The loss curve.
    pub fn plot(&self) -> PathBuf {
        self.0.join("loss.svg")
    }
    /// The validation KL of plain packets (no adapter, the `none` method) on the run's
    /// validation samples: the level an adapter must beat (one [`ValLine`], step 0).
    pub fn val_plain(&self) -> PathBuf {
        self.0.join("val_plain.json")
    }
}

fn save_checkpoint(run: &RunDir, adapter: &Adapter, state: &State) -> Result<()> {
    let d = adapter.meta.hidden_size;
    let t = |name: &str, x: &[f32], rows: usize| RawTensor {
        name: name.into(),
        dtype: safetensors::Dtype::F32,
        shape: vec![rows, d],
        bytes: f32_bytes(x),
    };
    let rows = adapter.meta.n_header + adapter.meta.n_trailer + adapter.meta.n_bridge;
    let mut tensors = vec![
        t(
            "header",
            &adapter.header.flatten_all()?.to_vec1::<f32>()?,
            adapter.meta.n_header,
        ),
        t(
            "trailer",
            &adapter.trailer.flatten_all()?.to_vec1::<f32>()?,
            adapter.meta.n_trailer,
        ),
        t("adam_m", &state.adam.m[..rows * d], rows),
        t("adam_v", &state.adam.v[..rows * d], rows),
    ];
    if adapter.meta.n_bridge > 0 {
        tensors.push(t(
            "bridge",
            &adapter.bridge.flatten_all()?.to_vec1::<f32>()?,
            adapter.meta.n_bridge,
        ));
    }
    // The key factors, and their moments when they are learned, as flat tensors.
    let flat = |name: &str, x: &[f32]| RawTensor {
        name: name.into(),
        dtype: safetensors::Dtype::F32,
        shape: vec![x.len()],
        bytes: f32_bytes(x),
    };
    if adapter.meta.head_key_scale.is_some() {
        tensors.push(flat("head_key_scale", &adapter.head_key_scale));
    }
    if state.config.learn_key_scale {
        tensors.push(flat("adam_m_key_scale", &state.adam.m[rows * d..]));
        tensors.push(flat("adam_v_key_scale", &state.adam.v[rows * d..]));
    }
    atomic_write(
        &run.checkpoint(),
        &safetensors_bytes(&tensors, &serde_json::to_value(state)?)?,
    )
}

fn load_checkpoint(run: &RunDir, model: &Model) -> Result<(Adapter, State)> {
    let path = run.checkpoint();
    let bytes = std::fs::read(&path).with_context(|| format!("no checkpoint at {}", path.display()))?;
    let mut state: State = serde_json::from_value(safetensors_meta(&bytes)?).context("bad checkpoint metadata")?;
    if state.model_fingerprint != model.fingerprint {
        bail!("checkpoint {} belongs to another model", path.display());
    }
    let st = safetensors::SafeTensors::deserialize(&bytes)?;
    let floats = |name: &str, rows: usize| -> Result<Vec<f32>> {
        let v = st.tensor(name).with_context(|| format!("checkpoint has no `{name}`"))?;
        if v.shape() != [rows, model.config.hidden_size] {
            bail!("checkpoint `{name}` has shape {:?}", v.shape());
        }
        decode_floats(v.data(), v.dtype())
    };
    let (nh, nt, nb) = (state.config.n_header, state.config.n_trailer, state.config.n_bridge);
    let read = |name: &str, rows: usize| -> Result<Tensor> {
        Ok(Tensor::from_vec(
            floats(name, rows)?,
            (rows, model.config.hidden_size),
            &Device::Cpu,
        )?)
    };
    let mut adapter =
        Adapter::init(model, nh, nt, state.config.seed)?.with_context_header(state.config.context_header)?;
    adapter.header = read("header", nh)?;
    adapter.trailer = read("trailer", nt)?;
    if nb > 0 {
        adapter.bridge = read("bridge", nb)?;
        adapter.meta.n_bridge = nb;
    }
    state.adam.m = floats("adam_m", nh + nt + nb)?;
    state.adam.v = floats("adam_v", nh + nt + nb)?;
    let (layers, heads) = (model.config.n_layers, model.config.n_kv_heads);
    let flat = |name: &str| -> Result<Vec<f32>> {
        let v = st.tensor(name).with_context(|| format!("checkpoint has no `{name}`"))?;
        if v.shape().iter().product::<usize>() != layers * heads {
            bail!("checkpoint `{name}` has shape {:?}", v.shape());
        }
        decode_floats(v.data(), v.dtype())
    };
    if st.names().contains(&"head_key_scale") {
        adapter = adapter.with_head_key_scale(flat("head_key_scale")?, layers, heads)?;
    }
    if state.config.learn_key_scale {
        state.adam.m.extend(flat("adam_m_key_scale")?);
        state.adam.v.extend(flat("adam_v_key_scale")?);
    }
    Ok((adapter, state))
}

/// The order in which epoch `epoch` visits the samples (deterministic per seed).
fn epoch_order(n: usize, seed: u64, epoch: usize) -> Vec<usize> {
    let mut v: Vec<usize> = (0..n).collect();
    v.shuffle(&mut StdRng::seed_from_u64(
        seed ^ (0x9E37_79B9_7F4A_7C15u64.wrapping_mul(epoch as u64 + 1)),
    ));
    v
}

/// How a run ended.
#[derive(Debug)]
pub enum Outcome {
    /// All steps done; the run's adapter: the best by validation when the run validates, else
    /// the last.
    Finished(Adapter),
    /// Interrupted (Ctrl-C) after saving a checkpoint at this step.
    Interrupted(usize),
}

/// Samples paired with their teacher outputs (one per question).
pub type Prepared = Vec<(TrainSample, Vec<teacher::TeacherOut>)>;

/// A training run: model, config, run directory, and where teacher outputs are cached.
pub struct Trainer<'a> {
    /// The frozen model.
    pub model: &'a Model,
    /// The run's settings.
    pub config: TrainConfig,
    /// The run folder (checkpoint, logs, best adapter).
    pub run: RunDir,
    /// Where teacher outputs are cached by content.
    pub teacher_cache: TeacherCache,
    /// Set to stop at the next sample boundary (Ctrl-C).
    pub stop: Arc<AtomicBool>,
    /// Show progress bars.
    pub progress: bool,
}

impl Trainer<'_> {
    fn bar(&self, len: usize, what: &str) -> Result<ProgressBar> {
        let bar = if self.progress {
            ProgressBar::new(len as u64)
        } else {
            ProgressBar::hidden()
        };
        bar.set_style(ProgressStyle::with_template(&format!(
            "{what} {{bar:30}} {{pos}}/{{len}} [{{elapsed_precise}} < {{eta}}] {{msg}}"
        ))?);
        Ok(bar)
    }

    fn with_teacher(&self, samples: Vec<TrainSample>, what: &str) -> Result<Prepared> {
        let bar = self.bar(samples.len(), what)?;
        let mut out = Vec::with_capacity(samples.len());
        for s in samples {
            let (t, _) = self
                .teacher_cache
                .get(self.model, &s, self.config.gen_tokens, self.config.top_k)?;
            out.push((s, t));
            bar.inc(1);
        }
        bar.finish_and_clear();
        Ok(out)
    }

    /// Draws the training samples and computes (or loads) their teacher outputs.
    pub fn prepare(&self) -> Result<Prepared> {
        let spec = &self.config.samples;
        self.with_teacher(draw_samples(self.model, spec, Split::Train, spec.count)?, "teacher")
    }

    /// Draws the validation samples (disjoint from training's) with their teacher outputs.
    pub fn prepare_validation(&self) -> Result<Prepared> {
        let n = self.config.val_samples;
        if n == 0 {
            return Ok(Vec::new());
        }
        self.with_teacher(
            draw_samples(self.model, &self.config.samples, Split::Validation, n)?,
            "validation teacher",
        )
    }

    /// Mean first-answer-token KL of `adapter` over every question of `val`.
    pub fn validate(&self, adapter: &Adapter, val: &Prepared) -> Result<ValLine> {
        let mut kls = Vec::new();
        for (s, t) in val {
            kls.extend(first_token_kl(self.model, adapter, s, t)?);
        }
        Ok(ValLine {
            step: 0,
            first_token_kl: kls.iter().map(|&k| k as f64).sum::<f64>() / kls.len().max(1) as f64,
            questions: kls.len(),
        })
    }

    /// The adapter as the run's result, with what made it in its metadata.
    fn described(&self, adapter: &Adapter, state: &State, total: usize) -> Result<Adapter> {
        let lines = read_log(&self.run.log())?;
        let mut a = adapter.clone();
        let step = state.step;
        let questions: usize = lines.iter().filter_map(|l| l.questions).sum();
        a.meta.made_by = serde_json::json!({
            "kind": "trained",
            "config": self.config,
            "steps": step,
            "total_steps": total,
            "question_passes": questions,
            "wall_time_s": state.elapsed_s,
            "final_loss": lines.last().map(|l| l.loss),
            "threads": rayon::current_num_threads(),
            "bf16_products": self.model.weights.trains_in_bf16(),
        });
        Ok(a)
    }

    /// Trains from scratch, or from the run directory's checkpoint when `resume`.
    /// Runs at most `max_steps` more steps when given (for tests and time-boxed runs).
    pub fn train(&self, resume: bool, max_steps: Option<usize>) -> Result<Outcome> {
        let cfg = &self.config;
        if !(cfg.key_scale_gain.is_finite() && cfg.key_scale_gain > 0.0) {
            bail!(
                "the key factors' gain must be a positive number, not {}",
                cfg.key_scale_gain
            );
        }
        if !(cfg.first_token_weight.is_finite() && cfg.first_token_weight >= 0.0) {
            bail!(
                "the first-token weight must be a finite number ≥ 0 (got {})",
                cfg.first_token_weight
            );
        }
        if cfg.freeze_trailer && !cfg.freeze_header {
            bail!("a frozen trailer needs a frozen header too (the header's gradient runs through every row)");
        }
        if cfg.batch == 0 || cfg.epochs == 0 || cfg.val_every == 0 {
            bail!("batch, epochs and validation interval must be at least 1");
        }
        std::fs::create_dir_all(&self.run.0)?;
        let (mut adapter, mut state) = if resume {
            let (a, mut s) = load_checkpoint(&self.run, self.model)?;
            // The patience only decides when the run ends, and layer recomputation only how
            // much memory a step takes (the same loss and gradient): a resumed run may change
            // either, e.g. a run killed for memory resumes with recomputation on.
            s.config.patience = cfg.patience;
            s.config.grad_checkpoint = cfg.grad_checkpoint;
            if s.config != *cfg {
                bail!(
                    "resuming with different settings than the checkpoint (see {})",
                    self.run.config().display()
                );
            }
            (a, s)
        } else {
            let mut a = Adapter::fresh(self.model, cfg.n_header, cfg.n_trailer, &cfg.init, cfg.seed)?
                .with_context_header(cfg.context_header)?
                .with_bridge(self.model, cfg.n_bridge, cfg.bridge_place, &cfg.bridge_text)?;
            let (layers, heads) = (self.model.config.n_layers, self.model.config.n_kv_heads);
            if cfg.learn_key_scale && a.meta.head_key_scale.is_none() {
                a = a.with_head_key_scale(vec![1.0; layers * heads], layers, heads)?;
            }
            let learned = if cfg.learn_key_scale { layers * heads } else { 0 };
            let n = (cfg.n_header + cfg.n_trailer + cfg.n_bridge) * self.model.config.hidden_size + learned;
            let s = State {
                config: cfg.clone(),
                model_fingerprint: self.model.fingerprint.clone(),
                step: 0,
                elapsed_s: 0.0,
                adam: AdamW::new(n, cfg.weight_decay),
                best: None,
            };
            std::fs::write(self.run.log(), b"")?;
            std::fs::write(self.run.val_log(), b"")?;
            // A level from before digests cannot say what it was scored on: a fresh run redoes
            // it. One with a digest is checked against this run's samples when it is read.
            if read_plain_level(&self.run.val_plain())?.is_some_and(|l| l.samples.is_none()) {
                std::fs::remove_file(self.run.val_plain())?;
            }
            atomic_write(&self.run.config(), &serde_json::to_vec_pretty(cfg)?)?;
            (a, s)
        };
        keep_log_until(&self.run.log(), state.step)?;
        keep_val_until(&self.run.val_log(), state.step)?;
        // `draw_samples` returns exactly `count` samples, so the run's length is known before
        // the teacher outputs are: a finished run (e.g. a committed one on a fresh machine)
        // returns its result without regenerating them.
        let per_epoch = cfg.samples.count.div_ceil(cfg.batch);
        let total = per_epoch * cfg.epochs;
        if state.step >= total || state.out_of_patience() {
            return Ok(Outcome::Finished(self.result(&adapter, &state, total)?));
        }
        let data = self.prepare()?;
        let val = self.prepare_validation()?;
        // Said before step 0's validation, which can take minutes: a step that will not fit is
        // known before any time is spent.
        let step_memory = self.step_memory(&data)?;
        if self.progress {
            eprintln!("{}", step_memory.describe(cfg.grad_checkpoint, memory::rss_bytes()));
        }
        if let Some(warning) = memory::available_bytes().and_then(|a| step_memory.warning(a, cfg.grad_checkpoint)) {
            eprintln!("warning: {warning}");
        }
        let last = max_steps.map_or(total, |m| (state.step + m).min(total));
        let mut val_log = crate::io::open_jsonl_append(&self.run.val_log())?;
        let plain = self.plain_validation(&val)?;
        let plain_kl = plain.as_ref().map(|p| p.first_token_kl);
        if !val.is_empty() && state.step == 0 && state.best.is_none() {
            self.record_validation(&adapter, &val, &mut state, &mut val_log, total, plain_kl)?;
        }
        let bar = self.bar(total, "train")?;
        bar.set_position(state.step as u64);
        let d = self.model.config.hidden_size;
        let nh = cfg.n_header * d;
        let t_run = Instant::now();
        let elapsed0 = state.elapsed_s;
        let mut log = crate::io::open_jsonl_append(&self.run.log())?;
        while state.step < last {
            let epoch = state.step / per_epoch;
            let order = epoch_order(data.len(), cfg.seed, epoch);
            let within = state.step % per_epoch;
            let batch = &order[within * cfg.batch..((within + 1) * cfg.batch).min(order.len())];
            let t_step = Instant::now();
            let trailer_end = nh + cfg.n_trailer * d;
            let nd = trailer_end + cfg.n_bridge * d;
            let mut grad = vec![0f32; state.adam.m.len()];
            let mut loss = 0.0f64;
            let mut questions = 0usize;
            for &i in batch {
                if self.stop.load(Ordering::SeqCst) {
                    save_checkpoint(&self.run, &adapter, &state)?;
                    bar.abandon();
                    return Ok(Outcome::Interrupted(state.step));
                }
                let (s, t) = &data[i];
                let mode = StudentMode {
                    loss: cfg.loss,
                    grad_checkpoint: cfg.grad_checkpoint,
                    freeze_header: cfg.freeze_header,
                    freeze_trailer: cfg.freeze_trailer,
                    first_token_weight: cfg.first_token_weight,
                };
                let g = student_grad(self.model, &adapter, s, t, mode)?;
                loss += g.loss as f64;
                questions += g.questions;
                grad[..nh].iter_mut().zip(&g.header).for_each(|(a, b)| *a += b);
                grad[nh..trailer_end]
                    .iter_mut()
                    .zip(&g.trailer)
                    .for_each(|(a, b)| *a += b);
                grad[trailer_end..nd]
                    .iter_mut()
                    .zip(&g.bridge)
                    .for_each(|(a, b)| *a += b);
                if cfg.learn_key_scale {
                    // d loss / d φ = gain · factor · d loss / d factor.
                    grad[nd..]
                        .iter_mut()
                        .zip(g.head_key_scale.iter().zip(&adapter.head_key_scale))
                        .for_each(|(a, (g, f))| *a += cfg.key_scale_gain * f * g);
                }
            }
            // The step's gradient is the mean over its questions (each question one sample of
            // the reference recipe).
            let scale = 1.0 / questions.max(1) as f32;
            grad.iter_mut().for_each(|g| *g *= scale);
            let lr = linear_lr(cfg.lr, state.step, total);
            let mut params: Vec<f32> = adapter.header.flatten_all()?.to_vec1::<f32>()?;
            params.extend(adapter.trailer.flatten_all()?.to_vec1::<f32>()?);
            params.extend(adapter.bridge.flatten_all()?.to_vec1::<f32>()?);
            if cfg.learn_key_scale {
                params.extend(adapter.head_key_scale.iter().map(|f| f.ln() / cfg.key_scale_gain));
            }
            state.adam.step(&mut params, &grad, lr);
            if !cfg.freeze_header {
                adapter.header = Tensor::from_vec(params[..nh].to_vec(), (cfg.n_header, d), &Device::Cpu)?;
            }
            if !cfg.freeze_trailer {
                adapter.trailer = Tensor::from_vec(params[nh..trailer_end].to_vec(), (cfg.n_trailer, d), &Device::Cpu)?;
            }
            adapter.bridge = Tensor::from_vec(params[trailer_end..nd].to_vec(), (cfg.n_bridge, d), &Device::Cpu)?;
            if cfg.learn_key_scale {
                let (layers, heads) = (self.model.config.n_layers, self.model.config.n_kv_heads);
                let factors = params[nd..]
                    .iter()
                    .map(|p| (cfg.key_scale_gain * p).exp().clamp(1e-3, 4.0))
                    .collect();
                adapter = adapter.with_head_key_scale(factors, layers, heads)?;
            }
            state.step += 1;
            state.elapsed_s = elapsed0 + t_run.elapsed().as_secs_f64();
            let line = LogLine {
                step: state.step,
                epoch: Some(epoch),
                loss: loss / questions.max(1) as f64,
                lr,
                samples_per_s: batch.len() as f64 / t_step.elapsed().as_secs_f64(),
                questions: Some(questions),
                elapsed_s: state.elapsed_s,
                peak_rss_gb: memory::peak_rss_bytes().map(|b| b as f64 / 1e9),
            };
            crate::io::append_jsonl(&mut log, &line)?;
            if !val.is_empty() && (state.step % cfg.val_every == 0 || state.step == total) {
                self.record_validation(&adapter, &val, &mut state, &mut val_log, total, plain_kl)?;
            }
            let best = state.best.map_or(String::new(), |(s, k)| {
                let plain = plain_kl.map_or(String::new(), |p| format!(" (none {p:.4})"));
                format!("  best val KL {k:.4} @{s}{plain}")
            });
            bar.set_message(format!(
                "loss {:.4}  {:.2} samples/s{best}",
                line.loss, line.samples_per_s
            ));
            bar.inc(1);
            let stop_early = state.out_of_patience();
            if state.step % cfg.checkpoint_every == 0 || state.step == last || stop_early {
                save_checkpoint(&self.run, &adapter, &state)?;
            }
            if stop_early {
                break;
            }
        }
        bar.finish_and_clear();
        if state.step < total && !state.out_of_patience() {
            return Ok(Outcome::Interrupted(state.step));
        }
        Ok(Outcome::Finished(self.result(&adapter, &state, total)?))
    }

    /// What a student step on the training sample that needs the most memory is expected to
    /// take (by [`memory::student_step_bytes`]; tokenizes every sample, runs nothing).
    pub fn step_memory(&self, data: &Prepared) -> Result<memory::StepMemory> {
        let sizes = [self.config.n_header, self.config.n_trailer, self.config.n_bridge];
        let mut largest = memory::StepMemory::default();
        for (s, t) in data {
            let (rows, scored) = student_rows(self.model, sizes, s, t)?;
            let step = memory::StepMemory::of(&self.model.config, rows, scored);
            if step.bytes(self.config.grad_checkpoint) > largest.bytes(self.config.grad_checkpoint) {
                largest = step;
            }
        }
        Ok(largest)
    }

    /// A finished run's result: the best checkpoint by validation (noting where a run out of
    /// patience stopped), or the last adapter (with what made it) when the run has no
    /// validation split.
    fn result(&self, adapter: &Adapter, state: &State, total: usize) -> Result<Adapter> {
        if self.config.val_samples == 0 {
            return self.described(adapter, state, total);
        }
        let mut best = Adapter::load(&self.run.best(), Some(self.model))?;
        if state.step < total {
            best.meta.made_by["stopped_early_at"] = state.step.into();
        }
        Ok(best)
    }

    /// The validation KL of plain packets, from the run folder or (first time) computed and
    /// written there; `None` without validation samples.
    fn plain_validation(&self, val: &Prepared) -> Result<Option<ValLine>> {
        if val.is_empty() {
            return Ok(None);
        }
        let path = self.run.val_plain();
        let digest = self.validation_digest(val)?;
        if let Some(level) = read_plain_level(&path)? {
            // No digest: written by this run before digests existed, and trusted as then.
            if level.samples.as_deref().is_none_or(|s| s == digest) {
                return Ok(Some(level.line));
            }
        }
        let line = self.validate(&Adapter::empty(self.model)?, val)?;
        let level = PlainLevel {
            line: line.clone(),
            samples: Some(digest),
        };
        atomic_write(&path, &serde_json::to_vec_pretty(&level)?)?;
        Ok(Some(line))
    }

    /// A digest of everything the plain packets' validation KL depends on: the model's
    /// weights and product precision, the validation samples, and the teacher's first-token
    /// targets. Equal digests mean the same level, so a run folder may reuse another's.
    fn validation_digest(&self, val: &Prepared) -> Result<String> {
        use sha2::{Digest, Sha256};
        let mut h = Sha256::new();
        h.update(self.model.fingerprint.as_bytes());
        h.update([u8::from(self.model.weights.trains_in_bf16())]);
        for (sample, outs) in val {
            h.update(sample.key().as_bytes());
            for o in outs {
                h.update(serde_json::to_vec(&(o.top_ids.first(), o.top_logp.first()))?);
            }
        }
        Ok(hex::encode(h.finalize()))
    }

    /// Scores `adapter` on the validation samples, logs it, and keeps it as the run's best
    /// when its KL is strictly below the best so far (ties keep the earlier step), with the
    /// plain packets' KL on the same samples beside it in the metadata.
    fn record_validation(
        &self,
        adapter: &Adapter,
        val: &Prepared,
        state: &mut State,
        log: &mut std::fs::File,
        total: usize,
        plain_kl: Option<f64>,
    ) -> Result<()> {
        let mut line = self.validate(adapter, val)?;
        line.step = state.step;
        crate::io::append_jsonl(log, &line)?;
        if state.best.is_none_or(|(_, k)| line.first_token_kl < k) {
            state.best = Some((state.step, line.first_token_kl));
            let mut best = self.described(adapter, state, total)?;
            best.meta.made_by["validation"] = serde_json::json!({
                "best_step": state.step,
                "first_token_kl": line.first_token_kl,
                "questions": line.questions,
                "plain_packets_kl": plain_kl,
            });
            best.save(&self.run.best())?;
        }
        Ok(())
    }
}

/// Reads a training log.
pub fn read_log(path: &Path) -> Result<Vec<LogLine>> {
    crate::io::read_jsonl(path)
}

/// `val_plain.json`: the plain packets' validation line and, since session 41, the digest of
/// what it was scored on (`Trainer::validation_digest`; absent in older run folders).
#[derive(Serialize, Deserialize)]
struct PlainLevel {
    #[serde(flatten)]
    line: ValLine,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    samples: Option<String>,
}

/// A run's plain-packet validation level ([`RunDir::val_plain`]); `None` when not written yet.
fn read_plain_level(path: &Path) -> Result<Option<PlainLevel>> {
    match std::fs::read(path) {
        Ok(bytes) => Ok(Some(
            serde_json::from_slice(&bytes).with_context(|| format!("reading {}", path.display()))?,
        )),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
    }
}

/// Drops log lines after `step` (steps redone after a resume).
fn keep_log_until(path: &Path, step: usize) -> Result<()> {
    let kept: Vec<LogLine> = read_log(path)?.into_iter().filter(|l| l.step <= step).collect();
    rewrite_jsonl(path, &kept)
}

/// Drops validation lines after `step`.
fn keep_val_until(path: &Path, step: usize) -> Result<()> {
    let kept: Vec<ValLine> = crate::io::read_jsonl::<ValLine>(path)?
        .into_iter()
        .filter(|l| l.step <= step)
        .collect();
    rewrite_jsonl(path, &kept)
}

fn rewrite_jsonl<T: Serialize>(path: &Path, lines: &[T]) -> Result<()> {
    let kept: Vec<String> = lines.iter().map(serde_json::to_string).collect::<Result<_, _>>()?;
    let mut text = kept.join("\n");
    if !text.is_empty() {
        text.push('\n');
    }
    atomic_write(path, text.as_bytes())
}

/// Draws the loss curve of a run's log as SVG: the loss of every step (each step sees other
/// samples, so it is noisy), at each epoch's last step the epoch's mean, and the validation
/// first-token KL when the run folder has a `val.jsonl`.
pub fn plot_log(log: &Path, out: &Path, steps_per_epoch: usize) -> Result<()> {
    let lines = read_log(log)?;
    let pts: Vec<(f64, f64)> = lines.iter().map(|l| (l.step as f64, l.loss)).collect();
    let means: Vec<(f64, f64)> = lines
        .chunks(steps_per_epoch.max(1))
        .map(|c| {
            (
                c.last().unwrap().step as f64,
                c.iter().map(|l| l.loss).sum::<f64>() / c.len() as f64,
            )
        })
        .collect();
    let mut series = vec![("loss per step".to_string(), pts), ("epoch mean".to_string(), means)];
    let val_log = log.with_file_name("val.jsonl");
    let val: Vec<ValLine> = crate::io::read_jsonl(&val_log)?;
    if !val.is_empty() {
        series.push((
            "validation first-token KL".to_string(),
            val.iter().map(|v| (v.step as f64, v.first_token_kl)).collect(),
        ));
        if let Some(plain) =
            read_plain_level(&RunDir(log.parent().unwrap_or(Path::new(".")).to_path_buf()).val_plain())?
        {
            let ends = [val[0].step, val[val.len() - 1].step];
            series.push((
                "validation, plain packets (none)".to_string(),
                ends.iter().map(|&s| (s as f64, plain.line.first_token_kl)).collect(),
            ));
        }
    }
    crate::plot::line_chart(out, "training loss", "optimizer step", "loss per question", &series)
}
