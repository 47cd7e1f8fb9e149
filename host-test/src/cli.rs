//! The `warden` command: `warden check` runs one request through any
//! proxy-wasm filter and prints the outcome; `warden test` runs a folder of
//! policy test cases through `warden.wasm` and reports each failure.
//!
//! The binary in `src/bin/warden.rs` only calls [`main`], so every command
//! is testable in-process: [`run`] takes the arguments and writers and
//! returns the exit code.

use std::ffi::OsString;
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::abi::LogLevel;
use crate::engine::Engine;
use crate::grpc::{GrpcAnswer, GrpcResponse};
use crate::host::CalloutAnswer;
use crate::plugin::FailurePolicy;

pub mod check;
pub mod suite;

/// Exit code for a run whose checks failed.
pub const EXIT_FAILED: u8 = 1;
/// Exit code for bad arguments or unreadable inputs.
pub const EXIT_USAGE: u8 = 2;

const HELP: &str = "\
warden: run requests through a proxy-wasm filter on a local host that
answers like Envoy 1.40, without Envoy.

USAGE:
    warden check [OPTIONS] --wasm FILE REQUEST
    warden test [OPTIONS] DIR
    warden help | --help | -h
    warden --version

COMMANDS:
    check   Send one request through a filter and print the outcome as JSON:
            status, response code details, the headers and body the client
            gets, the request as the upstream gets it, and the filter's log
            lines. Works for any proxy-wasm filter. REQUEST is a JSON or
            YAML file (`-` reads standard input) with the fields method,
            path, authority, scheme, headers, body, trailers, properties,
            connection, time, upstream (its answer, delay_ms, or failure:
            refused, reset_before_response, reset_after_response_started,
            no_answer) and protocol (http1, http2); every field has a
            default.
    test    Run every test case file (*.yaml, *.yml, *.json) under DIR
            through warden.wasm. Prints each failure with what was expected
            and what happened, then `N passed, M failed`. Exits 1 if any case
            failed. See host-test/README.md for the case format.

OPTIONS (check):
    --wasm FILE            The filter to run. Required.
    --config FILE          The plugin configuration, passed as is.
                           Defaults to empty.
    --config-json TEXT     The plugin configuration given inline.
    --vm-config FILE       The VM configuration. Defaults to empty.
    --name NAME            plugin_name. Defaults to `plugin`.
    --root-id ID           plugin_root_id. Defaults to empty.
    --vm-id ID             plugin_vm_id. Defaults to empty.
    --upstream SPEC        Script the answer to callouts to a cluster:
                           `CLUSTER=STATUS` (empty body),
                           `CLUSTER=STATUS:FILE` (body read from FILE),
                           `CLUSTER=timeout` or `CLUSTER=fail`. Repeatable.
                           Callouts to clusters not scripted get
                           `BadArgument`, as Envoy answers for an unknown
                           cluster.
    --grpc-upstream SPEC   Script a gRPC upstream, for every method:
                           `CLUSTER=echo` (answers each message with
                           itself, ends with status 0), `CLUSTER=STATUS` or
                           `CLUSTER=STATUS:MESSAGE` (fails with that gRPC
                           status), `CLUSTER=down` (the connection fails)
                           or `CLUSTER=silent` (never answers).
                           Repeatable. gRPC calls to clusters not scripted
                           get `ParseFailure`, as in Envoy.
    --failure-policy P     What a trap does: `closed` answers 503 and keeps
                           the VM failed (Envoy's default, FAIL_CLOSED),
                           `open` lets requests through (FAIL_OPEN),
                           `reload` answers 503 and starts a fresh VM for
                           the next request (FAIL_RELOAD). Defaults to
                           `closed`.
    --log-level LEVEL      trace, debug, info, warning, error or critical.
                           Defaults to info, Envoy's default.
    --transcript           Also print every host call, both directions, to
                           standard error.

OPTIONS (test):
    --wasm FILE            warden.wasm to test. Defaults to the file a case
                           names, else target/wasm32-wasip1/release/warden.wasm.
    --verbose              Print each passing case too.

COMMON:
    --cache-dir DIR        Where compiled modules are cached. Defaults to
                           $WARDEN_HOST_CACHE, $XDG_CACHE_HOME/warden-host
                           or ~/.cache/warden-host.
    --no-cache             Compile in memory only.

EXIT STATUS:
    0  success (check: the request ran, whatever its outcome)
    1  a test case failed
    2  bad arguments, or a file that cannot be read or parsed
";

/// Runs the command line and exits with its code.
pub fn main() -> std::process::ExitCode {
    let args: Vec<OsString> = std::env::args_os().skip(1).collect();
    let mut out = std::io::stdout().lock();
    let mut err = std::io::stderr().lock();
    std::process::ExitCode::from(run(args, &mut out, &mut err))
}

/// Runs `warden` with `args` (without the program name), writing to
/// `out` and `err`; returns the exit code.
pub fn run(args: Vec<OsString>, out: &mut dyn Write, err: &mut dyn Write) -> u8 {
    match dispatch(args, out, err) {
        Ok(code) => code,
        Err(message) => {
            let _ = writeln!(err, "warden: {message}");
            let _ = writeln!(err, "Run `warden --help` for usage.");
            EXIT_USAGE
        }
    }
}

fn dispatch(args: Vec<OsString>, out: &mut dyn Write, err: &mut dyn Write) -> Result<u8, String> {
    let mut parser = lexopt::Parser::from_args(args);
    let command = match parser.next().map_err(|e| e.to_string())? {
        None => {
            let _ = out.write_all(HELP.as_bytes());
            return Ok(EXIT_USAGE);
        }
        Some(lexopt::Arg::Long("help") | lexopt::Arg::Short('h')) => {
            let _ = out.write_all(HELP.as_bytes());
            return Ok(0);
        }
        Some(lexopt::Arg::Long("version")) => {
            let _ = writeln!(out, "warden {}", env!("CARGO_PKG_VERSION"));
            return Ok(0);
        }
        Some(lexopt::Arg::Value(value)) => value.to_string_lossy().into_owned(),
        Some(other) => return Err(format!("expected a command, got `{}`", describe(&other))),
    };
    match command.as_str() {
        "help" => {
            let _ = out.write_all(HELP.as_bytes());
            Ok(0)
        }
        "check" => check::run(parser, out, err),
        "test" => suite::run(parser, out, err),
        other => Err(format!(
            "unknown command `{other}`: expected `check` or `test`"
        )),
    }
}

fn describe(arg: &lexopt::Arg<'_>) -> String {
    describe_owned(&owned(arg.clone()))
}

/// An argument detached from the parser, so the parser can read the
/// option's value while the argument is matched.
#[derive(Debug)]
enum Opt {
    Long(String),
    Short(char),
    Value(OsString),
}

fn owned(arg: lexopt::Arg<'_>) -> Opt {
    match arg {
        lexopt::Arg::Long(long) => Opt::Long(long.to_owned()),
        lexopt::Arg::Short(short) => Opt::Short(short),
        lexopt::Arg::Value(value) => Opt::Value(value),
    }
}

fn describe_owned(arg: &Opt) -> String {
    match arg {
        Opt::Short(c) => format!("-{c}"),
        Opt::Long(l) => format!("--{l}"),
        Opt::Value(v) => v.to_string_lossy().into_owned(),
    }
}

/// The next argument, detached from the parser.
fn next(parser: &mut lexopt::Parser) -> Result<Option<Opt>, String> {
    parser
        .next()
        .map(|arg| arg.map(owned))
        .map_err(|e| e.to_string())
}

/// Options both commands take.
#[derive(Debug, Default)]
pub(crate) struct Common {
    cache_dir: Option<PathBuf>,
    no_cache: bool,
}

impl Common {
    /// Takes a common option; false if `arg` is not one.
    fn take(&mut self, arg: &Opt, parser: &mut lexopt::Parser) -> Result<bool, String> {
        match arg {
            Opt::Long(long) if long == "cache-dir" => {
                self.cache_dir = Some(path_value(parser, "--cache-dir")?);
            }
            Opt::Long(long) if long == "no-cache" => self.no_cache = true,
            _ => return Ok(false),
        }
        Ok(true)
    }

    fn engine(&self) -> Result<Engine, String> {
        let dir = if self.no_cache {
            None
        } else {
            self.cache_dir
                .clone()
                .or_else(crate::engine::default_cache_dir)
        };
        Engine::with_cache_dir(dir).map_err(|e| e.to_string())
    }
}

fn string_value(parser: &mut lexopt::Parser, option: &str) -> Result<String, String> {
    let value = parser
        .value()
        .map_err(|_| format!("`{option}` needs a value"))?;
    value
        .into_string()
        .map_err(|v| format!("`{option}`: `{}` is not UTF-8", v.to_string_lossy()))
}

fn path_value(parser: &mut lexopt::Parser, option: &str) -> Result<PathBuf, String> {
    parser
        .value()
        .map(PathBuf::from)
        .map_err(|_| format!("`{option}` needs a value"))
}

fn read(path: &Path) -> Result<Vec<u8>, String> {
    std::fs::read(path).map_err(|e| format!("`{}`: {e}", path.display()))
}

/// Parses `CLUSTER=STATUS[:FILE]`, `CLUSTER=timeout` or `CLUSTER=fail`.
fn upstream_spec(spec: &str) -> Result<(String, CalloutAnswer), String> {
    let (cluster, answer) = spec
        .split_once('=')
        .filter(|(cluster, _)| !cluster.is_empty())
        .ok_or_else(|| format!("`--upstream {spec}`: expected `CLUSTER=STATUS[:FILE]`, `CLUSTER=timeout` or `CLUSTER=fail`"))?;
    let answer = match answer {
        "timeout" => CalloutAnswer::Timeout,
        "fail" => CalloutAnswer::Fail,
        other => {
            let (status, file) = match other.split_once(':') {
                Some((status, file)) => (status, Some(file)),
                None => (other, None),
            };
            let status = status
                .parse::<u16>()
                .ok()
                .filter(|status| (100..=599).contains(status))
                .ok_or_else(|| format!("`--upstream {spec}`: `{status}` is not an HTTP status"))?;
            let body = match file {
                Some(file) => read(Path::new(file))?,
                None => Vec::new(),
            };
            CalloutAnswer::Respond {
                status,
                headers: Vec::new(),
                body,
                trailers: Vec::new(),
            }
        }
    };
    Ok((cluster.to_owned(), answer))
}

fn grpc_upstream_spec(spec: &str) -> Result<(String, GrpcAnswer), String> {
    let expected = || {
        format!(
            "`--grpc-upstream {spec}`: expected `CLUSTER=echo`, `CLUSTER=STATUS[:MESSAGE]`, \
             `CLUSTER=down` or `CLUSTER=silent`"
        )
    };
    let (cluster, answer) = spec
        .split_once('=')
        .filter(|(cluster, _)| !cluster.is_empty())
        .ok_or_else(expected)?;
    let answer = match answer {
        "echo" => GrpcAnswer::Respond(GrpcResponse::echo("")),
        "down" => GrpcAnswer::Down,
        "silent" => GrpcAnswer::Silent,
        other => {
            let (status, message) = other.split_once(':').unwrap_or((other, ""));
            let status = status
                .parse::<u32>()
                .ok()
                .filter(|status| (1..=16).contains(status))
                .ok_or_else(|| {
                    format!("`--grpc-upstream {spec}`: `{status}` is not a gRPC error status")
                })?;
            GrpcAnswer::Respond(GrpcResponse::failing(status, message))
        }
    };
    Ok((cluster.to_owned(), answer))
}

fn log_level(text: &str) -> Result<LogLevel, String> {
    LogLevel::from_name(text).ok_or_else(|| {
        format!("`--log-level {text}`: expected trace, debug, info, warning, error or critical")
    })
}

fn failure_policy(text: &str) -> Result<FailurePolicy, String> {
    match text {
        "closed" => Ok(FailurePolicy::FailClosed),
        "open" => Ok(FailurePolicy::FailOpen),
        "reload" => Ok(FailurePolicy::FailReload),
        other => Err(format!(
            "`--failure-policy {other}`: expected `closed`, `open` or `reload`"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grpc_upstream_specs_parse_or_say_why_not() {
        assert_eq!(
            grpc_upstream_spec("auth=7:no").unwrap(),
            (
                "auth".to_owned(),
                GrpcAnswer::Respond(GrpcResponse::failing(7, "no"))
            )
        );
        assert_eq!(grpc_upstream_spec("auth=down").unwrap().1, GrpcAnswer::Down);
        assert_eq!(
            grpc_upstream_spec("auth=0").unwrap_err(),
            "`--grpc-upstream auth=0`: `0` is not a gRPC error status"
        );
        assert_eq!(
            grpc_upstream_spec("=echo").unwrap_err(),
            "`--grpc-upstream =echo`: expected `CLUSTER=echo`, `CLUSTER=STATUS[:MESSAGE]`, \
             `CLUSTER=down` or `CLUSTER=silent`"
        );
    }

    #[test]
    fn upstream_specs_parse_or_say_why_not() {
        assert_eq!(
            upstream_spec("jwks=timeout").unwrap().1,
            CalloutAnswer::Timeout
        );
        assert_eq!(
            upstream_spec("jwks=200").unwrap().1,
            CalloutAnswer::Respond {
                status: 200,
                headers: vec![],
                body: vec![],
                trailers: vec![]
            }
        );
        assert_eq!(
            upstream_spec("jwks").unwrap_err(),
            "`--upstream jwks`: expected `CLUSTER=STATUS[:FILE]`, `CLUSTER=timeout` or `CLUSTER=fail`"
        );
        assert_eq!(
            upstream_spec("jwks=700").unwrap_err(),
            "`--upstream jwks=700`: `700` is not an HTTP status"
        );
    }
}
