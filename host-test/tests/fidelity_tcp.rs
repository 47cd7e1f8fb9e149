//! The TCP fidelity corpus: every scenario of `tests/fidelity/tcp.yaml`
//! runs the tcp-probe filter as a network filter in the harness and in
//! real Envoy 1.40 (`tests/fidelity/tcp-envoy.yaml`: the wasm network
//! filter in front of `tcp_proxy`), and the two are compared field by
//! field: after each step, the bytes the client and the upstream had
//! received and whether each had seen the end of the stream; and every
//! log line of the filter's connection contexts, in order.
//!
//! Envoy's reads are not chunked deterministically, so every step waits
//! until nothing has arrived for a while before the next: the client
//! sends one chunk and waits for its answer, and no scenario depends on
//! two chunks arriving apart or together. The upstream is a small server
//! in this test that behaves as the harness's [`UpstreamScript`] says.
//! Addresses are masked on both sides (`127.0.0.1:<port>`).

use std::io::{ErrorKind as IoErrorKind, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[path = "fidelity/common.rs"]
mod common;

use common::{Differences, Named};
use serde::Deserialize;
use warden_host_test::envoy::{Envoy, Options};
use warden_host_test::{
    Connection, Engine, FailurePolicy, Filter, LogLine, Received, Step, TcpUpstream,
    UpstreamScript, testing,
};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Scenario {
    name: String,
    config: serde_json::Value,
    /// What the upstream does. Defaults to echoing.
    #[serde(default)]
    upstream: UpstreamScript,
    /// Envoy's `failure_policy`. Defaults to `FAIL_CLOSED`.
    #[serde(default)]
    failure_policy: Option<String>,
    /// The steps of the first connection.
    steps: Vec<Step>,
    /// The steps of a second connection, opened after the first is done
    /// with.
    #[serde(default)]
    then: Option<Vec<Step>>,
}

impl Named for Scenario {
    fn name(&self) -> &str {
        &self.name
    }
}

/// How long a side must stay quiet before a step counts as answered.
const QUIET: Duration = Duration::from_millis(300);

/// Longer than Envoy's delayed close timeout (1 s).
const DELAYED_CLOSE: Duration = Duration::from_millis(1200);

/// The longest a scenario's upstream lives.
const UPSTREAM_LIFETIME: Duration = Duration::from_secs(120);

/// One side's view, reduced to what is compared.
#[derive(Debug, Default, PartialEq, Eq)]
struct Observed {
    /// Per connection, what each side had after each step.
    steps: Vec<Vec<Received>>,
    logs: Vec<String>,
    background: Vec<String>,
}

fn mask(text: &str) -> String {
    common::mask(text, &[common::peer])
}

fn policy(scenario: &Scenario) -> (&str, FailurePolicy) {
    match scenario.failure_policy.as_deref() {
        Some("FAIL_OPEN") => ("FAIL_OPEN", FailurePolicy::FailOpen),
        Some("FAIL_RELOAD") => ("FAIL_RELOAD", FailurePolicy::FailReload),
        _ => ("FAIL_CLOSED", FailurePolicy::FailClosed),
    }
}

fn is_background(message: &str) -> bool {
    message.starts_with("tick:") || message.starts_with("configure:")
}

fn harness(filter: &Filter, scenario: &Scenario) -> Observed {
    let mut plugin = filter
        .plugin()
        .name("tcp-probe")
        .root_id("tcp-probe")
        .vm_id("tcp-probe")
        .failure_policy(policy(scenario).1)
        .configuration(scenario.config.to_string())
        .start()
        .unwrap_or_else(|e| panic!("{}: {e}", scenario.name));
    plugin.take_logs();
    let mut observed = Observed::default();
    let mut lines: Vec<LogLine> = Vec::new();
    let connections = std::iter::once(&scenario.steps).chain(scenario.then.as_ref());
    for steps in connections {
        let upstream = TcpUpstream::new(scenario.upstream.clone());
        // The client hangs up at the end, as the Envoy side does.
        let steps: Vec<Step> = steps.iter().cloned().chain([Step::ClientClose]).collect();
        let conversation = plugin
            .converse(Connection::default(), upstream, &steps)
            .unwrap_or_else(|e| panic!("{}: {e}", scenario.name));
        observed.steps.push(conversation.outcome.steps.clone());
        lines.extend(conversation.outcome.logs);
    }
    lines.extend(plugin.take_logs());
    for line in lines {
        let entry = mask(&format!("[{}] {}", line.level, line.message));
        if is_background(&line.message) {
            observed.background.push(entry);
        } else {
            observed.logs.push(entry);
        }
    }
    observed.background.sort();
    observed.background.dedup();
    observed
}

/// What the test's upstream has received, over all its connections.
#[derive(Debug, Default)]
struct Record {
    bytes: Vec<u8>,
    /// Ends of stream that reached the upstream from the proxy.
    ends: usize,
    /// The connection being served, for closing it on cue.
    current: Option<TcpStream>,
    /// The test closed the current connection: its end is not the proxy's.
    closed_on_cue: bool,
}

/// The scenario's upstream: a loopback server that runs the script on
/// every connection it accepts, until `stop` is set.
struct Upstream {
    port: u16,
    record: Arc<Mutex<Record>>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Upstream {
    fn start(script: &UpstreamScript) -> Upstream {
        let record = Arc::new(Mutex::new(Record::default()));
        let stop = Arc::new(AtomicBool::new(false));
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        if *script == UpstreamScript::Refuse {
            // A port nothing listens on.
            drop(listener);
            return Upstream {
                port,
                record,
                stop,
                thread: None,
            };
        }
        listener.set_nonblocking(true).unwrap();
        let (script, shared, stopping) = (script.clone(), record.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            let deadline = Instant::now() + UPSTREAM_LIFETIME;
            while !stopping.load(Ordering::Relaxed) && Instant::now() < deadline {
                match listener.accept() {
                    Ok((stream, _)) => {
                        let (script, shared) = (script.clone(), shared.clone());
                        std::thread::spawn(move || serve(stream, &script, &shared));
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(10)),
                }
            }
        });
        Upstream {
            port,
            record,
            stop,
            thread: Some(thread),
        }
    }

    /// The upstream closes the connection it is serving.
    fn close(&self) {
        let mut record = self.record.lock().unwrap();
        if let Some(stream) = record.current.take() {
            record.closed_on_cue = true;
            let _ = stream.shutdown(Shutdown::Both);
        }
    }

    fn received(&self) -> (Vec<u8>, usize) {
        let record = self.record.lock().unwrap();
        (record.bytes.clone(), record.ends)
    }
}

impl Drop for Upstream {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// One upstream connection, as the harness's script describes it.
fn serve(mut stream: TcpStream, script: &UpstreamScript, record: &Mutex<Record>) {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(30)));
    {
        let mut shared = record.lock().unwrap();
        shared.current = stream.try_clone().ok();
        shared.closed_on_cue = false;
    }
    if let UpstreamScript::Greet(greeting) = script {
        let _ = stream.write_all(greeting.as_bytes());
    }
    let mut buffer = [0u8; 65536];
    let mut first = true;
    for _ in 0..10_000 {
        let read = match stream.read(&mut buffer) {
            Ok(0) | Err(_) => {
                let mut shared = record.lock().unwrap();
                if !shared.closed_on_cue {
                    shared.ends += 1;
                }
                let _ = stream.shutdown(Shutdown::Both);
                return;
            }
            Ok(read) => read,
        };
        let chunk = &buffer[..read];
        record.lock().unwrap().bytes.extend_from_slice(chunk);
        let answer = match script {
            UpstreamScript::Echo | UpstreamScript::Greet(_) => chunk.to_vec(),
            UpstreamScript::Reply(bytes) => bytes.as_bytes().to_vec(),
            UpstreamScript::CloseAfterFirst if first => {
                let _ = stream.shutdown(Shutdown::Both);
                return;
            }
            _ => Vec::new(),
        };
        first = false;
        if !answer.is_empty() {
            let _ = stream.write_all(&answer);
        }
    }
}

/// The client side of one connection through Envoy.
struct Client {
    stream: Option<TcpStream>,
    received: Vec<u8>,
    ended: bool,
}

impl Client {
    fn connect(port: u16) -> Client {
        let stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_millis(50)))
            .unwrap();
        Client {
            stream: Some(stream),
            received: Vec::new(),
            ended: false,
        }
    }

    /// Reads until nothing has arrived for [`QUIET`] (or the end).
    fn settle(&mut self) {
        let mut quiet_since = Instant::now();
        let mut buffer = [0u8; 65536];
        for _ in 0..10_000 {
            if quiet_since.elapsed() >= QUIET {
                return;
            }
            if self.ended {
                // The upstream's side of a close takes its own moment.
                std::thread::sleep(QUIET.saturating_sub(quiet_since.elapsed()));
                return;
            }
            let Some(stream) = self.stream.as_mut() else {
                return;
            };
            match stream.read(&mut buffer) {
                Ok(0) => self.ended = true,
                Ok(read) => {
                    self.received.extend_from_slice(&buffer[..read]);
                    quiet_since = Instant::now();
                }
                Err(e) if matches!(e.kind(), IoErrorKind::WouldBlock | IoErrorKind::TimedOut) => {}
                Err(_) => self.ended = true,
            }
        }
    }

    fn step(&mut self, step: &Step) {
        match step {
            Step::Send(bytes) => {
                if let Some(stream) = self.stream.as_mut() {
                    let _ = stream.write_all(bytes.as_bytes());
                }
            }
            Step::ClientClose => {
                if let Some(stream) = self.stream.as_mut() {
                    let _ = stream.shutdown(Shutdown::Write);
                }
            }
            Step::UpstreamClose => {}
            Step::Advance(ms) => std::thread::sleep(Duration::from_millis(*ms)),
        }
    }
}

/// Held while a scenario picks its ports and starts Envoy: the upstream's
/// port and Envoy's (found free, then bound by Envoy) must not cross
/// between the two scenarios that run at once.
static STARTING: Mutex<()> = Mutex::new(());

/// Starts the scenario's upstream and Envoy; a port taken by another
/// process between being found free and being bound is tried again.
fn start(wasm: &Path, template: &Path, scenario: &Scenario) -> (Upstream, Envoy) {
    let _starting = STARTING
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    let mut last_error = String::new();
    for _ in 0..3 {
        let upstream = Upstream::start(&scenario.upstream);
        let text = std::fs::read_to_string(template)
            .unwrap()
            .replace("@TCP_UPSTREAM_PORT@", &upstream.port.to_string())
            .replace("@FAILURE_POLICY@", policy(scenario).0);
        let rendered = template.with_file_name(format!(
            "tcp-envoy-{}-{}.yaml",
            std::process::id(),
            upstream.port
        ));
        std::fs::write(&rendered, text).unwrap();
        // One worker, as in the harness: which worker takes a connection
        // is Envoy's choice, and a failed VM is per worker.
        let options = Options {
            template: Some(&rendered),
            workers: Some(1),
            ..Options::default()
        };
        let started = Envoy::start_with(&scenario.config.to_string(), wasm, &options);
        let _ = std::fs::remove_file(&rendered);
        match started {
            Ok(envoy) => return (upstream, envoy),
            Err(e) if e.0.contains("Address already in use") => last_error = e.0,
            Err(e) => panic!("{}: {e}", scenario.name),
        }
    }
    panic!("{}: {last_error}", scenario.name)
}

fn envoy(wasm: &Path, template: &Path, scenario: &Scenario) -> Observed {
    let (upstream, envoy) = start(wasm, template, scenario);
    let mut observed = Observed::default();
    let connections = std::iter::once(&scenario.steps).chain(scenario.then.as_ref());
    for steps in connections {
        let (base_bytes, base_ends) = upstream.received();
        let snapshot = |client: &Client| {
            let (bytes, ends) = upstream.received();
            Received {
                client: String::from_utf8_lossy(&client.received).into_owned(),
                client_end: client.ended,
                upstream: String::from_utf8_lossy(&bytes[base_bytes.len()..]).into_owned(),
                upstream_end: ends > base_ends,
            }
        };
        let mut client = Client::connect(envoy.port());
        client.settle();
        let mut received = vec![snapshot(&client)];
        for step in steps {
            if *step == Step::UpstreamClose {
                upstream.close();
            }
            client.step(step);
            client.settle();
            received.push(snapshot(&client));
        }
        client.step(&Step::ClientClose);
        client.settle();
        received.push(snapshot(&client));
        drop(client.stream.take());
        // Closes Envoy delays (its 1 s delayed close timeout) finish here.
        std::thread::sleep(DELAYED_CLOSE);
        observed.steps.push(received);
    }
    let log = envoy.log();
    drop(envoy);
    let (logs, background) = probe_lines(&log);
    observed.logs = logs;
    observed.background = background;
    observed
}

/// The tcp-probe's lines from Envoy's log (`wasm log tcp-probe tcp-probe
/// tcp-probe: ` for a connection's context, one name fewer for a root
/// context): in order, but `configure` and `tick` lines as a set, since
/// Envoy's main thread runs a VM of its own and a tick that sets the
/// effective context logs under the connection's name.
fn probe_lines(log: &str) -> (Vec<String>, Vec<String>) {
    const CONNECTION: &str = "wasm log tcp-probe tcp-probe tcp-probe: ";
    const ROOT: &str = "wasm log tcp-probe tcp-probe: ";
    let mut logs: Vec<String> = Vec::new();
    let mut background: Vec<String> = Vec::new();
    let mut last_is_connection = None;
    for line in log.lines() {
        if !line.starts_with('[') {
            // A message spanning lines continues the previous one.
            let target = match last_is_connection {
                Some(true) => logs.last_mut(),
                Some(false) => background.last_mut(),
                None => None,
            };
            if let Some(message) = target {
                message.push('\n');
                message.push_str(line);
            }
            continue;
        }
        let level = line
            .trim_start_matches('[')
            .split(']')
            .next()
            .unwrap_or_default();
        let message = match (line.find(CONNECTION), line.find(ROOT)) {
            (Some(at), _) => &line[at + CONNECTION.len()..],
            (None, Some(at)) => &line[at + ROOT.len()..],
            (None, None) => {
                last_is_connection = None;
                continue;
            }
        };
        let entry = format!("[{level}] {message}");
        if is_background(message) {
            background.push(entry);
            last_is_connection = Some(false);
        } else {
            logs.push(entry);
            last_is_connection = Some(true);
        }
    }
    let logs = logs.iter().map(|l| mask(l)).collect();
    let mut background: Vec<String> = background.iter().map(|l| mask(l)).collect();
    background.sort();
    background.dedup();
    (logs, background)
}

fn diff(harness: &Observed, envoy: &Observed) -> Vec<String> {
    let mut out = Differences::default();
    for (index, (h, e)) in harness.steps.iter().zip(&envoy.steps).enumerate() {
        let longest = h.len().max(e.len());
        for step in 0..longest {
            out.field(
                &format!("connection {} after step {step}", index + 1),
                format!("{:?}", h.get(step)),
                format!("{:?}", e.get(step)),
            );
        }
    }
    out.log_lines(&harness.logs, &envoy.logs);
    out.field(
        "root context lines",
        format!("{:?}", harness.background),
        format!("{:?}", envoy.background),
    );
    out.0
}

/// Compares the harness's run with Envoy's. A scenario that differs runs
/// in Envoy once more, and counts as agreeing only if that run agrees: on
/// the shared CI machine an Envoy run now and then loses its log; the
/// first difference is printed either way.
fn compare(harness: &Observed, wasm: &Path, template: &Path, scenario: &Scenario) -> Vec<String> {
    let first = diff(harness, &envoy(wasm, template, scenario));
    if first.is_empty() {
        return first;
    }
    let second = diff(harness, &envoy(wasm, template, scenario));
    println!(
        "`{}` differed on its first run in Envoy ({} on the second):\n{}",
        scenario.name,
        if second.is_empty() {
            "agreed"
        } else {
            "differed"
        },
        first.join("\n")
    );
    second
}

#[test]
fn harness_and_envoy_agree_on_every_tcp_scenario() {
    let scenarios: Vec<Scenario> = common::corpus("tcp.yaml");
    assert!(
        scenarios.len() >= 10,
        "the corpus has {} scenarios",
        scenarios.len()
    );
    let wasm = testing::build_filter("tcp-probe").unwrap();
    let filter = Engine::new().unwrap().load_file(&wasm).unwrap();
    let template: PathBuf =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fidelity/tcp-envoy.yaml");
    let dir = common::scratch_dir("fidelity-tcp");
    let template_copy = dir.join("tcp-envoy.yaml");
    std::fs::copy(&template, &template_copy).unwrap();
    let results = common::run_in_pairs(&common::selected(&scenarios), |scenario| {
        let h = harness(&filter, scenario);
        compare(&h, &wasm, &template_copy, scenario)
    });
    let _ = std::fs::remove_dir_all(&dir);
    common::report("scenarios", &results);
}
