//! Real Envoy on loopback, for end-to-end and fidelity tests.
//!
//! [`Envoy::start`] renders `examples/envoy/envoy.yaml` (the configuration
//! we ship) around a plugin configuration and a `.wasm`, starts the echo
//! upstream from `examples/envoy/`, a key server (Python's `http.server`
//! over a scratch folder, reached through the `jwks` cluster) and Envoy
//! 1.40 from the project's virtualenv on free loopback ports, and waits
//! until Envoy is ready. Both
//! processes run under `timeout`, so they end by themselves even if a test
//! process dies; dropping the value stops them at once.
//!
//! Requests go out as plain HTTP/1.1 over one connection each; Warden's
//! decision records are read back from Envoy's log.

use serde_json::Value;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use warden_policy::demo::Demo;

/// Longest an Envoy started here may live, in seconds.
pub const LIFETIME_SECS: u32 = 300;

/// An error starting or talking to Envoy.
#[derive(Debug)]
pub struct EnvoyError(pub String);

impl std::fmt::Display for EnvoyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for EnvoyError {}

fn fail(context: &str, e: impl std::fmt::Display) -> EnvoyError {
    EnvoyError(format!("{context}: {e}"))
}

/// The project's root folder.
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The Envoy binary: `$WARDEN_ENVOY`, or `.venv/bin/envoy` in the project.
pub fn envoy_binary() -> PathBuf {
    std::env::var_os("WARDEN_ENVOY")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join(".venv/bin/envoy"))
}

/// The compiled filter: `$WARDEN_WASM`, or the release build's output.
pub fn warden_wasm() -> PathBuf {
    std::env::var_os("WARDEN_WASM")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("target/wasm32-wasip1/release/warden.wasm"))
}

/// What [`Envoy::start_with`] can change.
#[derive(Debug, Clone, Copy, Default)]
pub struct Options<'a> {
    /// Documents the key server serves from the start, as `(path, body)`.
    /// Defaults to none.
    pub documents: &'a [(&'a str, String)],
    /// Worker threads, each with its own Wasm VM. Defaults to 2.
    pub workers: Option<u32>,
    /// The configuration template. Defaults to `examples/envoy/envoy.yaml`.
    pub template: Option<&'a Path>,
}

/// A running Envoy with Warden, and its echo upstream.
#[derive(Debug)]
pub struct Envoy {
    envoy: Child,
    upstream: Child,
    key_server: Child,
    port: u16,
    mtls_port: u16,
    log: PathBuf,
    dir: PathBuf,
}

/// A response as the client saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    /// The status code.
    pub status: u16,
    /// Headers, names in lower case, in order.
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: Vec<u8>,
}

impl Response {
    /// The first value of a header.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// The body as JSON (`Null` when it is not JSON).
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }

    /// For a request the echo upstream answered: every value of a header
    /// the upstream received.
    pub fn upstream_header(&self, name: &str) -> Vec<String> {
        let echoed = self.json();
        let headers = echoed
            .get("headers")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        headers
            .iter()
            .filter(|pair| pair.get(0).and_then(Value::as_str) == Some(name))
            .filter_map(|pair| pair.get(1).and_then(Value::as_str).map(str::to_owned))
            .collect()
    }
}

impl Envoy {
    /// Starts Envoy with `plugin_config` (Warden's JSON configuration) and
    /// the `.wasm` at `wasm`, using the shipped example configuration.
    ///
    /// # Errors
    ///
    /// Returns an error when Envoy or the upstream is missing, fails to
    /// start, or is not ready within 30 seconds.
    pub fn start(plugin_config: &str, wasm: &Path) -> Result<Self, EnvoyError> {
        Self::start_serving(plugin_config, wasm, &[])
    }

    /// Like [`Envoy::start`], with the key server serving `(path, body)`
    /// documents from the start (for example `("partner-idp.json", jwks)`).
    ///
    /// # Errors
    ///
    /// As [`Envoy::start`].
    pub fn start_serving(
        plugin_config: &str,
        wasm: &Path,
        documents: &[(&str, String)],
    ) -> Result<Self, EnvoyError> {
        let options = Options {
            documents,
            ..Options::default()
        };
        Self::start_with(plugin_config, wasm, &options)
    }

    /// Starts Envoy with a generated demo policy, its fetched key sets served
    /// as `/<issuer>.json`, on `workers` worker threads.
    ///
    /// # Errors
    ///
    /// As [`Envoy::start`], and when the policy does not compile.
    pub fn start_demo(demo: &Demo, workers: u32) -> Result<Self, EnvoyError> {
        let config = warden_policy::plugin_config(&demo.policy).map_err(|e| fail("demo", e))?;
        let served: Vec<(String, String)> = demo
            .fetched_jwks
            .iter()
            .map(|(issuer, jwks)| (format!("{issuer}.json"), jwks.to_string()))
            .collect();
        let documents: Vec<(&str, String)> = served
            .iter()
            .map(|(path, body)| (path.as_str(), body.clone()))
            .collect();
        let options = Options {
            documents: &documents,
            workers: Some(workers),
            template: None,
        };
        Self::start_with(&config, &warden_wasm(), &options)
    }

    /// Like [`Envoy::start`], with everything [`Options`] can change.
    ///
    /// # Errors
    ///
    /// As [`Envoy::start`].
    pub fn start_with(
        plugin_config: &str,
        wasm: &Path,
        options: &Options<'_>,
    ) -> Result<Self, EnvoyError> {
        let template = options.template.map_or_else(
            || workspace_root().join("examples/envoy/envoy.yaml"),
            Path::to_path_buf,
        );
        Self::launch(&template, plugin_config, wasm, options)
    }

    fn launch(
        template: &Path,
        plugin_config: &str,
        wasm: &Path,
        options: &Options<'_>,
    ) -> Result<Self, EnvoyError> {
        let binary = envoy_binary();
        if !binary.exists() {
            return Err(EnvoyError(format!(
                "no envoy at `{}`: run `examples/setup.sh` first",
                binary.display()
            )));
        }
        if !wasm.exists() {
            return Err(EnvoyError(format!(
                "no filter at `{}`: run `cargo build --release --target wasm32-wasip1 -p warden`",
                wasm.display()
            )));
        }
        let dir = scratch_dir()?;
        let [port, upstream_port, admin, jwks_port, mtls_port] = free_ports()?;
        let tls = dir.join("tls");
        make_certs(&tls)?;
        let upstream = start_upstream(upstream_port)?;
        let served = dir.join("served");
        std::fs::create_dir_all(&served)
            .map_err(|e| fail("creating the key server's folder", e))?;
        for (path, body) in options.documents {
            std::fs::write(served.join(path), body)
                .map_err(|e| fail("writing a served document", e))?;
        }
        let key_server = start_key_server(jwks_port, &served)?;
        let ports = [port, upstream_port, admin, jwks_port, mtls_port];
        let config = render(template, plugin_config, wasm, ports, &tls)?;
        let config_path = dir.join("envoy.yaml");
        std::fs::write(&config_path, config).map_err(|e| fail("writing envoy.yaml", e))?;
        let log = dir.join("envoy.log");
        let envoy = start_envoy(&binary, &config_path, &log, options.workers.unwrap_or(2))?;
        let mut envoy = Self {
            envoy,
            upstream,
            key_server,
            port,
            mtls_port,
            log,
            dir,
        };
        envoy.wait_ready(admin, upstream_port)?;
        Ok(envoy)
    }

    /// The port of the template's main listener (`@LISTEN_PORT@`), for
    /// clients that speak something other than HTTP/1.1 to it.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Sends one request and reads the whole response.
    ///
    /// # Errors
    ///
    /// Returns an error when the connection fails or the response is not
    /// HTTP/1.1.
    pub fn request(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
    ) -> Result<Response, EnvoyError> {
        let mut raw = format!("{method} {path} HTTP/1.1\r\nconnection: close\r\n").into_bytes();
        if !headers.iter().any(|(n, _)| n.eq_ignore_ascii_case("host")) {
            raw.extend_from_slice(b"host: localhost\r\n");
        }
        for (name, value) in headers {
            raw.extend_from_slice(format!("{name}: {value}\r\n").as_bytes());
        }
        raw.extend_from_slice(b"\r\n");
        self.request_raw(&raw)
    }

    /// Sends raw bytes as a request, for headers no client library would
    /// write, and reads the whole response.
    ///
    /// # Errors
    ///
    /// As [`Envoy::request`].
    pub fn request_raw(&self, raw: &[u8]) -> Result<Response, EnvoyError> {
        let mut stream =
            TcpStream::connect(("127.0.0.1", self.port)).map_err(|e| fail("connecting", e))?;
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .map_err(|e| fail("socket", e))?;
        stream.write_all(raw).map_err(|e| fail("sending", e))?;
        let mut bytes = Vec::new();
        stream
            .read_to_end(&mut bytes)
            .map_err(|e| fail("reading", e))?;
        parse_response(&bytes)
    }

    /// Sends a request in pieces: `frames` one after the other, waiting
    /// `gap` before each after the first, so that Envoy reads each on its
    /// own; then reads the whole response.
    ///
    /// # Errors
    ///
    /// As [`Envoy::request`].
    pub fn request_in_frames(
        &self,
        frames: &[Vec<u8>],
        gap: Duration,
    ) -> Result<Response, EnvoyError> {
        let mut stream =
            TcpStream::connect(("127.0.0.1", self.port)).map_err(|e| fail("connecting", e))?;
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .map_err(|e| fail("socket", e))?;
        stream.set_nodelay(true).map_err(|e| fail("socket", e))?;
        for (index, frame) in frames.iter().enumerate() {
            if index > 0 {
                std::thread::sleep(gap);
            }
            stream.write_all(frame).map_err(|e| fail("sending", e))?;
        }
        let mut bytes = Vec::new();
        stream
            .read_to_end(&mut bytes)
            .map_err(|e| fail("reading", e))?;
        parse_response(&bytes)
    }

    /// Sends one request over TLS to the listener that requires client
    /// certificates, presenting the client certificate `client` (a name
    /// from `examples/envoy/make-certs.sh`, such as `reconciler`).
    ///
    /// # Errors
    ///
    /// Returns an error when curl fails or the response is not HTTP/1.1.
    pub fn request_tls(
        &self,
        client: &str,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
    ) -> Result<Response, EnvoyError> {
        let tls = self.dir.join("tls");
        let url = format!("https://localhost:{}{path}", self.mtls_port);
        let mut curl = Command::new("curl");
        curl.args([
            "--silent",
            "--show-error",
            "--include",
            "--http1.1",
            "--max-time",
            "10",
        ])
        .arg("--resolve")
        .arg(format!("localhost:{}:127.0.0.1", self.mtls_port))
        .arg("--cacert")
        .arg(tls.join("ca.pem"))
        .arg("--cert")
        .arg(tls.join(format!("{client}.pem")))
        .arg("--key")
        .arg(tls.join(format!("{client}.key")))
        .args(["--request", method]);
        for (name, value) in headers {
            curl.arg("--header").arg(format!("{name}: {value}"));
        }
        let output = curl
            .arg(url)
            .output()
            .map_err(|e| fail("running curl", e))?;
        if !output.status.success() {
            return Err(EnvoyError(format!(
                "curl: {}",
                String::from_utf8_lossy(&output.stderr)
            )));
        }
        parse_response(&output.stdout)
    }

    /// The DER encoding of a client certificate made for this Envoy.
    ///
    /// # Errors
    ///
    /// Returns an error when there is no such certificate.
    pub fn client_certificate_der(&self, client: &str) -> Result<Vec<u8>, EnvoyError> {
        std::fs::read(self.dir.join("tls").join(format!("{client}.der")))
            .map_err(|e| fail("reading a client certificate", e))
    }

    /// Serves `body` at `/<path>` from the key server from now on.
    ///
    /// # Errors
    ///
    /// Returns an error when the file cannot be written.
    pub fn serve(&self, path: &str, body: &str) -> Result<(), EnvoyError> {
        let file = self.dir.join("served").join(path);
        let temporary = file.with_extension("partial");
        std::fs::write(&temporary, body).map_err(|e| fail("writing a served document", e))?;
        std::fs::rename(&temporary, &file).map_err(|e| fail("writing a served document", e))
    }

    /// Stops serving `/<path>`: the key server answers 404 from now on.
    ///
    /// # Errors
    ///
    /// Returns an error when the file cannot be removed.
    pub fn withdraw(&self, path: &str) -> Result<(), EnvoyError> {
        std::fs::remove_file(self.dir.join("served").join(path))
            .map_err(|e| fail("removing a served document", e))
    }

    /// Everything Envoy has logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Warden's decision records so far, oldest first.
    pub fn records(&self) -> Vec<Value> {
        self.log()
            .lines()
            .filter(|line| line.contains("[wasm]") && line.contains("\"policy_revision\""))
            .filter_map(|line| line.find('{').and_then(|at| line.get(at..)))
            .filter_map(|json| serde_json::from_str(json).ok())
            .collect()
    }

    /// The decision record with this request id, waiting up to five seconds
    /// for Envoy to write it.
    pub fn record_for(&self, request_id: &str) -> Option<Value> {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let found = self
                .records()
                .into_iter()
                .find(|r| r.get("request_id").and_then(Value::as_str) == Some(request_id));
            if found.is_some() || Instant::now() > deadline {
                return found;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn wait_ready(&mut self, admin: u16, upstream_port: u16) -> Result<(), EnvoyError> {
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.envoy.try_wait() {
                return Err(EnvoyError(format!(
                    "envoy exited ({status}); its log:\n{}",
                    self.log()
                )));
            }
            let ready = http_get(admin, "/ready").is_some_and(|r| r.status == 200);
            let upstream = TcpStream::connect(("127.0.0.1", upstream_port)).is_ok();
            if ready && upstream {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        Err(EnvoyError(format!(
            "envoy not ready within 30 s; its log:\n{}",
            self.log()
        )))
    }
}

impl Drop for Envoy {
    fn drop(&mut self) {
        for child in [&mut self.envoy, &mut self.upstream, &mut self.key_server] {
            // `timeout` passes SIGTERM on to the process it runs.
            let _ = Command::new("kill")
                .arg("-TERM")
                .arg(child.id().to_string())
                .stderr(Stdio::null())
                .status();
            let _ = child.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn scratch_dir() -> Result<PathBuf, EnvoyError> {
    let base = workspace_root().join("target/envoy-runs");
    let listener = TcpListener::bind("127.0.0.1:0").map_err(|e| fail("binding", e))?;
    let unique = listener
        .local_addr()
        .map_err(|e| fail("binding", e))?
        .port();
    let dir = base.join(format!("{}-{unique}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| fail("creating a scratch folder", e))?;
    Ok(dir)
}

fn free_ports() -> Result<[u16; 5], EnvoyError> {
    let listeners: Vec<TcpListener> = (0..5)
        .map(|_| TcpListener::bind("127.0.0.1:0"))
        .collect::<Result<_, _>>()
        .map_err(|e| fail("finding free ports", e))?;
    let port = |i: usize| {
        listeners
            .get(i)
            .and_then(|l| l.local_addr().ok())
            .map_or(0, |a| a.port())
    };
    Ok([port(0), port(1), port(2), port(3), port(4)])
}

fn render(
    template: &Path,
    plugin_config: &str,
    wasm: &Path,
    [port, upstream, admin, jwks, mtls]: [u16; 5],
    tls: &Path,
) -> Result<String, EnvoyError> {
    let text = std::fs::read_to_string(template).map_err(|e| fail("reading the template", e))?;
    let wasm = wasm
        .canonicalize()
        .map_err(|e| fail("locating the filter", e))?;
    let values = [
        ("CONFIG", warden_policy::envoy::yaml_string(plugin_config)),
        (
            "WASM",
            warden_policy::envoy::yaml_string(&wasm.to_string_lossy()),
        ),
        ("LISTEN_PORT", port.to_string()),
        ("UPSTREAM_PORT", upstream.to_string()),
        ("ADMIN_PORT", admin.to_string()),
        ("JWKS_PORT", jwks.to_string()),
        ("MTLS_PORT", mtls.to_string()),
        ("TLS_DIR", tls.to_string_lossy().into_owned()),
    ];
    // A template may leave out listeners it does not need (the fidelity
    // corpus has no mTLS listener); a placeholder left unfilled is still an
    // error.
    let used: Vec<(&str, String)> = values
        .into_iter()
        .filter(|(name, _)| text.contains(&format!("@{name}@")))
        .collect();
    warden_policy::envoy::render(&text, &used).map_err(|e| fail("rendering", e))
}

fn start_upstream(port: u16) -> Result<Child, EnvoyError> {
    let script = workspace_root().join("examples/envoy/echo_upstream.py");
    Command::new("timeout")
        .arg(LIFETIME_SECS.to_string())
        .arg("python3")
        .arg(script)
        .arg(port.to_string())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| fail("starting the echo upstream", e))
}

/// Runs `examples/envoy/make-certs.sh` into `folder`.
fn make_certs(folder: &Path) -> Result<(), EnvoyError> {
    let script = workspace_root().join("examples/envoy/make-certs.sh");
    let output = Command::new("bash")
        .arg(script)
        .arg(folder)
        .output()
        .map_err(|e| fail("making certificates", e))?;
    if output.status.success() {
        Ok(())
    } else {
        Err(EnvoyError(format!(
            "making certificates: {}",
            String::from_utf8_lossy(&output.stderr)
        )))
    }
}

fn start_key_server(port: u16, folder: &Path) -> Result<Child, EnvoyError> {
    Command::new("timeout")
        .arg(LIFETIME_SECS.to_string())
        .args([
            "python3",
            "-m",
            "http.server",
            "--bind",
            "127.0.0.1",
            "--directory",
        ])
        .arg(folder)
        .arg(port.to_string())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| fail("starting the key server", e))
}

fn start_envoy(
    binary: &Path,
    config: &Path,
    log: &Path,
    workers: u32,
) -> Result<Child, EnvoyError> {
    let log_file = std::fs::File::create(log).map_err(|e| fail("creating the log", e))?;
    Command::new("timeout")
        .arg(LIFETIME_SECS.to_string())
        .arg(binary)
        .arg("--config-path")
        .arg(config)
        .args([
            "--log-format",
            "[%l][%n] %v",
            "--concurrency",
            &workers.to_string(),
        ])
        .args([
            "--base-id",
            &std::process::id().to_string(),
            "--use-dynamic-base-id",
        ])
        .stdout(Stdio::null())
        .stderr(log_file)
        .spawn()
        .map_err(|e| fail("starting envoy", e))
}

fn http_get(port: u16, path: &str) -> Option<Response> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    let request = format!("GET {path} HTTP/1.1\r\nhost: localhost\r\nconnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).ok()?;
    let mut bytes = Vec::new();
    stream.read_to_end(&mut bytes).ok()?;
    parse_response(&bytes).ok()
}

fn parse_response(bytes: &[u8]) -> Result<Response, EnvoyError> {
    let split = bytes
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or(EnvoyError("response without a header block".into()))?;
    let head = String::from_utf8_lossy(bytes.get(..split).unwrap_or_default());
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let status = status_line
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or(EnvoyError(format!("bad status line `{status_line}`")))?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let body = bytes.get(split + 4..).unwrap_or_default();
    let chunked = headers
        .iter()
        .any(|(n, v)| n == "transfer-encoding" && v.contains("chunked"));
    let body = if chunked {
        dechunk(body)
    } else {
        body.to_vec()
    };
    Ok(Response {
        status,
        headers,
        body,
    })
}

fn dechunk(mut body: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(end) = body.windows(2).position(|w| w == b"\r\n") {
        let size_text = String::from_utf8_lossy(body.get(..end).unwrap_or_default()).into_owned();
        let Ok(size) = usize::from_str_radix(size_text.trim(), 16) else {
            break;
        };
        if size == 0 {
            break;
        }
        out.extend_from_slice(body.get(end + 2..end + 2 + size).unwrap_or_default());
        body = body.get(end + 4 + size..).unwrap_or_default();
    }
    out
}
