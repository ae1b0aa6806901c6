//! Property tests (proptest) of the invariants everything rests on, on tiny random models:
//! the mask builder against a naive mask, re-rotation by random offsets against direct
//! computation, and random packet orders and subsets against the block-diagonal prefill.

mod common;

use kvpacket::adapter::Adapter;
use kvpacket::methods::{Method, Packets, Resources, Segments};
use kvpacket::model::tiny::TinySpec;
use kvpacket::model::{AttnMask, Input, Model, Rows, Segment, WeightMode};
use kvpacket::packet::KvDtype;
use kvpacket::store::{FsStore, LruStore};
use proptest::prelude::*;
use std::sync::{Arc, OnceLock};

fn model() -> &'static Model {
    static M: OnceLock<Model> = OnceLock::new();
    M.get_or_init(|| {
        Model::load(
            &common::tiny_model("properties", "model", TinySpec::default()),
            WeightMode::F32,
        )
        .unwrap()
    })
}

fn segment() -> impl Strategy<Value = Segment> {
    prop_oneof![
        (1usize..40).prop_map(Segment::Isolated),
        (1usize..40).prop_map(Segment::Global),
        (1usize..40).prop_map(Segment::Branch),
        (1usize..40, 0usize..3).prop_map(|(n, j)| Segment::Conditioned(n, j)),
    ]
}

/// Up to three leading context segments, then others (a `Conditioned` segment's index is
/// taken modulo the number of contexts; without contexts it becomes `Isolated`).
fn segments() -> impl Strategy<Value = Vec<Segment>> {
    (
        prop::collection::vec(1usize..20, 0..3),
        prop::collection::vec(segment(), 1..7),
    )
        .prop_map(|(contexts, rest)| {
            let c = contexts.len();
            contexts
                .into_iter()
                .map(Segment::Context)
                .chain(rest.into_iter().map(|s| match s {
                    Segment::Conditioned(n, j) if c > 0 => Segment::Conditioned(n, j % c),
                    Segment::Conditioned(n, _) => Segment::Isolated(n),
                    s => s,
                }))
                .collect()
        })
}

/// The mask of `segs` written out key by key from the segment definitions.
fn naive(n_past: usize, segs: &[Segment]) -> Vec<Vec<bool>> {
    let len = |s: &Segment| match *s {
        Segment::Isolated(n) | Segment::Global(n) | Segment::Branch(n) | Segment::Context(n) => n,
        Segment::Conditioned(n, _) => n,
    };
    let total = n_past + segs.iter().map(len).sum::<usize>();
    let mut rows = Vec::new();
    let (mut start, mut fork) = (n_past, None);
    let mut contexts: Vec<(usize, usize)> = Vec::new();
    for s in segs {
        let n = len(s);
        if let Segment::Context(_) = s {
            contexts.push((start, start + n));
        }
        if matches!(s, Segment::Branch(_)) && fork.is_none() {
            fork = Some(start);
        }
        let in_context = |k: usize| contexts.iter().any(|&(a, b)| k >= a && k < b);
        for i in 0..n {
            let me = start + i;
            rows.push(
                (0..total)
                    .map(|k| {
                        k <= me
                            && match *s {
                                Segment::Isolated(_) | Segment::Context(_) => k >= start,
                                Segment::Conditioned(_, j) => k >= start || (k >= contexts[j].0 && k < contexts[j].1),
                                Segment::Global(_) => !in_context(k),
                                Segment::Branch(_) => k >= start || (k < fork.unwrap() && !in_context(k)),
                            }
                    })
                    .collect(),
            );
        }
        start += n;
    }
    rows
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn the_mask_builder_matches_a_naive_mask(n_past in 0usize..20, segs in segments()) {
        let n_past = if matches!(segs[0], Segment::Context(_)) { 0 } else { n_past };
        let mask = AttnMask::segments(n_past, &segs).unwrap();
        let want = naive(n_past, &segs);
        prop_assert_eq!(mask.len(), want.len());
        for (i, row) in want.iter().enumerate() {
            let (lo, hi) = mask.span(i);
            for (k, &w) in row.iter().enumerate() {
                prop_assert_eq!(mask.sees(i, k), w, "row {} key {}", i, k);
                if w {
                    prop_assert!(lo <= k && k < hi);
                }
            }
            for j0 in (0..row.len()).step_by(7) {
                let j1 = (j0 + 7).min(row.len());
                prop_assert_eq!(mask.touches(i, j0, j1), row[j0..j1].iter().any(|&b| b));
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 16, ..ProptestConfig::default() })]

    #[test]
    fn rerotating_by_any_offset_equals_computing_there(offset in 0i64..3000, len in 1usize..24, seed in 0u64..1000) {
        let m = model();
        let vocab = m.config.vocab_size as u64;
        let toks: Vec<u32> = (0..len as u64).map(|i| ((seed * 31 + i * 17) % (vocab - 8)) as u32).collect();
        let run = |start: i64| {
            let pos: Vec<i64> = (start..start + len as i64).collect();
            let mut c = m.new_cache(len);
            m.forward(Input::Tokens(&toks), &pos, &AttnMask::causal(0, len), &mut c, &Rows::None).unwrap();
            c
        };
        let (local, direct) = (run(0), run(offset));
        for l in 0..m.config.n_layers {
            let mut k = local.layer(l).k.clone();
            m.rope_table(&[offset]).apply(&mut k, m.config.n_kv_heads);
            let err = k.iter().zip(&direct.layer(l).k).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
            prop_assert!(err < 1e-4, "layer {}: keys differ by {}", l, err);
            let verr = local.layer(l).v.iter().zip(&direct.layer(l).v).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
            prop_assert!(verr < 1e-4, "layer {}: values differ by {}", l, verr);
        }
    }

    #[test]
    fn any_order_and_subset_of_packets_composes_to_the_block_diagonal_prefill(
        picks in prop::sample::subsequence((0usize..6).collect::<Vec<_>>(), 1..=6).prop_shuffle(),
        with_adapter in any::<bool>(),
    ) {
        let m = model();
        let texts = ["alpha doc", "the second, longer document here", "c", "fourth one", "fifth text is here", "sixth"];
        let docs: Vec<Vec<u32>> = picks.iter().map(|&i| m.tokenizer.encode(texts[i]).unwrap()).collect();
        let seg = Segments {
            preamble: m.tokenizer.encode("preamble: ").unwrap(),
            docs,
            prompt: m.tokenizer.encode("question?").unwrap(),
            summary: false,
        };
        let adapter = if with_adapter { Adapter::init(m, 2, 3, 5).unwrap() } else { Adapter::empty(m).unwrap() };
        let store = LruStore::new(FsStore::new(common::scratch("properties", "store")).unwrap(), 1 << 24);
        let res = Resources { model: m, store: &store, kv_dtype: KvDtype::F32, cached_only: false, decode_room: 1 };
        let composed = Packets { adapter: adapter.clone(), label: "p".into() }.prefill(&res, &seg).unwrap();
        let (nh, nt) = (adapter.meta.n_header, adapter.meta.n_trailer);
        let mut parts = vec![m.embed(&seg.preamble).unwrap()];
        let mut segs = vec![Segment::Global(seg.preamble.len())];
        for d in &seg.docs {
            parts.extend([adapter.header.clone(), m.embed(d).unwrap(), adapter.trailer.clone()]);
            segs.push(Segment::Isolated(nh + d.len() + nt));
        }
        parts.push(m.embed(&seg.prompt).unwrap());
        segs.push(Segment::Global(seg.prompt.len()));
        let x = candle_core::Tensor::cat(&parts, 0).unwrap();
        let n = x.dim(0).unwrap();
        let pos: Vec<i64> = (0..n as i64).collect();
        let want = m.forward_graph(&x, &pos, &Arc::new(AttnMask::segments(0, &segs).unwrap()), &[n - 1]).unwrap();
        let want = want.get(0).unwrap().to_vec1::<f32>().unwrap();
        let err = want.iter().zip(&composed.first_logits).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
        prop_assert!(err < 1e-4, "order {:?}: logits differ by {}", picks, err);
    }
}
