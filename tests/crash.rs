//! Crash safety and concurrent processes (issue 18), with the CLI run as users run it on a tiny
//! model written by the test: `pack`, `train` and `eval` killed with SIGKILL at random points
//! leave only complete, verifiable files and the next run finishes the job; two processes on
//! one store never see a half-written packet and keep the disk budget within a stated slack.
//! The kill points are random, the assertions hold at every one of them.

mod common;

use kvpacket::model::tiny::TinySpec;
use kvpacket::store::{FsStore, PacketStore};
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

fn tmp(name: &str) -> PathBuf {
    common::scratch("crash", name)
}

fn model() -> String {
    common::tiny_model("crash", "model", TinySpec::default())
        .display()
        .to_string()
}

fn kv(home: &Path, args: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_kvpacket"));
    c.args(args)
        .env("KVPACKET_HOME", home)
        .env("RAYON_NUM_THREADS", "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    c
}

fn run(home: &Path, args: &[&str]) -> Output {
    let out = kv(home, args).output().unwrap();
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Starts `args`, SIGKILLs it after a random delay below `max_ms` (or lets it finish first).
fn kill_at_random(home: &Path, args: &[&str], rng: &mut StdRng, max_ms: u64) {
    let mut child = kv(home, args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(rng.random_range(0..max_ms)));
    let _ = child.kill();
    let _ = child.wait();
}

/// `n` documents of a few hundred tokens each, one JSON object per line.
fn docs_file(dir: &Path, n: usize) -> String {
    let lines: Vec<String> = (0..n)
        .map(|i| {
            let text: Vec<String> = (0..150).map(|w| format!("w{}x{}", i, w % 37)).collect();
            serde_json::json!({"title": format!("doc {i}"), "text": text.join(" ")}).to_string()
        })
        .collect();
    let p = dir.join("docs.jsonl");
    std::fs::write(&p, lines.join("\n")).unwrap();
    p.display().to_string()
}

/// Every packet file of the store reads back verified; no temporary file is left.
fn assert_store_sound(dir: &Path) -> usize {
    let store = FsStore::new(dir.to_path_buf()).unwrap();
    let listed = store.list().unwrap();
    for p in &listed {
        let meta = p
            .meta
            .as_ref()
            .unwrap_or_else(|| panic!("{} has no readable header", p.path.display()));
        assert!(store.get(&meta.id).unwrap().is_some(), "{} verifies", meta.id);
    }
    let stray: Vec<_> = walk(dir)
        .into_iter()
        .filter(|p| p.extension().is_some_and(|e| e == "tmp"))
        .collect();
    assert!(stray.is_empty(), "temporary files left: {stray:?}");
    listed.len()
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

#[test]
fn pack_killed_at_random_points_leaves_only_complete_packets_and_the_next_pack_finishes() {
    let home = tmp("pack-kill");
    let model = model();
    let docs = docs_file(&home, 60);
    let args = ["pack", "--model", &model, "--no-adapter", "--docs", &docs, "--json"];
    let mut rng = StdRng::seed_from_u64(7);
    for _ in 0..25 {
        kill_at_random(&home, &args, &mut rng, 400);
        assert_store_sound(&home.join("packets"));
    }
    let out = run(&home, &args);
    let lines: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 60, "every document has its packet");
    assert_eq!(assert_store_sound(&home.join("packets")), 60);
}

#[test]
fn train_killed_at_random_points_resumes_to_the_same_adapter() {
    let home = tmp("train-kill");
    let model = model();
    let data = home.join("data.json");
    let entries: Vec<_> = (0..12)
        .map(|i| {
            serde_json::json!({"question": format!("what is thing {i}?"), "answers": [],
            "ctxs": [{"title": format!("t{i}"), "text": format!("thing {i} is red and round and sits on shelf {i}")}]})
        })
        .collect();
    std::fs::write(&data, serde_json::json!(entries).to_string()).unwrap();
    let train = |run_dir: &Path, resume: bool| -> Vec<String> {
        let mut v: Vec<String> = [
            "train",
            "--model",
            &model,
            "--data",
            data.to_str().unwrap(),
            "--samples",
            "6",
            "--batch",
            "2",
            "--epochs",
            "3",
            "--gen-tokens",
            "3",
            "--val-samples",
            "2",
            "--lr",
            "0.01",
            "--run-dir",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        v.push(run_dir.display().to_string());
        v.extend(["--out".into(), run_dir.join("out.safetensors").display().to_string()]);
        if resume {
            v.push("--resume".into());
        }
        v
    };
    let straight = home.join("straight");
    let args = train(&straight, false);
    run(&home, &args.iter().map(String::as_str).collect::<Vec<_>>());
    let killed = home.join("killed");
    let mut rng = StdRng::seed_from_u64(3);
    for _ in 0..15 {
        let resume = killed.join("checkpoint.safetensors").exists();
        let args = train(&killed, resume);
        kill_at_random(
            &home,
            &args.iter().map(String::as_str).collect::<Vec<_>>(),
            &mut rng,
            300,
        );
    }
    let resume = killed.join("checkpoint.safetensors").exists();
    let args = train(&killed, resume);
    run(&home, &args.iter().map(String::as_str).collect::<Vec<_>>());
    let read = |p: &Path| std::fs::read(p).unwrap();
    assert_eq!(
        read(&straight.join("out.safetensors")),
        read(&killed.join("out.safetensors")),
        "the killed-and-resumed run ends with the uninterrupted run's adapter"
    );
    let losses = |d: &Path| -> Vec<f64> {
        kvpacket::train::read_log(&d.join("log.jsonl"))
            .unwrap()
            .iter()
            .map(|l| l.loss)
            .collect()
    };
    assert_eq!(losses(&straight), losses(&killed));
}

#[test]
fn eval_killed_at_random_points_resumes_without_lost_or_doubled_records() {
    let home = tmp("eval-kill");
    let model = model();
    let out = home.join("out");
    let args = [
        "eval",
        "--model",
        &model,
        "--data",
        "synth:biography:4",
        "--methods",
        "full,none,question-only",
        "--limit",
        "12",
        "--max-new-tokens",
        "4",
        "--out",
        out.to_str().unwrap(),
    ];
    let mut rng = StdRng::seed_from_u64(11);
    for _ in 0..15 {
        kill_at_random(&home, &args, &mut rng, 600);
    }
    run(&home, &args);
    let records = kvpacket::eval::read_records(&out.join("results.jsonl")).unwrap();
    let mut keys: Vec<_> = records.iter().map(|r| (r.sample, r.method.clone())).collect();
    keys.sort();
    keys.dedup();
    assert_eq!(keys.len(), records.len(), "no record twice");
    assert_eq!(records.len(), 12 * 3, "every (sample, method) answered");
}

#[test]
fn two_processes_on_one_store_never_share_a_half_written_packet() {
    let home = tmp("two-pack");
    let model = model();
    let docs = docs_file(&home, 40);
    let args = ["pack", "--model", &model, "--no-adapter", "--docs", &docs];
    let a = kv(&home, &args).spawn().unwrap();
    let b = kv(&home, &args).spawn().unwrap();
    for c in [a, b] {
        let out = c.wait_with_output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    }
    assert_eq!(assert_store_sound(&home.join("packets")), 40, "one packet per document");
}

#[test]
fn asking_while_another_process_evicts_rebuilds_and_the_budget_holds_across_processes() {
    let home = tmp("evict");
    let model = model();
    let docs = docs_file(&home, 40);
    let budget_gb = 0.002;
    let packer = |home: &Path| {
        let mut c = kv(home, &["pack", "--model", &model, "--no-adapter", "--docs", &docs]);
        c.env("KVPACKET_STORE_MAX_GB", budget_gb.to_string());
        c
    };
    let asker = |home: &Path| {
        let mut c = kv(
            home,
            &[
                "ask",
                "--model",
                &model,
                "--method",
                "none",
                "--docs",
                &docs_json(home),
                "--sample",
                "0",
                "which?",
            ],
        );
        c.env("KVPACKET_STORE_MAX_GB", budget_gb.to_string());
        c
    };
    let mut children = Vec::new();
    for round in 0..3 {
        children.push(("pack", packer(&home).spawn().unwrap()));
        children.push(("ask", asker(&home).spawn().unwrap()));
        if round == 1 {
            children.push(("pack", packer(&home).spawn().unwrap()));
        }
    }
    for (what, c) in children {
        let out = c.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "{what} failed while another process evicted: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let dir = home.join("packets");
    assert_store_sound(&dir);
    let store = FsStore::new(dir).unwrap();
    let sizes: Vec<u64> = store.list().unwrap().iter().map(|p| p.bytes).collect();
    let (total, largest) = (sizes.iter().sum::<u64>(), sizes.iter().copied().max().unwrap_or(0));
    let budget = (budget_gb * 1e9) as u64;
    // Slack: each process may finish one packet past the budget before it next lists the store.
    assert!(
        total <= budget + 3 * largest,
        "{total} bytes on disk against a budget of {budget} (+ 3 × {largest})"
    );
}

/// The documents of `docs.jsonl` as one sample of the shared data format (for `ask`).
fn docs_json(home: &Path) -> String {
    let p = home.join("sample.json");
    if !p.exists() {
        let docs: Vec<serde_json::Value> = std::fs::read_to_string(home.join("docs.jsonl"))
            .unwrap()
            .lines()
            .take(3)
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        let tmp = home.join("sample.json.part");
        std::fs::write(
            &tmp,
            serde_json::json!([{"question": "which?", "answers": [], "ctxs": docs}]).to_string(),
        )
        .unwrap();
        std::fs::rename(tmp, &p).unwrap();
    }
    p.display().to_string()
}
