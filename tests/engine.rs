//! The owned engine on a tiny random model: requests with texts and packet ids, streaming,
//! stop strings, answers longer than 64 tokens, and typed errors.

mod common;

use kvpacket::adapter::{Adapter, BridgePlace};
use kvpacket::data::Document;
use kvpacket::engine::{DocumentRef, Engine, EngineError, Limits, Request};
use kvpacket::model::generate::{Finish, Sampling};
use kvpacket::model::tiny::TinySpec;
use kvpacket::model::{Model, WeightMode};
use kvpacket::packet::KvDtype;
use kvpacket::store::{FsStore, LruStore};

fn engine(name: &str) -> Engine {
    let dir = common::tiny_model("engine", "model", TinySpec::default());
    let m = Model::load(&dir, WeightMode::F32).unwrap();
    let adapter = Adapter::init(&m, 2, 2, 3).unwrap();
    let store = LruStore::new(FsStore::new(common::scratch("engine", name)).unwrap(), 1 << 24);
    Engine::from_parts(m, Some(adapter), Box::new(store), KvDtype::F16, Limits::default())
}

fn text(t: &str) -> DocumentRef {
    DocumentRef::Text(Document {
        text: t.into(),
        ..Default::default()
    })
}

#[test]
fn answers_stream_in_pieces_reuse_packets_and_run_past_64_tokens() {
    let e = engine("stream");
    let docs = vec![text("alice lives in the blue house"), text("bob keeps a cat")];
    let req = Request {
        max_tokens: 150,
        sampling: Sampling {
            temperature: 1.0,
            top_p: 0.95,
            seed: 4,
        },
        ..Request::new("where does alice live?", docs.clone())
    };
    let mut pieces = String::new();
    let first = e
        .answer(&req, &mut |t| {
            pieces.push_str(t);
            true
        })
        .unwrap();
    assert_eq!(pieces, first.text, "streamed pieces add up to the answer");
    assert_eq!(first.acct.packets_built, 2);
    if first.finish == Finish::Length {
        assert_eq!(first.completion_tokens, 150, "the cache has room for max_tokens");
    }
    let again = e.answer(&req, &mut |_| true).unwrap();
    assert_eq!((again.acct.packets_loaded, again.acct.recomputed_tokens), (2, 0));
    assert_eq!(again.text, first.text, "same seed, same answer");
    // A stop string ends the answer before it; a callback returning false cancels.
    let cut: String = first.text.chars().skip(3).take(2).collect();
    if !cut.trim().is_empty() && !first.text[..first.text.find(&cut).unwrap()].is_empty() {
        let stopped = e
            .answer(
                &Request {
                    stop: vec![cut.clone()],
                    ..req.clone()
                },
                &mut |_| true,
            )
            .unwrap();
        assert_eq!(stopped.finish, Finish::Stop);
        assert_eq!(stopped.text, first.text[..first.text.find(&cut).unwrap()]);
    }
    let cancelled = e.answer(&req, &mut |_| false).unwrap();
    assert!(matches!(cancelled.finish, Finish::Cancelled | Finish::Stop));
}

#[test]
fn bad_requests_are_typed_errors() {
    let e = engine("errors");
    let ask = |r: Request| e.answer(&r, &mut |_| true).expect_err("an error");
    assert!(matches!(ask(Request::new("", vec![])), EngineError::BadRequest(_)));
    assert!(matches!(
        ask(Request::new("q?", vec![DocumentRef::Id("abcdef".into())])),
        EngineError::NotFound(_)
    ));
    assert!(matches!(
        ask(Request::new("q?", vec![DocumentRef::Id("../etc".into())])),
        EngineError::BadRequest(_)
    ));
    assert!(matches!(
        ask(Request {
            method: "nonsense".into(),
            ..Request::new("q?", vec![])
        }),
        EngineError::BadRequest(_)
    ));
    let long = "word ".repeat(5000);
    assert!(matches!(
        ask(Request::new("q?", vec![text(&long)])),
        EngineError::BadRequest(_)
    ));
    assert!(matches!(
        ask(Request {
            max_tokens: 0,
            ..Request::new("q?", vec![])
        }),
        EngineError::BadRequest(_)
    ));
}

#[test]
fn a_bridge_joins_the_prompt_only_when_there_are_packets_and_shares_their_packets() {
    let dir = common::tiny_model("engine", "model", TinySpec::default());
    let m = Model::load(&dir, WeightMode::F32).unwrap();
    let plain = Adapter::init(&m, 2, 2, 3).unwrap();
    let bridged = plain
        .clone()
        .with_bridge(&m, 3, BridgePlace::BeforeQuestion, "and now")
        .unwrap();
    let store_dir = common::scratch("engine", "bridge");
    let e = Engine::from_parts(
        m,
        Some(bridged),
        Box::new(LruStore::new(FsStore::new(store_dir).unwrap(), 1 << 24)),
        KvDtype::F16,
        Limits::default(),
    );
    let docs = vec![text("alice lives in the blue house"), text("bob keeps a cat")];
    let ask = |method: &str, docs: Vec<DocumentRef>| {
        let req = Request {
            method: method.into(),
            max_tokens: 4,
            ..Request::new("where does alice live?", docs)
        };
        e.answer(&req, &mut |_| true).unwrap()
    };
    let with = ask("kvpacket", docs.clone());
    let without = ask("none", docs.clone());
    // The same documents and prompt: the adapter's packets add 2 + 2 rows each, its bridge 3.
    assert_eq!(with.prompt_tokens, without.prompt_tokens + 2 * 4 + 3);
    assert_eq!(with.acct.packets_built, 2);
    // The adapter without its bridge finds the bridged adapter's packets: they are the same.
    let plain_method = kvpacket::methods::Packets::kvpacket(plain);
    let seg = kvpacket::methods::layout::segments(
        e.model(),
        &[
            Document {
                text: "alice lives in the blue house".into(),
                ..Default::default()
            },
            Document {
                text: "bob keeps a cat".into(),
                ..Default::default()
            },
        ],
        "where does alice live?",
    )
    .unwrap();
    let again = e.answer_segments(&plain_method, &seg, 4).unwrap();
    assert_eq!((again.acct.packets_loaded, again.acct.packets_built), (2, 0));
    // No documents: a plain chat turn, no bridge.
    let alone = ask("kvpacket", Vec::new());
    let alone_none = ask("none", Vec::new());
    assert_eq!(alone.prompt_tokens, alone_none.prompt_tokens);
}
