//! The teacher: the frozen model with full attention over the plain prompt. Its greedy
//! continuation and per-step top-k log-probabilities are cached on disk per sample.

use super::samples::TrainSample;
use crate::io::atomic_write;
use crate::methods::layout::segments;
use crate::model::generate::{argmax, last_row};
use crate::model::{Model, Rows};
use anyhow::Result;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// What the KL needs from the teacher for one sample. For step t (predicting `tokens[t]`),
/// `top_ids[t]`/`top_logp[t]` are the k most likely tokens and their log-probabilities;
/// the remaining mass is implied (1 − Σ exp(top_logp[t])).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct TeacherOut {
    pub tokens: Vec<u32>,
    pub top_ids: Vec<Vec<u32>>,
    pub top_logp: Vec<Vec<f32>>,
}

/// Log-softmax of a row of logits, in f64 for the normaliser.
pub fn log_softmax(logits: &[f32]) -> Vec<f32> {
    let mx = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let lse = mx as f64 + logits.iter().map(|&x| ((x - mx) as f64).exp()).sum::<f64>().ln();
    logits.iter().map(|&x| (x as f64 - lse) as f32).collect()
}

/// The `k` largest entries of `logp` as (ids, values), largest first.
pub fn top_k(logp: &[f32], k: usize) -> (Vec<u32>, Vec<f32>) {
    let mut idx: Vec<u32> = (0..logp.len() as u32).collect();
    let k = k.min(idx.len());
    idx.select_nth_unstable_by(k.saturating_sub(1), |&a, &b| {
        logp[b as usize].total_cmp(&logp[a as usize])
    });
    idx.truncate(k);
    idx.sort_by(|&a, &b| logp[b as usize].total_cmp(&logp[a as usize]));
    let vals = idx.iter().map(|&i| logp[i as usize]).collect();
    (idx, vals)
}

/// Runs the teacher: greedy continuation of up to `max_new` tokens (the stop token, if
/// reached, is kept as the last target) with top-k log-probs at each step.
pub fn run_teacher(model: &Model, sample: &TrainSample, max_new: usize, k: usize) -> Result<TeacherOut> {
    let seg = segments(model, &sample.docs, &sample.task)?;
    let ids = seg.concat();
    let mut cache = model.new_cache(ids.len() + max_new + 1);
    let mut logits = last_row(&model.prefill(&ids, &mut cache, &Rows::Last)?.expect("one row"))?;
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
    Ok(out)
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

    /// The cached teacher output, computing and storing it when missing.
    /// Returns (output, whether it was computed now).
    pub fn get(&self, model: &Model, sample: &TrainSample, max_new: usize, k: usize) -> Result<(TeacherOut, bool)> {
        let p = self.path(model, sample, max_new, k);
        if let Ok(bytes) = std::fs::read(&p)
            && let Ok(t) = serde_json::from_slice::<TeacherOut>(&bytes)
        {
            return Ok((t, false));
        }
        let t = run_teacher(model, sample, max_new, k)?;
        atomic_write(&p, &serde_json::to_vec(&t)?)?;
        Ok((t, true))
    }
}
