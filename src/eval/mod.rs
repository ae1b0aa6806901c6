//! Evaluation: datasets (files or synthetic generators), metrics, a resumable runner that
//! answers every sample with every method, and the report (summary, markdown, plots).

pub mod metrics;
pub mod reference;
pub mod report;

use crate::adapter::Adapter;
use crate::data::Sample;
use crate::methods::layout::segments;
use crate::methods::{Full, Method, Resources};
use crate::model::generate::log_softmax;
use anyhow::{Result, bail};
use indicatif::{ProgressBar, ProgressStyle};
use metrics::{best_f1, exact_match, kl, rouge_l};
use reference::{Reference, ReferenceCache};
use serde::{Deserialize, Serialize};
use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

/// One answered (sample, method) pair: the unit of `results.jsonl`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Record {
    /// The dataset's label: the data file's stem (with its `#range`) or the `synth:` spec.
    pub dataset: String,
    /// Index of the sample in the data file.
    pub sample: usize,
    /// The method's label, e.g. `full`, `none`, `kvpacket:qahdr`.
    pub method: String,
    /// The question asked.
    pub question: String,
    /// The method's answer (its first line for questions).
    pub answer: String,
    /// The sample's gold answers.
    pub gold: Vec<String>,
    /// Best SQuAD token F1 of the answer against a gold answer.
    pub f1: f64,
    /// Overlap counts (common, predicted, gold) with the best gold answer, for micro F1.
    pub overlap: (usize, usize, usize),
    /// 1 when the normalised answer equals a gold answer, else 0.
    pub em: f64,
    /// F1 of this answer against `full`'s answer.
    pub fidelity_f1: f64,
    /// KL(full ‖ method) of the first answer token's distribution.
    pub first_token_kl: f64,
    /// ROUGE-L against the references, for summarization samples (no question) only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rouge_l: Option<f64>,
    /// Time to first token, milliseconds, from packets in memory (loading is `load_ms`).
    pub ttft_ms: f64,
    /// Milliseconds spent reading packets from the store.
    pub load_ms: f64,
    /// Document tokens whose KV was computed for this request.
    pub recomputed_tokens: usize,
    /// Document tokens whose KV came from packets.
    pub reused_tokens: usize,
    /// Forward FLOPs spent on document tokens for this request.
    pub doc_flops: f64,
    /// Tokens of context before the first answer token.
    pub context_tokens: usize,
    /// Fingerprint of the adapter whose packets the method reused ("none" for plain
    /// packets; absent for methods without packets and in records of older runs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub adapter: Option<String>,
}

/// Reads the records of a results file (missing file: none).
pub fn read_records(path: &Path) -> Result<Vec<Record>> {
    crate::io::read_jsonl(path)
}

/// Runs methods over datasets, appending to `DIR/results.jsonl` and skipping pairs already there.
pub struct Runner<'a> {
    /// The model and packet store every method uses.
    pub engine: Resources<'a>,
    /// The methods to run, in order; `full` is the reference of the others.
    pub methods: Vec<Box<dyn Method + 'a>>,
    /// Decode length of question answers.
    pub max_new_tokens: usize,
    /// Decode length of summaries (samples without a question).
    pub summary_tokens: usize,
    /// Directory of `results.jsonl`.
    pub out: PathBuf,
    /// Show a progress bar.
    pub progress: bool,
    /// Where `full`'s answers are cached across runs (None: computed per run).
    pub references: Option<ReferenceCache>,
}

impl Runner<'_> {
    fn results(&self) -> PathBuf {
        self.out.join("results.jsonl")
    }

    /// Answers every sample of `samples` with every method; `full` runs once per sample and
    /// is the fidelity reference (recorded too when listed among the methods). Refuses to
    /// resume a method whose earlier records were made with another adapter.
    pub fn run(&self, dataset: &str, samples: &[Sample]) -> Result<()> {
        self.run_from(dataset, samples, 0)
    }

    /// [`Runner::run`] on samples `first..` only, keeping their indices in the dataset, so
    /// several processes (each with its own `out`) can share one run; their results files
    /// concatenate into one.
    pub fn run_from(&self, dataset: &str, samples: &[Sample], first: usize) -> Result<()> {
        std::fs::create_dir_all(&self.out)?;
        let adapters = self
            .methods
            .iter()
            .map(|m| Ok((m.name(), m.packet_adapter().map(|a| a.fingerprint()).transpose()?)))
            .collect::<Result<HashMap<_, _>>>()?;
        let old = read_records(&self.results())?;
        for r in &old {
            if let (Some(Some(now)), Some(then)) = (adapters.get(&r.method), &r.adapter)
                && now != then
            {
                bail!(
                    "{} holds `{}` answers made with adapter {} but that method now uses adapter {}; \
                     use another --out or another label",
                    self.results().display(),
                    r.method,
                    crate::adapter::short(then),
                    crate::adapter::short(now)
                );
            }
        }
        let done: HashSet<(usize, String)> = old
            .into_iter()
            .filter(|r| r.dataset == dataset)
            .map(|r| (r.sample, r.method))
            .collect();
        let mut file = crate::io::open_jsonl_append(&self.results())?;
        let bar = if self.progress {
            ProgressBar::new(samples.len().saturating_sub(first) as u64)
        } else {
            ProgressBar::hidden()
        };
        bar.set_style(ProgressStyle::with_template(&format!(
            "{dataset} {{bar:30}} {{pos}}/{{len}} [{{elapsed_precise}} < {{eta}}] {{msg}}"
        ))?);
        for (i, s) in samples.iter().enumerate().skip(first) {
            let todo: Vec<&Box<dyn Method + '_>> =
                self.methods.iter().filter(|m| !done.contains(&(i, m.name()))).collect();
            if todo.is_empty() {
                bar.inc(1);
                continue;
            }
            let seg = segments(self.engine.model, &s.ctxs, &s.question)?;
            let max_new = if seg.summary {
                self.summary_tokens
            } else {
                self.max_new_tokens
            };
            // Packets first, untimed, sample by sample (an interrupted run keeps what it
            // answered): the methods then measure reuse only.
            let mut packed = HashSet::new();
            let to_pack: Vec<Adapter> = todo
                .iter()
                .filter(|m| matches!(adapters.get(&m.name()), Some(Some(fp)) if packed.insert(fp)))
                .filter_map(|m| m.packet_adapter())
                .collect();
            if !to_pack.is_empty() {
                self.engine.packet(&Adapter::empty(self.engine.model)?, &seg.preamble)?;
            }
            for a in &to_pack {
                for d in &seg.docs {
                    self.engine.packet(a, d)?;
                }
            }
            let full_todo = todo.iter().any(|m| m.name() == "full");
            // `full` runs here when it is itself being measured; otherwise the cached
            // reference (if any) stands in for it.
            let (full, reference) = match &self.references {
                Some(c) if !full_todo => (None, c.get(&self.engine, &seg, max_new)?),
                cache => {
                    let a = self.engine.answer(&Full, &seg, max_new)?;
                    let r = Reference::from(&a);
                    if let Some(c) = cache {
                        c.store(&self.engine, &seg, max_new, &r)?;
                    }
                    (Some(a), r)
                }
            };
            let ref_lp = log_softmax(&reference.first_logits);
            for m in todo {
                let ans = match &full {
                    Some(a) if m.name() == "full" => a.clone(),
                    _ => self.engine.answer(m.as_ref(), &seg, max_new)?,
                };
                let (f1, overlap) = best_f1(&ans.answer, &s.answers);
                let rec = Record {
                    dataset: dataset.to_string(),
                    sample: i,
                    method: ans.method.clone(),
                    question: s.question.clone(),
                    answer: ans.answer.clone(),
                    gold: s.answers.clone(),
                    f1,
                    overlap,
                    em: exact_match(&ans.answer, &s.answers),
                    fidelity_f1: best_f1(&ans.answer, std::slice::from_ref(&reference.answer)).0,
                    first_token_kl: kl(&ref_lp, &log_softmax(&ans.first_logits)),
                    rouge_l: seg.summary.then(|| rouge_l(&ans.answer, &s.answers)),
                    ttft_ms: ans.acct.ttft_ms,
                    load_ms: ans.acct.load_ms,
                    recomputed_tokens: ans.acct.recomputed_tokens,
                    reused_tokens: ans.acct.reused_tokens,
                    doc_flops: ans.acct.doc_flops,
                    context_tokens: ans.acct.context_tokens,
                    adapter: adapters.get(&ans.method).cloned().flatten(),
                };
                crate::io::append_jsonl(&mut file, &rec)?;
                bar.set_message(format!("{}: {:?}", rec.method, rec.answer));
            }
            bar.inc(1);
        }
        bar.finish_and_clear();
        Ok(())
    }
}
