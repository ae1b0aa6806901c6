//! Training on a tiny random model written by the test: loss goes down, only the adapter
//! moves, resume is exact (also with layer recomputation switched on), the student with an
//! empty adapter equals the teacher, and the student's first step equals the composed packets
//! the evaluation answers from.

mod common;

use kvpacket::adapter::{Adapter, AdapterInit, BridgePlace, provenance};
use kvpacket::methods::layout::segments;
use kvpacket::methods::{Method, Packets, Resources};
use kvpacket::model::generate::last_row;
use kvpacket::model::generate::{log_softmax, top_k};
use kvpacket::model::tiny::{TinySpec, write_tiny_model};
use kvpacket::model::{Arch, Model, Rows, WeightMode};
use kvpacket::packet::KvDtype;
use kvpacket::store::{FsStore, LruStore};
use kvpacket::train::samples::{SampleSpec, Split, TrainSample, draw_samples};
use kvpacket::train::student::{LossKind, StudentGrad, StudentMode, loss_from_logits, student_grad, student_rows};
use kvpacket::train::teacher::{TeacherCache, TeacherOut, run_teacher};
use kvpacket::train::{Outcome, RunDir, TrainConfig, Trainer, ValLine, read_log};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

fn tmp(name: &str) -> PathBuf {
    common::scratch("train", name)
}

fn model() -> Model {
    Model::load(
        &common::tiny_model("train", "model", TinySpec::default()),
        WeightMode::F32,
    )
    .unwrap()
}

/// A data file of `n` entries of 4 documents each, written to its own folder `name` (tests
/// run in parallel: no two share a writable path).
fn data_file(name: &str, n: usize) -> PathBuf {
    let entries: Vec<_> = (0..n)
        .map(|i| {
            serde_json::json!({"question": format!("what is thing {i}?"), "answers": ["unused"],
                "ctxs": (0..4).map(|j| serde_json::json!({"title": format!("doc {i}.{j}"),
                    "text": format!("the thing {i} is in the {j} place with the other thing")})).collect::<Vec<_>>()})
        })
        .collect();
    write_data(name, &serde_json::json!(entries))
}

/// Writes `entries` (the shared data format) to a fresh `train.json` and returns its path.
fn write_data(name: &str, entries: &serde_json::Value) -> PathBuf {
    let p = tmp(name).join("train.json");
    std::fs::write(&p, entries.to_string()).unwrap();
    p
}

/// A QA data file of `n` entries ("question I?") of `paragraphs` paragraphs each, titled by
/// `title(i, j)` and marked supporting by `supporting(i, j)`.
fn qa_file(
    name: &str,
    n: usize,
    paragraphs: usize,
    title: impl Fn(usize, usize) -> String,
    supporting: impl Fn(usize, usize) -> bool,
) -> PathBuf {
    let entries: Vec<_> = (0..n)
        .map(|i| {
            serde_json::json!({"question": format!("question {i}?"), "answers": ["unused"],
                "ctxs": (0..paragraphs).map(|j| serde_json::json!({"title": title(i, j),
                    "text": format!("paragraph {j} of entry {i}"),
                    "is_supporting": supporting(i, j)})).collect::<Vec<_>>()})
        })
        .collect();
    write_data(name, &serde_json::json!(entries))
}

fn config(name: &str, batch: usize, epochs: usize) -> TrainConfig {
    TrainConfig {
        samples: SampleSpec {
            generic_task_prob: 0.3,
            seed: 3,
            ..SampleSpec::new(vec![data_file(&format!("{name}-data"), 6)], 4, 2, 3)
        },
        n_header: 2,
        n_trailer: 2,
        init: AdapterInit::Random,
        context_header: false,
        gen_tokens: 6,
        top_k: 16,
        loss: LossKind::Kl,
        lr: 3e-2,
        weight_decay: 0.0,
        batch,
        epochs,
        seed: 5,
        checkpoint_every: 1,
        grad_checkpoint: false,
        freeze_header: false,
        n_bridge: 0,
        freeze_trailer: false,
        bridge_place: BridgePlace::BeforeQuestion,
        bridge_text: kvpacket::adapter::BRIDGE_TEXT.into(),
        first_token_weight: 1.0,
        val_samples: 0,
        val_every: 1,
        patience: 0,
        learn_key_scale: false,
        key_scale_gain: 10.0,
    }
}

fn mode(grad_checkpoint: bool, freeze_header: bool) -> StudentMode {
    StudentMode {
        loss: LossKind::Kl,
        grad_checkpoint,
        freeze_header,
        freeze_trailer: false,
        first_token_weight: 1.0,
    }
}

/// The student with header and trailer frozen: only the tails (bridge included) learn.
fn bridge_only(grad_checkpoint: bool) -> StudentMode {
    StudentMode {
        freeze_trailer: true,
        ..mode(grad_checkpoint, true)
    }
}

fn trainer<'a>(m: &'a Model, cfg: TrainConfig, run: &str) -> Trainer<'a> {
    Trainer {
        model: m,
        config: cfg,
        run: RunDir(tmp(run)),
        teacher_cache: TeacherCache::new(&tmp("teacher")),
        stop: Arc::new(AtomicBool::new(false)),
        progress: false,
    }
}

#[test]
fn a_training_step_lowers_the_loss_and_only_the_adapter_changes() {
    let m = model();
    let t = trainer(&m, config("step", 4, 1), "step");
    let data = t.prepare().unwrap();
    let adapter = Adapter::init(&m, 2, 2, 5).unwrap();
    let loss_of = |a: &Adapter| -> f32 {
        data.iter()
            .map(|(s, te)| student_grad(&m, a, s, te, mode(false, false)).unwrap().loss)
            .sum()
    };
    let before = loss_of(&adapter);
    let g = student_grad(&m, &adapter, &data[0].0, &data[0].1, mode(true, false)).unwrap();
    assert!(
        g.header.iter().any(|&x| x != 0.0) && g.trailer.iter().any(|&x| x != 0.0),
        "adapter gets gradients"
    );
    let emb_before = m.weights.embed.flatten_all().unwrap().to_vec1::<f32>().unwrap();
    let Outcome::Finished(trained) = t.train(false, None).unwrap() else {
        panic!("not finished")
    };
    assert!(loss_of(&trained) < before, "loss {before} did not go down");
    assert_eq!(
        emb_before,
        m.weights.embed.flatten_all().unwrap().to_vec1::<f32>().unwrap(),
        "model is frozen"
    );
    assert_eq!(trained.meta.made_by["kind"], "trained");
    assert_eq!(trained.meta.made_by["steps"], 1);
    assert!(trained.meta.made_by["config"]["samples"]["files"].is_array());
    // `adapter show` names the file a continued run started from (none here: a random start).
    assert!(!provenance(&trained.meta).contains("continued"));
    let mut meta = trained.meta.clone();
    meta.made_by["config"]["init"] = serde_json::to_value(AdapterInit::File {
        path: "runs/x/adapter.safetensors".into(),
        fingerprint: "f".into(),
    })
    .unwrap();
    let line = provenance(&meta);
    assert!(line.contains("continued from runs/x/adapter.safetensors"), "{line}");
    // ... and how the files it reshaped were cut, for those only.
    let samples = &mut meta.made_by["config"]["samples"];
    samples["files"] = serde_json::json!(["synth:biography", "q.json", "m.json"]);
    samples["reshape_files"] = serde_json::json!(["m.json"]);
    samples["chunk_tokens"] = 512.into();
    samples["chunk_stride"] = 200.into();
    samples["lowercase_docs"] = true.into();
    let line = provenance(&meta);
    assert!(
        line.contains("trained on synth:biography + q.json + m.json (512-token windows every 200, lowercased) ("),
        "{line}"
    );
}

#[test]
fn the_memory_check_counts_the_students_rows_and_warns_with_the_way_out() {
    let m = model();
    let mut cfg = config("memory", 4, 1);
    cfg.samples.questions = 2;
    cfg.samples.title_questions = true;
    let t = trainer(&m, cfg, "memory");
    let data = t.prepare().unwrap();
    let adapter = Adapter::init(&m, 2, 2, 5).unwrap();
    for (s, te) in &data {
        let g = student_grad(&m, &adapter, s, te, mode(false, false)).unwrap();
        let scored: usize = te.iter().map(|t| t.tokens.len()).sum();
        assert_eq!(student_rows(&m, [2, 2, 0], s, te).unwrap(), (g.rows, scored));
    }
    let step = t.step_memory(&data).unwrap();
    assert!(step.rows > 0 && step.plain > 0 && step.checkpointed > 0);
    assert_eq!(step.warning(u64::MAX, false), None);
    let warning = step.warning(0, false).unwrap();
    assert!(
        warning.contains("--grad-checkpoint") && warning.contains(&format!("{} rows", step.rows)),
        "{warning}"
    );
    let warning = step.warning(0, true).unwrap();
    assert!(
        !warning.contains("--grad-checkpoint") && warning.contains("--k-max"),
        "{warning}"
    );
}

#[test]
fn a_frozen_header_gives_the_full_paths_loss_and_trailer_gradient() {
    let m = model();
    let t = trainer(&m, config("frozen", 4, 1), "frozen");
    let data = t.prepare().unwrap();
    let adapter = Adapter::init(&m, 2, 2, 5).unwrap();
    for (s, te) in &data {
        for ck in [false, true] {
            let full = student_grad(&m, &adapter, s, te, mode(ck, false)).unwrap();
            let frozen = student_grad(&m, &adapter, s, te, mode(ck, true)).unwrap();
            assert!(
                (full.loss - frozen.loss).abs() <= 1e-4 * full.loss.abs().max(1.0),
                "loss {} vs {}",
                full.loss,
                frozen.loss
            );
            assert!(
                frozen.header.iter().all(|&x| x == 0.0),
                "a frozen header gets no gradient"
            );
            let scale = full.trailer.iter().fold(0f32, |a, &x| a.max(x.abs()));
            assert!(scale > 0.0, "the trailer gets a gradient");
            let diff = full
                .trailer
                .iter()
                .zip(&frozen.trailer)
                .fold(0f32, |a, (x, y)| a.max((x - y).abs()));
            assert!(
                diff <= 1e-3 * scale,
                "trailer gradient differs by {diff} (scale {scale})"
            );
        }
    }
    let mut cfg = config("frozen-run", 4, 1);
    cfg.freeze_header = true;
    let Outcome::Finished(trained) = trainer(&m, cfg, "frozen-run").train(false, None).unwrap() else {
        panic!("not finished")
    };
    let start = Adapter::init(&m, 2, 2, 5).unwrap();
    let rows = |t: &candle_core::Tensor| t.flatten_all().unwrap().to_vec1::<f32>().unwrap();
    assert_eq!(rows(&trained.header), rows(&start.header), "the header did not move");
    assert_ne!(rows(&trained.trailer), rows(&start.trailer), "the trailer moved");
}

/// The bridge-only student's loss and bridge gradient equal the full path's on every sample.
fn bridge_gradient_matches_the_full_paths(m: &Model, adapter: &Adapter, data: &kvpacket::train::Prepared) {
    for (s, te) in data {
        let full = student_grad(m, adapter, s, te, mode(false, false)).unwrap();
        let alone = student_grad(m, adapter, s, te, bridge_only(false)).unwrap();
        assert!(
            (full.loss - alone.loss).abs() <= 1e-4 * full.loss.abs().max(1.0),
            "loss {} vs {}",
            full.loss,
            alone.loss
        );
        assert!(alone.header.iter().chain(&alone.trailer).all(|&x| x == 0.0));
        let scale = full.bridge.iter().fold(0f32, |a, &x| a.max(x.abs()));
        assert!(scale > 0.0, "the bridge gets a gradient");
        let diff = full
            .bridge
            .iter()
            .zip(&alone.bridge)
            .fold(0f32, |a, (x, y)| a.max((x - y).abs()));
        assert!(
            diff <= 1e-3 * scale,
            "bridge gradient differs by {diff} (scale {scale})"
        );
    }
}

#[test]
fn a_bridge_learns_alone_with_the_full_paths_gradient_and_resumes() {
    let m = model();
    let t = trainer(&m, config("bridge", 4, 1), "bridge");
    let data = t.prepare().unwrap();
    for place in [
        BridgePlace::BeforeQuestion,
        BridgePlace::AfterQuestion,
        BridgePlace::AfterPrompt,
    ] {
        let adapter = Adapter::init(&m, 2, 2, 5)
            .unwrap()
            .with_bridge(&m, 3, place, "so the question")
            .unwrap();
        bridge_gradient_matches_the_full_paths(&m, &adapter, &data);
    }
    // A run that trains only a new bridge on top of a start adapter: header and trailer stay,
    // and stopping after one step then resuming gives the uninterrupted run's bridge.
    let start = t.run.0.join("start.safetensors");
    Adapter::init(&m, 2, 2, 5).unwrap().save(&start).unwrap();
    let bridge_cfg = |name: &str| {
        let mut cfg = config(name, 2, 2);
        cfg.init = AdapterInit::File {
            path: start.display().to_string(),
            fingerprint: Adapter::load(&start, None).unwrap().fingerprint().unwrap(),
        };
        cfg.n_bridge = 3;
        cfg.freeze_header = true;
        cfg.freeze_trailer = true;
        cfg
    };
    let Outcome::Finished(straight) = trainer(&m, bridge_cfg("bridge-a"), "bridge-a")
        .train(false, None)
        .unwrap()
    else {
        panic!("not finished")
    };
    let resumed = trainer(&m, bridge_cfg("bridge-b"), "bridge-b");
    assert!(matches!(
        resumed.train(false, Some(1)).unwrap(),
        Outcome::Interrupted(1)
    ));
    let Outcome::Finished(resumed) = resumed.train(true, None).unwrap() else {
        panic!("not finished")
    };
    let rows = |t: &candle_core::Tensor| t.flatten_all().unwrap().to_vec1::<f32>().unwrap();
    let first = Adapter::load(&start, None).unwrap();
    assert_eq!(rows(&straight.header), rows(&first.header), "the header did not move");
    assert_eq!(
        rows(&straight.trailer),
        rows(&first.trailer),
        "the trailer did not move"
    );
    let fresh = first
        .clone()
        .with_bridge(&m, 3, BridgePlace::BeforeQuestion, kvpacket::adapter::BRIDGE_TEXT)
        .unwrap();
    assert_ne!(rows(&straight.bridge), rows(&fresh.bridge), "the bridge moved");
    assert_eq!(
        rows(&straight.bridge),
        rows(&resumed.bridge),
        "resuming changed the bridge"
    );
    assert_eq!(
        straight.packet_fingerprint().unwrap(),
        first.packet_fingerprint().unwrap(),
        "a bridge shares its start's packets"
    );
    assert_ne!(straight.fingerprint().unwrap(), first.fingerprint().unwrap());
    let saved = t.run.0.join("bridged.safetensors");
    straight.save(&saved).unwrap();
    let back = Adapter::load(&saved, Some(&m)).unwrap();
    assert_eq!(back.meta.n_bridge, 3);
    assert_eq!(rows(&back.bridge), rows(&straight.bridge));
    assert_eq!(back.fingerprint().unwrap(), straight.fingerprint().unwrap());
}

#[test]
fn resume_reproduces_the_uninterrupted_run() {
    let m = model();
    let straight = trainer(&m, config("resume", 2, 2), "straight");
    let Outcome::Finished(a) = straight.train(false, None).unwrap() else {
        panic!()
    };
    // Rerunning a finished run (as runs/queue.sh does) rewrites its log from the checkpoint:
    // byte for byte, or every committed run folder would show changes.
    let log = std::fs::read(straight.run.log()).unwrap();
    assert!(matches!(straight.train(true, None).unwrap(), Outcome::Finished(_)));
    assert_eq!(
        std::fs::read(straight.run.log()).unwrap(),
        log,
        "the log changed on resume"
    );
    let split = trainer(&m, config("resume", 2, 2), "split");
    assert!(matches!(split.train(false, Some(2)).unwrap(), Outcome::Interrupted(2)));
    // A run killed for memory resumes with layer recomputation on: the same run.
    let recomputing = TrainConfig {
        grad_checkpoint: true,
        ..config("resume", 2, 2)
    };
    let split = trainer(&m, recomputing, "split");
    let Outcome::Finished(b) = split.train(true, None).unwrap() else {
        panic!()
    };
    let (la, lb) = (
        read_log(&straight.run.log()).unwrap(),
        read_log(&split.run.log()).unwrap(),
    );
    assert_eq!(la.len(), 4);
    assert_eq!(
        la.iter().map(|l| l.loss).collect::<Vec<_>>(),
        lb.iter().map(|l| l.loss).collect::<Vec<_>>()
    );
    assert_eq!(a.fingerprint().unwrap(), b.fingerprint().unwrap());
    let changed = trainer(&m, config("resume", 1, 2), "split2");
    std::fs::copy(
        split.run.0.join("checkpoint.safetensors"),
        changed.run.0.join("checkpoint.safetensors"),
    )
    .unwrap();
    assert!(
        changed.train(true, None).is_err(),
        "resuming with other settings is refused"
    );
}

#[test]
fn empty_adapter_student_with_one_document_equals_the_teacher() {
    let m = model();
    let sample = TrainSample {
        docs: vec![kvpacket::data::Document {
            title: "t".into(),
            text: "one document only".into(),
            ..Default::default()
        }],
        tasks: vec!["what is it?".into()],
    };
    let vocab = m.config.vocab_size;
    let teacher: TeacherOut = run_teacher(&m, &sample, 5, vocab).unwrap().remove(0);
    let empty = Adapter::empty(&m).unwrap();
    let g = student_grad(&m, &empty, &sample, std::slice::from_ref(&teacher), mode(false, false)).unwrap();
    assert!(g.loss.abs() < 1e-4, "KL of identical distributions is {}", g.loss);
    // Direct check of the first step's logits against a plain prefill.
    let ids = segments(&m, &sample.docs, &sample.tasks[0]).unwrap().concat();
    let mut cache = m.new_cache(ids.len());
    let lp = log_softmax(&last_row(&m.prefill(&ids, &mut cache, &Rows::Last).unwrap().unwrap()).unwrap());
    let (top, vals) = top_k(&lp, vocab);
    // The teacher prefills the documents and the question in two calls, this in one: the
    // attention kernels sum in another order (gemm for many rows, registers for few), so the
    // values agree to rounding, not bit for bit.
    // Compared id by id (k = vocabulary, so both hold every id), not by rank: near-ties may
    // swap places under rounding.
    let by_id = |ids: &[u32], lp: &[f32]| -> std::collections::BTreeMap<u32, f32> {
        ids.iter().copied().zip(lp.iter().copied()).collect()
    };
    let (ours, theirs) = (by_id(&top, &vals), by_id(&teacher.top_ids[0], &teacher.top_logp[0]));
    assert_eq!(ours.len(), vocab);
    assert!(ours.keys().eq(theirs.keys()));
    let worst = ours.iter().map(|(id, a)| (a - theirs[id]).abs()).fold(0f32, f32::max);
    assert!(worst < 1e-3, "log-probs differ by {worst}");
}

#[test]
fn the_students_first_step_equals_composed_packets_with_the_adapter() {
    // What training optimises must be what `kvpacket` answers from: the student's loss on the
    // first teacher token equals the same loss computed from the composed packets' logits.
    let qwen = TinySpec {
        arch: Arch::Qwen2,
        tie_embeddings: false,
        kv_heads: 1,
        ..Default::default()
    };
    for (spec, name) in [(TinySpec::default(), "llama"), (qwen, "qwen")] {
        let dir = tmp(&format!("consistency-{name}"));
        write_tiny_model(&dir, spec).unwrap();
        first_step_equals_composed_packets(&Model::load(&dir, WeightMode::F32).unwrap(), &dir);
    }
}

fn first_step_equals_composed_packets(m: &Model, dir: &std::path::Path) {
    use BridgePlace::{AfterPrompt as P, AfterQuestion as Q, BeforeQuestion as B};
    // 2+3 soft tokens, a trailer alone (0+3: the document rows stay plain packets'), a
    // context-only header (4+2: packets keep no header row, the tails see none), and key scales
    // (the packets store scaled keys, the student's tails read them scaled).
    // Per-head key factors on top (each layer and kv head its own). A bridge (the last number)
    // before each question's prompt, with packets and alone (plain packets, 0+0).
    // `place`: where the bridge sits (B before the question, Q after it, P after the prompt).
    for (nh, nt, context, key_scale, heads, bridge, place) in [
        (2, 3, false, 1.0, false, 0, B),
        (0, 3, false, 1.0, false, 0, B),
        (4, 2, true, 1.0, false, 0, B),
        (2, 3, false, 0.6, false, 0, B),
        (4, 2, true, 1.4, false, 0, B),
        (2, 3, false, 1.0, true, 0, B),
        (4, 2, true, 0.8, true, 0, B),
        (2, 3, false, 1.0, false, 3, B),
        (4, 2, true, 0.8, true, 2, B),
        (0, 0, false, 1.0, false, 3, B),
        (2, 3, false, 1.0, false, 3, P),
        (4, 2, true, 0.8, true, 2, Q),
        (0, 0, false, 1.0, false, 2, P),
        (0, 0, false, 1.0, false, 2, Q),
    ] {
        let mut adapter = Adapter::fresh(m, nh, nt, &AdapterInit::Random, 4)
            .unwrap()
            .with_context_header(context)
            .unwrap()
            .with_bridge(m, bridge, place, "then the question")
            .unwrap()
            .with_key_scale(key_scale)
            .unwrap();
        if heads {
            adapter = with_head_factors(m, adapter);
        }
        first_step_equals_composed_packets_with(m, dir, &adapter);
    }
}

/// `adapter` with a different key factor for every layer and kv head of `m`, in 0.55-1.45.
fn with_head_factors(m: &Model, adapter: Adapter) -> Adapter {
    let (layers, heads) = (m.config.n_layers, m.config.n_kv_heads);
    let factors = (0..layers * heads).map(|i| 0.55 + 0.3 * (i % 4) as f32).collect();
    adapter.with_head_key_scale(factors, layers, heads).unwrap()
}

fn first_step_equals_composed_packets_with(m: &Model, dir: &std::path::Path, adapter: &Adapter) {
    let docs: Vec<kvpacket::data::Document> = ["first doc here", "a second, longer document", "third"]
        .iter()
        .map(|t| kvpacket::data::Document {
            text: t.to_string(),
            ..Default::default()
        })
        .collect();
    let sample = TrainSample {
        docs,
        tasks: vec!["which doc?".into()],
    };
    let vocab = m.config.vocab_size;
    // A uniform first-step target: its KL depends on every logit (the tiny model's own greedy
    // distribution is too peaked to tell logits apart).
    let uniform = TeacherOut {
        tokens: vec![0],
        top_ids: vec![(0..vocab as u32).collect()],
        top_logp: vec![vec![-(vocab as f32).ln(); vocab]],
    };
    let store = LruStore::new(FsStore::new(dir.join("store")).unwrap(), 1 << 24);
    let engine = Resources {
        model: m,
        store: &store,
        kv_dtype: KvDtype::F32,
        cached_only: false,
        decode_room: 64,
    };
    let seg = segments(m, &sample.docs, &sample.tasks[0]).unwrap();
    let composed_kl = |method: Packets| {
        let logits = method.prefill(&engine, &seg).unwrap().first_logits;
        let logits = candle_core::Tensor::from_vec(logits, (1, vocab), &candle_core::Device::Cpu).unwrap();
        loss_from_logits(&logits, &uniform, LossKind::Kl, 1.0)
            .unwrap()
            .to_scalar::<f32>()
            .unwrap()
    };
    let with_adapter = composed_kl(Packets::kvpacket(adapter.clone()));
    let without = composed_kl(Packets::none(m).unwrap());
    for student_mode in [mode(false, false), mode(false, true), bridge_only(false)] {
        let student = student_grad(m, adapter, &sample, std::slice::from_ref(&uniform), student_mode)
            .unwrap()
            .loss;
        let (err, effect) = ((student - with_adapter).abs(), (with_adapter - without).abs());
        assert!(
            err < 1e-4 * with_adapter && effect > 100.0 * err,
            "student {student} vs composed {with_adapter} (none: {without}; {student_mode:?}; {}+{}+{} rows)",
            adapter.meta.n_header,
            adapter.meta.n_trailer,
            adapter.meta.n_bridge
        );
    }
}

#[test]
fn text_init_is_token_embeddings_and_chunked_samples_are_windows() {
    let m = model();
    let init = AdapterInit::Text {
        header: "the thing".into(),
        trailer: "place".into(),
    };
    let a = Adapter::fresh(&m, 5, 3, &init, 0).unwrap();
    let rows = |text: &str, n: usize| {
        let ids: Vec<u32> = m.tokenizer.encode(text).unwrap().into_iter().cycle().take(n).collect();
        m.embed(&ids).unwrap().to_vec2::<f32>().unwrap()
    };
    assert_eq!(a.header.to_vec2::<f32>().unwrap(), rows("the thing", 5));
    assert_eq!(a.trailer.to_vec2::<f32>().unwrap(), rows("place", 3));
    let empty = AdapterInit::Text {
        header: String::new(),
        trailer: "x".into(),
    };
    assert!(Adapter::fresh(&m, 2, 2, &empty, 0).is_err());
    // Continued training starts from a file's values, checked against its fingerprint.
    let file = tmp("init-from").join("a.safetensors");
    a.save(&file).unwrap();
    let from = AdapterInit::File {
        path: file.display().to_string(),
        fingerprint: a.fingerprint().unwrap(),
    };
    let b = Adapter::fresh(&m, 5, 3, &from, 9).unwrap();
    assert_eq!(b.fingerprint().unwrap(), a.fingerprint().unwrap());
    assert!(Adapter::fresh(&m, 4, 3, &from, 0).is_err(), "a part cannot shrink");
    // A part may grow: the file's rows first, then copies of them in order.
    let wide = Adapter::fresh(&m, 5, 7, &from, 0).unwrap();
    assert_eq!(
        wide.header.to_vec2::<f32>().unwrap(),
        a.header.to_vec2::<f32>().unwrap()
    );
    let t = a.trailer.to_vec2::<f32>().unwrap();
    let want: Vec<Vec<f32>> = (0..7).map(|i| t[i % 3].clone()).collect();
    assert_eq!(wide.trailer.to_vec2::<f32>().unwrap(), want);
    assert_eq!((wide.meta.n_header, wide.meta.n_trailer), (5, 7));
    Adapter::fresh(&m, 5, 3, &AdapterInit::Random, 1)
        .unwrap()
        .save(&file)
        .unwrap();
    let e = Adapter::fresh(&m, 5, 3, &from, 0).unwrap_err().to_string();
    assert!(e.contains("changed"), "{e}");

    let spec = SampleSpec {
        chunk_tokens: 8,
        seed: 1,
        ..SampleSpec::new(vec![data_file("chunks-data", 6)], 6, 1, 3)
    };
    let mut longest = 0;
    for s in draw_samples(&m, &spec, Split::Train, spec.count).unwrap() {
        for d in &s.docs {
            assert!(d.title.is_empty(), "chunks are untitled");
            let n = m.tokenizer.encode(&d.text).unwrap().len();
            assert!((2..=9).contains(&n), "a chunk of 8 tokens re-encodes to {n}");
            longest = longest.max(n);
        }
    }
    assert!(longest >= 8);

    // Overlapping windows (stride 12 < 24): about twice as many, each one starting inside
    // the one before it in the entry's joined text (all of whose words are distinct).
    let texts: Vec<String> = (0..4)
        .map(|j| (0..10).map(|w| format!("w{j}x{w}")).collect::<Vec<_>>().join(" "))
        .collect();
    let ctxs: Vec<_> = texts
        .iter()
        .map(|t| serde_json::json!({"title": "", "text": t}))
        .collect();
    let distinct = write_data(
        "distinct",
        &serde_json::json!([{"question": "q?", "answers": [], "ctxs": ctxs}]),
    );
    let every = |stride| SampleSpec {
        files: vec![distinct.clone()],
        count: 1,
        k_min: 100,
        k_max: 100,
        chunk_tokens: 24,
        chunk_stride: stride,
        ..spec.clone()
    };
    for bad in [
        SampleSpec {
            chunk_tokens: 0,
            ..every(12)
        },
        every(25),
    ] {
        let e = draw_samples(&m, &bad, Split::Train, 1).unwrap_err().to_string();
        assert!(e.contains("stride"), "{e}");
    }
    let apart = draw_samples(&m, &every(0), Split::Train, 1).unwrap().remove(0).docs;
    // The document cut applies to documents as the file has them, never to windows.
    let cut = SampleSpec {
        max_doc_tokens: 5,
        ..every(0)
    };
    assert_eq!(draw_samples(&m, &cut, Split::Train, 1).unwrap().remove(0).docs, apart);
    let overlapping = draw_samples(&m, &every(12), Split::Train, 1).unwrap().remove(0).docs;
    let (n_apart, n_over) = (apart.len(), overlapping.len());
    assert!(
        n_over + 2 >= 2 * n_apart && n_over > n_apart,
        "{n_over} vs {n_apart} windows"
    );
    let joined = texts.join(" ");
    let mut spans: Vec<(usize, usize)> = overlapping
        .iter()
        .map(|d| {
            let at = joined
                .find(&d.text)
                .unwrap_or_else(|| panic!("{:?} not in {joined:?}", d.text));
            (at, at + d.text.len())
        })
        .collect();
    spans.sort();
    assert_eq!(spans[0].0, 0);
    assert_eq!(spans.last().unwrap().1, joined.len(), "{spans:?}");
    for w in spans.windows(2) {
        assert!(
            w[0].0 < w[1].0 && w[1].0 < w[0].1,
            "windows overlap in order: {spans:?}"
        );
    }

    // Distractors: entries have 4 documents; k = 6 takes all 4 and 2 from other entries.
    let spec = SampleSpec {
        count: 6,
        k_min: 6,
        k_max: 6,
        chunk_tokens: 0,
        ..spec
    };
    for s in draw_samples(&m, &spec, Split::Train, spec.count).unwrap() {
        assert_eq!(s.docs.len(), 4, "without distractors k is capped by the entry");
    }
    let spec = SampleSpec {
        distractors: true,
        ..spec
    };
    for s in draw_samples(&m, &spec, Split::Train, spec.count).unwrap() {
        assert_eq!(s.docs.len(), 6);
        let own = s.tasks[0].trim_start_matches("what is thing ").trim_end_matches('?');
        let mine = s
            .docs
            .iter()
            .filter(|d| d.title.starts_with(&format!("doc {own}.")))
            .count();
        assert_eq!(
            mine, 4,
            "all of the entry's documents, then 2 distractors: {:?}",
            s.docs
        );
    }

    // Lowercased documents (the evaluation's MuSiQue passages are); questions keep their case.
    let upper = write_data(
        "upper",
        &serde_json::json!([{"question": "What Is It?", "answers": [],
            "ctxs": [{"title": "Doc A", "text": "The Thing Is Here"}, {"title": "Doc B", "text": "Another Thing"}]}]),
    );
    let spec = SampleSpec {
        files: vec![upper],
        count: 2,
        k_min: 2,
        k_max: 2,
        lowercase_docs: true,
        ..spec
    };
    for s in draw_samples(&m, &spec, Split::Train, spec.count).unwrap() {
        assert_eq!(s.tasks, ["What Is It?"]);
        for d in &s.docs {
            assert!(!d.text.is_empty());
            assert_eq!(
                (d.title.to_lowercase(), d.text.to_lowercase()),
                (d.title.clone(), d.text.clone())
            );
        }
    }

    // Reshaping one file only: it is lowercased and re-cut into windows (never cut to
    // max_doc_tokens), while the other keeps its titled paragraphs, cut.
    let upper = spec.files[0].clone();
    let plain = data_file("reshape-plain", 2);
    let spec = SampleSpec {
        files: vec![upper.clone(), plain.clone()],
        count: 6,
        chunk_tokens: 64,
        max_doc_tokens: 3,
        reshape_files: vec![upper.clone()],
        distractors: false,
        ..spec
    };
    let (mut reshaped, mut kept) = (0, 0);
    for s in draw_samples(&m, &spec, Split::Train, spec.count).unwrap() {
        if s.tasks[0] == "What Is It?" {
            reshaped += 1;
            assert_eq!(s.docs.len(), 1, "one window: {:?}", s.docs);
            assert_eq!(
                (s.docs[0].title.as_str(), s.docs[0].text.as_str()),
                ("", "the thing is here another thing")
            );
        } else {
            kept += 1;
            assert_eq!(s.docs.len(), 4);
            for d in &s.docs {
                assert!(d.title.starts_with("doc "), "{d:?}");
                assert!(m.tokenizer.encode(&d.text).unwrap().len() <= 3, "{d:?}");
            }
        }
    }
    assert!(reshaped > 0 && kept > 0, "{reshaped} reshaped, {kept} kept");
    let stray = SampleSpec {
        reshape_files: vec!["elsewhere.json".into()],
        ..spec
    };
    let e = draw_samples(&m, &stray, Split::Train, 1).unwrap_err().to_string();
    assert!(e.contains("elsewhere.json"), "{e}");
}

#[test]
fn the_first_token_weight_scales_only_the_first_positions_loss_and_must_be_non_negative() {
    let m = model();
    let spec = config("first-weight", 1, 1).samples;
    let sample = draw_samples(&m, &spec, Split::Train, 1).unwrap().remove(0);
    let teacher = run_teacher(&m, &sample, 4, 16).unwrap().remove(0);
    let first = TeacherOut {
        tokens: teacher.tokens[..1].to_vec(),
        top_ids: teacher.top_ids[..1].to_vec(),
        top_logp: teacher.top_logp[..1].to_vec(),
    };
    let logits = candle_core::Tensor::randn(0f32, 3.0, (4, m.config.vocab_size), &candle_core::Device::Cpu).unwrap();
    for kind in [LossKind::Kl, LossKind::Ce] {
        let loss = |t: &TeacherOut, l: &candle_core::Tensor, w: f32| {
            loss_from_logits(l, t, kind, w).unwrap().to_scalar::<f32>().unwrap()
        };
        let (plain, weighted) = (loss(&teacher, &logits, 1.0), loss(&teacher, &logits, 5.0));
        let first_only = loss(&first, &logits.narrow(0, 0, 1).unwrap(), 1.0);
        assert!(first_only > 0.0, "{kind:?}: first position's loss {first_only}");
        let want = plain + 4.0 * first_only;
        assert!(
            (weighted - want).abs() <= 1e-4 * want,
            "{kind:?}: weighted {weighted} vs {want}"
        );
    }
    let mut cfg = config("negative-weight", 1, 1);
    cfg.first_token_weight = -1.0;
    let err = trainer(&m, cfg, "negative-weight").train(false, None).unwrap_err();
    assert!(err.to_string().contains("first-token weight"), "{err}");
}

/// Max |a - b| relative to max |a| (1 when a is all zeros).
fn rel_diff(a: &[f32], b: &[f32]) -> f32 {
    let scale = a.iter().fold(0f32, |m, &x| m.max(x.abs())).max(1e-30);
    a.iter().zip(b).fold(0f32, |m, (x, y)| m.max((x - y).abs())) / scale
}

/// `count` biography sets of 3 people with `questions` questions each.
fn three_person_sets(name: &str, count: usize, questions: usize) -> SampleSpec {
    SampleSpec {
        files: vec!["synth:biography".into()],
        count,
        k_min: 3,
        k_max: 3,
        questions,
        ..config(name, 1, 1).samples
    }
}

#[test]
fn the_shared_document_student_equals_separate_runs_per_question() {
    // One pass over a biography set with three questions (each tail sees the documents and
    // itself only) gives the sum of three separate single-question runs: loss and gradient.
    let m = model();
    let spec = three_person_sets("shared", 2, 3);
    let plain = Adapter::init(&m, 2, 3, 7).unwrap();
    let context = plain.clone().with_context_header(true).unwrap();
    for (sample, adapter) in draw_samples(&m, &spec, Split::Train, 2)
        .unwrap()
        .into_iter()
        .zip([&plain, &context])
    {
        assert_eq!(sample.tasks.len(), 3);
        let teachers = run_teacher(&m, &sample, 4, 32).unwrap();
        for (ck, freeze_header) in [(false, false), (true, false), (false, true)] {
            let mut md = mode(ck, freeze_header);
            md.first_token_weight = 3.0;
            let shared = student_grad(&m, adapter, &sample, &teachers, md).unwrap();
            assert_eq!(shared.questions, 3);
            let (mut loss, mut header, mut trailer) =
                (0f32, vec![0f32; shared.header.len()], vec![0f32; shared.trailer.len()]);
            for (task, t) in sample.tasks.iter().zip(&teachers) {
                let one = TrainSample {
                    docs: sample.docs.clone(),
                    tasks: vec![task.clone()],
                };
                let g = student_grad(&m, adapter, &one, std::slice::from_ref(t), md).unwrap();
                loss += g.loss;
                header.iter_mut().zip(&g.header).for_each(|(a, b)| *a += b);
                trailer.iter_mut().zip(&g.trailer).for_each(|(a, b)| *a += b);
            }
            assert!(
                (shared.loss - loss).abs() <= 1e-4 * loss.abs().max(1.0),
                "loss {} vs {loss} (checkpointing {ck}, frozen header {freeze_header})",
                shared.loss
            );
            assert!(rel_diff(&trailer, &shared.trailer) < 1e-3, "trailer gradient differs");
            if !freeze_header {
                assert!(rel_diff(&header, &shared.header) < 1e-3, "header gradient differs");
            }
        }
    }
}

#[test]
fn every_biography_sample_holds_the_people_it_asks_about() {
    let m = model();
    let spec = SampleSpec {
        files: vec!["synth:biography".into()],
        count: 40,
        k_min: 2,
        k_max: 10,
        questions: 6,
        ..config("bio-present", 1, 1).samples
    };
    let mut sizes = std::collections::BTreeSet::new();
    for split in [Split::Train, Split::Validation] {
        for s in draw_samples(&m, &spec, split, 40).unwrap() {
            sizes.insert(s.docs.len());
            assert_eq!(s.tasks.len(), 6);
            for q in &s.tasks {
                assert!(
                    s.docs.iter().any(|d| q.contains(&d.title)),
                    "{q:?} asks about nobody of {:?}",
                    s.docs.iter().map(|d| &d.title).collect::<Vec<_>>()
                );
            }
        }
    }
    assert!(sizes.contains(&2) && sizes.contains(&10), "k spans 2..=10: {sizes:?}");
    // Training and validation draws differ (other seeds).
    let a = draw_samples(&m, &spec, Split::Train, 3).unwrap();
    let b = draw_samples(&m, &spec, Split::Validation, 3).unwrap();
    assert_ne!(a, b);
}

#[test]
fn a_qa_sample_keeps_its_supporting_paragraphs_and_validation_entries_are_held_out() {
    let m = model();
    // 20 entries of 8 paragraphs, of which 2 support (at varying places).
    let file = qa_file(
        "supporting",
        20,
        8,
        |i, j| format!("p {i}.{j}"),
        |i, j| j == i % 8 || j == (i + 3) % 8,
    );
    let spec = SampleSpec {
        files: vec![file],
        count: 30,
        max_docs: 3,
        ..config("supporting", 1, 1).samples
    };
    let spec = SampleSpec {
        generic_task_prob: 0.0,
        ..spec
    };
    let entry_of = |s: &TrainSample| -> usize {
        s.tasks[0]
            .trim_start_matches("question ")
            .trim_end_matches('?')
            .parse()
            .unwrap()
    };
    for split in [Split::Train, Split::Validation] {
        for s in draw_samples(&m, &spec, split, 30).unwrap() {
            let i = entry_of(&s);
            assert_eq!(split == Split::Validation, i % 10 == 9, "entry {i} drawn for {split:?}");
            assert_eq!(s.docs.len(), 3);
            for j in [i % 8, (i + 3) % 8] {
                assert!(
                    s.docs.iter().any(|d| d.title == format!("p {i}.{j}")),
                    "supporting paragraph {j} of entry {i} is kept"
                );
            }
            let order: Vec<&String> = s.docs.iter().map(|d| &d.title).collect();
            let mut sorted = order.clone();
            sorted.sort();
            assert_eq!(order, sorted, "paragraphs keep the entry's order");
        }
    }
    // All paragraphs by default (max_docs 0), as the reference recipe.
    let all = SampleSpec { max_docs: 0, ..spec };
    assert!(
        draw_samples(&m, &all, Split::Train, 5)
            .unwrap()
            .iter()
            .all(|s| s.docs.len() == 8)
    );
}

#[test]
fn title_questions_ask_about_the_samples_own_paragraphs_in_training_draws_only() {
    let m = model();
    let spec = SampleSpec {
        files: vec![qa_file("titles", 20, 5, |i, j| format!("Place {i}-{j}"), |_, _| false)],
        count: 12,
        questions: 4,
        generic_task_prob: 0.0,
        title_questions: true,
        ..config("titles", 1, 1).samples
    };
    for s in draw_samples(&m, &spec, Split::Train, 12).unwrap() {
        assert_eq!(s.tasks.len(), 4, "{:?}", s.tasks);
        assert!(s.tasks[0].starts_with("question "), "the entry's own question first");
        let mut asked: Vec<&String> = s
            .docs
            .iter()
            .filter(|d| s.tasks[1..].iter().any(|q| q.contains(&d.title)))
            .map(|d| &d.title)
            .collect();
        asked.dedup();
        assert_eq!(
            asked.len(),
            3,
            "three distinct paragraphs of the sample asked about: {:?}",
            s.tasks
        );
    }
    // Entries with fewer titled paragraphs than asked get one question per paragraph.
    let many = SampleSpec {
        questions: 9,
        ..spec.clone()
    };
    assert!(
        draw_samples(&m, &many, Split::Train, 3)
            .unwrap()
            .iter()
            .all(|s| s.tasks.len() == 6)
    );
    // Validation keeps the entry's question alone.
    for s in draw_samples(&m, &spec, Split::Validation, 2).unwrap() {
        assert_eq!(s.tasks.len(), 1);
    }
}

#[test]
fn validation_can_come_from_one_file_with_more_entries_held_out() {
    // `--val-data A --holdout-every 5`: every 5th entry of A validates and never trains; B
    // holds nothing out.
    let m = model();
    let a = qa_file("val-a", 20, 1, |i, _| format!("a {i}"), |_, _| false);
    let b = qa_file("val-b", 20, 1, |i, _| format!("b {i}"), |_, _| false);
    let spec = SampleSpec {
        files: vec![a.clone(), b.clone()],
        count: 36,
        generic_task_prob: 0.0,
        holdout_every: 5,
        val_files: vec![a.clone()],
        ..config("val-files", 1, 1).samples
    };
    let drawn = |split| -> std::collections::BTreeSet<String> {
        draw_samples(&m, &spec, split, 36)
            .unwrap()
            .iter()
            .map(|s| s.docs[0].title.clone())
            .collect()
    };
    let held: std::collections::BTreeSet<String> = [4, 9, 14, 19].iter().map(|i| format!("a {i}")).collect();
    assert_eq!(drawn(Split::Validation), held);
    let train = drawn(Split::Train);
    assert_eq!(train.len(), 36, "16 entries of A and all 20 of B");
    assert!(train.is_disjoint(&held));
    // A validation file must be one of the data files, and one entry in one cannot be the rule.
    let foreign = SampleSpec {
        val_files: vec!["elsewhere.json".into()],
        ..spec.clone()
    };
    let err = draw_samples(&m, &foreign, Split::Validation, 1)
        .unwrap_err()
        .to_string();
    assert!(err.contains("not among the training data files"), "{err}");
    let all = SampleSpec {
        holdout_every: 1,
        ..spec.clone()
    };
    assert!(draw_samples(&m, &all, Split::Train, 1).is_err());
}

#[test]
fn validation_draws_mirror_the_training_mixture_of_biographies_and_data_entries() {
    let m = model();
    // 36 training entries against 36 biography sets: half and half in both splits.
    let file = qa_file("mixture", 40, 1, |i, _| format!("t {i}"), |_, _| false);
    let spec = SampleSpec {
        files: vec!["synth:biography".into(), file],
        count: 36,
        generic_task_prob: 0.0,
        ..config("mixture", 1, 1).samples
    };
    let data_share = |split| {
        let s = draw_samples(&m, &spec, split, 40).unwrap();
        s.iter().filter(|s| s.tasks[0].starts_with("question ")).count() as f64 / s.len() as f64
    };
    let (train, val) = (data_share(Split::Train), data_share(Split::Validation));
    assert!((0.4..=0.6).contains(&train), "training share of data entries {train}");
    assert!((0.4..=0.6).contains(&val), "validation share of data entries {val}");
}

fn validated(name: &str) -> TrainConfig {
    let mut cfg = config(name, 2, 2);
    cfg.samples.files = vec!["synth:biography".into()];
    cfg.samples.k_min = 2;
    cfg.samples.k_max = 3;
    cfg.samples.questions = 2;
    cfg.val_samples = 2;
    cfg
}

#[test]
fn resuming_a_copied_run_folder_without_teacher_outputs_continues_the_same_run() {
    // A run folder committed by one session and resumed by another on a fresh machine: the
    // teacher outputs are gone and get recomputed; the next loss equals an uninterrupted run's.
    let m = model();
    let straight = trainer(&m, validated("fresh-straight"), "fresh-straight");
    let Outcome::Finished(a) = straight.train(false, None).unwrap() else {
        panic!()
    };
    let first = trainer(&m, validated("fresh-first"), "fresh-first");
    assert!(matches!(first.train(false, Some(1)).unwrap(), Outcome::Interrupted(1)));
    let moved = tmp("fresh-moved");
    for f in [
        "config.json",
        "checkpoint.safetensors",
        "best.safetensors",
        "log.jsonl",
        "val.jsonl",
    ] {
        std::fs::copy(first.run.0.join(f), moved.join(f)).unwrap();
    }
    let second = Trainer {
        run: RunDir(moved),
        teacher_cache: TeacherCache::new(&tmp("fresh-teacher-elsewhere")),
        ..trainer(&m, validated("fresh-first"), "unused")
    };
    let Outcome::Finished(b) = second.train(true, None).unwrap() else {
        panic!()
    };
    let losses = |t: &Trainer| {
        read_log(&t.run.log())
            .unwrap()
            .iter()
            .map(|l| l.loss)
            .collect::<Vec<_>>()
    };
    assert_eq!(losses(&straight), losses(&second));
    assert_eq!(a.fingerprint().unwrap(), b.fingerprint().unwrap());
    // Resuming the finished folder on yet another machine gives the same result at once,
    // without recomputing any teacher output.
    let untouched = tmp("fresh-teacher-never-written");
    let third = Trainer {
        teacher_cache: TeacherCache::new(&untouched),
        ..second
    };
    let Outcome::Finished(c) = third.train(true, None).unwrap() else {
        panic!()
    };
    assert_eq!(a.fingerprint().unwrap(), c.fingerprint().unwrap());
    assert_eq!(
        std::fs::read_dir(&untouched).unwrap().count(),
        0,
        "teacher outputs recomputed"
    );
}

#[test]
fn the_best_checkpoint_by_validation_is_kept_and_deterministic() {
    let m = model();
    let mut results = Vec::new();
    for run in ["best-a", "best-b"] {
        let t = trainer(&m, validated("best"), run);
        let Outcome::Finished(best) = t.train(false, None).unwrap() else {
            panic!()
        };
        let val: Vec<ValLine> = kvpacket::io::read_jsonl(&t.run.val_log()).unwrap();
        assert_eq!(val.iter().map(|v| v.step).collect::<Vec<_>>(), [0, 1, 2, 3, 4]);
        assert!(val.iter().all(|v| v.questions == 4 && v.first_token_kl.is_finite()));
        let low = val.iter().fold(f64::INFINITY, |m, v| m.min(v.first_token_kl));
        let at = val.iter().find(|v| v.first_token_kl == low).unwrap().step;
        let chosen = &best.meta.made_by["validation"];
        assert_eq!(chosen["best_step"], at, "the first step with the lowest KL");
        assert_eq!(chosen["first_token_kl"], low);
        // The kept adapter scores what the log says.
        let data = t.prepare_validation().unwrap();
        let again = t.validate(&best, &data).unwrap().first_token_kl;
        assert!((again - low).abs() < 1e-6, "{again} vs {low}");
        // The plain packets' level on the same samples is in the run folder and the metadata.
        let plain: ValLine = serde_json::from_slice(&std::fs::read(t.run.val_plain()).unwrap()).unwrap();
        let none = t.validate(&Adapter::empty(&m).unwrap(), &data).unwrap();
        assert_eq!((plain.first_token_kl, plain.questions), (none.first_token_kl, 4));
        assert_eq!(chosen["plain_packets_kl"], none.first_token_kl);
        results.push((at, best.fingerprint().unwrap(), val));
    }
    assert_eq!(results[0], results[1], "same data and seed, same choice");
}

#[test]
fn a_fresh_run_reuses_a_plain_level_only_for_the_same_validation() {
    // A fresh run folder seeded with another run's val_plain.json, its KL marked so that a
    // reuse shows: read as is when the validation samples are the same, recomputed otherwise.
    let m = model();
    let first = trainer(&m, validated("plain-reuse"), "plain-reuse-a");
    assert!(matches!(first.train(false, None).unwrap(), Outcome::Finished(_)));
    let mut level: serde_json::Value = serde_json::from_slice(&std::fs::read(first.run.val_plain()).unwrap()).unwrap();
    assert!(level["samples"].is_string(), "the level names what it was scored on");
    level["first_token_kl"] = 123.0.into();
    let mut other = validated("plain-reuse");
    other.samples.seed = 4;
    for (run, cfg, reused) in [
        ("plain-reuse-b", validated("plain-reuse"), true),
        ("plain-reuse-c", other, false),
    ] {
        let t = trainer(&m, cfg, run);
        std::fs::write(t.run.val_plain(), serde_json::to_vec(&level).unwrap()).unwrap();
        let Outcome::Finished(best) = t.train(false, None).unwrap() else {
            panic!()
        };
        let kl = best.meta.made_by["validation"]["plain_packets_kl"].as_f64().unwrap();
        assert_eq!(kl == 123.0, reused, "{run}: plain level {kl}");
    }
}

#[test]
fn a_run_out_of_patience_stops_with_its_best_checkpoint() {
    // A learning rate far too large for the adapter rows: validation gets worse after step 0,
    // so the run must stop once `patience` validations in a row found nothing better.
    let m = model();
    let steep = |patience: usize| {
        let mut cfg = validated("patience");
        cfg.lr = 1.0;
        cfg.patience = patience;
        cfg
    };
    let full = trainer(&m, steep(0), "patience-full");
    assert!(matches!(full.train(false, None).unwrap(), Outcome::Finished(_)));
    let curve: Vec<ValLine> = kvpacket::io::read_jsonl(&full.run.val_log()).unwrap();
    // Where a patience of 1 ends, from the uninterrupted run's curve: the first validation
    // that is not below the best before it.
    let stop = (1..curve.len())
        .find(|&i| curve[..i].iter().any(|v| curve[i].first_token_kl >= v.first_token_kl))
        .map(|i| curve[i].step)
        .expect("a step that does not improve on the best");
    assert!(stop < 4, "the steep run improves at every step");
    let early = trainer(&m, steep(1), "patience-early");
    let Outcome::Finished(best) = early.train(false, None).unwrap() else {
        panic!("a run out of patience finishes")
    };
    assert_eq!(read_log(&early.run.log()).unwrap().len(), stop, "steps run");
    let val: Vec<ValLine> = kvpacket::io::read_jsonl(&early.run.val_log()).unwrap();
    assert_eq!(val, curve[..=stop], "the same curve up to the stop");
    assert_eq!(best.meta.made_by["stopped_early_at"], stop);
    let kept = Adapter::load(&early.run.best(), Some(&m)).unwrap();
    assert_eq!(best.fingerprint().unwrap(), kept.fingerprint().unwrap());
    assert!(provenance(&best.meta).contains(&format!("stopped early at step {stop}")));
    // Resuming the stopped run finishes at once with the same result, no step run.
    let Outcome::Finished(again) = early.train(true, None).unwrap() else {
        panic!()
    };
    assert_eq!(again.fingerprint().unwrap(), best.fingerprint().unwrap());
    assert_eq!(read_log(&early.run.log()).unwrap().len(), stop);
    // A run started without a patience may be given one when resumed, and then stops alike.
    let later = trainer(&m, steep(0), "patience-later");
    assert!(matches!(later.train(false, Some(1)).unwrap(), Outcome::Interrupted(1)));
    let later = Trainer {
        config: steep(1),
        ..later
    };
    let Outcome::Finished(late) = later.train(true, None).unwrap() else {
        panic!("a resumed run out of patience finishes")
    };
    assert_eq!(late.fingerprint().unwrap(), best.fingerprint().unwrap());
    assert_eq!(read_log(&later.run.log()).unwrap().len(), stop);
}

#[test]
fn a_context_only_headers_gradient_matches_finite_differences_with_and_without_a_key_scale() {
    // The header copies of a context-only header sit apart from their documents in the
    // student's sequence; the gradient summed over them must still be d loss / d header.
    let m = model();
    let spec = three_person_sets("ctx-fd", 1, 2);
    for scale in [1.0, 0.7] {
        let adapter = Adapter::init(&m, 2, 2, 11)
            .unwrap()
            .with_context_header(true)
            .unwrap()
            .with_key_scale(scale)
            .unwrap();
        header_gradient_matches_finite_differences(&m, &spec, &adapter);
    }
}

/// The header gradient of `adapter`'s student on one sample of `spec`, at its largest entry,
/// against a central finite difference of the loss.
fn header_gradient_matches_finite_differences(m: &Model, spec: &SampleSpec, adapter: &Adapter) {
    gradient_matches_finite_differences(
        m,
        spec,
        adapter,
        |g| g.header.clone(),
        |a, j, delta| {
            let mut h = a.header.flatten_all().unwrap().to_vec1::<f32>().unwrap();
            h[j] += delta;
            a.header = candle_core::Tensor::from_vec(h, a.header.shape(), &candle_core::Device::Cpu).unwrap();
        },
        1e-2,
    );
}

/// The gradient that `grad` picks from `adapter`'s student on one sample of `spec`, at its
/// largest entry j, against a central finite difference of the loss under `perturb(a, j, ±eps)`.
fn gradient_matches_finite_differences(
    m: &Model,
    spec: &SampleSpec,
    adapter: &Adapter,
    grad: impl Fn(&StudentGrad) -> Vec<f32>,
    perturb: impl Fn(&mut Adapter, usize, f32),
    eps: f32,
) {
    let sample = draw_samples(m, spec, Split::Train, 1).unwrap().remove(0);
    // Uniform targets: the tiny model's own continuation is so close to its student that the
    // loss (~1e-5) leaves finite differences in f32 rounding.
    let vocab = m.config.vocab_size;
    let uniform = TeacherOut {
        tokens: vec![0, 1],
        top_ids: vec![(0..vocab as u32).collect(); 2],
        top_logp: vec![vec![-(vocab as f32).ln(); vocab]; 2],
    };
    let teachers = vec![uniform; sample.tasks.len()];
    let g = grad(&student_grad(m, adapter, &sample, &teachers, mode(false, false)).unwrap());
    let j = (0..g.len()).max_by(|&a, &b| g[a].abs().total_cmp(&g[b].abs())).unwrap();
    let loss_at = |delta: f32| {
        let mut a = adapter.clone();
        perturb(&mut a, j, delta);
        student_grad(m, &a, &sample, &teachers, mode(false, false))
            .unwrap()
            .loss
    };
    let fd = (loss_at(eps) - loss_at(-eps)) / (2.0 * eps);
    assert!(
        (fd - g[j]).abs() <= 0.05 * g[j].abs(),
        "finite difference {fd} vs gradient {}",
        g[j]
    );
}

#[test]
fn learned_key_factors_get_the_losss_gradient_train_and_resume() {
    let m = model();
    // The factors' gradient (through the tails' scores against every packet row, in every
    // layer) against finite differences, with a plain and a context-only header.
    let spec = three_person_sets("key-factor-fd", 1, 2);
    for context in [false, true] {
        let adapter = with_head_factors(
            &m,
            Adapter::init(&m, 2, 2, 11)
                .unwrap()
                .with_context_header(context)
                .unwrap(),
        );
        gradient_matches_finite_differences(
            &m,
            &spec,
            &adapter,
            |g| g.head_key_scale.clone(),
            |a, j, delta| {
                let mut f = a.head_key_scale.clone();
                f[j] += delta;
                let [l, h] = a.meta.head_key_scale.unwrap();
                *a = a.clone().with_head_key_scale(f, l, h).unwrap();
            },
            2e-2,
        );
    }
    // Training moves them from 1 and a resumed run reproduces the uninterrupted one, factors
    // and their optimizer state included.
    let learning = |run: &str| {
        let mut c = config("key-factors", 2, 2);
        c.learn_key_scale = true;
        trainer(&m, c, run)
    };
    let straight = learning("key-factors-straight");
    let Outcome::Finished(a) = straight.train(false, None).unwrap() else {
        panic!()
    };
    assert_eq!(a.meta.head_key_scale, Some([m.config.n_layers, m.config.n_kv_heads]));
    assert!(
        a.head_key_scale.iter().any(|f| (f - 1.0).abs() > 1e-3),
        "{:?}",
        a.head_key_scale
    );
    let split = learning("key-factors-split");
    assert!(matches!(split.train(false, Some(1)).unwrap(), Outcome::Interrupted(1)));
    let Outcome::Finished(b) = split.train(true, None).unwrap() else {
        panic!()
    };
    assert_eq!(a.head_key_scale, b.head_key_scale);
    assert_eq!(a.fingerprint().unwrap(), b.fingerprint().unwrap());
}

#[test]
fn reasoning_adds_the_entrys_question_with_the_request_over_the_same_documents_in_training_only() {
    let m = model();
    let spec = SampleSpec {
        files: vec![qa_file(
            "reasoning",
            20,
            5,
            |i, j| format!("Place {i}-{j}"),
            |_, _| false,
        )],
        count: 6,
        generic_task_prob: 0.0,
        reasoning: true,
        ..config("reasoning", 1, 1).samples
    };
    for s in draw_samples(&m, &spec, Split::Train, 6).unwrap() {
        assert_eq!(s.tasks.len(), 2, "{:?}", s.tasks);
        assert_eq!(
            s.tasks[1],
            format!("{}{}", s.tasks[0], kvpacket::train::samples::REASONING_REQUEST)
        );
    }
    for s in draw_samples(&m, &spec, Split::Validation, 2).unwrap() {
        assert_eq!(s.tasks.len(), 1, "validation asks the bare question: {:?}", s.tasks);
    }
}
