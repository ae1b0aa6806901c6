//! Runtime tests on tiny random-weight models written by the test itself (Llama and Qwen2
//! layouts, HF safetensors path): KV-cache equivalences, masks, rope, gradients, CLI errors.

mod common;

use candle_core::{D, Device, Tensor, Var};
use kvpacket::adapter::BridgePlace;
use kvpacket::model::tiny::{TinySpec, max_abs_diff, write_tiny_model};
use kvpacket::model::{Arch, AttnMask, Input, Model, Rows, Segment, WeightMode};
use std::path::PathBuf;
use std::sync::Arc;

fn tiny(spec: TinySpec, name: &str) -> (Model, PathBuf) {
    let dir = common::scratch("tiny", name);
    write_tiny_model(&dir, spec).unwrap();
    (Model::load(&dir, WeightMode::F32).unwrap(), dir)
}

fn llama() -> Model {
    tiny(TinySpec::default(), "llama").0
}

fn qwen() -> Model {
    let spec = TinySpec {
        arch: Arch::Qwen2,
        tie_embeddings: false,
        heads: 4,
        kv_heads: 1,
        ..Default::default()
    };
    tiny(spec, "qwen").0
}

fn max_diff(a: &Tensor, b: &Tensor) -> f32 {
    max_abs_diff(a, b).unwrap()
}

fn tokens(m: &Model, text: &str) -> Vec<u32> {
    m.tokenizer.encode(text).unwrap()
}

#[test]
fn incremental_decoding_equals_one_full_forward() {
    for m in [llama(), qwen()] {
        let ids = tokens(&m, "the cat sat on the mat and then the dog");
        let mut full = m.new_cache(64);
        let all = m.prefill(&ids, &mut full, &Rows::All).unwrap().unwrap();
        let mut inc = m.new_cache(64);
        let split = 4;
        m.prefill(&ids[..split], &mut inc, &Rows::None).unwrap();
        for (i, &t) in ids[split..].iter().enumerate() {
            let l = m.prefill(&[t], &mut inc, &Rows::Last).unwrap().unwrap();
            let want = all.get(split + i).unwrap().unsqueeze(0).unwrap();
            assert!(max_diff(&l, &want) < 1e-4, "step {i}: {}", max_diff(&l, &want));
        }
        assert_eq!(inc.len(), ids.len());
    }
}

/// `bf16-gguf-decode` on a folder: prefill (more than 8 rows) runs the bf16 copies, close to
/// f32 but not equal; single-token decode stays on the f32 matrices, equal to f32's. Without
/// AVX512-BF16 the mode is refused at load with a clear error.
#[test]
fn bf16_copies_serve_prefill_and_leave_decode_on_f32() {
    use kvpacket::model::product_bf16::PackedBf16;
    for (spec, name) in [
        (TinySpec::default(), "bf16-llama"),
        (
            TinySpec {
                arch: Arch::Qwen2,
                tie_embeddings: false,
                heads: 4,
                kv_heads: 1,
                ..Default::default()
            },
            "bf16-qwen",
        ),
    ] {
        let (f32m, dir) = tiny(spec, name);
        if !PackedBf16::available() {
            let e = Model::load(&dir, WeightMode::Bf16GgufDecode).err().unwrap().to_string();
            assert!(e.contains("AVX512-BF16"), "{e}");
            continue;
        }
        let bf16 = Model::load(&dir, WeightMode::Bf16GgufDecode).unwrap();
        let ids = tokens(&f32m, "the cat sat on the mat and then the dog ran to the old red barn");
        assert!(ids.len() > 8);
        let run = |m: &Model| {
            let mut cache = m.new_cache(64);
            let all = m.prefill(&ids, &mut cache, &Rows::All).unwrap().unwrap();
            let next = m.prefill(&ids[..1], &mut cache, &Rows::Last).unwrap().unwrap();
            (all, next)
        };
        let ((all32, _), (all16, _)) = (run(&f32m), run(&bf16));
        // bf16 keeps 8 bits of each operand: a relative error of ~2^-9 per product, which the
        // random weights carry through the layers to logits of a few tens.
        let (d, scale) = (
            max_diff(&all32, &all16),
            all32.abs().unwrap().max_all().unwrap().to_scalar::<f32>().unwrap(),
        );
        assert!(
            d > 0.0 && d < 0.02 * scale,
            "{name}: prefill logits differ by {d} of {scale}"
        );
        // The same cache contents through f32 decode: one token on each cache of f32's prefill.
        let mut c32 = f32m.new_cache(64);
        f32m.prefill(&ids, &mut c32, &Rows::None).unwrap();
        let mut c16 = bf16.new_cache(64);
        f32m.prefill(&ids, &mut c16, &Rows::None).unwrap();
        let a = f32m.prefill(&ids[..1], &mut c32, &Rows::Last).unwrap().unwrap();
        let b = bf16.prefill(&ids[..1], &mut c16, &Rows::Last).unwrap().unwrap();
        assert_eq!(max_diff(&a, &b), 0.0, "{name}: decode left f32");
    }
}

#[test]
fn block_diagonal_mask_equals_separate_runs_with_shifted_positions() {
    let m = qwen();
    let a = tokens(&m, "first block of text");
    let b = tokens(&m, "then the second one");
    let ab: Vec<u32> = a.iter().chain(&b).copied().collect();
    let pos: Vec<i64> = (0..ab.len() as i64).collect();
    let mask = AttnMask::segments(0, &[Segment::Isolated(a.len()), Segment::Isolated(b.len())]).unwrap();
    let mut c = m.new_cache(64);
    let joint = m
        .forward(Input::Tokens(&ab), &pos, &mask, &mut c, &Rows::All)
        .unwrap()
        .unwrap();
    let mut ca = m.new_cache(64);
    let la = m.prefill(&a, &mut ca, &Rows::All).unwrap().unwrap();
    let posb: Vec<i64> = (a.len() as i64..ab.len() as i64).collect();
    let mut cb = m.new_cache(64);
    let lb = m
        .forward(
            Input::Tokens(&b),
            &posb,
            &AttnMask::causal(0, b.len()),
            &mut cb,
            &Rows::All,
        )
        .unwrap()
        .unwrap();
    let got = Tensor::cat(&[la, lb], 0).unwrap();
    assert!(max_diff(&joint, &got) < 1e-4, "{}", max_diff(&joint, &got));
}

#[test]
fn rerotating_keys_equals_computing_at_shifted_positions() {
    let m = llama();
    let b = tokens(&m, "a block to move");
    let s = 37i64;
    let run = |start: i64| {
        let pos: Vec<i64> = (start..start + b.len() as i64).collect();
        let mut c = m.new_cache(64);
        m.forward(
            Input::Tokens(&b),
            &pos,
            &AttnMask::causal(0, b.len()),
            &mut c,
            &Rows::None,
        )
        .unwrap();
        c
    };
    let (local, direct) = (run(0), run(s));
    let heads = m.config.n_kv_heads;
    for l in 0..m.config.n_layers {
        let (x, y) = (local.layer(l), direct.layer(l));
        let mut k = x.k.clone();
        m.rope_table(&[s]).apply(&mut k, heads);
        let err = k.iter().zip(&y.k).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
        assert!(err < 1e-5, "layer {l}: rotated keys differ by {err}");
        let verr = x.v.iter().zip(&y.v).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
        assert!(verr < 1e-5, "layer {l}: values differ by {verr}");
    }
}

/// Training products in bf16 (`train --bf16-products`): the loss and the input gradient stay
/// within bf16 rounding of f32's, with and without per-layer recomputation, while inference
/// (teacher, validation) keeps its f32 products exactly. Without AVX512-BF16 packing is refused
/// with a clear error.
#[test]
fn bf16_training_products_track_the_f32_gradient_and_leave_inference_alone() {
    for (mut m, name) in [(llama(), "llama"), (qwen(), "qwen")] {
        if !kvpacket::model::product_bf16::PackedBf16::available() {
            let e = m.weights.pack_bf16_training().unwrap_err().to_string();
            assert!(e.contains("AVX512-BF16"), "{e}");
            continue;
        }
        let ids = tokens(&m, "soft tokens then some text here and a question at the end");
        let n = ids.len();
        let x = m.embed(&ids).unwrap();
        let pos: Vec<i64> = (0..n as i64).collect();
        let mask = Arc::new(AttnMask::segments(0, &[Segment::Isolated(4), Segment::Global(n - 4)]).unwrap());
        let rows: Vec<usize> = (n - 5..n - 1).collect(); // each row's next token
        let target = Tensor::new(&ids[n - 4..], &Device::Cpu).unwrap();
        let loss = |logits: &Tensor| -> anyhow::Result<Tensor> {
            let lp = candle_nn::ops::log_softmax(logits, D::Minus1)?;
            Ok(lp.gather(&target.unsqueeze(1)?, 1)?.neg()?.sum_all()?)
        };
        let prefill = |m: &Model| m.prefill(&ids, &mut m.new_cache(64), &Rows::All).unwrap().unwrap();
        let run = |m: &Model, ckpt: bool| {
            m.loss_and_input_grad(&x, &pos, &mask, &rows, &loss, ckpt, None)
                .unwrap()
        };
        let (logits32, g32) = (prefill(&m), run(&m, false));
        assert!(!m.weights.trains_in_bf16());
        m.weights.pack_bf16_training().unwrap();
        assert!(m.weights.trains_in_bf16());
        assert_eq!(max_diff(&prefill(&m), &logits32), 0.0, "{name}: inference changed");
        let norm = |t: &Tensor| t.sqr().unwrap().sum_all().unwrap().to_scalar::<f32>().unwrap().sqrt();
        for ckpt in [false, true] {
            let g16 = run(&m, ckpt);
            let rel_loss = (g16.loss - g32.loss).abs() / g32.loss.abs();
            let rel_grad = norm(&(&g16.x - &g32.x).unwrap()) / norm(&g32.x);
            // bf16 keeps 8 bits of each operand (relative error ~2^-9 per product), carried
            // through the random layers to logits of tens (here: loss 0.15% / 0.06%, gradient
            // 2.6% / 0.9% for llama / qwen); a wrong matrix or orientation would be O(1).
            assert!(
                rel_loss > 0.0 && rel_loss < 0.01,
                "{name} ckpt {ckpt}: loss {} vs {}",
                g16.loss,
                g32.loss
            );
            assert!(
                rel_grad < 0.05,
                "{name} ckpt {ckpt}: gradient off by {rel_grad} of its norm"
            );
        }
    }
}

#[test]
fn checkpointed_gradient_matches_full_graph_and_finite_differences() {
    let m = qwen();
    let ids = tokens(&m, "soft tokens then text here");
    let n = ids.len();
    let x = m.embed(&ids).unwrap();
    let pos: Vec<i64> = (0..n as i64).collect();
    let mask = Arc::new(AttnMask::segments(0, &[Segment::Isolated(3), Segment::Global(n - 3)]).unwrap());
    let rows: Vec<usize> = (n - 4..n).collect();
    let target = Tensor::new(&ids[n - 4..], &Device::Cpu).unwrap();
    let loss = |logits: &Tensor| -> anyhow::Result<Tensor> {
        let lp = candle_nn::ops::log_softmax(logits, D::Minus1)?;
        Ok(lp.gather(&target.unsqueeze(1)?, 1)?.neg()?.sum_all()?)
    };
    let g = m
        .loss_and_input_grad(&x, &pos, &mask, &rows, &loss, true, None)
        .unwrap();
    let (value, grad) = (g.loss, g.x);
    let g2 = m
        .loss_and_input_grad(&x, &pos, &mask, &rows, &loss, false, None)
        .unwrap();
    let (value2, grad2) = (g2.loss, g2.x);
    assert!((value - value2).abs() < 1e-5);
    assert!(max_diff(&grad, &grad2) < 1e-5, "{}", max_diff(&grad, &grad2));
    let xv = Var::from_tensor(&x).unwrap();
    let full = loss(&m.forward_graph(xv.as_tensor(), &pos, &mask, &rows).unwrap()).unwrap();
    assert!((full.to_scalar::<f32>().unwrap() - value).abs() < 1e-4);
    let g_full = full.backward().unwrap();
    let g_full = g_full.get(xv.as_tensor()).unwrap();
    assert!(max_diff(&grad, g_full) < 1e-4, "{}", max_diff(&grad, g_full));
    // Central finite differences in f64 of the f32 loss, on a few coordinates.
    let xs = x.to_vec2::<f32>().unwrap();
    let gs = grad.to_vec2::<f32>().unwrap();
    let eval = |xs: &Vec<Vec<f32>>| -> f64 {
        let t = Tensor::new(xs.clone(), &Device::Cpu).unwrap();
        loss(&m.forward_graph(&t, &pos, &mask, &rows).unwrap())
            .unwrap()
            .to_scalar::<f32>()
            .unwrap() as f64
    };
    for &(r, c) in &[(0usize, 3usize), (1, 10), (4, 0), (n - 2, 63)] {
        let h = 1e-2f32;
        let mut p = xs.clone();
        p[r][c] += h;
        let mut q = xs.clone();
        q[r][c] -= h;
        let fd = (eval(&p) - eval(&q)) / (2.0 * h as f64);
        let an = gs[r][c] as f64;
        assert!(
            (fd - an).abs() < 2e-2 * (1.0 + an.abs()),
            "({r},{c}): finite difference {fd} vs gradient {an}"
        );
    }
    // Rows in the isolated block get gradient only through later rows that see them.
    assert!(gs[0].iter().any(|&g| g != 0.0));
}

#[test]
fn llama3_rope_scaling_and_config_checks() {
    let spec = TinySpec {
        llama3_scaling: true,
        ..Default::default()
    };
    let (m, _) = tiny(spec, "llama3");
    let s = m.config.rope_scaling.expect("rope_scaling parsed");
    assert_eq!(s.factor, 8.0);
    let f = m.config.inv_freqs();
    let hd = m.config.head_dim;
    for (i, &got) in f.iter().enumerate() {
        let base = 1.0 / 10000f64.powf(2.0 * i as f64 / hd as f64);
        let wavelen = 2.0 * std::f64::consts::PI / base;
        // orig 64, low 1, high 4: wavelengths < 16 unchanged, > 64 divided by 8.
        if wavelen < 16.0 {
            assert!((got as f64 - base).abs() < 1e-7);
        } else if wavelen > 64.0 {
            assert!((got as f64 - base / 8.0).abs() < 1e-7);
        } else {
            assert!(got as f64 <= base && got as f64 >= base / 8.0);
        }
    }
    let ids = tokens(&m, "hello there");
    let g = m.generate(&ids, 5).unwrap();
    assert!(g.tokens.len() <= 5);
}

#[test]
fn chat_template_tokenizer_and_generation_work_end_to_end() {
    let m = llama();
    let text = m.chat_template().unwrap().user_turn("hi").unwrap();
    assert_eq!(text, "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n");
    let ids = m.encode_prompt(&text).unwrap();
    assert_eq!(
        ids[0] as usize,
        m.tokenizer.vocab_size() - 2,
        "<|im_start|> is one special token"
    );
    assert_eq!(m.tokenizer.decode(&tokens(&m, "the therein")).unwrap(), "the therein");
    let g = m.generate(&ids, 8).unwrap();
    assert_eq!(g.prompt_tokens, ids);
    let mut again = m.generate(&ids, 8).unwrap();
    again.prefill_ms = g.prefill_ms;
    again.decode_tokens_per_s = g.decode_tokens_per_s;
    assert_eq!(again.tokens, g.tokens, "greedy generation is deterministic");
}

#[test]
fn bad_inputs_give_clear_errors() {
    let m = llama();
    let too_long = vec![1u32; m.config.max_position_embeddings];
    let e = m.generate(&too_long, 4).unwrap_err().to_string();
    assert!(e.contains("context"), "{e}");
    assert!(
        m.embed(&[u32::MAX])
            .unwrap_err()
            .to_string()
            .contains("outside the vocabulary")
    );
    let (_, dir) = tiny(TinySpec::default(), "quant");
    let e = Model::load(&dir, WeightMode::Quantized).err().unwrap().to_string();
    assert!(e.contains("GGUF"), "{e}");
    let mut cfg: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("config.json")).unwrap()).unwrap();
    cfg["architectures"] = serde_json::json!(["GPTNeoXForCausalLM"]);
    std::fs::write(dir.join("config.json"), cfg.to_string()).unwrap();
    let e = Model::load(&dir, WeightMode::F32).err().unwrap().to_string();
    assert!(e.contains("unsupported architecture"), "{e}");
}

/// Runs the CLI: (success, stdout, stderr).
fn cli(args: &[&str]) -> (bool, String, String) {
    cli_with(std::process::Command::new(env!("CARGO_BIN_EXE_kvpacket")).args(args))
}

fn cli_with(cmd: &mut std::process::Command) -> (bool, String, String) {
    let out = cmd.output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into(),
        String::from_utf8_lossy(&out.stderr).into(),
    )
}

#[test]
fn cli_reports_bad_input_in_one_line_without_panicking() {
    let dir = common::scratch("tiny", "cli-inputs");
    let junk = dir.join("junk.gguf");
    std::fs::write(&junk, b"GGUF but not really a gguf file at all").unwrap();
    let bad_utf8 = dir.join("prompt.txt");
    std::fs::write(&bad_utf8, [0xffu8, 0xfe, 0x00, 0x80]).unwrap();
    let (_, tiny_dir) = tiny(TinySpec::default(), "cli");
    let td = tiny_dir.to_str().unwrap();
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (
            vec!["generate", "--model", junk.to_str().unwrap(), "hi"],
            "not a readable GGUF",
        ),
        (vec!["generate", "--model", "/no/such/model.gguf", "hi"], "no model"),
        (
            vec!["generate", "--model", td, "--prompt-file", bad_utf8.to_str().unwrap()],
            "not valid UTF-8",
        ),
    ];
    for (args, want) in cases {
        let (ok, _, err) = cli(&args);
        assert!(!ok, "{args:?} should fail");
        assert!(err.contains(want), "{args:?}: {err}");
        assert!(!err.contains("panicked"), "{args:?}: {err}");
        assert_eq!(err.trim().lines().count(), 1, "{args:?}: {err}");
    }
    let (ok, out, err) = cli(&["generate", "--model", td, "--max-tokens", "4", "--json", "hello"]);
    assert!(ok, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    for k in ["prompt_tokens", "tokens", "text", "prefill_ms", "decode_tokens_per_s"] {
        assert!(v.get(k).is_some(), "missing {k} in {out}");
    }
}

#[test]
fn data_prints_the_samples_eval_reads_in_the_shared_format() {
    let (ok, out, err) = cli(&["data", "synth:biography:3", "--limit", "4", "--seed", "5"]);
    assert!(ok, "{err}");
    let printed = kvpacket::data::parse_samples(&out).unwrap();
    let (_, want) = kvpacket::data::load_dataset("synth:biography:3", 4, 5).unwrap();
    assert_eq!(printed.len(), 4);
    for (p, w) in printed.iter().zip(&want) {
        assert_eq!((&p.question, &p.answers, &p.ctxs), (&w.question, &w.answers, &w.ctxs));
    }
    let (ok, _, err) = cli(&["data", "synth:nothing"]);
    assert!(!ok && err.contains("unknown synthetic dataset"), "{err}");
}

#[test]
fn adapter_init_writes_grows_and_places_a_bridge() {
    let (m, dir) = tiny(TinySpec::default(), "bridge-init");
    let out = common::scratch("tiny", "bridge-init-out");
    let (first, grown) = (out.join("a.safetensors"), out.join("b.safetensors"));
    let model = dir.to_str().unwrap();
    let init = |extra: &[&str], to: &PathBuf| {
        let mut args = vec!["adapter", "init", "--model", model, "--header", "2", "--trailer", "2"];
        args.extend_from_slice(extra);
        args.extend_from_slice(&["--out", to.to_str().unwrap()]);
        let (ok, _, err) = cli(&args);
        assert!(ok, "{err}");
        kvpacket::adapter::Adapter::load(to, Some(&m)).unwrap()
    };
    let a = init(&["--bridge", "3", "--bridge-text", "Read on."], &first);
    assert_eq!((a.meta.n_bridge, a.meta.bridge_place), (3, BridgePlace::BeforeQuestion));
    let b = init(&["--init-from", first.to_str().unwrap(), "--bridge", "5"], &grown);
    assert_eq!(b.meta.n_bridge, 5);
    let rows = |t: &Tensor, r: std::ops::Range<usize>| t.narrow(0, r.start, r.len()).unwrap();
    assert_eq!(max_diff(&rows(&b.bridge, 0..3), &a.bridge), 0.0, "its rows kept");
    assert_eq!(
        max_diff(&rows(&b.bridge, 3..5), &rows(&a.bridge, 0..2)),
        0.0,
        "then repeated"
    );
    assert_eq!(
        a.packet_fingerprint().unwrap(),
        b.packet_fingerprint().unwrap(),
        "same packets"
    );
    // After the question: inside the user's turn, before the template's suffix.
    let q = init(
        &["--bridge", "2", "--bridge-place", "after-question"],
        &out.join("q.safetensors"),
    );
    assert_eq!(q.meta.bridge_place, BridgePlace::AfterQuestion);
    let prompt = kvpacket::methods::layout::segments(&m, &[], "who?").unwrap().prompt;
    let suffix = m.prompt_suffix_tokens().unwrap();
    assert!(!suffix.is_empty() && prompt.ends_with(&suffix));
    let (x, at) = q.question_tail(&m, &prompt, &[]).unwrap();
    assert_eq!(at, prompt.len() - suffix.len());
    assert_eq!(max_diff(&rows(&x, at..at + 2), &q.bridge), 0.0);
    assert_eq!(
        max_diff(&rows(&x, at + 2..x.dim(0).unwrap()), &m.embed(&suffix).unwrap()),
        0.0
    );
    // Adapters written before places existed said `bridge_after_prompt: true`.
    let legacy =
        kvpacket::adapter::Adapter::load(std::path::Path::new("runs/qa-bridge2/best.safetensors"), None).unwrap();
    assert_eq!(legacy.meta.bridge_place, BridgePlace::AfterPrompt);
    let refused = |args: &[&str]| {
        let mut all = vec!["adapter", "init", "--model", model];
        all.extend_from_slice(args);
        all.extend_from_slice(&["--out", first.to_str().unwrap()]);
        let (ok, _, err) = cli(&all);
        assert!(!ok, "{args:?} should fail");
        err
    };
    let err = refused(&["--init-from", grown.to_str().unwrap(), "--bridge", "2"]);
    assert!(err.contains("shrink"), "{err}");
    // A bridge moves only when asked, its rows kept; an adapter without one has none to move.
    let from = [
        "--init-from",
        grown.to_str().unwrap(),
        "--bridge",
        "5",
        "--bridge-place",
        "after-question",
    ];
    let moved = init(&[&from[..], &["--move-bridge"]].concat(), &out.join("m.safetensors"));
    assert_eq!(moved.meta.bridge_place, BridgePlace::AfterQuestion);
    assert_eq!(max_diff(&moved.bridge, &b.bridge), 0.0, "rows kept");
    let err = refused(&from);
    assert!(err.contains("sits before the question"), "{err}");
    let plain = out.join("p.safetensors");
    init(&[], &plain);
    let err = refused(&["--init-from", plain.to_str().unwrap(), "--move-bridge"]);
    assert!(err.contains("no bridge to move"), "{err}");
}

#[test]
fn a_folder_as_current_transformers_writes_it_loads_as_a_chat_model() {
    // No `architectures` (only `model_type`) and the chat template in chat_template.jinja.
    let (m, dir) = tiny(TinySpec::default(), "hf-current");
    let edit = |name: &str, f: &dyn Fn(&mut serde_json::Value)| {
        let p = dir.join(name);
        let mut v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&p).unwrap()).unwrap();
        f(&mut v);
        std::fs::write(&p, v.to_string()).unwrap();
    };
    let template = {
        let p = dir.join("tokenizer_config.json");
        let v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap();
        v["chat_template"].as_str().unwrap().to_string()
    };
    std::fs::write(dir.join("chat_template.jinja"), &template).unwrap();
    edit("tokenizer_config.json", &|v| {
        v.as_object_mut().unwrap().remove("chat_template");
    });
    edit("config.json", &|v| {
        v.as_object_mut().unwrap().remove("architectures");
        v["model_type"] = "llama".into();
    });
    let again = Model::load(&dir, WeightMode::F32).unwrap();
    assert_eq!(again.config.arch, Arch::Llama);
    assert_eq!(
        again.chat_template().unwrap().user_turn("hi").unwrap(),
        m.chat_template().unwrap().user_turn("hi").unwrap()
    );
    edit("config.json", &|v| v["model_type"] = "mamba".into());
    let e = Model::load(&dir, WeightMode::F32).err().unwrap().to_string();
    assert!(e.contains("model_type `mamba`"), "{e}");
}

/// Runs the CLI with `home` as its KVPACKET_HOME.
fn cli_in(home: &std::path::Path, args: &[&str]) -> (bool, String, String) {
    cli_with(
        std::process::Command::new(env!("CARGO_BIN_EXE_kvpacket"))
            .args(args)
            .env("KVPACKET_HOME", home),
    )
}

#[test]
fn every_row_of_the_robustness_table() {
    // docs/robustness.md: each bad input gets a non-zero exit and one clear line, no panic.
    use kvpacket::adapter::Adapter;
    let dir = common::scratch("tiny", "robustness");
    let home = dir.join("home");
    let (m, model_dir) = tiny(TinySpec::default(), "robustness-model");
    let td = model_dir.to_str().unwrap();
    let (other, _) = tiny(
        TinySpec {
            seed: 99,
            ..Default::default()
        },
        "robustness-other",
    );
    let file = |name: &str, bytes: &[u8]| {
        let p = dir.join(name);
        std::fs::write(&p, bytes).unwrap();
        p.display().to_string()
    };
    let adapter = dir.join("adapter.safetensors");
    Adapter::init(&m, 2, 2, 0).unwrap().save(&adapter).unwrap();
    let foreign = dir.join("other.safetensors");
    Adapter::init(&other, 2, 2, 0).unwrap().save(&foreign).unwrap();
    let nan = dir.join("nan.safetensors");
    let mut a = Adapter::init(&m, 2, 2, 0).unwrap();
    a.header = Tensor::from_vec(
        vec![f32::NAN; 2 * m.config.hidden_size],
        (2, m.config.hidden_size),
        &Device::Cpu,
    )
    .unwrap();
    a.save(&nan).unwrap();
    let long = "word ".repeat(m.config.max_position_embeddings + 10);
    let long = file("long.jsonl", serde_json::json!({"text": long}).to_string().as_bytes());
    let empty_doc = file("empty-doc.jsonl", br#"{"text": ""}"#);
    let data = file(
        "data.json",
        serde_json::json!([{"question": "what?", "answers": ["x"], "ctxs": [{"title": "t", "text": "some text"}]}])
            .to_string()
            .as_bytes(),
    );
    let empty = file("empty.json", b"");
    let latin1 = file("latin1.json", &[b'[', 0xe9, b']']);
    let object = file("object.json", br#"{"question": "not a list"}"#);
    // A GGUF file written by candle, cut inside its header.
    let gguf = {
        use candle_core::quantized::{GgmlDType, QTensor, gguf_file};
        let t = QTensor::quantize(
            &Tensor::zeros((4, 32), candle_core::DType::F32, &Device::Cpu).unwrap(),
            GgmlDType::F32,
        )
        .unwrap();
        let arch = gguf_file::Value::String("llama".into());
        let mut bytes = std::io::Cursor::new(Vec::new());
        gguf_file::write(
            &mut bytes,
            &[("general.architecture", &arch)],
            &[("token_embd.weight", &t)],
        )
        .unwrap();
        bytes.into_inner()
    };
    let cut = file("cut.gguf", &gguf[..40]);
    let (a, f, n) = (
        adapter.to_str().unwrap(),
        foreign.to_str().unwrap(),
        nan.to_str().unwrap(),
    );
    let ask = |method: &str, adapter: &str, q: &str| -> Vec<String> {
        [
            "ask",
            "--model",
            td,
            "--docs",
            &data,
            "--sample",
            "0",
            "--method",
            method,
            "--adapter",
            adapter,
            q,
        ]
        .iter()
        .map(|s| s.to_string())
        .collect()
    };
    let eval = |data: &str| -> Vec<String> {
        ["eval", "--model", td, "--data", data, "--methods", "full", "--out"]
            .iter()
            .map(|s| s.to_string())
            .chain([dir.join("eval-out").display().to_string()])
            .collect()
    };
    let pack = |docs: &str| -> Vec<String> {
        ["pack", "--model", td, "--adapter", a, "--docs", docs]
            .iter()
            .map(|s| s.to_string())
            .collect()
    };
    let cases: Vec<(Vec<String>, &std::path::Path, &str)> = vec![
        (pack(&long), &home, "exceed the model's context"),
        (pack(&empty_doc), &home, "a document's text is empty"),
        (ask("kvpacket", a, ""), &home, "the question is empty"),
        (eval(&empty), &home, "is not a JSON array of samples"),
        (eval(&latin1), &home, "is not valid UTF-8"),
        (eval(&object), &home, "is not a JSON array of samples"),
        (ask("cacheblend:1.5", a, "q?"), &home, "within 0..1"),
        (ask("epic:-1", a, "q?"), &home, "whole number"),
        (ask("fast", a, "q?"), &home, "unknown method `fast`"),
        (ask("kvpacket", f, "q?"), &home, "was made for model"),
        (ask("kvpacket", n, "q?"), &home, "not finite"),
        (
            vec!["generate".into(), "--model".into(), cut.clone(), "hi".into()],
            &home,
            "not a readable GGUF",
        ),
        (
            ask("kvpacket", a, "q?"),
            std::path::Path::new("/proc/kvpacket"),
            "creating packet store",
        ),
    ];
    for (args, home, want) in &cases {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let (ok, _, err) = cli_in(home, &args);
        assert!(!ok, "{args:?} should fail");
        assert!(err.contains(want), "{args:?}: {err}");
        assert!(!err.contains("panicked"), "{args:?}: {err}");
        assert_eq!(err.trim().lines().count(), 1, "{args:?}: {err}");
    }
    // A missing (creatable) $KVPACKET_HOME is made.
    let fresh = dir.join("fresh-home");
    let (ok, _, err) = cli_in(
        &fresh,
        &ask("kvpacket", a, "what?")
            .iter()
            .map(String::as_str)
            .collect::<Vec<_>>(),
    );
    assert!(ok, "{err}");
    assert!(fresh.join("packets").is_dir());
}

#[cfg(unix)]
#[test]
fn a_closed_stdout_ends_the_cli_quietly_without_a_panic() {
    // `kvpacket tokenize … | head -1`: the reader goes away. The output (token ids of a long
    // prompt) is larger than a pipe's buffer, so the CLI writes into the closed pipe whatever
    // the timing.
    use std::os::unix::process::ExitStatusExt;
    let (_, model_dir) = tiny(TinySpec::default(), "closed-stdout-model");
    let prompt = model_dir.join("long-prompt.txt");
    std::fs::write(&prompt, "the quick brown fox jumps ".repeat(20_000)).unwrap();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_kvpacket"))
        .args([
            "tokenize",
            "--model",
            model_dir.to_str().unwrap(),
            "--raw",
            "--prompt-file",
        ])
        .arg(&prompt)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!err.contains("panicked"), "{err}");
    assert_eq!(out.status.signal(), Some(libc::SIGPIPE), "{:?}: {err}", out.status);
}
