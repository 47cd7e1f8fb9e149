//! The `warden` command, run in-process: exact output and exit codes.

use std::ffi::OsString;
use std::path::Path;

use warden_host_test::{cli, testing};

fn warden(args: &[&str]) -> (u8, String, String) {
    let args: Vec<OsString> = args.iter().map(OsString::from).collect();
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let code = cli::run(args, &mut out, &mut err);
    (
        code,
        String::from_utf8(out).unwrap(),
        String::from_utf8(err).unwrap(),
    )
}

fn here(path: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join(path)
        .to_string_lossy()
        .into_owned()
}

fn scratch(name: &str, text: &str) -> String {
    let dir = testing::target_dir().join("cli-tests");
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(format!("{}-{name}", std::process::id()));
    std::fs::write(&path, text).unwrap();
    path.to_string_lossy().into_owned()
}

#[test]
fn help_lists_both_commands_and_every_option() {
    let (code, out, _) = warden(&["--help"]);
    assert_eq!(code, 0);
    for needle in [
        "warden check [OPTIONS] --wasm FILE REQUEST",
        "warden test [OPTIONS] DIR",
        "--config FILE",
        "--upstream SPEC",
        "--grpc-upstream SPEC",
        "--failure-policy P",
        "--transcript",
        "--cache-dir DIR",
        "EXIT STATUS",
    ] {
        assert!(out.contains(needle), "help lacks {needle:?}");
    }
}

#[test]
fn check_prints_the_outcome_as_json() {
    let wasm = testing::build_filter("probe").unwrap();
    let config = r#"{"request_headers": [{"op": "reply", "status": 418, "body": "teapot", "details": "probe"}]}"#;
    let request = scratch("request.yaml", "method: POST\npath: /brew\nbody: tea\n");
    let (code, out, err) = warden(&[
        "check",
        "--wasm",
        wasm.to_str().unwrap(),
        "--config-json",
        config,
        &request,
    ]);
    assert_eq!(code, 0, "{err}");
    let outcome: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(outcome["status"], 418);
    assert_eq!(outcome["disposition"], "local_reply");
    assert_eq!(outcome["details"], "probe");
    assert_eq!(outcome["body"], "teapot");
    assert_eq!(outcome["upstream"], serde_json::Value::Null);
}

#[test]
fn check_scripts_grpc_upstreams() {
    let wasm = testing::build_filter("probe").unwrap();
    let config = r#"{"request_headers": [
        {"op": "grpc_call", "cluster": "auth", "method": "Check", "message": "hi", "timeout_ms": 100},
        {"op": "grpc_call", "cluster": "deny", "method": "Check", "timeout_ms": 100},
        {"op": "pause"}],
      "grpc_response": [{"op": "grpc_received"}, {"op": "grpc_status"}]}"#;
    let request = scratch("grpc.json", r#"{"path": "/"}"#);
    let (code, out, err) = warden(&[
        "check",
        "--wasm",
        wasm.to_str().unwrap(),
        "--config-json",
        config,
        "--grpc-upstream",
        "auth=echo",
        "--grpc-upstream",
        "deny=7:no",
        &request,
    ]);
    assert_eq!(code, 0, "{err}");
    let outcome: serde_json::Value = serde_json::from_str(&out).unwrap();
    let messages: Vec<&str> = outcome["logs"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|line| line["message"].as_str())
        .filter(|message| message.starts_with("grpc_response"))
        .collect();
    assert_eq!(
        messages,
        vec![
            "grpc_response: token = 5 status = 0 size = 2",
            "grpc_response: grpc_received = \"hi\"",
            "grpc_response: grpc_status = 0 None",
            "grpc_response: token = 9 status = 7 size = 0",
            "grpc_response: grpc_received = None",
            "grpc_response: grpc_status = 7 Some(\"no{via_upstream}\")",
        ]
    );
}

#[test]
fn check_transcript_goes_to_standard_error() {
    let wasm = testing::build_filter("probe").unwrap();
    let request = scratch("plain.json", r#"{"path": "/"}"#);
    let (code, _, err) = warden(&[
        "check",
        "--wasm",
        wasm.to_str().unwrap(),
        "--transcript",
        &request,
    ]);
    assert_eq!(code, 0);
    assert!(
        err.contains("→ [vm 0] proxy_on_request_headers(2, 8, true)"),
        "{err}"
    );
}

#[test]
fn check_names_the_file_and_field_that_is_wrong() {
    let wasm = testing::build_filter("probe").unwrap();
    let request = scratch("typo.json", r#"{"paht": "/"}"#);
    let (code, _, err) = warden(&["check", "--wasm", wasm.to_str().unwrap(), &request]);
    assert_eq!(code, 2);
    let first = err.lines().next().unwrap();
    assert!(
        first.starts_with(&format!("warden: `{request}`: unknown field `paht`")),
        "{first}"
    );
}

#[test]
fn check_requires_a_filter() {
    let (code, _, err) = warden(&["check", "request.json"]);
    assert_eq!(code, 2);
    assert_eq!(
        err,
        "warden: check: `--wasm FILE` is required\nRun `warden --help` for usage.\n"
    );
}

#[test]
fn unknown_commands_and_options_are_refused() {
    let (code, _, err) = warden(&["frobnicate"]);
    assert_eq!(code, 2);
    assert!(err.starts_with("warden: unknown command `frobnicate`: expected `check` or `test`\n"));
    let (code, _, err) = warden(&["check", "--frob"]);
    assert_eq!(code, 2);
    assert!(
        err.starts_with("warden: check: unknown option `--frob`\n"),
        "{err}"
    );
}

#[test]
fn test_passes_the_policy_cases() {
    let (code, out, err) = warden(&["test", &here("tests/policy-cases")]);
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(out, "24 passed, 0 failed\n");
}

#[test]
fn test_reports_every_missed_expectation_and_fails() {
    let dir = here("tests/policy-cases-failing");
    let (code, out, _) = warden(&["test", &dir]);
    assert_eq!(code, 1);
    let file = format!("{dir}/wrong.yaml");
    assert_eq!(
        out,
        format!(
            "FAIL {file}: expects the wrong status and identity\n\
             \x20      status: expected 403, got 200\n\
             \x20      reason: expected \"not_granted\", got \"granted\"\n\
             \x20      upstream header `x-warden-identity`: expected \"someone-else\", got \"invoice-bot\"\n\
             0 passed, 1 failed\n"
        )
    );
}

#[test]
fn test_names_a_malformed_case_file_and_its_line() {
    let dir = testing::target_dir().join(format!("cli-tests/bad-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("bad.yaml"),
        "policy: p.json\ncases:\n  - name: x\n    reqest: {}\n",
    )
    .unwrap();
    let (code, _, err) = warden(&["test", dir.to_str().unwrap()]);
    assert_eq!(code, 2);
    let first = err.lines().next().unwrap();
    let expected = format!(
        "warden: `{}`: cases[0]: unknown field `reqest`",
        dir.join("bad.yaml").display()
    );
    assert!(first.starts_with(&expected), "{first}");
    assert!(first.contains("line 4"), "{first}");
}
