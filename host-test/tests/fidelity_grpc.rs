//! The gRPC fidelity corpus: every scenario of `tests/fidelity/grpc.yaml`
//! runs through the harness and through real Envoy 1.40 (the same probe
//! `.wasm`, the same configuration), and the outcomes are compared field
//! by field: status, response code details, the headers and body the
//! client receives, and the filter's log lines in order.
//!
//! Envoy's gRPC clusters (`tests/fidelity/grpc-envoy.yaml`) lead to
//! `tests/fidelity/grpc_upstream.py` (`grpc`), a closed port (`dead`) and
//! a listener that never answers (`slow`); the harness scripts the same
//! three upstreams ([`script`]). Every scenario ends the request with a
//! local reply, so the echo upstream's answer (which carries the
//! connection's details) is never compared.

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

#[path = "fidelity/common.rs"]
mod common;

use common::{Differences, Named, Reply, stable_headers};
use serde::Deserialize;
use warden_host_test::envoy::{Envoy, Options, workspace_root};
use warden_host_test::{
    Engine, Filter, GrpcAnswer, GrpcResponse, Headers, Plugin, Request, UpstreamResponse, testing,
};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Scenario {
    name: String,
    config: serde_json::Value,
    /// The request's path. Defaults to `/`.
    #[serde(default = "root_path")]
    path: String,
    /// Milliseconds to wait after the response for what arrives on the
    /// root context (ticks, and gRPC calls they make); those log lines
    /// follow the stream's. Defaults to 0.
    #[serde(default)]
    after_ms: u64,
}

fn root_path() -> String {
    "/".into()
}

impl Named for Scenario {
    fn name(&self) -> &str {
        &self.name
    }
}

/// One side's outcome, reduced to what is compared.
#[derive(Debug, Default, PartialEq, Eq)]
struct Observed {
    reply: Reply,
    logs: Vec<String>,
}

const VOLATILE_HEADERS: [&str; 3] = ["date", "server", "connection"];

/// Masks the upstream service time Envoy adds to a stream's initial
/// metadata, which differs on every run.
fn mask(text: &str) -> String {
    common::mask(text, &[common::service_time])
}

/// The upstreams of `grpc-envoy.yaml`, as the harness scripts them: the
/// gRPC cluster answers as `grpc_upstream.py` does (`grpc-accept-encoding`
/// is grpcio's own initial metadata; an unknown method is grpcio's
/// `UNIMPLEMENTED`).
fn script(plugin: &mut Plugin) {
    let served = GrpcResponse {
        initial_metadata: vec![
            (
                "grpc-accept-encoding".into(),
                "identity, deflate, gzip".into(),
            ),
            ("x-served-by".into(), "grpc-echo".into()),
        ],
        metadata_echo: vec!["x-probe".into()],
        trailing_metadata: vec![("x-trailer".into(), "done".into())],
        ..GrpcResponse::echo("echo: ")
    };
    let fail = GrpcResponse {
        trailing_metadata: vec![("x-reason".into(), "policy".into())],
        ..GrpcResponse::failing(7, "not allowed here")
    };
    let empty = GrpcResponse::default();
    plugin
        .grpc_upstream(
            "grpc",
            "probe.Echo/Say",
            GrpcAnswer::Respond(served.clone()),
        )
        .grpc_upstream("grpc", "probe.Echo/Chat", GrpcAnswer::Respond(served))
        .grpc_upstream("grpc", "probe.Echo/Fail", GrpcAnswer::Respond(fail))
        .grpc_upstream("grpc", "probe.Echo/Empty", GrpcAnswer::Respond(empty))
        .grpc_upstream(
            "grpc",
            "",
            GrpcAnswer::Respond(GrpcResponse::failing(12, "Method not found!")),
        )
        .grpc_upstream("dead", "", GrpcAnswer::Down)
        .grpc_upstream("slow", "", GrpcAnswer::Silent);
}

fn harness(filter: &Filter, scenario: &Scenario) -> Observed {
    let mut plugin = filter
        .plugin()
        .name("probe")
        .root_id("probe")
        .vm_id("probe")
        .configuration(scenario.config.to_string())
        .start()
        .unwrap_or_else(|e| panic!("{}: {e}", scenario.name));
    script(&mut plugin);
    plugin.take_logs();
    // The echo upstream answers with a body: response headers do not end
    // the stream.
    let request = Request::get(&scenario.path)
        .authority("example.com")
        .upstream(UpstreamResponse {
            status: 200,
            headers: Headers::default(),
            body: Some("{}".into()),
            trailers: Headers::default(),
            ..UpstreamResponse::default()
        });
    let exchange = plugin
        .send(request)
        .unwrap_or_else(|e| panic!("{}: {e}", scenario.name));
    plugin.advance(scenario.after_ms);
    let background = plugin.take_logs();
    let outcome = exchange.outcome;
    Observed {
        reply: Reply {
            status: outcome.status.unwrap_or(0),
            details: outcome.details,
            headers: stable_headers(&outcome.headers.0, &VOLATILE_HEADERS, str::to_owned),
            body: outcome.body,
        },
        logs: outcome
            .logs
            .iter()
            .chain(&background)
            .map(|l| mask(&format!("[{}] {}", l.level, l.message)))
            .collect(),
    }
}

fn envoy(wasm: &Path, template: &Path, scenario: &Scenario) -> Observed {
    let options = Options {
        template: Some(template),
        ..Options::default()
    };
    let envoy = Envoy::start_with(&scenario.config.to_string(), wasm, &options)
        .unwrap_or_else(|e| panic!("{}: {e}", scenario.name));
    let wire = format!(
        "GET {} HTTP/1.1\r\nhost: example.com\r\nconnection: close\r\n\r\n",
        scenario.path
    );
    let response = envoy.request_raw(wire.as_bytes());
    common::wait_for_access_log(&envoy);
    if scenario.after_ms > 0 {
        std::thread::sleep(Duration::from_millis(scenario.after_ms + 100));
    }
    let log = envoy.log();
    drop(envoy);
    let response = response.unwrap_or_else(|e| panic!("{}: {e}\n{log}", scenario.name));
    let mut logs = Vec::new();
    let mut details = String::new();
    for line in log.lines() {
        if let Some(access) = common::access_details(line) {
            details = access;
            continue;
        }
        let Some((level, message)) = common::wasm_log(line) else {
            continue;
        };
        if !message.starts_with("configure:") {
            logs.push(mask(&format!("[{level}] {message}")));
        }
    }
    Observed {
        reply: Reply {
            status: response.status,
            details,
            headers: stable_headers(&response.headers, &VOLATILE_HEADERS, str::to_owned),
            body: String::from_utf8_lossy(&response.body).into_owned(),
        },
        logs,
    }
}

fn diff(harness: &Observed, envoy: &Observed) -> Vec<String> {
    let mut out = Differences::default();
    out.reply(&harness.reply, &envoy.reply);
    out.log_lines(&harness.logs, &envoy.logs);
    out.0
}

/// `grpc_upstream.py` on a free loopback port; killed on drop.
struct GrpcUpstream {
    child: Child,
    port: u16,
}

impl GrpcUpstream {
    fn start() -> GrpcUpstream {
        let port = common::free_port();
        let python = workspace_root().join(".venv/bin/python");
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fidelity/grpc_upstream.py");
        // Bounded: the server goes even if this test is killed.
        let mut child = Command::new("timeout")
            .arg("600")
            .arg(python)
            .arg(script)
            .arg(port.to_string())
            .stdout(Stdio::piped())
            .spawn()
            .expect("starting the gRPC upstream (run examples/setup.sh)");
        let mut ready = String::new();
        if let Some(stdout) = child.stdout.take() {
            let _ = BufReader::new(stdout).read_line(&mut ready);
        }
        assert_eq!(
            ready.trim(),
            "ready",
            "the gRPC upstream did not start: is grpcio in .venv? (examples/setup.sh)"
        );
        GrpcUpstream { child, port }
    }
}

impl Drop for GrpcUpstream {
    fn drop(&mut self) {
        // `timeout` passes SIGTERM on to the server; SIGKILL would not.
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .stderr(Stdio::null())
            .status();
        let _ = self.child.wait();
    }
}

/// The template with the gRPC ports filled in.
fn template(dir: &Path, grpc: u16, dead: u16, slow: u16) -> PathBuf {
    let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fidelity/grpc-envoy.yaml");
    let text = std::fs::read_to_string(source)
        .unwrap()
        .replace("@GRPC_PORT@", &grpc.to_string())
        .replace("@DEAD_PORT@", &dead.to_string())
        .replace("@SLOW_PORT@", &slow.to_string());
    let path = dir.join("grpc-envoy.yaml");
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn harness_and_envoy_agree_on_every_grpc_scenario() {
    let scenarios: Vec<Scenario> = common::corpus("grpc.yaml");
    assert!(
        scenarios.len() >= 12,
        "the gRPC corpus has {} scenarios",
        scenarios.len()
    );
    let wasm = testing::build_filter("probe").unwrap();
    let filter = Engine::new().unwrap().load_file(&wasm).unwrap();
    let upstream = GrpcUpstream::start();
    let dead = common::free_port();
    let slow = TcpListener::bind("127.0.0.1:0").unwrap();
    let dir = common::scratch_dir("fidelity-grpc");
    let template = template(&dir, upstream.port, dead, slow.local_addr().unwrap().port());
    let results = common::run_in_pairs(&common::selected(&scenarios), |scenario| {
        let e = envoy(&wasm, &template, scenario);
        let h = harness(&filter, scenario);
        diff(&h, &e)
    });
    let _ = std::fs::remove_dir_all(&dir);
    common::report("gRPC scenarios", &results);
}
