//! Packets, composition and the store, on a tiny random model written by the test.

mod common;

use kvpacket::adapter::Adapter;
use kvpacket::methods::{Full, Method, Packets, Resources, Segments};
use kvpacket::model::tiny::TinySpec;
use kvpacket::model::{Arch, Model, WeightMode};
use kvpacket::packet::{KvDtype, Packet, PacketError};
use kvpacket::store::{FsStore, LruStore, PacketStore};
use std::path::PathBuf;
use std::sync::Arc;

fn tmp(name: &str) -> PathBuf {
    common::scratch("packets", name)
}

fn model(seed: u64) -> Model {
    let spec = TinySpec {
        arch: Arch::Qwen2,
        seed,
        ..Default::default()
    };
    Model::load(
        &common::tiny_model("packets", &format!("model-{seed}"), spec),
        WeightMode::F32,
    )
    .unwrap()
}

fn toks(m: &Model, s: &str) -> Vec<u32> {
    m.tokenizer.encode(s).unwrap()
}

fn max_abs(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max)
}

#[test]
fn one_packet_after_empty_preamble_reproduces_full_prefill() {
    let m = model(1);
    let store = LruStore::new(FsStore::new(tmp("exact")).unwrap(), 1 << 20);
    let engine = Resources {
        model: &m,
        store: &store,
        kv_dtype: KvDtype::F32,
        cached_only: false,
        decode_room: 64,
    };
    let seg = Segments {
        preamble: vec![],
        docs: vec![toks(&m, "the document text here")],
        prompt: toks(&m, "the question"),
        summary: false,
    };
    let full = Full.prefill(&engine, &seg).unwrap();
    let none = Packets::none(&m).unwrap();
    let composed = none.prefill(&engine, &seg).unwrap();
    assert!(max_abs(&full.first_logits, &composed.first_logits) < 1e-5);
    assert_eq!(
        composed.acct.recomputed_tokens,
        seg.docs[0].len(),
        "first call builds the packet"
    );
    let again = none.prefill(&engine, &seg).unwrap();
    assert_eq!(again.acct.recomputed_tokens, 0);
    assert_eq!(again.acct.reused_tokens, seg.docs[0].len());
    assert_eq!(again.acct.doc_flops, 0.0, "a packet at offset 0 needs no re-rotation");
    assert!(
        max_abs(&full.first_logits, &again.first_logits) < 1e-5,
        "a loaded packet equals a fresh one"
    );
}

#[test]
fn packets_at_offsets_equal_a_block_diagonal_prefill_and_f16_error_is_bounded() {
    let m = model(2);
    let adapter = Adapter::init(&m, 3, 2, 9).unwrap();
    let store = LruStore::new(FsStore::new(tmp("offsets")).unwrap(), 1 << 20);
    let seg = Segments {
        preamble: toks(&m, "preamble: "),
        docs: vec![
            toks(&m, "first doc"),
            toks(&m, "the second document"),
            toks(&m, "third"),
        ],
        prompt: toks(&m, "question?"),
        summary: false,
    };
    let method = Packets::kvpacket(adapter.clone());
    let f32_engine = Resources {
        model: &m,
        store: &store,
        kv_dtype: KvDtype::F32,
        cached_only: false,
        decode_room: 64,
    };
    let exact = method.prefill(&f32_engine, &seg).unwrap();
    assert_eq!(exact.acct.context_tokens, seg.concat().len() + 3 * 5);
    // The same context as one sequence with a block-diagonal mask on the differentiable path.
    use candle_core::Tensor;
    use kvpacket::model::{AttnMask, Segment};
    let mut parts = vec![m.embed(&seg.preamble).unwrap()];
    let mut segs = vec![Segment::Global(seg.preamble.len())];
    for d in &seg.docs {
        parts.extend([adapter.header.clone(), m.embed(d).unwrap(), adapter.trailer.clone()]);
        segs.push(Segment::Isolated(d.len() + 5));
    }
    parts.push(m.embed(&seg.prompt).unwrap());
    segs.push(Segment::Global(seg.prompt.len()));
    let x = Tensor::cat(&parts, 0).unwrap();
    let n = x.dim(0).unwrap();
    let pos: Vec<i64> = (0..n as i64).collect();
    let logits = m
        .forward_graph(&x, &pos, &Arc::new(AttnMask::segments(0, &segs).unwrap()), &[n - 1])
        .unwrap();
    let want = logits.get(0).unwrap().to_vec1::<f32>().unwrap();
    assert!(
        max_abs(&want, &exact.first_logits) < 1e-4,
        "{}",
        max_abs(&want, &exact.first_logits)
    );
    // f16 packets: the first-token logits move by at most 2e-2 (logits here span ~±10).
    let f16_engine = Resources {
        model: &m,
        store: &store,
        kv_dtype: KvDtype::F16,
        cached_only: false,
        decode_room: 64,
    };
    let half = method.prefill(&f16_engine, &seg).unwrap();
    let err = max_abs(&half.first_logits, &exact.first_logits);
    assert!(err < 2e-2 && err > 0.0, "f16 error {err}");
}

fn packet(m: &Model, text: &str) -> Packet {
    Packet::build(m, &Adapter::empty(m).unwrap(), &toks(m, text), KvDtype::F16).unwrap()
}

fn err_of(bytes: &[u8]) -> PacketError {
    Packet::from_bytes(bytes).expect_err("must be refused")
}

#[test]
fn packet_files_refuse_damage_and_mismatches_with_distinct_errors() {
    let m = model(3);
    let p = packet(&m, "some document to store");
    let bytes = p.to_bytes().unwrap();
    let back = Packet::from_bytes(&bytes).unwrap();
    assert_eq!(back.meta, p.meta);
    assert_eq!(back.k, p.k);
    assert_eq!(back.v, p.v);
    assert!(matches!(
        err_of(&bytes[..bytes.len() - 10]),
        PacketError::Truncated { .. }
    ));
    assert!(matches!(err_of(&bytes[..5]), PacketError::Truncated { .. }));
    let mut flipped = bytes.clone();
    let i = flipped.len() - 7;
    flipped[i] ^= 0x40;
    assert!(matches!(err_of(&flipped), PacketError::Corrupt(m) if m.contains("checksum")));
    // A file of another format version (format 1 had a sha256 payload checksum) is refused.
    let pat = b"\\\"format_version\\\":2";
    let at = bytes
        .windows(pat.len())
        .position(|w| w == pat)
        .expect("version field in the header");
    let mut v1 = bytes.clone();
    v1[at + pat.len() - 1] = b'1';
    assert!(matches!(
        err_of(&v1),
        PacketError::WrongVersion { found: 1, expected: 2 }
    ));
    let other = model(4);
    let e = back.check_compatible(&other.fingerprint, None).unwrap_err();
    assert!(matches!(e, PacketError::WrongModel { .. }));
    assert!(e.to_string().contains(&other.fingerprint[..12]) && e.to_string().contains(&m.fingerprint[..12]));
    let a = Adapter::init(&m, 2, 2, 1).unwrap();
    let e = back
        .check_compatible(&m.fingerprint, Some(&a.fingerprint().unwrap()))
        .unwrap_err();
    assert!(matches!(e, PacketError::WrongAdapter { .. }) && e.to_string().contains("none"));
    // Composing into another model's context is refused too.
    let mut cache = other.new_cache(64);
    assert!(p.append_to(&other, &mut cache).is_err());
}

#[test]
fn store_round_trip_concurrent_writers_and_lru_budget() {
    let m = model(5);
    let dir = tmp("store");
    let fs = Arc::new(FsStore::new(dir.clone()).unwrap());
    let p = Arc::new(packet(&m, "a packet written by many threads at once"));
    let handles: Vec<_> = (0..8)
        .map(|_| {
            let (fs, p) = (fs.clone(), p.clone());
            std::thread::spawn(move || fs.put(&p).unwrap())
        })
        .collect();
    handles.into_iter().for_each(|h| h.join().unwrap());
    let got = fs.get(&p.meta.id).unwrap().unwrap();
    assert_eq!(got.k, p.k);
    let shard = fs.path(&p.meta.id).parent().unwrap().to_path_buf();
    let names: Vec<_> = std::fs::read_dir(&shard)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names.len(), 1, "no temporary files left behind: {names:?}");
    assert!(fs.get(&"ab".repeat(32)).unwrap().is_none());
    assert!(fs.get("../etc/passwd").is_err());
    // A file holding another packet under this id is refused.
    let q = packet(&m, "another one");
    std::fs::copy(fs.path(&p.meta.id), fs.path(&q.meta.id)).ok();
    std::fs::create_dir_all(fs.path(&q.meta.id).parent().unwrap()).unwrap();
    std::fs::copy(fs.path(&p.meta.id), fs.path(&q.meta.id)).unwrap();
    assert!(format!("{:#}", fs.get(&q.meta.id).unwrap_err()).contains("instead"));
    std::fs::remove_file(fs.path(&q.meta.id)).unwrap();
    // LRU: budget for two packets of this size.
    let texts = ["one packet", "two packet", "red packet", "blue packet"];
    let ps: Vec<Packet> = texts.iter().map(|t| packet(&m, t)).collect();
    let size = ps.iter().map(|p| p.memory_bytes()).max().unwrap();
    let lru = LruStore::new(FsStore::new(tmp("lru")).unwrap(), 2 * size + size / 2);
    for p in &ps {
        lru.put(p).unwrap();
        assert!(lru.memory_bytes() <= 2 * size + size / 2);
    }
    assert!(lru.memory_bytes() >= size);
    for p in &ps {
        assert_eq!(
            lru.get(&p.meta.id).unwrap().unwrap().meta.id,
            p.meta.id,
            "evicted packets come back from disk"
        );
        assert!(lru.memory_bytes() <= 2 * size + size / 2);
    }
    let tiny_budget = LruStore::new(FsStore::new(tmp("lru0")).unwrap(), 10);
    tiny_budget.put(&ps[0]).unwrap();
    assert_eq!(tiny_budget.memory_bytes(), 0);
}

#[test]
fn a_disk_budget_evicts_the_least_recently_used_packets_never_the_one_just_stored() {
    let m = model(5);
    let ps: Vec<Packet> = ["first doc", "second doc", "third doc", "fourth doc", "fifth doc"]
        .iter()
        .map(|t| packet(&m, t))
        .collect();
    let file_bytes = |p: &Packet| p.to_bytes().unwrap().len() as u64;
    let largest = ps.iter().map(file_bytes).max().unwrap();
    // Room for three packets; eviction goes down to 90 % of that, i.e. two packets.
    let fs = FsStore::new(tmp("budget")).unwrap().with_budget(3 * largest);
    let on_disk = |fs: &FsStore| -> Vec<bool> { ps.iter().map(|p| fs.contains(&p.meta.id).unwrap()).collect() };
    for p in &ps[..3] {
        fs.put(p).unwrap();
        // Distinct modification times even on coarse-grained file systems.
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    assert_eq!(on_disk(&fs), [true, true, true, false, false]);
    // Reading the first packet makes the second the least recently used.
    fs.get(&ps[0].meta.id).unwrap().unwrap();
    std::thread::sleep(std::time::Duration::from_millis(20));
    fs.put(&ps[3]).unwrap();
    assert_eq!(on_disk(&fs), [true, false, false, true, false]);
    let total: u64 = fs.list().unwrap().iter().map(|p| p.bytes).sum();
    assert!(total <= 3 * largest, "{total} bytes over the budget {}", 3 * largest);
    // A budget smaller than one packet still keeps the packet just stored.
    let tiny = FsStore::new(tmp("budget-tiny")).unwrap().with_budget(1);
    tiny.put(&ps[4]).unwrap();
    assert!(tiny.get(&ps[4].meta.id).unwrap().is_some());
    tiny.put(&ps[0]).unwrap();
    assert!(tiny.contains(&ps[0].meta.id).unwrap() && !tiny.contains(&ps[4].meta.id).unwrap());
}

#[test]
fn adapter_save_load_and_init_statistics() {
    let m = model(6);
    let a = Adapter::init(&m, 8, 8, 42).unwrap();
    let path = tmp("adapter").join("a.safetensors");
    a.save(&path).unwrap();
    let b = Adapter::load(&path, Some(&m)).unwrap();
    assert_eq!(a.fingerprint().unwrap(), b.fingerprint().unwrap());
    assert_eq!(b.meta, a.meta);
    assert_eq!(
        Adapter::init(&m, 8, 8, 42).unwrap().fingerprint().unwrap(),
        a.fingerprint().unwrap(),
        "seeded"
    );
    assert_ne!(
        Adapter::init(&m, 8, 8, 43).unwrap().fingerprint().unwrap(),
        a.fingerprint().unwrap()
    );
    // Entries follow the embedding matrix's mean and std (tiny embeddings are N(0, 1)).
    let h = b.header.flatten_all().unwrap().to_vec1::<f32>().unwrap();
    let mean = h.iter().sum::<f32>() / h.len() as f32;
    let std = (h.iter().map(|x| (x - mean).powi(2)).sum::<f32>() / h.len() as f32).sqrt();
    assert!(mean.abs() < 0.15 && (std - 1.0).abs() < 0.15, "mean {mean} std {std}");
    let e = Adapter::load(&path, Some(&model(7))).unwrap_err().to_string();
    assert!(e.contains("made for model"), "{e}");
    assert_eq!(Adapter::empty(&m).unwrap().fingerprint().unwrap(), "none");
}

fn first_logits(
    m: &Model,
    method: &dyn Method,
    seg: &Segments,
    dir: &str,
) -> (Vec<f32>, kvpacket::methods::Accounting) {
    let store = LruStore::new(FsStore::new(tmp(dir)).unwrap(), 1 << 24);
    let engine = Resources {
        model: m,
        store: &store,
        kv_dtype: KvDtype::F32,
        cached_only: false,
        decode_room: 64,
    };
    engine.packet(&Adapter::empty(m).unwrap(), &seg.preamble).unwrap();
    let adapter = method.packet_adapter().unwrap_or(Adapter::empty(m).unwrap());
    for d in &seg.docs {
        engine.packet(&adapter, d).unwrap();
    }
    let p = method.prefill(&engine, seg).unwrap();
    (p.first_logits, p.acct)
}

#[test]
fn recompute_baselines_span_none_to_full() {
    use kvpacket::methods::Recompute;
    use kvpacket::methods::recompute::Selection;
    let m = model(8);
    let seg = Segments {
        preamble: toks(&m, "preamble: "),
        docs: vec![
            toks(&m, "first document"),
            toks(&m, "the second document"),
            toks(&m, "third one here"),
        ],
        prompt: toks(&m, "question?"),
        summary: false,
    };
    let (full, _) = first_logits(&m, &Full, &seg, "rc-full");
    let (none, _) = first_logits(&m, &Packets::none(&m).unwrap(), &seg, "rc-none");
    assert!(
        max_abs(&full, &none) > 1e-3,
        "composition without recompute differs from full"
    );
    for (sel, want, n) in [
        (Selection::CacheBlend(1.0), &full, seg.doc_tokens()),
        (Selection::Random(1.0, 0), &full, seg.doc_tokens()),
        (Selection::CacheBlend(0.0), &none, 0),
        (Selection::Random(0.0, 0), &none, 0),
    ] {
        let r = Recompute::new(&m, sel).unwrap();
        let (got, acct) = first_logits(&m, &r, &seg, &r.name().replace(':', "-"));
        assert!(max_abs(&got, want) < 1e-4, "{}: {}", r.name(), max_abs(&got, want));
        assert_eq!(acct.recomputed_tokens, n, "{}", r.name());
    }
    let epic = Recompute::new(&m, Selection::Epic(2)).unwrap();
    let (_, acct) = first_logits(&m, &epic, &seg, "rc-epic");
    assert_eq!(acct.recomputed_tokens, 2 * 2, "2 tokens of each document but the first");
    let (_, half) = first_logits(
        &m,
        &Recompute::new(&m, Selection::CacheBlend(0.5)).unwrap(),
        &seg,
        "rc-half",
    );
    assert_eq!(half.recomputed_tokens, (seg.doc_tokens() as f64 * 0.5).round() as usize);
    let (_, fa) = first_logits(&m, &Full, &seg, "rc-full2");
    let want = kvpacket::methods::forward_flops(&m.config, seg.preamble.len(), seg.doc_tokens());
    assert_eq!(fa.doc_flops, want);
    assert!(Recompute::new(&m, Selection::CacheBlend(1.5)).is_err());
}

/// A request with a preamble, two short documents and a question.
fn two_documents(m: &Model) -> Segments {
    Segments {
        preamble: toks(m, "preamble: "),
        docs: vec![toks(m, "first document"), toks(m, "the second document")],
        prompt: toks(m, "question?"),
        summary: false,
    }
}

#[test]
fn full_reversed_is_full_over_the_documents_in_reverse_order() {
    use kvpacket::methods::{FullReversed, method_by_name};
    let m = model(8);
    let seg = two_documents(&m);
    let mut swapped = seg.clone();
    swapped.docs.reverse();
    let (full, _) = first_logits(&m, &Full, &seg, "fr-full");
    let (want, _) = first_logits(&m, &Full, &swapped, "fr-swapped");
    let (got, acct) = first_logits(&m, &FullReversed, &seg, "fr-reversed");
    assert!(max_abs(&got, &want) < 1e-5, "{}", max_abs(&got, &want));
    assert!(max_abs(&got, &full) > 1e-3, "the order changes a random model's logits");
    assert_eq!(acct.recomputed_tokens, seg.doc_tokens());
    assert_eq!(
        method_by_name("full-reversed", &m, None).unwrap().name(),
        "full-reversed"
    );
}

#[test]
fn recompute_on_adapter_packets_dials_from_kvpacket_and_names_parse() {
    use kvpacket::methods::method_by_name;
    let m = model(8);
    let seg = two_documents(&m);
    let adapter = Adapter::init(&m, 2, 2, 11).unwrap();
    let file = tmp("dial").join("a.safetensors");
    adapter.save(&file).unwrap();
    let named = |spec: &str| method_by_name(spec, &m, Some(&adapter)).unwrap();
    let (kv, acct) = first_logits(&m, named("kvpacket").as_ref(), &seg, "dial-kv");
    assert_eq!(acct.recomputed_tokens, 0);
    for zero in ["kvpacket+cacheblend:0", "kvpacket+epic:0", "kvpacket+random:0"] {
        let (got, acct) = first_logits(&m, named(zero).as_ref(), &seg, &format!("dial-{zero}"));
        assert_eq!(acct.recomputed_tokens, 0, "{zero}");
        assert!(max_abs(&got, &kv) < 1e-5, "{zero} recomputes nothing: same as kvpacket");
    }
    let all = named("kvpacket+cacheblend:1");
    assert_eq!(all.name(), "kvpacket+cacheblend:1");
    let (got, acct) = first_logits(&m, all.as_ref(), &seg, "dial-all");
    assert_eq!(acct.recomputed_tokens, seg.doc_tokens());
    assert!(
        max_abs(&got, &kv) > 1e-4,
        "recomputing every document token changes the answer's logits"
    );
    let epic = method_by_name(&format!("kvpacket={}+epic:2", file.display()), &m, None).unwrap();
    assert_eq!(epic.name(), "kvpacket:a+epic:2");
    assert_eq!(
        epic.packet_adapter().unwrap().fingerprint().unwrap(),
        adapter.fingerprint().unwrap()
    );
    let (_, acct) = first_logits(&m, epic.as_ref(), &seg, "dial-epic");
    assert_eq!(acct.recomputed_tokens, 2, "2 tokens of every document but the first");
    // Bad names and arguments are errors that say what is wrong.
    for (bad, says) in [
        ("cacheblend:1.5", "within 0..1"),
        ("random:-0.1", "within 0..1"),
        ("epic:-1", "whole number"),
        ("kvpacket+epic:x", "whole number"),
        ("kvpacket+nonsense", "unknown method"),
        ("fast", "unknown method"),
        ("kvpacket=/no/such/adapter.safetensors", "neither an adapter file"),
    ] {
        let e = method_by_name(bad, &m, Some(&adapter))
            .err()
            .unwrap_or_else(|| panic!("{bad} accepted"))
            .to_string();
        assert!(e.contains(says), "{bad}: {e}");
    }
    let empty = Adapter::empty(&m).unwrap();
    let e = method_by_name("kvpacket", &m, Some(&empty)).err().unwrap().to_string();
    assert!(e.contains("needs a trained adapter"), "{e}");
}

#[test]
fn store_lists_packets_by_adapter_and_prunes_only_the_named_one() {
    let m = model(9);
    let dir = tmp("prune");
    let fs = FsStore::new(dir.clone()).unwrap();
    let trained = Adapter::init(&m, 2, 2, 3).unwrap();
    let adapter_file = dir.join("adapter.safetensors");
    trained.save(&adapter_file).unwrap();
    for text in ["first document", "second document"] {
        fs.put(&packet(&m, text)).unwrap();
        fs.put(&Packet::build(&m, &trained, &toks(&m, text), KvDtype::F16).unwrap())
            .unwrap();
    }
    // A damaged file is listed as unreadable and never deleted by prune.
    let junk = dir.join("ff").join(format!("{}.kvp", "ff".repeat(32)));
    std::fs::create_dir_all(junk.parent().unwrap()).unwrap();
    std::fs::write(&junk, b"not a packet").unwrap();
    let listed = fs.list().unwrap();
    assert_eq!(listed.len(), 5);
    assert_eq!(listed.iter().filter(|p| p.meta.is_none()).count(), 1);
    let fp = trained.fingerprint().unwrap();
    let kept: Vec<_> = listed
        .iter()
        .filter_map(|p| p.meta.as_ref())
        .filter(|m| m.adapter_fingerprint == fp)
        .map(|m| m.id.clone())
        .collect();
    assert_eq!(kept.len(), 2);

    let cli = |args: &[&str]| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_kvpacket"))
            .args(args)
            .args(["--dir", dir.to_str().unwrap()])
            .output()
            .unwrap();
        (out.status.success(), String::from_utf8_lossy(&out.stdout).to_string())
    };
    let (ok, stats) = cli(&["store", "stats"]);
    assert!(
        ok && stats.contains("unreadable") && stats.contains(&fp[..12]),
        "{stats}"
    );
    let (ok, dry) = cli(&["store", "prune", "--adapter", "none", "--dry-run"]);
    assert!(ok && dry.contains("nothing deleted"), "{dry}");
    assert_eq!(fs.list().unwrap().len(), 5);
    let (ok, _) = cli(&["store", "prune", "--adapter", "abc"]);
    assert!(!ok, "a short prefix would match too much and is refused");
    let (ok, out) = cli(&["store", "prune", "--adapter", "none"]);
    assert!(ok && out.contains("deleted 2 packets"), "{out}");
    let left = fs.list().unwrap();
    assert_eq!(left.len(), 3);
    for id in &kept {
        assert!(fs.get(id).unwrap().is_some(), "the other adapter's packets stay");
    }
    // Naming the adapter by its file works too.
    let (ok, out) = cli(&["store", "prune", "--adapter", adapter_file.to_str().unwrap()]);
    assert!(ok && out.contains("deleted 2 packets"), "{out}");
    assert_eq!(fs.list().unwrap().len(), 1);
}

#[test]
fn q8_packets_are_about_half_of_f16_and_read_back_exactly() {
    let m = model(12);
    let adapter = Adapter::init(&m, 2, 2, 1).unwrap();
    let tokens = toks(
        &m,
        "a document long enough to fill a few groups of values in every layer",
    );
    let f16 = Packet::build(&m, &adapter, &tokens, KvDtype::F16).unwrap();
    let q8 = Packet::build(&m, &adapter, &tokens, KvDtype::Q8).unwrap();
    let ratio = q8.payload_bytes() as f64 / f16.payload_bytes() as f64;
    assert!((0.5..0.6).contains(&ratio), "q8 / f16 bytes = {ratio}");
    let back = Packet::from_bytes(&q8.to_bytes().unwrap()).unwrap();
    assert_eq!(
        (back.k.clone(), back.v.clone()),
        (q8.k.clone(), q8.v.clone()),
        "loaded = built"
    );
    assert_ne!(q8.meta.id, f16.meta.id, "the dtype is part of the id");
    // Quantization error: within half a step of each group's scale (amax / 127).
    let err = max_abs(&q8.k[0], &f16.k[0]);
    let amax = f16.k[0].iter().fold(0f32, |a, v| a.max(v.abs()));
    assert!(err > 0.0 && err <= amax / 127.0, "q8 error {err} (amax {amax})");
    // A damaged scale is caught by the checksum.
    let mut bytes = q8.to_bytes().unwrap();
    let n = bytes.len();
    bytes[n - 1] ^= 0x40;
    assert!(Packet::from_bytes(&bytes).is_err());
}

#[test]
fn a_key_scale_multiplies_only_the_stored_keys_and_makes_its_own_adapter() {
    let m = model(9);
    let doc = toks(&m, "a key scale flattens the question's attention over packets");
    for context in [false, true] {
        let a = Adapter::init(&m, 2, 2, 3)
            .unwrap()
            .with_context_header(context)
            .unwrap();
        let scaled = a.clone().with_key_scale(0.5).unwrap();
        let (p, q) = (
            Packet::build(&m, &a, &doc, KvDtype::F32).unwrap(),
            Packet::build(&m, &scaled, &doc, KvDtype::F32).unwrap(),
        );
        // Halving is exact in f32: the keys are the unscaled packet's, times 0.5, after the
        // context-only header's rows are dropped; values are untouched.
        for (kp, kq) in p.k.iter().zip(&q.k) {
            assert!(kp.iter().zip(kq).all(|(x, y)| 0.5 * x == *y));
        }
        assert_eq!(p.v, q.v);
        assert_ne!(p.meta.id, q.meta.id, "a scaled adapter's packets are other packets");
        assert_ne!(a.fingerprint().unwrap(), scaled.fingerprint().unwrap());
        let back = scaled.clone().with_key_scale(1.0).unwrap();
        assert_eq!(back.fingerprint().unwrap(), a.fingerprint().unwrap());
        let path = tmp("key-scale").join(format!("a-{context}.safetensors"));
        scaled.save(&path).unwrap();
        let loaded = Adapter::load(&path, Some(&m)).unwrap();
        assert_eq!(loaded.meta, scaled.meta);
        assert_eq!(loaded.fingerprint().unwrap(), scaled.fingerprint().unwrap());
    }
    for bad in [0.0, -1.0, f32::NAN, 4.5] {
        let e = Adapter::init(&m, 2, 2, 3).unwrap().with_key_scale(bad).unwrap_err();
        assert!(e.to_string().contains("outside (0, 4]"), "{e}");
    }
    let e = Adapter::empty(&m).unwrap().with_key_scale(0.9).unwrap_err();
    assert!(e.to_string().contains("needs an adapter"), "{e}");
}

#[test]
fn per_head_key_factors_multiply_each_layers_heads_keys_and_survive_a_round_trip() {
    let m = model(9);
    let (layers, heads) = (m.config.n_layers, m.config.n_kv_heads);
    let doc = toks(&m, "each head reads the packets at its own temperature");
    // Powers of two, so that the products are exact in f32; on top of a key scale of 0.5.
    let factors: Vec<f32> = (0..layers * heads).map(|i| [0.5, 2.0, 0.25, 1.0][i % 4]).collect();
    let a = Adapter::init(&m, 2, 2, 3).unwrap();
    let scaled = a
        .clone()
        .with_key_scale(0.5)
        .unwrap()
        .with_head_key_scale(factors.clone(), layers, heads)
        .unwrap();
    let (p, q) = (
        Packet::build(&m, &a, &doc, KvDtype::F32).unwrap(),
        Packet::build(&m, &scaled, &doc, KvDtype::F32).unwrap(),
    );
    let d = m.config.head_dim;
    for (l, (kp, kq)) in p.k.iter().zip(&q.k).enumerate() {
        for (i, (x, y)) in kp.iter().zip(kq).enumerate() {
            assert_eq!(
                0.5 * factors[l * heads + (i / d) % heads] * x,
                *y,
                "layer {l}, element {i}"
            );
        }
    }
    assert_eq!(p.v, q.v);
    assert_ne!(p.meta.id, q.meta.id);
    let path = tmp("head-key-scale").join("a.safetensors");
    scaled.save(&path).unwrap();
    let loaded = Adapter::load(&path, Some(&m)).unwrap();
    assert_eq!(loaded.meta, scaled.meta);
    assert_eq!(loaded.head_key_scale, factors);
    assert_eq!(loaded.fingerprint().unwrap(), scaled.fingerprint().unwrap());
    assert!(kvpacket::adapter::provenance(&loaded.meta).contains("learned key scales"));
    for bad in [0.0, -1.0, f32::NAN, 4.5] {
        let mut f = factors.clone();
        f[1] = bad;
        let e = a.clone().with_head_key_scale(f, layers, heads).unwrap_err();
        assert!(e.to_string().contains("outside (0, 4]"), "{e}");
    }
    let e = a.clone().with_head_key_scale(vec![1.0; 3], layers, heads).unwrap_err();
    assert!(e.to_string().contains("kv heads"), "{e}");
    let e = Adapter::empty(&m)
        .unwrap()
        .with_head_key_scale(factors, layers, heads)
        .unwrap_err();
    assert!(e.to_string().contains("need an adapter"), "{e}");
}
