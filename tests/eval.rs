//! The evaluation runner on a tiny random model: records, resume, report files.

mod common;

use kvpacket::data::load_dataset;
use kvpacket::eval::reference::ReferenceCache;
use kvpacket::eval::report::write_report;
use kvpacket::eval::{Runner, read_records};
use kvpacket::methods::layout::segments;
use kvpacket::methods::{Full, Method, Packets, QuestionOnly, Resources};
use kvpacket::model::tiny::{TinySpec, write_tiny_model};
use kvpacket::model::{Model, WeightMode};
use kvpacket::packet::KvDtype;
use kvpacket::store::{FsStore, LruStore};

#[test]
fn runner_records_every_pair_resumes_and_reports() {
    let dir = common::scratch("eval", "runner");
    write_tiny_model(&dir.join("model"), TinySpec::default()).unwrap();
    let m = Model::load(&dir.join("model"), WeightMode::F32).unwrap();
    let store = LruStore::new(FsStore::new(dir.join("packets")).unwrap(), 1 << 26);
    let methods: Vec<Box<dyn Method>> = vec![
        Box::new(Full),
        Box::new(Packets::none(&m).unwrap()),
        Box::new(QuestionOnly),
        kvpacket::methods::method_by_name("epic:2", &m, None).unwrap(),
    ];
    let out = dir.join("out");
    let runner = Runner {
        engine: Resources {
            model: &m,
            store: &store,
            kv_dtype: KvDtype::F16,
            cached_only: false,
            decode_room: 64,
        },
        methods,
        max_new_tokens: 4,
        summary_tokens: 6,
        out: out.clone(),
        progress: false,
        references: Some(ReferenceCache::new(&dir.join("refs"), "f32")),
    };
    let (name, samples) = load_dataset("synth:biography:3", 3, 0).unwrap();
    runner.run(&name, &samples).unwrap();
    let recs = read_records(&out.join("results.jsonl")).unwrap();
    assert_eq!(recs.len(), 3 * 4);
    let full: Vec<_> = recs.iter().filter(|r| r.method == "full").collect();
    assert!(
        full.iter()
            .all(|r| r.fidelity_f1 == 1.0 && r.first_token_kl.abs() < 1e-9)
    );
    assert!(
        recs.iter()
            .filter(|r| r.method == "epic:2")
            .all(|r| r.recomputed_tokens == 2 * 2)
    );
    // Resume: nothing is redone; a lost line is redone alone.
    runner.run(&name, &samples).unwrap();
    assert_eq!(read_records(&out.join("results.jsonl")).unwrap().len(), 12);
    let text = std::fs::read_to_string(out.join("results.jsonl")).unwrap();
    let kept: Vec<&str> = text.lines().take(11).collect();
    std::fs::write(out.join("results.jsonl"), kept.join("\n") + "\n").unwrap();
    runner.run(&name, &samples).unwrap();
    let again = read_records(&out.join("results.jsonl")).unwrap();
    assert_eq!(again.len(), 12);
    assert_eq!(again[11].method, recs[11].method);
    let summary = write_report(&out, &again, "# test").unwrap();
    assert_eq!(summary[&name]["full"].n, 3);
    for f in ["summary.json", "report.md", "f1_vs_ttft.svg", "f1_vs_flops.svg"] {
        assert!(out.join(f).exists(), "{f} written");
    }
    // A run without `full` takes the cached reference: same fidelity numbers as above.
    let other = dir.join("other");
    let runner = Runner {
        methods: vec![Box::new(Packets::none(&m).unwrap())],
        out: other.clone(),
        ..runner
    };
    runner.run(&name, &samples).unwrap();
    let none = |rs: &[kvpacket::eval::Record]| -> Vec<(f64, f64)> {
        rs.iter()
            .filter(|r| r.method == "none")
            .map(|r| (r.fidelity_f1, r.first_token_kl))
            .collect()
    };
    let cached = read_records(&other.join("results.jsonl")).unwrap();
    assert_eq!(cached.len(), 3);
    assert_eq!(none(&cached), none(&recs));
    assert!(cached.iter().all(|r| r.adapter.as_deref() == Some("none")));
    // A shard from sample 2 on keeps the dataset's sample indices and the same answers.
    let shard = dir.join("shard");
    let runner = Runner {
        out: shard.clone(),
        ..runner
    };
    runner.run_from(&name, &samples, 2).unwrap();
    let part = read_records(&shard.join("results.jsonl")).unwrap();
    assert_eq!(part.len(), 1);
    assert_eq!(part[0].sample, 2);
    assert_eq!(part[0].answer, cached[2].answer);
    // The same label with another adapter refuses to resume into those records.
    let relabelled = Runner {
        methods: vec![Box::new(Packets {
            adapter: kvpacket::adapter::Adapter::init(&m, 1, 1, 0).unwrap(),
            label: "none".into(),
        })],
        ..runner
    };
    let err = relabelled.run(&name, &samples).unwrap_err().to_string();
    assert!(err.contains("made with adapter"), "{err}");
    assert!(recs.iter().all(|r| r.rouge_l.is_none()), "no ROUGE-L for QA samples");
    // A summarization file (empty question, reference summary as the answer) gets ROUGE-L
    // per record, in the summary and as a report column.
    let file = dir.join("summaries.json");
    let sample = serde_json::json!([{"question": "", "answers": ["a storm hit the coast on monday"],
        "ctxs": [{"title": "a", "text": "A storm hit the coast."}, {"title": "b", "text": "It was on Monday."}]}]);
    std::fs::write(&file, sample.to_string()).unwrap();
    let (sname, summaries) = load_dataset(file.to_str().unwrap(), 10, 0).unwrap();
    let out = dir.join("summ");
    let runner = Runner {
        methods: vec![Box::new(Full), Box::new(Packets::none(&m).unwrap())],
        out: out.clone(),
        ..relabelled
    };
    runner.run(&sname, &summaries).unwrap();
    let recs = read_records(&out.join("results.jsonl")).unwrap();
    assert_eq!(recs.len(), 2);
    for r in &recs {
        assert_eq!(r.rouge_l, Some(kvpacket::eval::metrics::rouge_l(&r.answer, &r.gold)));
    }
    // A summary's answer is the whole generated text (up to summary_tokens), a question's
    // answer its first line.
    let seg = segments(&m, &summaries[0].ctxs, "").unwrap();
    assert!(seg.summary);
    let a = runner.engine.answer(&Full, &seg, 6).unwrap();
    assert_eq!(a.answer, a.text.trim());
    assert!(a.tokens.len() <= 6);
    assert_eq!(recs[0].answer, a.answer);
    let qa = segments(&m, &summaries[0].ctxs, "When?").unwrap();
    let a = runner.engine.answer(&Full, &qa, 6).unwrap();
    assert_eq!(
        Some(a.answer.as_str()),
        a.text.lines().map(str::trim).find(|l| !l.is_empty()).or(Some(""))
    );
    let summary = write_report(&out, &recs, "# summaries").unwrap();
    assert_eq!(summary[&sname]["full"].rouge_l, recs[0].rouge_l);
    assert!(
        std::fs::read_to_string(out.join("report.md"))
            .unwrap()
            .contains("ROUGE-L")
    );
}
