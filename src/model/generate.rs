//! Greedy generation over the KV cache.

use super::{KvCache, Model, Rows};
use anyhow::{Result, bail};
use candle_core::Tensor;
use std::time::Instant;

/// The result of one generation call.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Generation {
    pub prompt_tokens: Vec<u32>,
    pub tokens: Vec<u32>,
    pub text: String,
    pub prefill_ms: f64,
    pub decode_tokens_per_s: f64,
}

/// Index of the largest logit (the first one on ties, like `torch.argmax`).
pub fn argmax(logits: &[f32]) -> u32 {
    let mut best = 0;
    for (i, &x) in logits.iter().enumerate() {
        if x > logits[best] {
            best = i;
        }
    }
    best as u32
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

/// Last row of a logits tensor as a vector.
pub fn last_row(logits: &Tensor) -> Result<Vec<f32>> {
    let n = logits.dim(0)?;
    Ok(logits.get(n - 1)?.to_vec1::<f32>()?)
}

/// Greedy decoding after a prefill whose last logits are `first`: emits up to `max_new`
/// tokens, stopping after a stop token (which is not returned). Returns the tokens and the
/// decode time in seconds (the first token's time belongs to the prefill).
pub fn greedy_continue(model: &Model, cache: &mut KvCache, first: &[f32], max_new: usize) -> Result<(Vec<u32>, f64)> {
    let mut out = Vec::new();
    let mut next = argmax(first);
    let t0 = Instant::now();
    while out.len() < max_new && !model.tokenizer.stop_ids.contains(&next) {
        out.push(next);
        if out.len() == max_new || cache.len() >= cache.capacity() {
            break;
        }
        let logits = model.prefill(&[next], cache, &Rows::Last)?.expect("one row requested");
        next = argmax(&last_row(&logits)?);
    }
    Ok((out, t0.elapsed().as_secs_f64()))
}

impl Model {
    /// Greedy generation of up to `max_new` tokens after `prompt` (token ids, BOS included
    /// by the caller where wanted). Errors if the prompt does not fit the context.
    pub fn generate(&self, prompt: &[u32], max_new: usize) -> Result<Generation> {
        let ctx = self.config.max_position_embeddings;
        if prompt.is_empty() {
            bail!("the prompt is empty");
        }
        if prompt.len() >= ctx {
            bail!(
                "the prompt has {} tokens but the model's context is {ctx}",
                prompt.len()
            );
        }
        let mut cache = self.new_cache(prompt.len() + max_new);
        let t0 = Instant::now();
        let logits = self
            .prefill(prompt, &mut cache, &Rows::Last)?
            .expect("one row requested");
        let first = last_row(&logits)?;
        let prefill_ms = t0.elapsed().as_secs_f64() * 1e3;
        let (tokens, secs) = greedy_continue(self, &mut cache, &first, max_new)?;
        let steps = tokens.len().saturating_sub(1);
        Ok(Generation {
            prompt_tokens: prompt.to_vec(),
            text: self.tokenizer.decode(&tokens)?,
            tokens,
            prefill_ms,
            decode_tokens_per_s: if secs > 0.0 { steps as f64 / secs } else { 0.0 },
        })
    }
}
