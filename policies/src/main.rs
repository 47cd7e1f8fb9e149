//! `warden-policy`: check a policy, wrap it for a proxy, make the demo.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use warden_policy::{Error, demo, envoy, plugin_config, read};

const HELP: &str = "\
warden-policy: the policy toolchain for Warden

USAGE:
    warden-policy check <POLICY.json>
        Compile a policy with the filter's own compiler. Prints the revision
        and counts, or the file and the first problem; exits 1 on a problem.

    warden-policy config <POLICY.json>
        Print the plugin configuration (JSON) that carries the policy into
        the proxy. Fails like `check` on a bad policy.

    warden-policy demo <TEMPLATE.json> <OUT-DIR>
        Generate fresh keys for the demo policy template, and write
        OUT-DIR/policy.json, OUT-DIR/plugin-config.json, one token per token
        identity in OUT-DIR/tokens/<name>.jwt (plus expired, tampered and
        wrong-issuer), one key per API key identity in
        OUT-DIR/api-keys/<identity>.key, and the key set of each issuer
        declared with `jwks_fetch` in OUT-DIR/jwks/<issuer>.json, for a key
        server to serve. Tokens live one hour.

    warden-policy envoy <TEMPLATE.yaml> --config <PLUGIN-CONFIG.json>
                  --wasm <WARDEN.wasm> --listen <PORT> --upstream <PORT> --admin <PORT>
                  --jwks <PORT> --mtls <PORT> --tls-dir <DIR>
        Print an Envoy configuration rendered from a template with
        @CONFIG@, @WASM@, @LISTEN_PORT@, @UPSTREAM_PORT@, @ADMIN_PORT@,
        @JWKS_PORT@ (the key server the `jwks` cluster reaches),
        @MTLS_PORT@ (the listener that requires client certificates) and
        @TLS_DIR@ (server.pem, server.key and ca.pem, as
        examples/envoy/make-certs.sh writes them).

    warden-policy --help
        Print this help.
";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match run(&args) {
        Ok(output) => {
            print!("{output}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("warden-policy: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: &[String]) -> Result<String, Error> {
    let words: Vec<&str> = args.iter().map(String::as_str).collect();
    match words.as_slice() {
        [] | ["--help" | "-h" | "help"] => Ok(HELP.to_owned()),
        ["check", policy] => check(Path::new(policy)),
        ["config", policy] => {
            warden_policy::check(Path::new(policy))?;
            Ok(plugin_config(&read_json(Path::new(policy))?)? + "\n")
        }
        ["demo", template, out] => write_demo(Path::new(template), Path::new(out)),
        ["envoy", template, options @ ..] => render_envoy(Path::new(template), options),
        _ => Err(Error(format!(
            "unknown command `{}`; see `warden-policy --help`",
            args.join(" ")
        ))),
    }
}

fn check(path: &Path) -> Result<String, Error> {
    let policy = warden_policy::check(path)?;
    Ok(format!(
        "{}: ok, revision `{}`\n",
        path.display(),
        policy.revision()
    ))
}

fn read_json(path: &Path) -> Result<serde_json::Value, Error> {
    serde_json::from_str(&read(path)?).map_err(|e| Error(format!("{}: {e}", path.display())))
}

fn write_demo(template: &Path, out: &Path) -> Result<String, Error> {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_err(|e| Error(format!("clock: {e}")))?
        .as_secs();
    let demo = demo::generate(&read_json(template)?, now)?;
    let policy = serde_json::to_string_pretty(&demo.policy).map_err(|e| Error(e.to_string()))?;
    write(&out.join("policy.json"), &policy)?;
    write(
        &out.join("plugin-config.json"),
        &plugin_config(&demo.policy)?,
    )?;
    for (name, token) in &demo.tokens {
        write(&out.join("tokens").join(format!("{name}.jwt")), token)?;
    }
    for (issuer, jwks) in &demo.fetched_jwks {
        write(
            &out.join("jwks").join(format!("{issuer}.json")),
            &jwks.to_string(),
        )?;
    }
    for (id, key) in &demo.api_keys {
        write(&out.join("api-keys").join(format!("{id}.key")), key)?;
    }
    Ok(format!(
        "{}: {} tokens, {} api keys\n",
        out.display(),
        demo.tokens.len(),
        demo.api_keys.len()
    ))
}

fn write(path: &Path, contents: &str) -> Result<(), Error> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| Error(format!("{}: {e}", dir.display())))?;
    }
    std::fs::write(path, contents).map_err(|e| Error(format!("{}: {e}", path.display())))
}

fn render_envoy(template: &Path, options: &[&str]) -> Result<String, Error> {
    let option = |name: &str| -> Result<String, Error> {
        let at = options.iter().position(|o| *o == name);
        at.and_then(|i| options.get(i + 1))
            .map(|v| (*v).to_owned())
            .ok_or(Error(format!("envoy: missing `{name} <VALUE>`")))
    };
    const NAMES: [&str; 8] = [
        "--config",
        "--wasm",
        "--listen",
        "--upstream",
        "--admin",
        "--jwks",
        "--mtls",
        "--tls-dir",
    ];
    if let Some(unknown) = options.iter().step_by(2).find(|o| !NAMES.contains(o)) {
        return Err(Error(format!(
            "envoy: unknown option `{unknown}`; see `--help`"
        )));
    }
    let config = read(&PathBuf::from(option("--config")?))?;
    let wasm = option("--wasm")?;
    let values = [
        ("CONFIG", envoy::yaml_string(config.trim_end())),
        ("WASM", envoy::yaml_string(&wasm)),
        ("LISTEN_PORT", option("--listen")?),
        ("UPSTREAM_PORT", option("--upstream")?),
        ("ADMIN_PORT", option("--admin")?),
        ("JWKS_PORT", option("--jwks")?),
        ("MTLS_PORT", option("--mtls")?),
        ("TLS_DIR", option("--tls-dir")?),
    ];
    envoy::render(&read(template)?, &values)
}
