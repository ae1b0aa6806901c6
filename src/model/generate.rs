//! Greedy generation over the KV cache.

use super::{KvCache, Model, Rows};
use anyhow::{Result, bail};
use candle_core::Tensor;
use std::time::Instant;

/// The result of one generation call.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Generation {
    /// The prompt's token ids.
    pub prompt_tokens: Vec<u32>,
    /// Generated token ids.
    pub tokens: Vec<u32>,
    /// Their decoded text.
    pub text: String,
    /// Milliseconds to prefill the prompt (time to first token).
    pub prefill_ms: f64,
    /// Decode speed after the first token.
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

/// How the next token is chosen: greedy when `temperature` is 0 (the default), else drawn
/// from the softmax at that temperature, cut to the smallest set of tokens whose probability
/// reaches `top_p` (nucleus sampling), with a seeded RNG (same seed, same draws).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sampling {
    /// 0: greedy; above 0: softmax temperature.
    pub temperature: f32,
    /// Nucleus mass kept when sampling (1: all tokens).
    pub top_p: f32,
    /// RNG seed of the draws.
    pub seed: u64,
}

impl Default for Sampling {
    fn default() -> Self {
        Self {
            temperature: 0.0,
            top_p: 1.0,
            seed: 0,
        }
    }
}

impl Sampling {
    /// Errors on a negative or non-finite temperature or a top_p outside (0, 1].
    pub fn check(&self) -> Result<()> {
        if !(self.temperature.is_finite() && self.temperature >= 0.0) {
            bail!("temperature must be a finite number ≥ 0 (got {})", self.temperature);
        }
        if !(self.top_p > 0.0 && self.top_p <= 1.0) {
            bail!("top_p must lie in (0, 1] (got {})", self.top_p);
        }
        Ok(())
    }
}

/// Draws tokens as a [`Sampling`] says.
pub struct Sampler {
    sampling: Sampling,
    rng: rand::rngs::StdRng,
}

impl Sampler {
    /// A sampler seeded from `sampling.seed`.
    pub fn new(sampling: Sampling) -> Self {
        use rand::SeedableRng;
        Self {
            sampling,
            rng: rand::rngs::StdRng::seed_from_u64(sampling.seed),
        }
    }

    /// The next token for a row of logits.
    pub fn next(&mut self, logits: &[f32]) -> u32 {
        use rand::RngExt;
        let t = self.sampling.temperature;
        if t == 0.0 {
            return argmax(logits);
        }
        let scaled: Vec<f32> = logits.iter().map(|&x| x / t).collect();
        let mut probs: Vec<(u32, f32)> = log_softmax(&scaled)
            .into_iter()
            .enumerate()
            .map(|(i, lp)| (i as u32, lp.exp()))
            .collect();
        probs.sort_by(|a, b| b.1.total_cmp(&a.1));
        let mut mass = 0.0;
        let keep = probs
            .iter()
            .position(|&(_, p)| {
                mass += p;
                mass >= self.sampling.top_p
            })
            .map_or(probs.len(), |i| i + 1);
        probs.truncate(keep);
        let mut draw = self.rng.random::<f32>() * probs.iter().map(|p| p.1).sum::<f32>();
        for &(id, p) in &probs {
            if draw < p {
                return id;
            }
            draw -= p;
        }
        probs.last().map_or(0, |p| p.0)
    }
}

/// Why decoding ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Finish {
    /// A stop token or a stop string.
    Stop,
    /// The token budget (or the cache's room) ran out.
    Length,
    /// The text callback asked to stop (e.g. the client went away).
    Cancelled,
}

/// What [`decode`] produced.
#[derive(Debug, Clone)]
pub struct Decoded {
    /// Tokens emitted (a stop token is not included).
    pub tokens: Vec<u32>,
    /// Their text, cut before the first stop string.
    pub text: String,
    /// Why decoding stopped.
    pub finish: Finish,
    /// Seconds spent decoding after the first token.
    pub seconds: f64,
}

/// How much of `text` can be shown now: not a trailing partial character (decoded as U+FFFD)
/// nor a trailing part that may still grow into a stop string.
fn settled(text: &str, stops: &[String]) -> usize {
    let end = text.trim_end_matches('\u{FFFD}').len();
    let held = stops
        .iter()
        .filter_map(|s| {
            (1..s.len())
                .rev()
                .find(|&k| s.is_char_boundary(k) && text[..end].ends_with(&s[..k]))
        })
        .max()
        .unwrap_or(0);
    end - held
}

/// Decodes after a prefill whose last logits are `first`: up to `max_new` tokens chosen by
/// `sampler`, stopping at a stop token, at any of `stops` (the text is cut before it), when
/// the cache is full, or when `on_text` returns false. `on_text` receives the text as it
/// settles, in pieces that concatenate to the returned text.
pub fn decode(
    model: &Model,
    cache: &mut KvCache,
    first: &[f32],
    max_new: usize,
    sampler: &mut Sampler,
    stops: &[String],
    on_text: &mut dyn FnMut(&str) -> bool,
) -> Result<Decoded> {
    let t0 = Instant::now();
    let mut tokens = Vec::new();
    let mut shown = 0;
    let mut next = sampler.next(first);
    let (text, finish) = loop {
        if model.tokenizer.stop_ids.contains(&next) || tokens.len() == max_new {
            let finish = if tokens.len() == max_new {
                Finish::Length
            } else {
                Finish::Stop
            };
            let text = model.tokenizer.decode(&tokens)?;
            if text.len() > shown {
                on_text(&text[shown..]);
            }
            break (text, finish);
        }
        tokens.push(next);
        let text = model.tokenizer.decode(&tokens)?;
        let stop_at = stops.iter().filter_map(|s| text.find(s.as_str())).min();
        let ready = stop_at.unwrap_or_else(|| settled(&text, stops));
        if ready > shown && !on_text(&text[shown..ready]) {
            break (text[..ready].to_string(), Finish::Cancelled);
        }
        shown = shown.max(ready);
        if let Some(at) = stop_at {
            break (text[..at].to_string(), Finish::Stop);
        }
        if cache.len() >= cache.capacity() {
            on_text(&text[shown..]);
            break (text, Finish::Length);
        }
        if tokens.len() < max_new {
            let logits = model.prefill(&[next], cache, &Rows::Last)?.expect("one row requested");
            next = sampler.next(&last_row(&logits)?);
        }
    };
    Ok(Decoded {
        tokens,
        text,
        finish,
        seconds: t0.elapsed().as_secs_f64(),
    })
}

/// Greedy decoding after a prefill whose last logits are `first`: emits up to `max_new`
/// tokens, stopping after a stop token (which is not returned). Returns the tokens and the
/// decode time in seconds (the first token's time belongs to the prefill).
pub fn greedy_continue(model: &Model, cache: &mut KvCache, first: &[f32], max_new: usize) -> Result<(Vec<u32>, f64)> {
    let d = decode(
        model,
        cache,
        first,
        max_new,
        &mut Sampler::new(Sampling::default()),
        &[],
        &mut |_| true,
    )?;
    Ok((d.tokens, d.seconds))
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn greedy_is_argmax_and_seeded_sampling_repeats() {
        let logits = [0.1f32, 2.0, 1.9, -3.0];
        assert_eq!(Sampler::new(Sampling::default()).next(&logits), 1);
        let warm = Sampling {
            temperature: 1.0,
            top_p: 1.0,
            seed: 9,
        };
        let draws = |s: Sampling| -> Vec<u32> {
            let mut r = Sampler::new(s);
            (0..200).map(|_| r.next(&logits)).collect()
        };
        assert_eq!(draws(warm), draws(warm), "same seed, same draws");
        let d = draws(warm);
        assert!(d.contains(&1) && d.contains(&2), "both likely tokens are drawn");
        // A nucleus smaller than the top token's mass keeps only the top token.
        assert!(draws(Sampling { top_p: 0.3, ..warm }).iter().all(|&t| t == 1));
        assert!(
            Sampling {
                temperature: -1.0,
                ..warm
            }
            .check()
            .is_err()
        );
        assert!(Sampling { top_p: 0.0, ..warm }.check().is_err());
    }

    #[test]
    fn text_is_held_back_only_while_it_may_become_a_stop_string() {
        let stops = vec!["END".to_string(), "\n\n".to_string()];
        assert_eq!(settled("hello E", &stops), "hello ".len());
        assert_eq!(settled("hello EN", &stops), "hello ".len());
        assert_eq!(settled("hello EX", &stops), "hello EX".len());
        assert_eq!(settled("line\n", &stops), "line".len());
        assert_eq!(settled("caf\u{FFFD}", &[]), "caf".len(), "a partial character waits");
    }
}
