//! `warden check`: one request through any filter, the outcome as JSON.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use super::{
    Common, Opt, grpc_upstream_spec, log_level, path_value, read, string_value, upstream_spec,
};
use crate::abi::LogLevel;
use crate::host::CalloutAnswer;
use crate::plugin::FailurePolicy;
use crate::request::Request;

#[derive(Debug, Default)]
struct Options {
    common: Common,
    wasm: Option<PathBuf>,
    config: Option<Vec<u8>>,
    vm_config: Vec<u8>,
    name: Option<String>,
    root_id: String,
    vm_id: String,
    upstreams: Vec<(String, CalloutAnswer)>,
    grpc_upstreams: Vec<(String, crate::grpc::GrpcAnswer)>,
    failure_policy: FailurePolicy,
    log_level: Option<LogLevel>,
    transcript: bool,
    request: Option<String>,
}

fn parse(mut parser: lexopt::Parser) -> Result<Options, String> {
    let mut options = Options::default();
    while let Some(arg) = super::next(&mut parser)? {
        if options.common.take(&arg, &mut parser)? {
            continue;
        }
        let p = &mut parser;
        match &arg {
            Opt::Long(long) => match long.as_str() {
                "wasm" => options.wasm = Some(path_value(p, "--wasm")?),
                "config" => options.config = Some(read(&path_value(p, "--config")?)?),
                "config-json" => {
                    options.config = Some(string_value(p, "--config-json")?.into_bytes())
                }
                "vm-config" => options.vm_config = read(&path_value(p, "--vm-config")?)?,
                "name" => options.name = Some(string_value(p, "--name")?),
                "root-id" => options.root_id = string_value(p, "--root-id")?,
                "vm-id" => options.vm_id = string_value(p, "--vm-id")?,
                "upstream" => options
                    .upstreams
                    .push(upstream_spec(&string_value(p, "--upstream")?)?),
                "grpc-upstream" => options
                    .grpc_upstreams
                    .push(grpc_upstream_spec(&string_value(p, "--grpc-upstream")?)?),
                "failure-policy" => {
                    let text = string_value(p, "--failure-policy")?;
                    options.failure_policy = super::failure_policy(&text)?;
                }
                "log-level" => {
                    options.log_level = Some(log_level(&string_value(p, "--log-level")?)?)
                }
                "transcript" => options.transcript = true,
                _ => {
                    return Err(format!(
                        "check: unknown option `{}`",
                        super::describe_owned(&arg)
                    ));
                }
            },
            Opt::Value(value) if options.request.is_none() => {
                options.request = Some(value.to_string_lossy().into_owned());
            }
            other => {
                return Err(format!(
                    "check: unexpected argument `{}`",
                    super::describe_owned(other)
                ));
            }
        }
    }
    Ok(options)
}

/// Reads a request from a JSON or YAML file, or standard input for `-`.
///
/// # Errors
///
/// The file cannot be read, or is not a valid request; the message names
/// the file and the problem.
pub fn read_request(name: &str) -> Result<Request, String> {
    let (label, text) = if name == "-" {
        let mut text = String::new();
        std::io::stdin()
            .read_to_string(&mut text)
            .map_err(|e| format!("standard input: {e}"))?;
        ("standard input".to_owned(), text)
    } else {
        let bytes = read(Path::new(name))?;
        let text = String::from_utf8(bytes).map_err(|_| format!("`{name}`: not UTF-8"))?;
        (format!("`{name}`"), text)
    };
    let json = name.ends_with(".json") || text.trim_start().starts_with('{');
    if json {
        serde_json::from_str(&text).map_err(|e| format!("{label}: {e}"))
    } else {
        serde_norway::from_str(&text).map_err(|e| format!("{label}: {e}"))
    }
}

pub(super) fn run(
    parser: lexopt::Parser,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> Result<u8, String> {
    let options = parse(parser)?;
    let wasm = options.wasm.ok_or("check: `--wasm FILE` is required")?;
    let request_name = options
        .request
        .ok_or("check: a REQUEST file (or `-`) is required")?;
    let request = read_request(&request_name)?;
    let engine = options.common.engine()?;
    let filter = engine.load_file(&wasm).map_err(|e| e.to_string())?;
    let mut builder = filter
        .plugin()
        .configuration(options.config.unwrap_or_default())
        .vm_configuration(options.vm_config)
        .root_id(&options.root_id)
        .vm_id(&options.vm_id)
        .failure_policy(options.failure_policy);
    if let Some(name) = &options.name {
        builder = builder.name(name);
    }
    if let Some(level) = options.log_level {
        builder = builder.log_level(level);
    }
    let mut plugin = builder
        .start()
        .map_err(|e| format!("`{}`: {e}", wasm.display()))?;
    for (cluster, answer) in options.upstreams {
        plugin.upstream(&cluster, answer);
    }
    for (cluster, answer) in options.grpc_upstreams {
        plugin.grpc_upstream(&cluster, "", answer);
    }
    let startup = plugin.take_transcript();
    let exchange = plugin
        .send(request)
        .map_err(|e| format!("`{request_name}`: {e}"))?;
    let text = serde_json::to_string_pretty(&exchange.outcome).map_err(|e| e.to_string())?;
    let _ = writeln!(out, "{text}");
    if options.transcript {
        let _ = write!(err, "{startup}{}", exchange.transcript);
    }
    Ok(0)
}
