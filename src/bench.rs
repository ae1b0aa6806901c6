//! Speed measurements of the runtime on a real model: prefill at several lengths, greedy
//! decode, and a forward+backward into soft-token embeddings (the training step's shape).

use crate::model::{AttnMask, Model, Rows};
use anyhow::Result;
use candle_core::{D, Tensor};
use serde::Serialize;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

/// Results of [`prefill_bench`].
#[derive(Debug, Serialize)]
pub struct PrefillReport {
    /// The model's name or path.
    pub model: String,
    /// Threads the measurements ran on.
    pub threads: usize,
    /// Prefill tokens per second, by prompt length.
    pub prefill_tok_s: BTreeMap<String, f64>,
    /// Prefill with the layers' products in bf16 (`bf16-gguf-decode`), measured where the CPU
    /// has AVX512-BF16 (absent elsewhere).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub prefill_bf16_tok_s: Option<BTreeMap<String, f64>>,
    /// Decode tokens per second after the prompt.
    pub decode_tok_s: f64,
    /// Seconds of one training forward + backward over 1,000 tokens.
    pub fwd_bwd_1000_s: f64,
    /// Peak resident memory of that pass, MB.
    pub fwd_bwd_peak_mb: f64,
    /// The same with gradient checkpointing (per-layer recomputation).
    pub fwd_bwd_ckpt_1000_s: f64,
    /// Peak resident memory of the checkpointed pass, MB.
    pub fwd_bwd_ckpt_peak_mb: f64,
    /// The plain forward+backward with the layers' products in bf16 (`train --bf16-products`),
    /// measured where the CPU has AVX512-BF16 (absent elsewhere).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fwd_bwd_bf16_1000_s: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    /// Peak resident memory of the bf16 pass, MB.
    pub fwd_bwd_bf16_peak_mb: Option<f64>,
}

impl PrefillReport {
    /// A markdown table of the numbers.
    pub fn table(&self) -> String {
        let mut s = format!(
            "model: {}  threads: {}\n\n| measure | value |\n|---|---|\n",
            self.model, self.threads
        );
        for (len, v) in by_length(&self.prefill_tok_s) {
            s += &format!("| prefill {len} tok/s | {v:.1} |\n");
        }
        for (len, v) in self.prefill_bf16_tok_s.iter().flat_map(by_length) {
            s += &format!("| prefill {len} tok/s, bf16 products | {v:.1} |\n");
        }
        s += &format!("| decode tok/s | {:.1} |\n", self.decode_tok_s);
        s += &format!("| fwd+bwd 1000 tokens s | {:.2} |\n", self.fwd_bwd_1000_s);
        s += &format!("| fwd+bwd peak RSS MB | {:.0} |\n", self.fwd_bwd_peak_mb);
        s += &format!("| fwd+bwd checkpointed s | {:.2} |\n", self.fwd_bwd_ckpt_1000_s);
        s += &format!(
            "| fwd+bwd checkpointed peak RSS MB | {:.0} |\n",
            self.fwd_bwd_ckpt_peak_mb
        );
        if let (Some(t), Some(mb)) = (self.fwd_bwd_bf16_1000_s, self.fwd_bwd_bf16_peak_mb) {
            s += &format!("| fwd+bwd 1000 tokens s, bf16 products | {t:.2} |\n");
            s += &format!("| fwd+bwd peak RSS MB, bf16 products | {mb:.0} |\n");
        }
        s
    }
}

/// The entries of a map keyed by prompt length, shortest first (the keys are strings for JSON,
/// whose order would put "2048" before "512").
fn by_length(m: &BTreeMap<String, f64>) -> Vec<(&String, f64)> {
    let mut v: Vec<_> = m.iter().map(|(k, &v)| (k, v)).collect();
    v.sort_by_key(|(k, _)| k.parse::<usize>().unwrap_or(usize::MAX));
    v
}

/// Deterministic, ordinary-text-like token ids (a real text, tokenized, repeated).
fn bench_tokens(model: &Model, n: usize) -> Result<Vec<u32>> {
    let text = "The quick brown fox jumps over the lazy dog while the committee discusses the \
                annual budget of 1,234 million dollars for roads, schools and hospitals. ";
    let base = model.tokenizer.encode(text)?;
    Ok(base.iter().cycle().take(n).copied().collect())
}

/// Peak resident memory of this process, in MB (Linux; 0 elsewhere).
pub fn peak_rss_mb() -> f64 {
    let s = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    s.lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|k| k.parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}

/// Decode speed: `tokens` single-token steps (at most 128) after a 128-token prompt, in
/// tokens/s.
pub fn decode_tok_s(model: &Model, tokens: usize) -> Result<f64> {
    let prompt = bench_tokens(model, 128)?;
    let tokens = tokens.min(prompt.len());
    let mut cache = model.new_cache(128 + tokens + 1);
    model.prefill(&prompt, &mut cache, &Rows::Last)?;
    let t0 = Instant::now();
    for &t in &prompt[..tokens] {
        model.prefill(&[t], &mut cache, &Rows::Last)?;
    }
    Ok(tokens as f64 / t0.elapsed().as_secs_f64())
}

/// Timed repetitions of each prefill length (the median is reported: one run on a shared
/// VM swings by ±20%; the PyTorch and llama.cpp peers in `peers/bench_all.sh` take the same).
pub const PREFILL_REPS: usize = 3;

/// Runs the benchmark: prefill at each length ([`prefill_speeds`]); decode of 64 tokens after
/// a 128-token prompt (median of [`PREFILL_REPS`] runs, as llama-bench's `-r 3`);
/// forward+backward of 1000 positions (16 soft tokens + 984 text tokens, loss =
/// cross-entropy on the last 64 rows; median of 3 in a child process), without and with
/// per-layer recomputation. The bf16 rows are left for the caller.
pub fn prefill_bench(model: &Model, lengths: &[usize]) -> Result<PrefillReport> {
    let prefill = prefill_speeds(model, lengths)?;
    let decode = median(
        (0..PREFILL_REPS)
            .map(|_| decode_tok_s(model, 64))
            .collect::<Result<Vec<f64>>>()?,
    );
    let (fb_s, fb_mb) = fwd_bwd_in_child(&model.source, false, false)?;
    let (ck_s, ck_mb) = fwd_bwd_in_child(&model.source, true, false)?;
    Ok(PrefillReport {
        model: model.source.display().to_string(),
        threads: rayon::current_num_threads(),
        prefill_tok_s: prefill,
        prefill_bf16_tok_s: None,
        decode_tok_s: decode,
        fwd_bwd_1000_s: fb_s,
        fwd_bwd_peak_mb: fb_mb,
        fwd_bwd_ckpt_1000_s: ck_s,
        fwd_bwd_ckpt_peak_mb: ck_mb,
        fwd_bwd_bf16_1000_s: None,
        fwd_bwd_bf16_peak_mb: None,
    })
}

/// Prefill tokens/s at each length: the median of [`PREFILL_REPS`] runs after a 512-token
/// warm-up (weights and activation memory touched once, as in the PyTorch peer).
pub fn prefill_speeds(model: &Model, lengths: &[usize]) -> Result<BTreeMap<String, f64>> {
    let mut prefill = BTreeMap::new();
    let warm = bench_tokens(model, 512)?;
    model.prefill(&warm, &mut model.new_cache(512), &Rows::Last)?;
    for &n in lengths {
        let toks = bench_tokens(model, n)?;
        let speeds = (0..PREFILL_REPS)
            .map(|_| {
                let mut cache = model.new_cache(n);
                let t0 = Instant::now();
                model.prefill(&toks, &mut cache, &Rows::Last)?;
                Ok(n as f64 / t0.elapsed().as_secs_f64())
            })
            .collect::<Result<Vec<f64>>>()?;
        prefill.insert(n.to_string(), median(speeds));
    }
    Ok(prefill)
}

/// Runs `kvpacket bench fwd-bwd` (3 repetitions) of the model at `model` in a fresh process
/// so that its peak memory is its own (model included, as PyTorch's `ru_maxrss` is); returns
/// (median seconds, peak RSS MB).
pub fn fwd_bwd_in_child(model: &std::path::Path, checkpoint: bool, bf16: bool) -> Result<(f64, f64)> {
    let mut cmd = std::process::Command::new(std::env::current_exe()?);
    cmd.args(["bench", "fwd-bwd", "--model"]).arg(model);
    if checkpoint {
        cmd.arg("--checkpoint");
    }
    if bf16 {
        cmd.arg("--bf16");
    }
    let out = cmd.output()?;
    anyhow::ensure!(
        out.status.success(),
        "fwd-bwd benchmark failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout)?;
    Ok((
        v["fwd_bwd_s"].as_f64().unwrap_or(0.0),
        v["peak_mb"].as_f64().unwrap_or(0.0),
    ))
}

/// One forward+backward of `n` positions whose first `soft` rows are trainable embeddings;
/// returns its seconds.
pub fn fwd_bwd(model: &Model, n: usize, soft: usize, loss_rows: usize, checkpoint: bool) -> Result<f64> {
    let toks = bench_tokens(model, n - soft + 1)?;
    let emb = model.embed(&toks[..n - soft])?;
    let adapter = model.embed(&toks[..soft])?;
    let t0 = Instant::now();
    let x = Tensor::cat(&[&adapter, &emb], 0)?;
    let positions: Vec<i64> = (0..n as i64).collect();
    let mask = Arc::new(AttnMask::causal(0, n));
    let rows: Vec<usize> = (n - loss_rows..n).collect();
    let targets = Tensor::new(&toks[n - soft + 1 - loss_rows..], x.device())?;
    let loss = |logits: &Tensor| -> Result<Tensor> {
        let lp = candle_nn::ops::log_softmax(logits, D::Minus1)?;
        Ok(lp.gather(&targets.unsqueeze(1)?, 1)?.neg()?.sum_all()?)
    };
    let grad = model
        .loss_and_input_grad(&x, &positions, &mask, &rows, &loss, checkpoint, None)?
        .x;
    let g_soft = grad.narrow(0, 0, soft)?.abs()?.sum_all()?.to_scalar::<f32>()?;
    anyhow::ensure!(g_soft > 0.0, "no gradient reached the soft tokens");
    Ok(t0.elapsed().as_secs_f64())
}

/// Cost per question of one document set with many questions: shared (teacher prefills the
/// documents once; the student runs them once with a tail per question) against separate
/// (one full run per question). Times in seconds.
#[derive(Debug, serde::Serialize)]
pub struct SharedQuestionsReport {
    /// People in the biography set.
    pub people: usize,
    /// Questions over it.
    pub questions: usize,
    /// Tokens of the set's documents.
    pub document_tokens: usize,
    /// Teacher, documents prefilled once for all questions.
    pub teacher_shared_s: f64,
    /// Teacher, one full run per question.
    pub teacher_separate_s: f64,
    /// Student forward + backward, one pass with a tail per question.
    pub student_shared_s: f64,
    /// Student forward + backward, one pass per question.
    pub student_separate_s: f64,
}

impl SharedQuestionsReport {
    /// A markdown table of the costs per question.
    pub fn table(&self) -> String {
        let q = self.questions as f64;
        let row = |what: &str, shared: f64, separate: f64| {
            format!(
                "| {what} | {:.2} | {:.2} | {:.1}× |\n",
                shared / q,
                separate / q,
                separate / shared
            )
        };
        format!(
            "{} people ({} document tokens), {} questions\n\n| per question, s | shared | separate | saving |\n|---|---|---|---|\n{}{}",
            self.people,
            self.document_tokens,
            self.questions,
            row(
                "teacher (greedy answer, top-k)",
                self.teacher_shared_s,
                self.teacher_separate_s
            ),
            row(
                "student (forward + backward)",
                self.student_shared_s,
                self.student_separate_s
            )
        )
    }
}

/// Measures [`SharedQuestionsReport`] on one generated biography set of `people` people with
/// `questions` questions, with a random 8+8 adapter.
pub fn shared_questions(model: &Model, people: usize, questions: usize) -> Result<SharedQuestionsReport> {
    use crate::train::samples::TrainSample;
    use crate::train::student::{LossKind, StudentMode, student_grad};
    use crate::train::teacher::run_teacher;
    use rand::SeedableRng;
    let mut rng = rand::rngs::StdRng::seed_from_u64(5);
    let (docs, tasks) =
        crate::data::synth::biography_questions(&mut rng, people, questions, crate::data::synth::BioStyle::Training);
    let shared = TrainSample { docs, tasks };
    let singles: Vec<TrainSample> = shared
        .tasks
        .iter()
        .map(|t| TrainSample {
            docs: shared.docs.clone(),
            tasks: vec![t.clone()],
        })
        .collect();
    let adapter = crate::adapter::Adapter::init(model, 8, 8, 0)?;
    let mode = StudentMode {
        loss: LossKind::Kl,
        grad_checkpoint: false,
        freeze_header: false,
        freeze_trailer: false,
        first_token_weight: 1.0,
    };
    let t0 = Instant::now();
    let teachers = run_teacher(model, &shared, 16, 128)?;
    let teacher_shared_s = t0.elapsed().as_secs_f64();
    let t0 = Instant::now();
    for s in &singles {
        run_teacher(model, s, 16, 128)?;
    }
    let teacher_separate_s = t0.elapsed().as_secs_f64();
    let t0 = Instant::now();
    student_grad(model, &adapter, &shared, &teachers, mode)?;
    let student_shared_s = t0.elapsed().as_secs_f64();
    let t0 = Instant::now();
    for (s, t) in singles.iter().zip(&teachers) {
        student_grad(model, &adapter, s, std::slice::from_ref(t), mode)?;
    }
    let student_separate_s = t0.elapsed().as_secs_f64();
    let seg = crate::methods::layout::segments(model, &shared.docs, "")?;
    Ok(SharedQuestionsReport {
        people,
        questions,
        document_tokens: seg.doc_tokens(),
        teacher_shared_s,
        teacher_separate_s,
        student_shared_s,
        student_separate_s,
    })
}

/// Results of [`warm_ask`]: a warm `ask` split into its parts, medians over repetitions, in
/// milliseconds. `ttft_ms` = `compose_ms` + the question's prefill; `floor_ms` is that
/// prefill alone over the already composed cache, so `ttft_ms / floor_ms` is what composing
/// costs on top of the least any method could do with this context.
#[derive(Debug, Serialize)]
pub struct WarmAskReport {
    /// The model's name or path.
    pub model: String,
    /// Threads the measurements ran on.
    pub threads: usize,
    /// Documents composed.
    pub documents: usize,
    /// Tokens of the composed cache (preamble and packets).
    pub context_tokens: usize,
    /// Tokens of the question's prefill.
    pub prompt_tokens: usize,
    /// Repetitions the times are the median of.
    pub reps: usize,
    /// Reading and verifying the packets from a directory store (OS page cache warm).
    pub load_ms: f64,
    /// Placing the packets' KV into the request's cache, with key re-rotation.
    pub compose_ms: f64,
    /// `compose_ms` + the question's prefill.
    pub ttft_ms: f64,
    /// The question's prefill alone over the composed cache.
    pub floor_ms: f64,
}

impl WarmAskReport {
    /// A markdown table of the numbers.
    pub fn table(&self) -> String {
        format!(
            "model: {}  threads: {}  {} documents, {} context tokens, {} prompt tokens, median of {}\n\n\
             | part | ms | / floor |\n|---|---|---|\n\
             | packet load (store, page cache warm) | {:.1} | {:.2} |\n\
             | compose (copy + re-rotate) | {:.1} | {:.2} |\n\
             | TTFT (compose + prompt prefill) | {:.1} | {:.2} |\n\
             | floor (prompt prefill over the composed cache) | {:.1} | 1.00 |\n",
            self.model,
            self.threads,
            self.documents,
            self.context_tokens,
            self.prompt_tokens,
            self.reps,
            self.load_ms,
            self.load_ms / self.floor_ms,
            self.compose_ms,
            self.compose_ms / self.floor_ms,
            self.ttft_ms,
            self.ttft_ms / self.floor_ms,
            self.floor_ms,
        )
    }
}

/// The median of `v`; panics on an empty one.
pub fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Packs `docs` once under `adapter` into a fresh directory store under the system's temp
/// folder (removed afterwards), then runs the warm `kvpacket` path `reps` times: load, compose,
/// prefill `question`; and each time the floor, the same prefill over a copy of the composed
/// cache.
pub fn warm_ask(
    model: &Model,
    adapter: &crate::adapter::Adapter,
    docs: &[crate::data::Document],
    question: &str,
    reps: usize,
) -> Result<WarmAskReport> {
    use crate::methods::{Method, Packets, Resources};
    anyhow::ensure!(reps > 0, "--reps must be at least 1");
    let dir = std::env::temp_dir().join(format!("kvpacket-bench-ask-{}", std::process::id()));
    let store = crate::store::FsStore::new(dir.clone())?;
    let res = Resources {
        model,
        store: &store,
        kv_dtype: crate::packet::KvDtype::F16,
        cached_only: false,
        decode_room: 1,
    };
    let seg = crate::methods::layout::segments(model, docs, question)?;
    let method = Packets::kvpacket(adapter.clone());
    let measured = (|| -> Result<_> {
        method.prefill(&res, &seg)?;
        let (mut load, mut compose, mut ttft, mut floor) = (vec![], vec![], vec![], vec![]);
        let mut context_tokens = 0;
        for _ in 0..reps {
            let pre = method.prefill(
                &Resources {
                    cached_only: true,
                    ..res
                },
                &seg,
            )?;
            let mut cache = pre.cache.clone();
            cache.truncate(cache.len() - seg.prompt.len());
            cache.reserve(seg.prompt.len() + 1)?;
            let t0 = Instant::now();
            model.prefill(&seg.prompt, &mut cache, &Rows::Last)?;
            floor.push(t0.elapsed().as_secs_f64() * 1e3);
            load.push(pre.acct.load_ms);
            compose.push(pre.acct.compose_ms);
            ttft.push(pre.acct.ttft_ms);
            context_tokens = pre.acct.context_tokens;
        }
        Ok((load, compose, ttft, floor, context_tokens))
    })();
    std::fs::remove_dir_all(&dir).ok();
    let (load, compose, ttft, floor, context_tokens) = measured?;
    Ok(WarmAskReport {
        model: model.source.display().to_string(),
        threads: rayon::current_num_threads(),
        documents: docs.len(),
        context_tokens,
        prompt_tokens: seg.prompt.len(),
        reps,
        load_ms: median(load),
        compose_ms: median(compose),
        ttft_ms: median(ttft),
        floor_ms: median(floor),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_lists_prompt_lengths_shortest_first() {
        let speeds: BTreeMap<String, f64> = [("512", 1.0), ("2048", 2.0), ("4096", 3.0)]
            .iter()
            .map(|&(k, v)| (k.to_string(), v))
            .collect();
        let report = PrefillReport {
            model: "m".into(),
            threads: 2,
            prefill_tok_s: speeds.clone(),
            prefill_bf16_tok_s: Some(speeds),
            decode_tok_s: 0.0,
            fwd_bwd_1000_s: 0.0,
            fwd_bwd_peak_mb: 0.0,
            fwd_bwd_ckpt_1000_s: 0.0,
            fwd_bwd_ckpt_peak_mb: 0.0,
            fwd_bwd_bf16_1000_s: None,
            fwd_bwd_bf16_peak_mb: None,
        };
        let table = report.table();
        let at = |s: &str| table.find(s).unwrap();
        assert!(at("prefill 512 tok/s |") < at("prefill 2048 tok/s |"));
        assert!(at("prefill 2048 tok/s |") < at("prefill 4096 tok/s |"));
        assert!(at("prefill 512 tok/s, bf16") < at("prefill 4096 tok/s, bf16"));
    }
}
