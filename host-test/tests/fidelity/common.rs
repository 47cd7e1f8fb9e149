//! What the fidelity tests share: reading a corpus, running its scenarios
//! two at a time and reporting where the harness and Envoy disagree,
//! masking what differs on every run, the echo upstream's answers, and
//! reading the filter's lines from Envoy's log.

#![allow(
    dead_code,
    reason = "each fidelity test uses only a part of this module"
)]

use std::collections::BTreeMap;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::de::DeserializeOwned;
use warden_host_test::envoy::{Envoy, Response};
use warden_host_test::{Headers, UpstreamResponse, testing};

/// A scenario of a corpus, known by its name.
pub trait Named {
    fn name(&self) -> &str;
}

/// The scenarios of `tests/fidelity/<file>`.
pub fn corpus<S: DeserializeOwned>(file: &str) -> Vec<S> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fidelity")
        .join(file);
    let text = std::fs::read_to_string(&path).unwrap();
    serde_norway::from_str(&text).unwrap_or_else(|e| panic!("`{}`: {e}", path.display()))
}

/// The scenarios whose name contains `FIDELITY_ONLY`; all of them when it
/// is not set.
pub fn selected<S: Named>(scenarios: &[S]) -> Vec<&S> {
    let only = std::env::var("FIDELITY_ONLY").ok();
    scenarios
        .iter()
        .filter(|s| only.as_deref().is_none_or(|only| s.name().contains(only)))
        .collect()
}

/// Runs `compare` on every scenario, two at a time (the first half and the
/// second half of the list on a thread each), and gives each scenario's
/// differences by its name.
pub fn run_in_pairs<S: Named + Sync>(
    scenarios: &[&S],
    compare: impl Fn(&S) -> Vec<String> + Sync,
) -> BTreeMap<String, Vec<String>> {
    std::thread::scope(|scope| {
        let handles: Vec<_> = scenarios
            .chunks(scenarios.len().div_ceil(2).max(1))
            .map(|chunk| {
                let compare = &compare;
                scope.spawn(move || {
                    chunk
                        .iter()
                        .map(|scenario| (scenario.name().to_owned(), compare(scenario)))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap())
            .collect()
    })
}

/// Prints how many `noun` (such as `scenarios`) agree, and fails with every
/// difference when any differ.
pub fn report(noun: &str, results: &BTreeMap<String, Vec<String>>) {
    let failures: Vec<String> = results
        .iter()
        .filter(|(_, diffs)| !diffs.is_empty())
        .map(|(name, diffs)| format!("{name}:\n{}", diffs.join("\n")))
        .collect();
    println!(
        "{} {noun}, {} agree, {} differ",
        results.len(),
        results.len() - failures.len(),
        failures.len()
    );
    assert!(
        failures.is_empty(),
        "harness and Envoy differ:\n\n{}",
        failures.join("\n\n")
    );
}

/// What the client received, which every HTTP corpus compares first.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Reply {
    pub status: u16,
    /// Envoy's response code details.
    pub details: String,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

/// The fields on which the harness and Envoy differ, one entry each, as
/// `report` prints them.
#[derive(Debug, Default)]
pub struct Differences(pub Vec<String>);

impl Differences {
    /// Notes the field `name` if the harness's value is not Envoy's.
    pub fn field(&mut self, name: &str, harness: String, envoy: String) {
        if harness != envoy {
            self.0.push(format!(
                "  {name}:\n    harness: {harness}\n    envoy:   {envoy}"
            ));
        }
    }

    /// Compares what the client received: status, response code details,
    /// headers and body.
    pub fn reply(&mut self, harness: &Reply, envoy: &Reply) {
        self.field(
            "status",
            harness.status.to_string(),
            envoy.status.to_string(),
        );
        self.field("details", harness.details.clone(), envoy.details.clone());
        self.field(
            "headers",
            format!("{:?}", harness.headers),
            format!("{:?}", envoy.headers),
        );
        self.field("body", harness.body.clone(), envoy.body.clone());
    }

    /// Compares log lines one by one, a missing line as `<none>`.
    pub fn log_lines(&mut self, harness: &[String], envoy: &[String]) {
        let longest = harness.len().max(envoy.len());
        for index in 0..longest {
            let line =
                |logs: &[String]| logs.get(index).cloned().unwrap_or_else(|| "<none>".into());
            self.field(
                &format!("log line {}", index + 1),
                line(harness),
                line(envoy),
            );
        }
    }
}

/// A free loopback port, found by binding and letting go.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A fresh directory `<name>-<pid>` under the target directory, for the
/// test's rendered templates.
pub fn scratch_dir(name: &str) -> PathBuf {
    let dir = testing::target_dir().join(format!("{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// This machine's first IPv4 address, as Envoy reports its own address;
/// `127.0.0.1` when `hostname -I` gives none.
pub fn local_address() -> String {
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

/// A rule of [`mask`]: what stands for the value at the start of a text,
/// and how long the value is; `None` where no such value starts.
pub type Rule = fn(&str) -> Option<(&'static str, usize)>;

/// Replaces every value one of `rules` finds, the first rule that finds
/// one winning.
pub fn mask(text: &str, rules: &[Rule]) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(ch) = rest.chars().next() {
        if let Some((mark, len)) = rules.iter().find_map(|rule| rule(rest)) {
            out.push_str(mark);
            rest = &rest[len..];
        } else {
            out.push(ch);
            rest = &rest[ch.len_utf8()..];
        }
    }
    out
}

fn digits(text: &str) -> usize {
    text.bytes().take_while(u8::is_ascii_digit).count()
}

/// A request id: `8-4-4-4-12` hex digits.
pub fn uuid(text: &str) -> Option<(&'static str, usize)> {
    let candidate = text.get(..36)?;
    candidate
        .char_indices()
        .all(|(i, c)| match i {
            8 | 13 | 18 | 23 => c == '-',
            _ => c.is_ascii_hexdigit(),
        })
        .then_some(("<uuid>", 36))
}

/// An HTTP date, `Thu, 03 Dec 2026 08:37:13 GMT`.
pub fn date(text: &str) -> Option<(&'static str, usize)> {
    let candidate = text.get(..29)?;
    let days = [
        "Mon, ", "Tue, ", "Wed, ", "Thu, ", "Fri, ", "Sat, ", "Sun, ",
    ];
    (days.iter().any(|day| candidate.starts_with(day)) && candidate.ends_with(" GMT"))
        .then_some(("<date>", 29))
}

/// A loopback address's port, `127.0.0.1:<port>`.
pub fn peer(text: &str) -> Option<(&'static str, usize)> {
    const PEER: &str = "127.0.0.1:";
    let after = text.strip_prefix(PEER)?;
    Some(("127.0.0.1:<port>", PEER.len() + digits(after)))
}

/// The upstream's service time Envoy adds to a response,
/// `x-envoy-upstream-service-time=<ms>`.
pub fn service_time(text: &str) -> Option<(&'static str, usize)> {
    const SERVICE_TIME: &str = "x-envoy-upstream-service-time=";
    let after = text.strip_prefix(SERVICE_TIME)?;
    Some((
        "x-envoy-upstream-service-time=<ms>",
        SERVICE_TIME.len() + digits(after),
    ))
}

/// `headers` without the `volatile` ones, their values masked.
pub fn stable_headers(
    headers: &[(String, String)],
    volatile: &[&str],
    mask: impl Fn(&str) -> String,
) -> Vec<(String, String)> {
    headers
        .iter()
        .filter(|(k, _)| !volatile.contains(&k.as_str()))
        .map(|(k, v)| (k.clone(), mask(v)))
        .collect()
}

/// The body `examples/envoy/echo_upstream.py` answers with, formatted as
/// Python's `json.dumps` formats it.
pub fn echo_body(method: &str, path: &str, headers: &[(String, String)]) -> String {
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

/// The echo upstream's answer to what it received, whole or, for
/// `frames` above 0, chunked in that many frames.
pub fn echo_answer(body: String, frames: usize) -> UpstreamResponse {
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

/// The upstream's view of forwarded headers: `host` from `:authority`,
/// then the rest in order, pseudo-headers dropped.
pub fn upstream_view(headers: &Headers) -> Vec<(String, String)> {
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

/// The headers the echo upstream says it received, from its answer's
/// body, their values masked; none when the body has no such list.
pub fn echoed_headers(response: &Response, mask: impl Fn(&str) -> String) -> Vec<(String, String)> {
    match response.json().get("headers") {
        Some(serde_json::Value::Array(pairs)) => pairs
            .iter()
            .filter_map(|pair| {
                Some((
                    pair.get(0)?.as_str()?.to_owned(),
                    mask(pair.get(1)?.as_str()?),
                ))
            })
            .collect(),
        _ => Vec::new(),
    }
}

/// Waits, five seconds at the most, until Envoy has written the request's
/// access log line.
pub fn wait_for_access_log(envoy: &Envoy) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while !envoy.log().contains("ACCESS ") && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The response code details of an access log line (`ACCESS <code>
/// <details>`).
pub fn access_details(line: &str) -> Option<String> {
    let rest = line.strip_prefix("ACCESS ")?;
    Some(
        rest.split_once(' ')
            .map(|(_, d)| d.to_owned())
            .unwrap_or_default(),
    )
}

/// The level and message of a filter's line in Envoy's log (`[...][level]
/// ... wasm log <names>: <message>`).
pub fn wasm_log(line: &str) -> Option<(&str, &str)> {
    let at = line.find("wasm log ")?;
    let colon = line[at..].find(": ")?;
    let level = line
        .trim_start_matches('[')
        .split(']')
        .next()
        .unwrap_or_default();
    Some((level, &line[at + colon + 2..]))
}
