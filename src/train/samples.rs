//! Self-supervised training samples: a document set plus one or more task prompts over it.
//! A sample always holds what its questions need, found from the data's structure (never
//! from gold answers): a biography set is generated with its questions about its own people;
//! a QA entry keeps all its paragraphs, or at least its supporting ones.

use crate::data::synth::{BioStyle, biography_questions};
use crate::data::{Document, Sample, load_dataset};
use crate::model::Model;
use anyhow::{Result, bail};
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{RngExt, SeedableRng};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::path::PathBuf;

/// Generic task prompts used instead of an entry's question (only with a generic-task
/// probability above 0).
pub const GENERIC_TASKS: [&str; 4] = [
    "",
    "What is the main fact in the passages?",
    "Which people, places or dates do the passages mention?",
    "Summarize the passages in one sentence.",
];

/// Added to the seed of training draws, so synthetic sets never coincide with the
/// evaluation's (which uses small seeds).
pub const SYNTH_SEED_OFFSET: u64 = 1_000_003;
/// Added to the seed of validation draws (disjoint from training's and evaluation's).
pub const VALIDATION_SEED_OFFSET: u64 = 2_000_029;
/// Every this many entries of a data file, the last one is kept for validation only.
pub const VALIDATION_EVERY: usize = 10;

/// One training sample: documents and the task prompts asked over them (each task is a
/// question, or empty for the summary instruction of the prompt layout).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct TrainSample {
    /// The documents, in context order; each is one block of the student.
    pub docs: Vec<Document>,
    /// The questions (or tasks) asked over them; the documents run once for all.
    pub tasks: Vec<String>,
}

impl TrainSample {
    /// A stable key for caching the teacher's output for this sample.
    pub fn key(&self) -> String {
        let mut h = Sha256::new();
        h.update(serde_json::to_vec(self).unwrap_or_default());
        hex::encode(h.finalize())
    }
}

/// Which part of the data a draw comes from: training and validation never share an entry
/// of a data file, nor a synthetic seed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Split {
    /// What training steps learn from.
    Train,
    /// Held-out samples that pick the best checkpoint.
    Validation,
}

/// How samples are drawn.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct SampleSpec {
    /// Data files in the shared format (optionally `FILE#A..B`, an entry range), or synthetic
    /// sets (`synth:biography`, `synth:niah[:K]`).
    pub files: Vec<PathBuf>,
    /// Samples to draw.
    pub count: usize,
    /// The smallest k of the drawn k: people per biography set (uniform in k_min..=k_max);
    /// for data files with `distractors`, the number of documents to fill up to.
    pub k_min: usize,
    /// The largest k (inclusive).
    pub k_max: usize,
    /// Paragraphs kept per data-file entry: its supporting ones, then others at random up to
    /// this many, in the entry's order (0, and absent in older configs: all, as the reference).
    #[serde(default)]
    pub max_docs: usize,
    /// Questions per biography set (distinct, each about one of its people; at most 6 per
    /// person). Data-file entries have one, or up to this many with `title_questions` (absent
    /// in older configs: 1).
    #[serde(default = "one")]
    pub questions: usize,
    /// Documents are cut to this many tokens (0: no cut); windows (`chunk_tokens`) are not.
    pub max_doc_tokens: usize,
    /// Probability of a generic instruction instead of the entry's question (default 0).
    pub generic_task_prob: f64,
    /// Data-file entries are re-cut into windows of this many tokens of their joined texts
    /// (0: documents as they are; absent in older configs). Synthetic sets are not re-cut.
    #[serde(default)]
    pub chunk_tokens: usize,
    /// When an entry has fewer documents than the drawn k, fill up to k with random documents
    /// of other entries (distractors) and shuffle their order (absent in older configs: off).
    #[serde(default)]
    pub distractors: bool,
    /// Lowercase the documents (titles and texts) of data files, as the evaluation's MuSiQue
    /// passages are (absent in older configs: off). Questions keep their case.
    #[serde(default)]
    pub lowercase_docs: bool,
    /// The data files that `chunk_tokens` and `lowercase_docs` reshape, among `files`: e.g.
    /// MuSiQue into musique_s's lowercased windows while HotpotQA keeps its titled paragraphs
    /// as its evaluation has them (empty, and absent in older configs: every data file).
    #[serde(default)]
    pub reshape_files: Vec<PathBuf>,
    /// Start of each window after the previous one, in tokens: below `chunk_tokens`, windows
    /// overlap, as musique_s's retrieved chunks do (0, and absent in older configs: equal to
    /// `chunk_tokens`, no overlap).
    #[serde(default)]
    pub chunk_stride: usize,
    /// Training draws of data-file entries also ask about single titled paragraphs by title
    /// ("What does the passage about T say?"), up to `questions` in all with the entry's own
    /// question first: more questions per document pass, from the data's structure only
    /// (absent in older configs: off). Validation draws keep the entry's question alone, so
    /// the best checkpoint is picked on the task itself.
    #[serde(default)]
    pub title_questions: bool,
    /// Training draws of data-file entries also ask the entry's own question followed by
    /// [`REASONING_REQUEST`], over the same document pass: the teacher then reasons over the
    /// passages for tens of tokens before its answer, as the reference recipe's
    /// chain-of-thought teacher answers do, instead of the ~5 tokens of a bare answer
    /// (absent in older configs: off). Validation draws keep the entry's question alone.
    #[serde(default)]
    pub reasoning: bool,
    /// Every this many entries of a data file, the last one is held out for validation (0, and
    /// absent in older configs: [`VALIDATION_EVERY`]).
    #[serde(default)]
    pub holdout_every: usize,
    /// The data files validation draws from, among `files`; the others hold nothing out and
    /// train on every entry (empty, and absent in older configs: all of them).
    #[serde(default)]
    pub val_files: Vec<PathBuf>,
    /// Seed of the draws; the same spec draws the same samples.
    pub seed: u64,
}

fn one() -> usize {
    1
}

/// Cuts `text` to at most `max` tokens (at a token boundary, decoded back to text).
fn cut(model: &Model, text: &str, max: usize) -> Result<String> {
    let ids = model.tokenizer.encode(text)?;
    if max == 0 || ids.len() <= max {
        Ok(text.to_string())
    } else {
        model.tokenizer.decode(&ids[..max])
    }
}

/// A copy of `d` (no id) with its text cut to `max` tokens.
fn cut_document(model: &Model, d: &Document, max: usize) -> Result<Document> {
    Ok(Document {
        title: d.title.clone(),
        text: cut(model, &d.text, max)?,
        is_supporting: d.is_supporting,
        ..Default::default()
    })
}

/// The entry's texts joined by spaces and cut into windows of `size` tokens starting every
/// `stride` tokens (`0 < stride ≤ size`), each an untitled document. Windows stop after the
/// first that reaches the end of the text; a last window shorter than `size / 4` is dropped
/// (unless it is the only one).
fn chunked(model: &Model, ctxs: &[Document], size: usize, stride: usize) -> Result<Vec<Document>> {
    let joined = ctxs.iter().map(|d| d.text.trim()).collect::<Vec<_>>().join(" ");
    let ids = model.tokenizer.encode(&joined)?;
    let n = ids.len();
    if n == 0 {
        return Ok(Vec::new());
    }
    let mut windows = Vec::new();
    let mut start = 0;
    loop {
        let end = (start + size).min(n);
        if windows.is_empty() || end - start >= size / 4 {
            windows.push(&ids[start..end]);
        }
        if end == n {
            break;
        }
        start += stride;
    }
    windows
        .into_iter()
        .map(|w| {
            Ok(Document {
                text: model.tokenizer.decode(w)?,
                ..Default::default()
            })
        })
        .collect()
}

/// Wordings of a question about one titled paragraph (`{}`: its title).
const TITLE_QUESTIONS: [&str; 3] = [
    "What does the passage about {} say?",
    "Who or what is {}?",
    "Give one fact about {} from the passages.",
];

/// Appended to a data-file entry's question with [`SampleSpec::reasoning`]. Qwen2.5-0.5B
/// answers it with a few sentences that name passages and what they say (18-96 tokens, ~40
/// typical, on HotpotQA / MuSiQue training entries), where the bare question gets 3-8.
pub const REASONING_REQUEST: &str =
    " Think step by step: which passages matter, what do they say, and what follows? Then answer.";

/// Up to `n` distinct questions about titled paragraphs of `docs`, each paragraph asked about
/// at most once (in a random order), worded at random.
fn title_questions(docs: &[Document], n: usize, rng: &mut StdRng) -> Vec<String> {
    let mut titles: Vec<&str> = docs.iter().map(|d| d.title.trim()).filter(|t| !t.is_empty()).collect();
    titles.sort_unstable();
    titles.dedup();
    titles.shuffle(rng);
    titles
        .into_iter()
        .take(n)
        .map(|t| TITLE_QUESTIONS[rng.random_range(0..TITLE_QUESTIONS.len())].replace("{}", t))
        .collect()
}

/// Where a sample's documents come from.
enum Entry {
    /// An entry of a data file (or of a fixed synthetic set such as needles), and the token
    /// cut of its documents (0: none).
    Data { sample: Sample, cut: usize },
    /// A fresh biography set, generated at draw time with its questions.
    Biography,
}

/// Indices of the paragraphs kept from an entry of `n`: all when `max` is 0 or ≥ n, else the
/// supporting ones and random others up to `max`, in the entry's order.
fn keep_paragraphs(ctxs: &[Document], max: usize, rng: &mut StdRng) -> Vec<usize> {
    let n = ctxs.len();
    if max == 0 || max >= n {
        return (0..n).collect();
    }
    let (mut keep, mut rest): (Vec<usize>, Vec<usize>) = (0..n).partition(|&i| ctxs[i].is_supporting == Some(true));
    rest.shuffle(rng);
    let room = max.saturating_sub(keep.len());
    keep.extend(rest.into_iter().take(room));
    keep.sort_unstable();
    keep
}

impl SampleSpec {
    /// `count` draws of `k_min..=k_max` documents from `files`, seed 0, with every option off:
    /// one question a draw, documents whole, no generic prompts, windows, distractors,
    /// lowercasing, title or reasoning questions, validation from every file at the default
    /// hold-out rate. Set the rest with struct update syntax.
    pub fn new(files: Vec<PathBuf>, count: usize, k_min: usize, k_max: usize) -> SampleSpec {
        SampleSpec {
            files,
            count,
            k_min,
            k_max,
            max_docs: 0,
            questions: 1,
            max_doc_tokens: 0,
            generic_task_prob: 0.0,
            chunk_tokens: 0,
            distractors: false,
            lowercase_docs: false,
            reshape_files: Vec::new(),
            chunk_stride: 0,
            title_questions: false,
            reasoning: false,
            holdout_every: 0,
            val_files: Vec::new(),
            seed: 0,
        }
    }

    /// Every this many entries of a validation file, the last one is held out.
    fn every(&self) -> usize {
        match self.holdout_every {
            0 => VALIDATION_EVERY,
            n => n,
        }
    }

    fn check(&self) -> Result<()> {
        if self.holdout_every == 1 {
            bail!("holding out every entry leaves nothing to train on (use 2 or more)");
        }
        if let Some(f) = self.val_files.iter().find(|f| !self.files.contains(f)) {
            bail!("validation file {} is not among the training data files", f.display());
        }
        if self.chunk_stride > 0 && (self.chunk_tokens == 0 || self.chunk_stride > self.chunk_tokens) {
            bail!(
                "a window stride of {} needs windows of at least that many tokens (got {}); a larger stride would skip text",
                self.chunk_stride,
                self.chunk_tokens
            );
        }
        if let Some(f) = self.reshape_files.iter().find(|f| !self.files.contains(f)) {
            bail!("reshaped file {} is not among the training data files", f.display());
        }
        if self.k_min == 0 || self.k_min > self.k_max {
            bail!("need 1 ≤ k-min ≤ k-max (got {}..{})", self.k_min, self.k_max);
        }
        if self.questions == 0 {
            bail!("need at least one question per sample");
        }
        if !(0.0..=1.0).contains(&self.generic_task_prob) {
            bail!(
                "the generic-task probability must lie in [0, 1] (got {})",
                self.generic_task_prob
            );
        }
        Ok(())
    }

    /// The entries of every file, those of `split` only.
    fn entries(&self, model: &Model, split: Split) -> Result<Vec<Entry>> {
        let stride = match self.chunk_stride {
            0 => self.chunk_tokens,
            s => s,
        };
        let mut entries = Vec::new();
        // Data-file entries of the training split, to size the validation mixture.
        let mut train_entries = 0usize;
        for f in &self.files {
            let name = f.to_string_lossy();
            if name == "synth:biography" {
                entries.extend((0..self.count).map(|_| Entry::Biography));
                continue;
            }
            let seed = self.seed.wrapping_add(match split {
                Split::Train => SYNTH_SEED_OFFSET,
                Split::Validation => VALIDATION_SEED_OFFSET,
            });
            let (_, loaded) = load_dataset(&name, usize::MAX, seed)?;
            let synthetic = name.starts_with("synth:");
            let every = self.every();
            let holds_out = self.val_files.is_empty() || self.val_files.contains(f);
            let reshaped = !synthetic && (self.reshape_files.is_empty() || self.reshape_files.contains(f));
            for (i, mut s) in loaded.into_iter().enumerate() {
                let validation = holds_out && i % every == every - 1;
                if synthetic || !validation {
                    train_entries += 1;
                }
                if !synthetic && validation != (split == Split::Validation) {
                    continue;
                }
                if reshaped && self.lowercase_docs {
                    for d in &mut s.ctxs {
                        d.title = d.title.to_lowercase();
                        d.text = d.text.to_lowercase();
                    }
                }
                let windows = reshaped && self.chunk_tokens > 0;
                if windows {
                    s.ctxs = chunked(model, &s.ctxs, self.chunk_tokens, stride)?;
                }
                if !s.ctxs.is_empty() {
                    let cut = if windows { 0 } else { self.max_doc_tokens };
                    entries.push(Entry::Data { sample: s, cut });
                }
            }
        }
        let data_entries = entries.iter().filter(|e| matches!(e, Entry::Data { .. })).count();
        if split == Split::Validation && data_entries > 0 && train_entries > 0 {
            // Biography sets and data-file entries in the training mixture's proportion
            // (`count` sets against the files' training entries), so that the best checkpoint
            // is picked on the mixture it was trained on, not on biographies alone.
            let keep = (self.count * data_entries).div_ceil(train_entries);
            let mut seen = 0;
            entries.retain(|e| {
                seen += usize::from(matches!(e, Entry::Biography));
                !matches!(e, Entry::Biography) || seen <= keep
            });
        }
        if entries.is_empty() {
            match split {
                Split::Train => bail!("no entries with documents in the training data"),
                Split::Validation => bail!(
                    "no validation entries: every {n}th entry of a validation data file is held out, so such a file needs at least {n}",
                    n = self.every()
                ),
            }
        }
        Ok(entries)
    }
}

/// Draws `count` samples of `split`, cycling over the entries of the files in a seeded order.
/// Deterministic for a spec.
pub fn draw_samples(model: &Model, spec: &SampleSpec, split: Split, count: usize) -> Result<Vec<TrainSample>> {
    spec.check()?;
    let entries = spec.entries(model, split)?;
    let mut rng = StdRng::seed_from_u64(spec.seed.wrapping_add(match split {
        Split::Train => SYNTH_SEED_OFFSET,
        Split::Validation => VALIDATION_SEED_OFFSET,
    }));
    let mut order: Vec<usize> = (0..entries.len()).collect();
    let mut out = Vec::with_capacity(count);
    while out.len() < count {
        order.shuffle(&mut rng);
        for &e in &order {
            if out.len() == count {
                break;
            }
            let want = rng.random_range(spec.k_min..=spec.k_max);
            let (entry, cut) = match &entries[e] {
                Entry::Biography => {
                    let (docs, tasks) = biography_questions(&mut rng, want, spec.questions, BioStyle::Training);
                    out.push(TrainSample { docs, tasks });
                    continue;
                }
                Entry::Data { sample, cut } => (sample, *cut),
            };
            let keep = keep_paragraphs(&entry.ctxs, spec.max_docs, &mut rng);
            let mut docs = keep
                .iter()
                .map(|&i| cut_document(model, &entry.ctxs[i], cut))
                .collect::<Result<Vec<_>>>()?;
            let others: Vec<(&Sample, usize)> = entries
                .iter()
                .enumerate()
                .filter_map(|(o, x)| match x {
                    Entry::Data { sample, cut } if o != e => Some((sample, *cut)),
                    _ => None,
                })
                .collect();
            if spec.distractors && want > docs.len() && !others.is_empty() {
                while docs.len() < want {
                    let (other, other_cut) = others[rng.random_range(0..others.len())];
                    let other = &other.ctxs;
                    let mut d = cut_document(model, &other[rng.random_range(0..other.len())], other_cut)?;
                    d.is_supporting = None;
                    docs.push(d);
                }
                docs.shuffle(&mut rng);
            }
            let generic = entry.question.trim().is_empty() || rng.random_bool(spec.generic_task_prob);
            let task = if generic {
                GENERIC_TASKS[rng.random_range(0..GENERIC_TASKS.len())].to_string()
            } else {
                entry.question.clone()
            };
            let mut tasks = vec![task];
            if spec.reasoning && !generic && split == Split::Train {
                tasks.push(format!("{}{REASONING_REQUEST}", entry.question));
            }
            if spec.title_questions && split == Split::Train {
                tasks.extend(title_questions(&docs, spec.questions - 1, &mut rng));
            }
            out.push(TrainSample { docs, tasks });
        }
    }
    Ok(out)
}
