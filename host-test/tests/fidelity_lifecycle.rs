//! The lifecycle corpus: scenarios of `tests/fidelity/lifecycle.yaml` run
//! through the harness (two workers, as Envoy here) and through real Envoy
//! 1.40, compared field by field: status, response code details, the
//! headers and body the client receives, the headers the upstream
//! receives, the filter's stream log lines in order, and its root-context
//! lines (`root_context:`, `vm_start:`, `configure:`, `tick:`,
//! `queue_ready:`) as a multiset, counted: how many VMs create a root
//! context, start, configure and tick is part of what is compared.
//!
//! Bodies in several frames: a request with `body_chunks` is sent chunked,
//! one chunk at a time with a pause between them; `upstream_frames` has the
//! echo upstream answer chunked, in that many frames with pauses. The
//! harness gets the same frames.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::Deserialize;
use warden_host_test::envoy::{Envoy, Options};
use warden_host_test::{
    CalloutAnswer, Engine, Filter, Headers, LogLine, Outcome, Profile, Request, UpstreamResponse,
    testing,
};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Scenario {
    name: String,
    config: serde_json::Value,
    #[serde(default)]
    request: Request,
    /// Milliseconds to wait after the response for ticks and queue
    /// notifications.
    #[serde(default)]
    after_ms: u64,
    /// The echo upstream answers chunked, in this many frames.
    #[serde(default)]
    upstream_frames: usize,
    /// The test filter under `tests/filters/`. Defaults to `probe`.
    #[serde(default = "probe")]
    filter: String,
}

fn probe() -> String {
    "probe".into()
}

/// The pause between frames, on both sides of Envoy: long enough that
/// Envoy reads each frame on its own on a loaded machine.
const GAP: Duration = Duration::from_millis(150);

/// One side's outcome, reduced to what is compared.
#[derive(Debug, Default, PartialEq, Eq)]
struct Observed {
    status: u16,
    details: String,
    headers: Vec<(String, String)>,
    body: String,
    upstream_headers: Vec<(String, String)>,
    logs: Vec<String>,
    root: Vec<String>,
}

const VOLATILE_HEADERS: [&str; 4] = [
    "date",
    "server",
    "connection",
    "x-envoy-upstream-service-time",
];

const ROOT_PREFIXES: [&str; 5] = [
    "root_context:",
    "vm_start:",
    "configure:",
    "tick:",
    "queue_ready:",
];

fn is_root(message: &str) -> bool {
    ROOT_PREFIXES
        .iter()
        .any(|prefix| message.starts_with(prefix))
}

fn mask(text: &str) -> String {
    const PEER: &str = "127.0.0.1:";
    let digits = |text: &str| text.bytes().take_while(u8::is_ascii_digit).count();
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(ch) = rest.chars().next() {
        if is_uuid(rest) {
            out.push_str("<uuid>");
            rest = &rest[36..];
        } else if let Some(after) = rest.strip_prefix(PEER) {
            out.push_str("127.0.0.1:<port>");
            rest = &after[digits(after)..];
        } else {
            out.push(ch);
            rest = &rest[ch.len_utf8()..];
        }
    }
    out
}

fn is_uuid(text: &str) -> bool {
    let Some(candidate) = text.get(..36) else {
        return false;
    };
    candidate.char_indices().all(|(i, c)| match i {
        8 | 13 | 18 | 23 => c == '-',
        _ => c.is_ascii_hexdigit(),
    })
}

fn local_address() -> String {
    let output = std::process::Command::new("hostname")
        .arg("-I")
        .output()
        .ok();
    output
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|text| {
            text.split_whitespace()
                .find(|a| a.contains('.'))
                .map(str::to_owned)
        })
        .unwrap_or_else(|| "127.0.0.1".into())
}

/// The body `examples/envoy/echo_upstream.py` answers with, formatted as
/// Python's `json.dumps` formats it.
fn echo_body(method: &str, path: &str, headers: &[(String, String)]) -> String {
    let quote = |text: &str| serde_json::Value::String(text.to_owned()).to_string();
    let pairs: Vec<String> = headers
        .iter()
        .map(|(k, v)| format!("[{}, {}]", quote(k), quote(v)))
        .collect();
    format!(
        "{{\"method\": {}, \"path\": {}, \"headers\": [{}]}}",
        quote(method),
        quote(path),
        pairs.join(", ")
    )
}

/// The upstream's view of forwarded headers: `host` from `:authority`,
/// then the rest in order, pseudo-headers dropped.
fn upstream_view(headers: &Headers) -> Vec<(String, String)> {
    let mut out = Vec::new();
    if let Some(host) = headers.get(":authority") {
        out.push(("host".to_owned(), host.to_owned()));
    }
    out.extend(
        headers
            .0
            .iter()
            .filter(|(k, _)| !k.starts_with(':'))
            .cloned(),
    );
    out
}

/// The echo upstream's answer to what it received, whole or in frames.
fn echo_answer(body: String, frames: usize) -> UpstreamResponse {
    let mut headers: Vec<(String, String)> = [
        ("server", "BaseHTTP"),
        ("date", "Thu, 01 Jan 2026 00:00:00 GMT"),
        ("content-type", "application/json"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    if frames == 0 {
        headers.push(("content-length".into(), body.len().to_string()));
        return UpstreamResponse {
            status: 200,
            headers: Headers(headers),
            body: Some(body),
            ..UpstreamResponse::default()
        };
    }
    headers.push(("transfer-encoding".into(), "chunked".into()));
    let step = body.len().div_ceil(frames).max(1);
    let chunks = body
        .as_bytes()
        .chunks(step)
        .map(|chunk| String::from_utf8_lossy(chunk).into_owned())
        .collect();
    UpstreamResponse {
        status: 200,
        headers: Headers(headers),
        body_chunks: chunks,
        ..UpstreamResponse::default()
    }
}

fn harness(filter: &Filter, scenario: &Scenario, profile: &Profile) -> Observed {
    let run = |upstream: UpstreamResponse| {
        let mut plugin = filter
            .plugin()
            .name("probe")
            .root_id("probe")
            .vm_id("probe")
            .workers(2)
            .profile(profile.clone())
            .configuration(scenario.config.to_string())
            .start()
            .unwrap_or_else(|e| panic!("{}: {e}", scenario.name));
        plugin.upstream(
            "callout",
            CalloutAnswer::Respond {
                status: 200,
                headers: vec![("content-type".into(), "application/json".into())],
                body: b"{}".to_vec(),
                trailers: vec![],
            },
        );
        let mut root = plugin.take_logs();
        let request = scenario.request.clone().upstream(upstream);
        let exchange = plugin
            .send(request)
            .unwrap_or_else(|e| panic!("{}: {e}", scenario.name));
        plugin.advance(scenario.after_ms);
        root.extend(plugin.take_logs());
        (exchange, root)
    };
    // First learn what the upstream receives, then answer as the echo
    // upstream would.
    let (probe, _) = run(UpstreamResponse::default());
    let upstream = probe.outcome.upstream.as_ref().map(|forwarded| {
        let path = forwarded.headers.get(":path").unwrap_or_default();
        let body = echo_body(
            &scenario.request.method,
            path,
            &upstream_view(&forwarded.headers),
        );
        echo_answer(body, scenario.upstream_frames)
    });
    let (exchange, root) = run(upstream.unwrap_or_default());
    observe_harness(&exchange.outcome, &root)
}

fn observe_harness(outcome: &Outcome, root: &[LogLine]) -> Observed {
    let line = |l: &LogLine| mask(&format!("[{}] {}", l.level, l.message));
    let mut root: Vec<String> = root
        .iter()
        .chain(outcome.logs.iter().filter(|l| is_root(&l.message)))
        .map(line)
        .collect();
    root.sort();
    Observed {
        status: outcome.status.unwrap_or(0),
        details: outcome.details.clone(),
        headers: outcome
            .headers
            .0
            .iter()
            .filter(|(k, _)| !VOLATILE_HEADERS.contains(&k.as_str()))
            .map(|(k, v)| (k.clone(), mask(v)))
            .collect(),
        body: mask(&outcome.body),
        upstream_headers: outcome
            .upstream
            .as_ref()
            .map(|f| {
                upstream_view(&f.headers)
                    .into_iter()
                    .map(|(k, v)| (k, mask(&v)))
                    .collect()
            })
            .unwrap_or_default(),
        logs: outcome
            .logs
            .iter()
            .filter(|l| !is_root(&l.message))
            .map(line)
            .collect(),
        root,
    }
}

/// The request as frames on the wire: the head (request line, `host`,
/// the headers, a `content-length` for a whole body, `connection:
/// close`) with the whole body, or, for a body in chunks, the head and
/// then each chunk and the last chunk as frames of their own.
fn wire(request: &Request) -> Vec<Vec<u8>> {
    let mut head = format!(
        "{} {} HTTP/1.1\r\nhost: {}\r\n",
        request.method, request.path, request.authority
    );
    for (k, v) in &request.headers.0 {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    let body = request.body.clone().unwrap_or_default();
    if !body.is_empty() && request.headers.get("content-length").is_none() {
        head.push_str(&format!("content-length: {}\r\n", body.len()));
    }
    head.push_str("connection: close\r\n\r\n");
    if request.body_chunks.is_empty() {
        head.push_str(&body);
        return vec![head.into_bytes()];
    }
    let mut frames = vec![head.into_bytes()];
    for chunk in &request.body_chunks {
        frames.push(format!("{:x}\r\n{chunk}\r\n", chunk.len()).into_bytes());
    }
    frames.push(b"0\r\n\r\n".to_vec());
    frames
}

fn envoy(wasm: &Path, template: &Path, scenario: &Scenario) -> Observed {
    let options = Options {
        template: Some(template),
        ..Options::default()
    };
    // Free ports are found by binding and letting go; another test may
    // take one in between, so a clash is tried again, a few times.
    let mut started = Envoy::start_with(&scenario.config.to_string(), wasm, &options);
    for _ in 0..3 {
        match &started {
            Err(e) if e.0.contains("Address already in use") => {
                started = Envoy::start_with(&scenario.config.to_string(), wasm, &options);
            }
            _ => break,
        }
    }
    let envoy = started.unwrap_or_else(|e| panic!("{}: {e}", scenario.name));
    let response = envoy.request_in_frames(&wire(&scenario.request), GAP);
    let deadline = Instant::now() + Duration::from_secs(5);
    while !envoy.log().contains("ACCESS ") && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(scenario.after_ms + 100));
    let log = envoy.log();
    drop(envoy);
    let response = response.unwrap_or_else(|e| panic!("{}: {e}\n{log}", scenario.name));
    let mut logs = Vec::new();
    let mut root = Vec::new();
    let mut details = String::new();
    let mut last: Option<bool> = None;
    for line in log.lines() {
        if let Some(rest) = line.strip_prefix("ACCESS ") {
            details = rest
                .split_once(' ')
                .map(|(_, d)| d.to_owned())
                .unwrap_or_default();
            last = None;
            continue;
        }
        if !line.starts_with('[') {
            // A message spanning lines continues the previous one.
            let target = match last {
                Some(true) => root.last_mut(),
                Some(false) => logs.last_mut(),
                None => None,
            };
            if let Some(message) = target {
                *message = format!("{message}\n{}", mask(line));
            }
            continue;
        }
        last = None;
        let Some(at) = line.find("wasm log ") else {
            continue;
        };
        let Some(colon) = line[at..].find(": ") else {
            continue;
        };
        let level = line
            .trim_start_matches('[')
            .split(']')
            .next()
            .unwrap_or_default();
        let message = &line[at + colon + 2..];
        let entry = mask(&format!("[{level}] {message}"));
        if is_root(message) {
            root.push(entry);
        } else {
            logs.push(entry);
        }
        last = Some(is_root(message));
    }
    root.sort();
    let echoed = response.json();
    let upstream_headers = match (details.as_str(), echoed.get("headers")) {
        ("via_upstream", Some(serde_json::Value::Array(pairs))) => pairs
            .iter()
            .filter_map(|pair| {
                Some((
                    pair.get(0)?.as_str()?.to_owned(),
                    mask(pair.get(1)?.as_str()?),
                ))
            })
            .collect(),
        _ => Vec::new(),
    };
    Observed {
        status: response.status,
        details,
        headers: response
            .headers
            .iter()
            .filter(|(k, _)| !VOLATILE_HEADERS.contains(&k.as_str()))
            .map(|(k, v)| (k.clone(), mask(v)))
            .collect(),
        body: mask(&String::from_utf8_lossy(&response.body)),
        upstream_headers,
        logs,
        root,
    }
}

fn diff(harness: &Observed, envoy: &Observed) -> Vec<String> {
    let mut out = Vec::new();
    let mut field = |name: &str, h: String, e: String| {
        if h != e {
            out.push(format!("  {name}:\n    harness: {h}\n    envoy:   {e}"));
        }
    };
    field(
        "status",
        harness.status.to_string(),
        envoy.status.to_string(),
    );
    field("details", harness.details.clone(), envoy.details.clone());
    field(
        "headers",
        format!("{:?}", harness.headers),
        format!("{:?}", envoy.headers),
    );
    field("body", harness.body.clone(), envoy.body.clone());
    if envoy.details == "via_upstream" {
        field(
            "upstream headers",
            format!("{:?}", harness.upstream_headers),
            format!("{:?}", envoy.upstream_headers),
        );
    }
    let longest = harness.logs.len().max(envoy.logs.len());
    for index in 0..longest {
        let at = |logs: &[String]| logs.get(index).cloned().unwrap_or_else(|| "<none>".into());
        field(
            &format!("log line {}", index + 1),
            at(&harness.logs),
            at(&envoy.logs),
        );
    }
    field(
        "root-context lines",
        format!("{:#?}", harness.root),
        format!("{:#?}", envoy.root),
    );
    out
}

fn corpus() -> Vec<Scenario> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fidelity/lifecycle.yaml");
    let text = std::fs::read_to_string(&path).unwrap();
    serde_norway::from_str(&text).unwrap_or_else(|e| panic!("`{}`: {e}", path.display()))
}

/// The corpus template with the callout ports filled in. No lifecycle
/// scenario uses the failing upstream (sent to the closed port too) or the
/// HTTP/2 listener (port 0: the kernel picks one, so Envoys running at
/// once do not clash).
fn template(dir: &Path, dead: u16, slow: u16) -> PathBuf {
    let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fidelity/envoy.yaml");
    let text = std::fs::read_to_string(source)
        .unwrap()
        .replace("@DEAD_PORT@", &dead.to_string())
        .replace("@SLOW_PORT@", &slow.to_string())
        .replace("@FAULTY_PORT@", &dead.to_string())
        .replace("@H2_PORT@", "0");
    let path = dir.join("lifecycle-envoy.yaml");
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn harness_and_envoy_agree_on_the_lifecycle() {
    let scenarios = corpus();
    let only = std::env::var("FIDELITY_ONLY").ok();
    let engine = Engine::new().unwrap();
    let mut filters = std::collections::BTreeMap::new();
    for scenario in &scenarios {
        if !filters.contains_key(&scenario.filter) {
            let wasm = testing::build_filter(&scenario.filter).unwrap();
            let filter = engine.load_file(&wasm).unwrap();
            filters.insert(scenario.filter.clone(), (wasm, filter));
        }
    }
    let profile = Profile {
        local_address: local_address(),
        ..Profile::envoy()
    };
    let dead = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let slow = TcpListener::bind("127.0.0.1:0").unwrap();
    let dir = testing::target_dir().join(format!("lifecycle-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let template = template(&dir, dead, slow.local_addr().unwrap().port());
    let selected: Vec<&Scenario> = scenarios
        .iter()
        .filter(|s| only.as_deref().is_none_or(|only| s.name.contains(only)))
        .collect();
    let results: Vec<(String, Vec<String>)> = std::thread::scope(|scope| {
        let handles: Vec<_> = selected
            .chunks(selected.len().div_ceil(2).max(1))
            .map(|chunk| {
                let (filters, profile, template) = (&filters, &profile, &template);
                scope.spawn(move || {
                    chunk
                        .iter()
                        .map(|scenario| {
                            let (wasm, filter) = &filters[&scenario.filter];
                            let e = envoy(wasm, template, scenario);
                            let h = harness(filter, scenario, profile);
                            (scenario.name.clone(), diff(&h, &e))
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap())
            .collect()
    });
    let _ = std::fs::remove_dir_all(&dir);
    let failures: Vec<String> = results
        .iter()
        .filter(|(_, diffs)| !diffs.is_empty())
        .map(|(name, diffs)| format!("{name}:\n{}", diffs.join("\n")))
        .collect();
    println!(
        "{} scenarios, {} agree, {} differ",
        results.len(),
        results.len() - failures.len(),
        failures.len()
    );
    assert!(!results.is_empty(), "no scenario selected");
    assert!(
        failures.is_empty(),
        "harness and Envoy differ:\n\n{}",
        failures.join("\n\n")
    );
}
