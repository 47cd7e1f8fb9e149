//! `warden test`: policy test cases through `warden.wasm`.
//!
//! A case file (YAML or JSON) names the policy (or a whole plugin
//! configuration) and lists cases, each a request and what must come of
//! it:
//!
//! ```yaml
//! policy: ../policy.json          # relative to this file
//! upstreams:                      # answers to callouts, by cluster
//!   jwks: {status: 200, body_file: jwks.json}
//! cases:
//!   - name: the invoice bot reads the ledger
//!     request:
//!       path: /ledger/2026
//!       authority: books.example
//!       headers: {x-api-key: "invbot01.s3cret"}
//!     expect:
//!       status: 200
//!       reason: granted
//!       upstream_headers: {x-warden-identity: invoice-bot, x-api-key: null}
//! ```
//!
//! Every expectation is optional; each one given is checked, and a
//! failing case lists every expectation it missed.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::{Common, EXIT_FAILED, Opt, path_value, read};
use crate::engine::{Engine, Filter};
use crate::host::CalloutAnswer;
use crate::outcome::Outcome;
use crate::request::Request;

/// One case file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CaseFile {
    /// A policy file, relative to the case file; it becomes the plugin
    /// configuration `{"policy": ...}`.
    #[serde(default)]
    pub policy: Option<PathBuf>,
    /// A plugin configuration file, passed as is.
    #[serde(default)]
    pub configuration: Option<PathBuf>,
    /// A plugin configuration given inline.
    #[serde(default)]
    pub config: Option<serde_json::Value>,
    /// The filter, relative to the case file. Defaults to `--wasm`, else
    /// `target/wasm32-wasip1/release/warden.wasm`.
    #[serde(default)]
    pub wasm: Option<PathBuf>,
    /// Scripted answers to callouts, by cluster. Defaults to none.
    #[serde(default)]
    pub upstreams: BTreeMap<String, Upstream>,
    /// The cases.
    pub cases: Vec<Case>,
}

/// A scripted callout answer.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Upstream {
    /// The status. Defaults to 200.
    #[serde(default = "ok")]
    pub status: u16,
    /// The body, inline.
    #[serde(default)]
    pub body: Option<String>,
    /// The body, from a file relative to the case file.
    #[serde(default)]
    pub body_file: Option<PathBuf>,
    /// `timeout` or `fail` instead of a response.
    #[serde(default)]
    pub outcome: Option<String>,
    /// Milliseconds before the answer. Defaults to 0.
    #[serde(default)]
    pub delay_ms: u64,
}

fn ok() -> u16 {
    200
}

/// One case: a request and what must come of it.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Case {
    /// What the case shows.
    pub name: String,
    /// The request.
    pub request: Request,
    /// What must come of it.
    pub expect: Expect,
}

/// Expectations; each is checked only when given.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Expect {
    /// The status the client gets.
    pub status: Option<u16>,
    /// The `reason` of the decision record (the first JSON log line with a
    /// `reason` field).
    pub reason: Option<String>,
    /// Fields the decision record must have, with these values.
    pub record: Option<serde_json::Map<String, serde_json::Value>>,
    /// Envoy's response code details.
    pub details: Option<String>,
    /// Whether the request reaches the upstream.
    pub forwarded: Option<bool>,
    /// Response headers the client gets; `null` means absent.
    pub headers: Option<BTreeMap<String, Option<String>>>,
    /// Headers the upstream gets; `null` means absent.
    pub upstream_headers: Option<BTreeMap<String, Option<String>>>,
    /// The response body the client gets.
    pub body: Option<String>,
    /// Text that some log line must contain.
    pub logs_contain: Option<Vec<String>>,
}

#[derive(Debug, Default)]
struct Options {
    common: Common,
    wasm: Option<PathBuf>,
    verbose: bool,
    dir: Option<PathBuf>,
}

fn parse(mut parser: lexopt::Parser) -> Result<Options, String> {
    let mut options = Options::default();
    while let Some(arg) = super::next(&mut parser)? {
        if options.common.take(&arg, &mut parser)? {
            continue;
        }
        match &arg {
            Opt::Long(long) if long == "wasm" => {
                options.wasm = Some(path_value(&mut parser, "--wasm")?)
            }
            Opt::Long(long) if long == "verbose" => options.verbose = true,
            Opt::Value(value) if options.dir.is_none() => options.dir = Some(PathBuf::from(value)),
            other => {
                return Err(format!(
                    "test: unexpected argument `{}`",
                    super::describe_owned(other)
                ));
            }
        }
    }
    Ok(options)
}

/// The case files under `dir`, sorted, at most 8 folders deep.
fn case_files(dir: &Path) -> Result<Vec<PathBuf>, String> {
    let mut files = Vec::new();
    let mut folders = vec![(dir.to_path_buf(), 0)];
    while let Some((folder, depth)) = folders.pop() {
        let entries =
            std::fs::read_dir(&folder).map_err(|e| format!("`{}`: {e}", folder.display()))?;
        for entry in entries {
            let path = entry
                .map_err(|e| format!("`{}`: {e}", folder.display()))?
                .path();
            if path.is_dir() && depth < 8 {
                folders.push((path, depth + 1));
            } else if matches!(
                path.extension().and_then(|e| e.to_str()),
                Some("yaml" | "yml" | "json")
            ) {
                files.push(path);
            }
        }
    }
    files.sort();
    Ok(files)
}

/// Whether a file is a case file: a mapping with a `cases` key. Other
/// files (a policy beside its cases, say) are skipped.
fn is_case_file(path: &Path) -> Result<bool, String> {
    let text =
        String::from_utf8(read(path)?).map_err(|_| format!("`{}`: not UTF-8", path.display()))?;
    let value: Result<serde_json::Value, String> = if path.extension().is_some_and(|e| e == "json")
    {
        serde_json::from_str(&text).map_err(|e| e.to_string())
    } else {
        serde_norway::from_str(&text).map_err(|e| e.to_string())
    };
    let value = value.map_err(|e| format!("`{}`: {e}", path.display()))?;
    Ok(value.get("cases").is_some())
}

/// Reads a case file, YAML or JSON by extension.
///
/// # Errors
///
/// The file cannot be read or parsed; the message names the file and,
/// for syntax errors, the line.
pub fn read_case_file(path: &Path) -> Result<CaseFile, String> {
    let text =
        String::from_utf8(read(path)?).map_err(|_| format!("`{}`: not UTF-8", path.display()))?;
    let parsed = if path.extension().is_some_and(|e| e == "json") {
        serde_json::from_str(&text).map_err(|e| e.to_string())
    } else {
        serde_norway::from_str(&text).map_err(|e| e.to_string())
    };
    parsed.map_err(|e| format!("`{}`: {e}", path.display()))
}

/// The plugin configuration a case file names, as bytes.
///
/// # Errors
///
/// None or several of `policy`, `configuration` and `config` are given, or
/// the file they name cannot be read.
pub fn configuration(file: &CaseFile, path: &Path) -> Result<Vec<u8>, String> {
    let base = path.parent().unwrap_or(Path::new("."));
    let given = [
        file.policy.is_some(),
        file.configuration.is_some(),
        file.config.is_some(),
    ];
    if given.iter().filter(|&&g| g).count() != 1 {
        return Err(format!(
            "`{}`: give exactly one of `policy`, `configuration` and `config`",
            path.display()
        ));
    }
    if let Some(policy) = &file.policy {
        let policy_path = base.join(policy);
        let bytes = read(&policy_path)?;
        let policy: serde_json::Value = serde_json::from_slice(&bytes)
            .map_err(|e| format!("`{}`: {e}", policy_path.display()))?;
        return Ok(serde_json::json!({ "policy": policy })
            .to_string()
            .into_bytes());
    }
    if let Some(configuration) = &file.configuration {
        return read(&base.join(configuration));
    }
    Ok(file
        .config
        .as_ref()
        .map(|config| config.to_string().into_bytes())
        .unwrap_or_default())
}

fn answer(
    upstream: &Upstream,
    base: &Path,
    path: &Path,
    cluster: &str,
) -> Result<CalloutAnswer, String> {
    match upstream.outcome.as_deref() {
        Some("timeout") => return Ok(CalloutAnswer::Timeout),
        Some("fail") => return Ok(CalloutAnswer::Fail),
        Some(other) => {
            return Err(format!(
                "`{}`: upstreams.{cluster}.outcome: `{other}` is neither `timeout` nor `fail`",
                path.display()
            ));
        }
        None => {}
    }
    let body = match (&upstream.body, &upstream.body_file) {
        (Some(body), None) => body.as_bytes().to_vec(),
        (None, Some(file)) => read(&base.join(file))?,
        (None, None) => Vec::new(),
        (Some(_), Some(_)) => {
            return Err(format!(
                "`{}`: upstreams.{cluster}: give `body` or `body_file`, not both",
                path.display()
            ));
        }
    };
    Ok(CalloutAnswer::Respond {
        status: upstream.status,
        headers: Vec::new(),
        body,
        trailers: Vec::new(),
    })
}

/// The decision record: the first log line that is a JSON object with a
/// `reason`.
fn record(outcome: &Outcome) -> Option<serde_json::Map<String, serde_json::Value>> {
    outcome.logs.iter().find_map(|line| {
        let value: serde_json::Value = serde_json::from_str(&line.message).ok()?;
        let object = value.as_object()?;
        object.contains_key("reason").then(|| object.clone())
    })
}

fn show(value: Option<&str>) -> String {
    value.map_or_else(|| "absent".to_owned(), |v| format!("{v:?}"))
}

/// Every expectation the outcome misses, one line each.
pub fn mismatches(expect: &Expect, outcome: &Outcome) -> Vec<String> {
    let mut out = Vec::new();
    if let Some(status) = expect.status
        && outcome.status != Some(status)
    {
        let got = outcome
            .status
            .map_or_else(|| "none (the stream stalled)".into(), |s| s.to_string());
        out.push(format!("status: expected {status}, got {got}"));
    }
    let record = record(outcome);
    if let Some(reason) = &expect.reason {
        let got = record
            .as_ref()
            .and_then(|r| r.get("reason"))
            .and_then(|r| r.as_str());
        if got != Some(reason.as_str()) {
            out.push(format!("reason: expected {reason:?}, got {}", show(got)));
        }
    }
    if let Some(fields) = &expect.record {
        for (key, value) in fields {
            let got = record.as_ref().and_then(|r| r.get(key));
            if got != Some(value) {
                let got = got.map_or_else(|| "absent".to_owned(), ToString::to_string);
                out.push(format!("record `{key}`: expected {value}, got {got}"));
            }
        }
    }
    if let Some(details) = &expect.details
        && &outcome.details != details
    {
        out.push(format!(
            "details: expected {details:?}, got {:?}",
            outcome.details
        ));
    }
    if let Some(forwarded) = expect.forwarded
        && outcome.upstream.is_some() != forwarded
    {
        out.push(format!(
            "forwarded: expected {forwarded}, got {}",
            outcome.upstream.is_some()
        ));
    }
    for (name, value) in expect.headers.iter().flatten() {
        let got = outcome.header(name);
        if got != value.as_deref() {
            out.push(format!(
                "header `{name}`: expected {}, got {}",
                show(value.as_deref()),
                show(got)
            ));
        }
    }
    for (name, value) in expect.upstream_headers.iter().flatten() {
        let got = outcome.upstream_header(name);
        if got != value.as_deref() {
            out.push(format!(
                "upstream header `{name}`: expected {}, got {}",
                show(value.as_deref()),
                show(got)
            ));
        }
    }
    if let Some(body) = &expect.body
        && &outcome.body != body
    {
        out.push(format!("body: expected {body:?}, got {:?}", outcome.body));
    }
    for text in expect.logs_contain.iter().flatten() {
        if !outcome
            .logs
            .iter()
            .any(|line| line.message.contains(text.as_str()))
        {
            out.push(format!("logs: no line contains {text:?}"));
        }
    }
    out
}

/// The result of running one case file.
#[derive(Debug, Default)]
struct Tally {
    passed: usize,
    failed: usize,
}

fn run_file(
    engine: &Engine,
    default_wasm: &Path,
    path: &Path,
    verbose: bool,
    out: &mut dyn Write,
) -> Result<Tally, String> {
    let file = read_case_file(path)?;
    let base = path.parent().unwrap_or(Path::new("."));
    let configuration = configuration(&file, path)?;
    let wasm = file
        .wasm
        .as_ref()
        .map_or_else(|| default_wasm.to_path_buf(), |w| base.join(w));
    let filter: Filter = engine
        .load_file(&wasm)
        .map_err(|e| format!("`{}`: {e}", path.display()))?;
    let mut answers = Vec::new();
    for (cluster, upstream) in &file.upstreams {
        answers.push((
            cluster.clone(),
            answer(upstream, base, path, cluster)?,
            upstream.delay_ms,
        ));
    }
    let mut tally = Tally::default();
    for case in &file.cases {
        // A fresh plugin per case: no case sees another's shared data or
        // key cache.
        let mut plugin = filter
            .plugin()
            .name("warden")
            .root_id("warden")
            .vm_id("warden")
            .configuration(configuration.clone())
            .start()
            .map_err(|e| {
                format!(
                    "`{}`: the filter refused its configuration: {e}",
                    path.display()
                )
            })?;
        for (cluster, answer, delay) in &answers {
            plugin.upstream_after(cluster, answer.clone(), *delay);
        }
        let exchange = plugin
            .send(case.request.clone())
            .map_err(|e| format!("`{}`: case `{}`: {e}", path.display(), case.name))?;
        let missed = mismatches(&case.expect, &exchange.outcome);
        if missed.is_empty() {
            tally.passed += 1;
            if verbose {
                let _ = writeln!(out, "ok   {}: {}", path.display(), case.name);
            }
        } else {
            tally.failed += 1;
            let _ = writeln!(out, "FAIL {}: {}", path.display(), case.name);
            for line in missed {
                let _ = writeln!(out, "       {line}");
            }
        }
    }
    Ok(tally)
}

pub(super) fn run(
    parser: lexopt::Parser,
    out: &mut dyn Write,
    _err: &mut dyn Write,
) -> Result<u8, String> {
    let options = parse(parser)?;
    let dir = options.dir.ok_or("test: a DIR of case files is required")?;
    if !dir.is_dir() {
        return Err(format!("`{}`: not a folder", dir.display()));
    }
    let files = case_files(&dir)?;
    if files.is_empty() {
        return Err(format!(
            "`{}`: no case files (*.yaml, *.yml, *.json)",
            dir.display()
        ));
    }
    let engine = options.common.engine()?;
    let wasm = options.wasm.unwrap_or_else(crate::testing::warden_wasm);
    let mut total = Tally::default();
    for path in &files {
        if !is_case_file(path)? {
            if options.verbose {
                let _ = writeln!(out, "skip {}: no `cases`", path.display());
            }
            continue;
        }
        let tally = run_file(&engine, &wasm, path, options.verbose, out)?;
        total.passed += tally.passed;
        total.failed += tally.failed;
    }
    let _ = writeln!(out, "{} passed, {} failed", total.passed, total.failed);
    Ok(if total.failed == 0 { 0 } else { EXIT_FAILED })
}
