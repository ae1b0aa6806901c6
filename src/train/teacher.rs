//! The teacher: the frozen model with full attention over the plain prompt. For a sample of
//! several questions over one document set, the preamble and documents are prefilled once and
//! every question is answered from that cache. Its greedy continuations and per-step top-k
//! log-probabilities are cached on disk per sample.

use super::samples::TrainSample;
use crate::io::atomic_write;
use crate::methods::layout::segments;
use crate::model::generate::{argmax, last_row, log_softmax, top_k};
use crate::model::{Model, Rows};
use anyhow::{Result, ensure};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// What the KL needs from the teacher for one question. For step t (predicting `tokens[t]`),
/// `top_ids[t]`/`top_logp[t]` are the k most likely tokens and their log-probabilities;
/// the remaining mass is implied (1 − Σ exp(top_logp[t])).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct TeacherOut {
    /// The teacher's greedy answer tokens.
    pub tokens: Vec<u32>,
    /// Per answer step, the k most likely token ids.
    pub top_ids: Vec<Vec<u32>>,
    /// Their log-probabilities, in the same order.
    pub top_logp: Vec<Vec<f32>>,
}

impl TeacherOut {
    /// The outputs of several questions back to back (targets of one student pass).
    pub fn concat(outs: &[TeacherOut]) -> TeacherOut {
        TeacherOut {
            tokens: outs.iter().flat_map(|o| o.tokens.iter().copied()).collect(),
            top_ids: outs.iter().flat_map(|o| o.top_ids.iter().cloned()).collect(),
            top_logp: outs.iter().flat_map(|o| o.top_logp.iter().cloned()).collect(),
        }
    }
}

/// Runs the teacher on every question of `sample`: greedy continuation of up to `max_new`
/// tokens (the stop token, if reached, is kept as the last target) with top-k log-probs at
/// each step. The preamble and documents are prefilled once; each question continues from
/// that cache, which is cut back afterwards, so each answer equals a separate full prefill's.
pub fn run_teacher(model: &Model, sample: &TrainSample, max_new: usize, k: usize) -> Result<Vec<TeacherOut>> {
    ensure!(!sample.tasks.is_empty(), "a training sample needs at least one task");
    let segs = sample
        .tasks
        .iter()
        .map(|t| segments(model, &sample.docs, t))
        .collect::<Result<Vec<_>>>()?;
    let mut shared = segs[0].preamble.clone();
    segs[0].docs.iter().for_each(|d| shared.extend(d));
    let longest = segs.iter().map(|s| s.prompt.len()).max().unwrap_or(0);
    let mut cache = model.new_cache(shared.len() + longest + max_new + 1);
    model.prefill(&shared, &mut cache, &Rows::None)?;
    let mut outs = Vec::with_capacity(segs.len());
    for seg in &segs {
        let mut logits = last_row(&model.prefill(&seg.prompt, &mut cache, &Rows::Last)?.expect("one row"))?;
        let mut out = TeacherOut {
            tokens: vec![],
            top_ids: vec![],
            top_logp: vec![],
        };
        for _ in 0..max_new {
            let lp = log_softmax(&logits);
            let (i, v) = top_k(&lp, k);
            let t = argmax(&logits);
            out.tokens.push(t);
            out.top_ids.push(i);
            out.top_logp.push(v);
            if model.tokenizer.stop_ids.contains(&t) || out.tokens.len() == max_new {
                break;
            }
            logits = last_row(&model.prefill(&[t], &mut cache, &Rows::Last)?.expect("one row"))?;
        }
        cache.truncate(shared.len());
        outs.push(out);
    }
    Ok(outs)
}

/// Teacher outputs cached as JSON files under `dir`, keyed by model, sample and settings.
pub struct TeacherCache {
    dir: PathBuf,
}

impl TeacherCache {
    /// A cache in `dir` (created when first written).
    pub fn new(dir: &Path) -> Self {
        Self { dir: dir.to_path_buf() }
    }

    fn path(&self, model: &Model, sample: &TrainSample, max_new: usize, k: usize) -> PathBuf {
        let fp = &model.fingerprint[..16];
        self.dir
            .join(fp)
            .join(format!("{}-g{max_new}-k{k}.json", &sample.key()[..32]))
    }

    /// The cached teacher outputs (one per task), computing and storing them when missing or
    /// unreadable. Returns (outputs, whether they were computed now).
    pub fn get(
        &self,
        model: &Model,
        sample: &TrainSample,
        max_new: usize,
        k: usize,
    ) -> Result<(Vec<TeacherOut>, bool)> {
        let p = self.path(model, sample, max_new, k);
        if let Ok(bytes) = std::fs::read(&p)
            && let Ok(t) = serde_json::from_slice::<Vec<TeacherOut>>(&bytes)
            && t.len() == sample.tasks.len()
        {
            return Ok((t, false));
        }
        let t = run_teacher(model, sample, max_new, k)?;
        atomic_write(&p, &serde_json::to_vec(&t)?)?;
        Ok((t, true))
    }
}
