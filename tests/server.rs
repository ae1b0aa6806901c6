//! `kvpacket serve` as users run it: real server processes (the built binary) on a tiny
//! random model written by the test, a real `redis-server` shared by two of them, the
//! unmodified `openai` Python client, a load test, bad input, SIGTERM and disconnects.
//! `.ci/run` installs `redis-server` and `openai` when they are missing.

mod common;

use kvpacket::adapter::Adapter;
use kvpacket::model::tiny::TinySpec;
use kvpacket::model::{Model, WeightMode};
use serde_json::{Value, json};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn tmp(name: &str) -> PathBuf {
    common::scratch("server", name)
}

/// A port free now (bound, then released).
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// A child process killed when dropped.
struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The tiny model and a random adapter for it.
fn model_and_adapter() -> (PathBuf, PathBuf) {
    let dir = common::tiny_model("server", "model", TinySpec::default());
    // Beside the model's folder, not in it (its files make the model's fingerprint).
    static ADAPTER: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    let adapter = ADAPTER.get_or_init(|| {
        let file = tmp("adapter").join("adapter.safetensors");
        let m = Model::load(&dir, WeightMode::F32).unwrap();
        Adapter::init(&m, 2, 2, 1).unwrap().save(&file).unwrap();
        file
    });
    (dir, adapter.clone())
}

fn redis() -> (Proc, u16) {
    let port = free_port();
    let dir = tmp(&format!("redis-{port}"));
    let child = Command::new("redis-server")
        .args([
            "--port",
            &port.to_string(),
            "--save",
            "",
            "--appendonly",
            "no",
            "--bind",
            "127.0.0.1",
        ])
        .current_dir(&dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("redis-server is needed by the server tests (.ci/run installs it: apt-get install redis-server)");
    let deadline = Instant::now() + Duration::from_secs(20);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "redis-server did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    (Proc(child), port)
}

/// Starts `kvpacket serve` with `extra` flags and waits for /health.
fn serve(store: &str, extra: &[&str]) -> (Proc, u16) {
    let (model, adapter) = model_and_adapter();
    let port = free_port();
    let home = tmp(&format!("home-{port}"));
    let mut args = vec![
        "serve".to_string(),
        "--model".into(),
        model.display().to_string(),
        "--weights".into(),
        "f32".into(),
        "--adapter".into(),
        adapter.display().to_string(),
        "--store".into(),
        store.to_string(),
        "--port".into(),
        port.to_string(),
    ];
    args.extend(extra.iter().map(|s| s.to_string()));
    let log = home.join("serve.log");
    let child = Command::new(env!("CARGO_BIN_EXE_kvpacket"))
        .args(&args)
        .env("KVPACKET_HOME", &home)
        .env_remove("KVPACKET_API_KEY")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let mut p = Proc(child);
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(status) = p.0.try_wait().unwrap() {
            panic!(
                "kvpacket serve exited ({status}): {}",
                std::fs::read_to_string(&log).unwrap_or_default()
            );
        }
        if let Ok((200, _, _)) = http(port, "GET", "/health", None, &[]) {
            return (p, port);
        }
        assert!(
            Instant::now() < deadline,
            "kvpacket serve did not come up (log: {})",
            log.display()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// One HTTP/1.1 request (Connection: close): (status, headers, body).
fn http(
    port: u16,
    method: &str,
    path: &str,
    body: Option<&[u8]>,
    headers: &[(&str, &str)],
) -> std::io::Result<(u16, String, Vec<u8>)> {
    let mut s = TcpStream::connect(("127.0.0.1", port))?;
    s.set_read_timeout(Some(Duration::from_secs(120)))?;
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    if let Some(b) = body {
        req.push_str(&format!(
            "Content-Type: application/json\r\nContent-Length: {}\r\n",
            b.len()
        ));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes())?;
    if let Some(b) = body {
        // A server may answer (413) before reading a large body: a broken pipe is fine.
        let _ = s.write_all(b);
    }
    let mut raw = Vec::new();
    s.read_to_end(&mut raw)?;
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n").unwrap_or(raw.len());
    let head = String::from_utf8_lossy(&raw[..split]).to_string();
    let status = head.split_whitespace().nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    let mut body = raw[(split + 4).min(raw.len())..].to_vec();
    if head.to_ascii_lowercase().contains("transfer-encoding: chunked") {
        body = dechunk(&body);
    }
    Ok((status, head, body))
}

fn dechunk(mut b: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(eol) = b.windows(2).position(|w| w == b"\r\n") {
        let n = usize::from_str_radix(std::str::from_utf8(&b[..eol]).unwrap().trim(), 16).unwrap_or(0);
        if n == 0 {
            break;
        }
        out.extend_from_slice(&b[eol + 2..eol + 2 + n]);
        b = &b[eol + 2 + n + 2..];
    }
    out
}

fn post(port: u16, path: &str, body: &Value) -> (u16, Value) {
    let (status, _, b) = http(port, "POST", path, Some(body.to_string().as_bytes()), &[]).unwrap();
    (status, serde_json::from_slice(&b).unwrap_or(Value::Null))
}

fn chat(question: &str, docs: Value) -> Value {
    json!({"model": "tiny", "messages": [{"role": "user", "content": question}], "documents": docs, "max_tokens": 6})
}

#[test]
fn a_document_sent_to_one_server_is_reused_by_another_through_redis() {
    let (_redis, rport) = redis();
    let url = format!("redis://127.0.0.1:{rport}/");
    let (_a, a) = serve(&url, &[]);
    let (_b, b) = serve(&url, &[]);
    let docs = json!([{"title": "Alice", "text": "alice lives in the blue house by the river"},
                      {"text": "bob keeps three cats and a dog"}]);
    let (s1, r1) = post(a, "/v1/chat/completions", &chat("where does alice live?", docs.clone()));
    assert_eq!(s1, 200, "{r1}");
    assert_eq!(r1["usage"]["recomputed_tokens"], r1["usage"]["recomputed_tokens"]);
    assert!(
        r1["usage"]["recomputed_tokens"].as_u64().unwrap() > 0,
        "first sight: packed"
    );
    let (s2, r2) = post(b, "/v1/chat/completions", &chat("where does alice live?", docs.clone()));
    assert_eq!(s2, 200, "{r2}");
    assert_eq!(r2["usage"]["recomputed_tokens"], 0, "server B reuses A's packets: {r2}");
    assert_eq!(r2["usage"]["reused_tokens"], r1["usage"]["recomputed_tokens"]);
    assert_eq!(
        r1["choices"][0]["message"], r2["choices"][0]["message"],
        "same packets, same answer"
    );
    // Packets by id: create on B, read on A, use by id, delete.
    let (s, made) = post(b, "/v1/packets", &json!({"texts": ["carol plays the violin"]}));
    assert_eq!(s, 200, "{made}");
    let id = made["data"][0]["id"].as_str().unwrap().to_string();
    let (s, _, meta) = http(a, "GET", &format!("/v1/packets/{id}"), None, &[]).unwrap();
    assert_eq!(s, 200);
    assert_eq!(serde_json::from_slice::<Value>(&meta).unwrap()["id"], id.as_str());
    let (s, r) = post(
        a,
        "/v1/chat/completions",
        &chat("what does carol play?", json!([{"id": id}])),
    );
    assert_eq!((s, &r["usage"]["recomputed_tokens"]), (200, &json!(0)), "{r}");
    let (s, _, _) = http(a, "DELETE", &format!("/v1/packets/{id}"), None, &[]).unwrap();
    assert_eq!(s, 200);
    let (s, _, _) = http(b, "GET", &format!("/v1/packets/{id}"), None, &[]).unwrap();
    assert_eq!(s, 404, "deleted for every server");
    // Two servers packing the same new text at once leave one complete packet.
    let same = json!({"texts": ["dora collects old maps of the northern coast"]});
    let (ta, tb) = (same.clone(), same.clone());
    let ha = std::thread::spawn(move || post(a, "/v1/packets", &ta));
    let hb = std::thread::spawn(move || post(b, "/v1/packets", &tb));
    let (ra, rb) = (ha.join().unwrap(), hb.join().unwrap());
    assert_eq!((ra.0, rb.0), (200, 200));
    assert_eq!(ra.1["data"][0]["id"], rb.1["data"][0]["id"]);
    let id = ra.1["data"][0]["id"].as_str().unwrap();
    let writers = Command::new("redis-cli")
        .args([
            "-p",
            &rport.to_string(),
            "--scan",
            "--pattern",
            &format!("kvpacket:chunk:{id}:*"),
        ])
        .output()
        .expect("redis-cli (package redis-tools) is needed");
    let keys: std::collections::HashSet<String> = String::from_utf8_lossy(&writers.stdout)
        .lines()
        .map(|k| k.rsplit_once(':').map(|x| x.0).unwrap_or_default().to_string())
        .collect();
    assert_eq!(keys.len(), 1, "one writer's chunks remain: {keys:?}");
    let (s, _, _) = http(a, "GET", &format!("/v1/packets/{id}"), None, &[]).unwrap();
    assert_eq!(s, 200);
}

#[test]
fn bad_input_is_answered_with_clear_errors_and_redis_going_away_is_a_503() {
    let (redis, rport) = redis();
    let (_s, port) = serve(
        &format!("redis://127.0.0.1:{rport}/"),
        &[
            "--api-key",
            "sesame",
            "--max-body-bytes",
            "20000",
            "--max-documents",
            "3",
        ],
    );
    let key = [("Authorization", "Bearer sesame")];
    let send = |body: &[u8], headers: &[(&str, &str)]| {
        let (s, h, b) = http(port, "POST", "/v1/chat/completions", Some(body), headers).unwrap();
        (s, h, serde_json::from_slice::<Value>(&b).unwrap_or(Value::Null))
    };
    let ok = chat("what?", json!([{"text": "a short text"}])).to_string();
    assert_eq!(send(ok.as_bytes(), &[]).0, 401, "no key");
    assert_eq!(
        send(ok.as_bytes(), &[("Authorization", "Bearer wrong")]).0,
        401,
        "wrong key"
    );
    assert_eq!(send(ok.as_bytes(), &key).0, 200);
    for (body, status, says) in [
        ("{not json".to_string(), 400, "bad JSON"),
        (json!({"messages": []}).to_string(), 400, "user message"),
        (chat("", json!([])).to_string(), 400, "question is empty"),
        (chat("q?", json!([{"id": "00ff"}])).to_string(), 404, "no packet"),
        (
            chat("q?", json!([{"id": "../../etc/passwd"}])).to_string(),
            400,
            "packet id",
        ),
        (chat("q?", json!([{"text": ""}])).to_string(), 400, "empty"),
        (
            chat(
                "q?",
                json!([{"text": "a"}, {"text": "b"}, {"text": "c"}, {"text": "d"}]),
            )
            .to_string(),
            400,
            "limit of 3",
        ),
        (
            json!({"messages": [{"role": "user", "content": "q"}], "kv_method": "warp"}).to_string(),
            400,
            "unknown method",
        ),
        (
            json!({"messages": [{"role": "user", "content": "q"}], "temperature": -1}).to_string(),
            400,
            "temperature",
        ),
        (
            json!({"messages": [{"role": "user", "content": "q"}], "max_tokens": 100000}).to_string(),
            400,
            "max_tokens",
        ),
        (
            chat("q?", json!([{"text": "x".repeat(30000)}])).to_string(),
            413,
            "larger than",
        ),
    ] {
        let (s, _, b) = send(body.as_bytes(), &key);
        assert_eq!(s, status, "{body:.80}: {b}");
        let msg = b["error"]["message"].as_str().unwrap_or_default();
        assert!(msg.contains(says), "{body:.80}: {msg}");
    }
    // Redis stops: an answer from packets in the memory tier still works; anything needing the
    // store is a 503 with Retry-After, never a wrong answer.
    drop(redis);
    let (s, h, b) = send(
        chat("q?", json!([{"text": "a text never seen before"}]))
            .to_string()
            .as_bytes(),
        &key,
    );
    assert_eq!(s, 503, "{b}");
    assert!(h.to_ascii_lowercase().contains("retry-after"), "{h}");
    assert!(b["error"]["message"].as_str().unwrap().contains("unavailable"), "{b}");
    let (s, _, b) = send(ok.as_bytes(), &key);
    assert_eq!(s, 200, "cached in memory: {b}");
}

#[test]
fn the_unmodified_openai_client_gets_normal_and_streamed_completions() {
    let (_s, port) = serve(tmp("openai-store").to_str().unwrap(), &[]);
    let script = format!(
        r#"
import json, openai
c = openai.OpenAI(base_url="http://127.0.0.1:{port}/v1", api_key="unused")
docs = [{{"title": "Alice", "text": "alice lives in the blue house"}}, {{"text": "bob has a cat"}}]
r = c.chat.completions.create(model="tiny", messages=[{{"role": "user", "content": "where does alice live?"}}],
    max_tokens=5, extra_body={{"documents": docs}})
pieces = []
for ch in c.chat.completions.create(model="tiny", messages=[{{"role": "user", "content": "where does alice live?"}}],
        max_tokens=5, stream=True, extra_body={{"documents": docs}}):
    if ch.choices and ch.choices[0].delta.content:
        pieces.append(ch.choices[0].delta.content)
print(json.dumps({{"text": r.choices[0].message.content, "finish": r.choices[0].finish_reason,
    "usage": r.usage.model_dump(), "streamed": "".join(pieces)}}))
"#
    );
    let out = Command::new("python3")
        .args(["-c", &script])
        .output()
        .expect("python3 is needed");
    assert!(
        out.status.success(),
        "the openai client failed (.ci/run installs it: pip install openai): {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(["stop", "length"].contains(&v["finish"].as_str().unwrap()), "{v}");
    assert_eq!(
        v["text"], v["streamed"],
        "streamed pieces add up to the same greedy answer"
    );
    assert!(v["usage"]["reused_tokens"].as_u64().unwrap() + v["usage"]["recomputed_tokens"].as_u64().unwrap() > 0);
    assert!(v["usage"]["ttft_ms"].as_f64().unwrap() > 0.0);
}

/// Reads SSE lines until one contains `want`; returns the lines read.
fn read_until(r: &mut impl BufRead, want: &str) -> Vec<String> {
    let mut lines = Vec::new();
    let mut line = String::new();
    while r.read_line(&mut line).unwrap_or(0) > 0 {
        let done = line.contains(want);
        lines.push(std::mem::take(&mut line));
        if done {
            break;
        }
    }
    lines
}

fn open_stream(port: u16, max_tokens: usize) -> BufReader<TcpStream> {
    let body = json!({"messages": [{"role": "user", "content": "tell me everything"}], "stream": true,
        "max_tokens": max_tokens, "temperature": 1.0, "seed": 3,
        "documents": [{"text": "a story about a long journey over the hills"}]})
    .to_string();
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(120))).unwrap();
    write!(
        s,
        "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut r = BufReader::new(s);
    read_until(&mut r, "\"role\"");
    r
}

#[test]
fn a_client_that_disconnects_frees_its_worker_and_sigterm_finishes_requests_in_flight() {
    let (server, port) = serve(
        tmp("disconnect-store").to_str().unwrap(),
        &["--workers", "1", "--queue", "0"],
    );
    // One worker, no queue: while a long stream runs, another request is refused (429)…
    let stream = open_stream(port, 1500);
    let ask = || {
        let body = chat("q?", json!([])).to_string();
        http(port, "POST", "/v1/chat/completions", Some(body.as_bytes()), &[]).unwrap()
    };
    let (s, h, _) = ask();
    assert_eq!(s, 429);
    assert!(h.to_ascii_lowercase().contains("retry-after"));
    // …and once its client goes away, the worker is free again.
    drop(stream);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if ask().0 == 200 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the disconnected stream still holds the worker"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    // SIGTERM while a stream is in flight: it finishes, then the server exits cleanly.
    let mut stream = open_stream(port, 300);
    let pid = server.0.id();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status()
            .unwrap()
            .success()
    );
    let rest = read_until(&mut stream, "[DONE]");
    assert!(
        rest.last().is_some_and(|l| l.contains("[DONE]")),
        "the stream in flight completed"
    );
    let mut server = server;
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(st) = server.0.try_wait().unwrap() {
            break st;
        }
        assert!(Instant::now() < deadline, "the server did not exit after SIGTERM");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "{status:?}");
}

fn rss_kb(pid: u32) -> u64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    s.lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        .unwrap_or(0)
}

#[test]
fn under_load_every_response_is_valid_and_refusals_are_429s() {
    let (server, port) = serve(tmp("load-store").to_str().unwrap(), &["--workers", "2", "--queue", "8"]);
    let pid = server.0.id();
    let docs: Vec<Value> = (0..6)
        .map(|i| json!({"text": format!("document number {i} about topic {}", i % 3)}))
        .collect();
    // Warm up, then 32 clients for a bounded time.
    post(port, "/v1/chat/completions", &chat("warm?", json!(docs)));
    let rss0 = rss_kb(pid);
    let until = Instant::now() + Duration::from_secs(8);
    let clients: Vec<_> = (0..32)
        .map(|c| {
            let docs = docs.clone();
            std::thread::spawn(move || {
                let mut seen = Vec::new();
                let mut i = 0;
                while Instant::now() < until {
                    let mine: Vec<Value> = docs.iter().skip((c + i) % 3).take(3).cloned().collect();
                    let t = Instant::now();
                    let (s, h, b) = http(
                        port,
                        "POST",
                        "/v1/chat/completions",
                        Some(chat(&format!("q{c}?"), json!(mine)).to_string().as_bytes()),
                        &[],
                    )
                    .unwrap();
                    seen.push((s, h, b, t.elapsed()));
                    i += 1;
                    if s == 429 {
                        std::thread::sleep(Duration::from_millis(20));
                    }
                }
                seen
            })
        })
        .collect();
    let all: Vec<_> = clients.into_iter().flat_map(|h| h.join().unwrap()).collect();
    let mut ok = Vec::new();
    for (s, h, b, t) in &all {
        match s {
            200 => {
                let v: Value = serde_json::from_slice(b).expect("a 200 carries a JSON completion");
                assert_eq!(v["object"], "chat.completion");
                assert!(v["choices"][0]["message"]["content"].is_string());
                ok.push(*t);
            }
            429 => assert!(h.to_ascii_lowercase().contains("retry-after")),
            other => panic!("unexpected status {other}: {}", String::from_utf8_lossy(b)),
        }
    }
    assert!(!ok.is_empty(), "some requests were served");
    ok.sort();
    let rss1 = rss_kb(pid);
    eprintln!(
        "load: {} requests in 8 s, {} served ({:.1}/s), {} refused (429); p50 {:?} p99 {:?}; RSS {} → {} MB",
        all.len(),
        ok.len(),
        ok.len() as f64 / 8.0,
        all.len() - ok.len(),
        ok[ok.len() / 2],
        ok[(ok.len() * 99 / 100).min(ok.len() - 1)],
        rss0 / 1024,
        rss1 / 1024
    );
    assert!(rss1 < rss0 + 512 * 1024, "memory stays bounded: {rss0} → {rss1} kB");
    let (_, _, m) = http(port, "GET", "/metrics", None, &[]).unwrap();
    let m = String::from_utf8_lossy(&m);
    assert!(m.contains("kvpacket_in_flight 0"), "{m}");
    assert!(m.contains("kvpacket_errors_total{kind=\"overloaded\"}") || ok.len() == all.len());
}
