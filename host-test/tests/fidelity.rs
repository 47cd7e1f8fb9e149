//! The fidelity corpus: every scenario of `tests/fidelity/corpus.yaml`
//! runs through the harness and through real Envoy 1.40 (the same probe
//! `.wasm`, the same configuration), and the outcomes are compared field
//! by field: status, response code details, the headers and body the
//! client receives, the headers the upstream receives, and the filter's
//! log lines.
//!
//! Values that differ on every run are masked on both sides before the
//! comparison: request ids, dates, loopback ports (the client's, and the
//! upstream's in `upstream.address` and `upstream.local_address`) and the
//! upstream's service time. Durations are compared by their length. Envoy runs with two workers (as the shipped example
//! does); the harness with one, which is why no scenario depends on
//! which worker serves it.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

#[path = "fidelity/common.rs"]
mod common;
#[path = "fidelity/faulty_upstream.rs"]
mod faulty_upstream;

use common::{
    Differences, Named, Reply, echo_answer, echo_body, echoed_headers, local_address,
    stable_headers, upstream_view,
};

use serde::Deserialize;
use warden_host_test::cli::suite::{configuration, read_case_file};
use warden_host_test::envoy::{Envoy, Options, Response};
use warden_host_test::profile::RouteTimeout;
use warden_host_test::{
    CalloutAnswer, Connection, Engine, Filter, Outcome, PeerCertificate, Profile, Protocol,
    Request, Tls, UpstreamResponse, testing,
};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Scenario {
    name: String,
    config: serde_json::Value,
    request: Request,
    /// Milliseconds to wait after the response for ticks and queue
    /// notifications; their log lines are compared as a set.
    #[serde(default)]
    after_ms: u64,
    /// Run with the HTTP/1.1 codec handing trailers to filters
    /// (`http_protocol_options.enable_trailers`), in Envoy and in the
    /// harness's profile.
    #[serde(default)]
    http1_trailers: bool,
    /// The harness's upstream cluster keeps response trailers
    /// (`Profile::upstream_trailers`), as Envoy's `faulty_trailers` cluster
    /// does for `/upstream/trailers-kept`.
    #[serde(default)]
    upstream_trailers: bool,
    /// Send the request over mutual TLS with this client certificate of
    /// examples/envoy/make-certs.sh; the harness gets the same certificate's
    /// fields as the request's connection.
    #[serde(default)]
    tls: Option<TlsClient>,
}

impl Named for Scenario {
    fn name(&self) -> &str {
        &self.name
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TlsClient {
    client: String,
    uri_san: String,
}

/// The connection a TLS scenario's request arrives on, as the harness
/// describes it: the client certificate Envoy's run used.
fn tls_connection(client: &TlsClient, der: &[u8]) -> Connection {
    use sha2::Digest;
    let digest: String = sha2::Sha256::digest(der)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    Connection {
        tls: Some(Tls {
            version: Some("TLSv1.3".into()),
            // curl sends no SNI for `localhost`.
            server_name: None,
            peer_certificate: Some(PeerCertificate {
                subject: format!("CN={}", client.client),
                uri_sans: vec![client.uri_san.clone()],
                dns_sans: Vec::new(),
                sha256: digest,
            }),
            local_subject: Some("CN=localhost".into()),
        }),
        ..Connection::default()
    }
}

/// One side's outcome, reduced to what is compared.
#[derive(Debug, Default, PartialEq, Eq)]
struct Observed {
    reply: Reply,
    upstream_headers: Vec<(String, String)>,
    logs: Vec<String>,
    background: Vec<String>,
    /// The upstream host and Envoy's end of the connection to it, from
    /// Envoy's access log; not compared, but given to the harness.
    upstream: Option<(String, String)>,
}

const VOLATILE_HEADERS: [&str; 4] = [
    "date",
    "server",
    "connection",
    "x-envoy-upstream-service-time",
];

fn mask(text: &str) -> String {
    common::mask(
        text,
        &[
            common::uuid,
            common::date,
            common::peer,
            common::service_time,
        ],
    )
}

fn harness(
    filter: &Filter,
    scenario: &Scenario,
    profile: &Profile,
    certificate: Option<&[u8]>,
) -> Observed {
    let mut sent = scenario.request.clone();
    if let (Some(client), Some(der)) = (&scenario.tls, certificate) {
        sent.connection = tls_connection(client, der);
    }
    let run = |upstream: UpstreamResponse| {
        let mut plugin = filter
            .plugin()
            .name("probe")
            .root_id("probe")
            .vm_id("probe")
            .profile(Profile {
                http1_trailers: scenario.http1_trailers,
                upstream_trailers: scenario.upstream_trailers,
                ..profile.clone()
            })
            .configuration(scenario.config.to_string())
            .start()
            .unwrap_or_else(|e| panic!("{}: {e}", scenario.name));
        plugin.upstream("dead", CalloutAnswer::Fail);
        plugin.upstream("slow", CalloutAnswer::Timeout);
        plugin.upstream(
            "callout",
            CalloutAnswer::Respond {
                status: 200,
                headers: vec![("content-type".into(), "application/json".into())],
                body: b"{}".to_vec(),
                trailers: vec![],
            },
        );
        plugin.take_logs();
        let request = sent.clone().upstream(upstream);
        let exchange = plugin
            .send(request)
            .unwrap_or_else(|e| panic!("{}: {e}", scenario.name));
        plugin.advance(scenario.after_ms);
        (exchange, plugin.take_logs())
    };
    // A scenario that names its upstream (one under `/upstream/`) gets it
    // as is; its upstream's view is not compared, there being no echo.
    if scenario.request.upstream != UpstreamResponse::default() {
        let (exchange, background) = run(scenario.request.upstream.clone());
        let mut observed = observe_harness(&exchange.outcome, &background);
        observed.upstream_headers.clear();
        return observed;
    }
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
        echo_answer(body, 0)
    });
    let (exchange, background) = run(upstream.unwrap_or_default());
    observe_harness(&exchange.outcome, &background)
}

fn observe_harness(outcome: &Outcome, background: &[warden_host_test::LogLine]) -> Observed {
    let headers = stable_headers(&outcome.headers.0, &VOLATILE_HEADERS, mask);
    let line = |l: &warden_host_test::LogLine| mask(&format!("[{}] {}", l.level, l.message));
    // Root-context lines are compared as a set wherever they arrived.
    let is_background = |l: &&warden_host_test::LogLine| {
        l.message.starts_with("tick:") || l.message.starts_with("queue_ready:")
    };
    let mut background: Vec<String> = background
        .iter()
        .chain(outcome.logs.iter().filter(is_background))
        .map(line)
        .collect();
    background.sort();
    Observed {
        reply: Reply {
            status: outcome.status.unwrap_or(0),
            details: outcome.details.clone(),
            headers,
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
            .filter(|l| !is_background(l))
            .map(line)
            .collect(),
        background,
        upstream: None,
    }
}

/// The request as bytes on the wire, in the order the harness's profile
/// assumes: request line, `host`, the headers, a `content-length` for a
/// body sent without one, `connection: close` unless the scenario gives a
/// `connection` header itself.
fn wire(request: &Request) -> Vec<u8> {
    let mut out = format!(
        "{} {} HTTP/1.1\r\nhost: {}\r\n",
        request.method, request.path, request.authority
    );
    for (k, v) in &request.headers.0 {
        out.push_str(&format!("{k}: {v}\r\n"));
    }
    let chunked = request
        .headers
        .get("transfer-encoding")
        .is_some_and(|te| te.contains("chunked"));
    let body = request.body.clone().unwrap_or_default();
    if !body.is_empty() && !chunked && request.headers.get("content-length").is_none() {
        out.push_str(&format!("content-length: {}\r\n", body.len()));
    }
    if request.headers.get("connection").is_none() {
        out.push_str("connection: close\r\n");
    }
    out.push_str("\r\n");
    if chunked {
        if !body.is_empty() {
            out.push_str(&format!("{:x}\r\n{body}\r\n", body.len()));
        }
        out.push_str("0\r\n");
        for (k, v) in &request.trailers.0 {
            out.push_str(&format!("{k}: {v}\r\n"));
        }
        out.push_str("\r\n");
    } else {
        out.push_str(&body);
    }
    out.into_bytes()
}

/// A copy of the template whose HTTP/2 listener has a port of its own, so
/// that two Envoys can run at once.
fn with_h2_port(template: &Path) -> (PathBuf, u16) {
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let text = std::fs::read_to_string(template)
        .unwrap()
        .replace("@H2_PORT@", &port.to_string());
    let copy = template.with_extension(format!("{port}.yaml"));
    std::fs::write(&copy, text).unwrap();
    (copy, port)
}

/// Sends the request over HTTP/2 with prior knowledge, with curl, which
/// sends the scenario's headers and no others of its own (no
/// `user-agent`, `accept` or form `content-type`); with trailers, which
/// curl cannot send, with `fidelity/h2_client.py`.
fn request_h2(port: u16, request: &Request) -> Result<Response, String> {
    let output = if request.trailers.0.is_empty() {
        curl_h2(port, request)?
    } else {
        python_h2(port, request)?
    };
    let text = String::from_utf8_lossy(&output);
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .and_then(|line| line.split(' ').nth(1))
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| format!("no status in `{head}`"))?;
    let headers = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(name, value)| (name.trim().to_ascii_lowercase(), value.trim().to_owned()))
        .collect();
    Ok(Response {
        status,
        headers,
        body: body.as_bytes().to_vec(),
    })
}

/// Runs curl with `--http2-prior-knowledge`; its output, with `--include`.
fn curl_h2(port: u16, request: &Request) -> Result<Vec<u8>, String> {
    let mut curl = std::process::Command::new("curl");
    curl.args([
        "--silent",
        "--show-error",
        "--include",
        "--path-as-is",
        "--http2-prior-knowledge",
        "--max-time",
        "10",
    ])
    .args(["--request", &request.method])
    .args(["--header", &format!("host: {}", request.authority)])
    .args(["--header", "user-agent:", "--header", "accept:"]);
    for (name, value) in &request.headers.0 {
        curl.args(["--header", &format!("{name}: {value}")]);
    }
    if let Some(body) = request.body.as_deref().filter(|body| !body.is_empty()) {
        curl.args(["--header", "content-type:", "--data-binary", body]);
    }
    let output = curl
        .arg(format!("http://127.0.0.1:{port}{}", request.path))
        .output()
        .map_err(|e| format!("running curl: {e}"))?;
    if !output.status.success() {
        return Err(format!("curl: {}", String::from_utf8_lossy(&output.stderr)));
    }
    Ok(output.stdout)
}

/// Runs `fidelity/h2_client.py` with the project's Python (under
/// `timeout`), the request as JSON on its standard input.
fn python_h2(port: u16, request: &Request) -> Result<Vec<u8>, String> {
    use std::io::Write;
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fidelity/h2_client.py");
    let python = testing::workspace_root().join(".venv/bin/python");
    let mut child = std::process::Command::new("timeout")
        .arg("20")
        .arg(python)
        .arg(script)
        .arg(port.to_string())
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .map_err(|e| format!("running the h2 client: {e}"))?;
    let json = serde_json::to_vec(request).map_err(|e| e.to_string())?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin.write_all(&json).map_err(|e| e.to_string())?;
    }
    let output = child.wait_with_output().map_err(|e| e.to_string())?;
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        return Err(format!("h2 client: {stderr}"));
    }
    Ok(output.stdout)
}

/// Runs a scenario in Envoy; also returns the client certificate a TLS
/// scenario used.
fn envoy(
    wasm: &Path,
    templates: &[PathBuf; 2],
    scenario: &Scenario,
) -> (Observed, Option<Vec<u8>>) {
    let (template, h2_port) = with_h2_port(&templates[usize::from(scenario.http1_trailers)]);
    let options = Options {
        template: Some(&template),
        ..Options::default()
    };
    let envoy = Envoy::start_with(&scenario.config.to_string(), wasm, &options)
        .unwrap_or_else(|e| panic!("{}: {e}", scenario.name));
    let _ = std::fs::remove_file(&template);
    let request = &scenario.request;
    let (response, certificate) = match &scenario.tls {
        None if request.protocol == Protocol::Http2 => (request_h2(h2_port, request), None),
        Some(tls) => {
            let headers: Vec<(&str, &str)> = request
                .headers
                .0
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str()))
                .collect();
            let response = envoy
                .request_tls(&tls.client, &request.method, &request.path, &headers)
                .map_err(|e| e.to_string());
            (
                response,
                Some(envoy.client_certificate_der(&tls.client).unwrap()),
            )
        }
        None => (
            envoy.request_raw(&wire(request)).map_err(|e| e.to_string()),
            None,
        ),
    };
    common::wait_for_access_log(&envoy);
    std::thread::sleep(Duration::from_millis(scenario.after_ms + 100));
    let log = envoy.log();
    drop(envoy);
    let response = response.unwrap_or_else(|e| panic!("{}: {e}\n{log}", scenario.name));
    let mut logs = Vec::new();
    let mut background = Vec::new();
    let mut details = String::new();
    let mut last: Option<(bool, usize)> = None;
    let mut upstream = None;
    for line in log.lines() {
        if let Some(rest) = line.strip_prefix("UPSTREAM ") {
            upstream = rest
                .split_once(' ')
                .filter(|(host, _)| *host != "-")
                .map(|(host, local)| (host.to_owned(), local.to_owned()));
            continue;
        }
        if let Some(access) = common::access_details(line) {
            details = access;
            last = None;
            continue;
        }
        if !line.starts_with('[') {
            // A message spanning lines continues the previous one.
            if let Some((is_background, index)) = last {
                let target = if is_background {
                    &mut background
                } else {
                    &mut logs
                };
                if let Some(message) = target.get_mut(index) {
                    *message = format!("{message}\n{line}");
                }
            }
            continue;
        }
        last = None;
        // Stream contexts log as `wasm log probe probe probe: `, root
        // contexts as `wasm log probe probe: `.
        let Some((level, message)) = common::wasm_log(line) else {
            continue;
        };
        if message.starts_with("configure:") {
            continue;
        }
        let entry = format!("[{level}] {message}");
        let is_background = message.starts_with("tick:") || message.starts_with("queue_ready:");
        if is_background {
            background.push(entry);
            last = Some((true, background.len() - 1));
        } else {
            logs.push(entry);
            last = Some((false, logs.len() - 1));
        }
    }
    let logs = logs.iter().map(|l| mask(l)).collect();
    let mut background: Vec<String> = background.iter().map(|l| mask(l)).collect();
    background.sort();
    let upstream_headers = if details == "via_upstream" {
        echoed_headers(&response, mask)
    } else {
        Vec::new()
    };
    let observed = Observed {
        reply: Reply {
            status: response.status,
            details,
            headers: stable_headers(&response.headers, &VOLATILE_HEADERS, mask),
            body: mask(&String::from_utf8_lossy(&response.body)),
        },
        upstream_headers,
        logs,
        background,
        upstream,
    };
    (observed, certificate)
}

fn diff(harness: &Observed, envoy: &Observed) -> Vec<String> {
    let mut out = Differences::default();
    out.reply(&harness.reply, &envoy.reply);
    // Envoy's side sees the upstream's view only through the echo
    // upstream's answer, which a later failure or local reply replaces.
    if envoy.reply.details == "via_upstream" {
        out.field(
            "upstream headers",
            format!("{:?}", harness.upstream_headers),
            format!("{:?}", envoy.upstream_headers),
        );
    }
    out.log_lines(&harness.logs, &envoy.logs);
    out.field(
        "background logs",
        format!("{:?}", harness.background),
        format!("{:?}", envoy.background),
    );
    out.0
}

/// The template with the ports of the failing upstreams filled in, as is
/// and with request trailers enabled.
fn templates(dir: &Path, dead: u16, slow: u16, faulty: u16) -> [PathBuf; 2] {
    let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fidelity/envoy.yaml");
    let text = std::fs::read_to_string(source)
        .unwrap()
        .replace("@DEAD_PORT@", &dead.to_string())
        .replace("@SLOW_PORT@", &slow.to_string())
        .replace("@FAULTY_PORT@", &faulty.to_string());
    let trailers = text.replace(
        "                stat_prefix: ingress\n",
        "                stat_prefix: ingress\n                http_protocol_options: { enable_trailers: true }\n",
    );
    assert_ne!(text, trailers, "the template's connection manager moved");
    let plain = dir.join("fidelity-envoy.yaml");
    let with_trailers = dir.join("fidelity-envoy-trailers.yaml");
    std::fs::write(&plain, text).unwrap();
    std::fs::write(&with_trailers, trailers).unwrap();
    [plain, with_trailers]
}

#[test]
fn harness_and_envoy_agree_on_every_scenario() {
    let scenarios: Vec<Scenario> = common::corpus("corpus.yaml");
    assert!(
        scenarios.len() >= 40,
        "the corpus has {} scenarios",
        scenarios.len()
    );
    let wasm = testing::build_filter("probe").unwrap();
    let filter = Engine::new().unwrap().load_file(&wasm).unwrap();
    // The routes under `/upstream/` of envoy.yaml.
    let profile = Profile {
        local_address: local_address(),
        route_timeouts: vec![RouteTimeout {
            prefix: "/upstream/".into(),
            timeout_ms: 500,
        }],
        ..Profile::envoy()
    };
    let faulty = faulty_upstream::FaultyUpstream::start();
    let dead = common::free_port();
    let slow = TcpListener::bind("127.0.0.1:0").unwrap();
    let dir = common::scratch_dir("fidelity");
    let slow_port = slow.local_addr().unwrap().port();
    let template = templates(&dir, dead, slow_port, faulty.port());
    let results = common::run_in_pairs(&common::selected(&scenarios), |scenario| {
        let (e, certificate) = envoy(&wasm, &template, scenario);
        let mut profile = profile.clone();
        if let Some((host, local)) = &e.upstream {
            profile.xds.upstream_host.address = host.clone();
            profile.xds.upstream_host.local_address = local.clone();
        }
        let h = harness(&filter, scenario, &profile, certificate.as_deref());
        diff(&h, &e)
    });
    let _ = std::fs::remove_dir_all(&dir);
    common::report("scenarios", &results);
}

/// Normalizes a log message: a JSON object (Warden's decision record)
/// loses its wall-clock `ts`, which differs between runs by nature.
fn without_timestamp(message: &str) -> String {
    match serde_json::from_str::<serde_json::Value>(message) {
        Ok(serde_json::Value::Object(mut object)) => {
            object.remove("ts");
            serde_json::Value::Object(object).to_string()
        }
        _ => message.to_owned(),
    }
}

/// Warden itself, `warden.wasm` with the policy of `tests/policy-cases`,
/// in the harness and in Envoy with the shipped `examples/envoy/envoy.yaml`:
/// status, the headers and body the client gets, the headers the
/// upstream gets, and the decision records.
#[test]
fn warden_agrees_with_envoy_on_the_policy_cases() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/policy-cases");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&root)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    let wasm = testing::warden_wasm();
    let filter = Engine::new().unwrap().load_file(&wasm).unwrap();
    let profile = Profile {
        local_address: local_address(),
        ..Profile::envoy()
    };
    let mut failures = Vec::new();
    let mut compared = 0;
    for path in &files {
        let file = read_case_file(path).unwrap();
        let config = String::from_utf8(configuration(&file, path).unwrap()).unwrap();
        let envoy = Envoy::start(&config, &wasm).unwrap();
        // Cases that need the harness's clock or scripted callouts have no
        // counterpart in a real Envoy.
        let cases = file
            .cases
            .iter()
            .filter(|case| case.request.time.is_none() && file.upstreams.is_empty());
        for case in cases {
            compared += 1;
            let mut plugin = filter
                .plugin()
                .name("warden")
                .root_id("warden")
                .vm_id("warden")
                .profile(profile.clone())
                .failure_policy(warden_host_test::FailurePolicy::FailReload)
                .configuration(config.clone())
                .start()
                .unwrap();
            let exchange = plugin.send(case.request.clone()).unwrap();
            let before = envoy.log().len();
            let response = envoy.request_raw(&wire(&case.request)).unwrap();
            let deadline = Instant::now() + Duration::from_secs(5);
            let records = loop {
                let log = envoy.log();
                let records: Vec<String> = log[before..]
                    .lines()
                    .filter(|line| line.contains("[wasm]") && line.contains("\"policy_revision\""))
                    .filter_map(|line| {
                        line.find('{')
                            .map(|at| mask(&without_timestamp(&line[at..])))
                    })
                    .collect();
                if !records.is_empty() || Instant::now() > deadline {
                    break records;
                }
                std::thread::sleep(Duration::from_millis(20));
            };
            let harness_records: Vec<String> = exchange
                .outcome
                .logs
                .iter()
                .filter(|line| line.message.contains("\"policy_revision\""))
                .map(|line| mask(&without_timestamp(&line.message)))
                .collect();
            let envoy_upstream = if response.status == 200 {
                echoed_headers(&response, mask)
            } else {
                Vec::new()
            };
            let harness_upstream: Vec<(String, String)> = exchange
                .outcome
                .upstream
                .as_ref()
                .map(|f| {
                    upstream_view(&f.headers)
                        .into_iter()
                        .map(|(k, v)| (k, mask(&v)))
                        .collect()
                })
                .unwrap_or_default();
            let client = |headers: &[(String, String)]| -> Vec<(String, String)> {
                headers
                    .iter()
                    .filter(|(k, _)| !VOLATILE_HEADERS.contains(&k.as_str()))
                    .filter(|(k, _)| {
                        response.status != 200 || (k != "content-length" && k != "content-type")
                    })
                    .map(|(k, v)| (k.clone(), mask(v)))
                    .collect()
            };
            let mut diffs = Differences::default();
            diffs.field(
                "status",
                format!("{:?}", exchange.outcome.status),
                format!("{:?}", Some(response.status)),
            );
            diffs.field(
                "headers",
                format!("{:?}", client(&exchange.outcome.headers.0)),
                format!("{:?}", client(&response.headers)),
            );
            if response.status != 200 {
                diffs.field(
                    "body",
                    mask(&exchange.outcome.body),
                    mask(&String::from_utf8_lossy(&response.body)),
                );
            } else {
                diffs.field(
                    "upstream headers",
                    format!("{harness_upstream:?}"),
                    format!("{envoy_upstream:?}"),
                );
            }
            diffs.field(
                "decision records",
                format!("{harness_records:?}"),
                format!("{records:?}"),
            );
            // Warden records every request: an empty pair would compare
            // nothing.
            diffs.field(
                "record count",
                harness_records.len().to_string(),
                "1".to_owned(),
            );
            if !diffs.0.is_empty() {
                failures.push(format!(
                    "{}: {}:\n{}",
                    path.display(),
                    case.name,
                    diffs.0.join("\n")
                ));
            }
        }
    }
    assert!(compared >= 6, "only {compared} policy cases compared");
    println!("{compared} warden cases, {} differ", failures.len());
    assert!(
        failures.is_empty(),
        "harness and Envoy differ:\n\n{}",
        failures.join("\n\n")
    );
}
