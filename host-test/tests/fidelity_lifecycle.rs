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
use std::time::Duration;

#[path = "fidelity/common.rs"]
mod common;

use common::{
    Differences, Named, Reply, echo_answer, echo_body, echoed_headers, local_address,
    stable_headers, upstream_view,
};
use serde::Deserialize;
use warden_host_test::envoy::{Envoy, Options};
use warden_host_test::{
    CalloutAnswer, Engine, Filter, LogLine, Outcome, Profile, Request, UpstreamResponse, testing,
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

impl Named for Scenario {
    fn name(&self) -> &str {
        &self.name
    }
}

/// The pause between frames, on both sides of Envoy: long enough that
/// Envoy reads each frame on its own on a loaded machine.
const GAP: Duration = Duration::from_millis(150);

/// One side's outcome, reduced to what is compared.
#[derive(Debug, Default, PartialEq, Eq)]
struct Observed {
    reply: Reply,
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
    common::mask(text, &[common::uuid, common::peer])
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
        reply: Reply {
            status: outcome.status.unwrap_or(0),
            details: outcome.details.clone(),
            headers: stable_headers(&outcome.headers.0, &VOLATILE_HEADERS, mask),
            body: mask(&outcome.body),
        },
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
    common::wait_for_access_log(&envoy);
    std::thread::sleep(Duration::from_millis(scenario.after_ms + 100));
    let log = envoy.log();
    drop(envoy);
    let response = response.unwrap_or_else(|e| panic!("{}: {e}\n{log}", scenario.name));
    let mut logs = Vec::new();
    let mut root = Vec::new();
    let mut details = String::new();
    let mut last: Option<bool> = None;
    for line in log.lines() {
        if let Some(access) = common::access_details(line) {
            details = access;
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
        let Some((level, message)) = common::wasm_log(line) else {
            continue;
        };
        let entry = mask(&format!("[{level}] {message}"));
        if is_root(message) {
            root.push(entry);
        } else {
            logs.push(entry);
        }
        last = Some(is_root(message));
    }
    root.sort();
    let upstream_headers = if details == "via_upstream" {
        echoed_headers(&response, mask)
    } else {
        Vec::new()
    };
    Observed {
        reply: Reply {
            status: response.status,
            details,
            headers: stable_headers(&response.headers, &VOLATILE_HEADERS, mask),
            body: mask(&String::from_utf8_lossy(&response.body)),
        },
        upstream_headers,
        logs,
        root,
    }
}

fn diff(harness: &Observed, envoy: &Observed) -> Vec<String> {
    let mut out = Differences::default();
    out.reply(&harness.reply, &envoy.reply);
    if envoy.reply.details == "via_upstream" {
        out.field(
            "upstream headers",
            format!("{:?}", harness.upstream_headers),
            format!("{:?}", envoy.upstream_headers),
        );
    }
    out.log_lines(&harness.logs, &envoy.logs);
    out.field(
        "root-context lines",
        format!("{:#?}", harness.root),
        format!("{:#?}", envoy.root),
    );
    out.0
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
    let scenarios: Vec<Scenario> = common::corpus("lifecycle.yaml");
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
    let dead = common::free_port();
    let slow = TcpListener::bind("127.0.0.1:0").unwrap();
    let dir = common::scratch_dir("lifecycle");
    let template = template(&dir, dead, slow.local_addr().unwrap().port());
    let results = common::run_in_pairs(&common::selected(&scenarios), |scenario| {
        let (wasm, filter) = &filters[&scenario.filter];
        let e = envoy(wasm, &template, scenario);
        let h = harness(filter, scenario, &profile);
        diff(&h, &e)
    });
    let _ = std::fs::remove_dir_all(&dir);
    assert!(!results.is_empty(), "no scenario selected");
    common::report("scenarios", &results);
}
