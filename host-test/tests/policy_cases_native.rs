//! The policy case corpus (`tests/policy-cases/`) through the native
//! engine. The same files run through the compiled `warden.wasm` in the
//! harness (`warden test`, `tests/cli.rs`) and are compared field by field
//! with real Envoy (`tests/fidelity.rs`), so every way Warden decides must
//! give each case's status and reason code.
//!
//! Cases that set a `time` or scripted upstreams need the harness's clock
//! or callouts and are run there only.

use std::path::{Path, PathBuf};
use warden::config::Config;
use warden::decide::{Peer, Request as Decided, Verdict, decide};
use warden::verify::TokenCache;
use warden_host_test::cli::suite::{Case, CaseFile, configuration, read_case_file};

/// Every case file of the corpus, with its parsed content.
fn corpus() -> Vec<(PathBuf, CaseFile)> {
    let folder = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/policy-cases");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&folder)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml" || e == "yml"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no case files in {}", folder.display());
    files
        .into_iter()
        .map(|p| (p.clone(), read_case_file(&p).unwrap()))
        .collect()
}

fn portable(file: &CaseFile) -> impl Iterator<Item = &Case> {
    let scripted = !file.upstreams.is_empty();
    file.cases
        .iter()
        .filter(move |c| !scripted && c.request.time.is_none())
}

fn lowercase_headers(case: &Case) -> Vec<(String, String)> {
    let mut headers: Vec<(String, String)> = case
        .request
        .headers
        .0
        .iter()
        .map(|(n, v)| (n.to_ascii_lowercase(), v.clone()))
        .collect();
    headers.push((":method".into(), case.request.method.clone()));
    headers.push((":authority".into(), case.request.authority.clone()));
    headers.push((":path".into(), case.request.path.clone()));
    headers
}

#[test]
fn the_native_engine_agrees_with_every_case() {
    let mut checked = 0;
    for (path, file) in corpus() {
        let config = Config::from_json(&configuration(&file, &path).unwrap()).unwrap();
        let mut cache = TokenCache::default();
        for case in portable(&file) {
            let headers = lowercase_headers(case);
            let request = Decided {
                method: &case.request.method,
                authority: &case.request.authority,
                path: &case.request.path,
                headers: &headers,
                peer: Peer::default(),
            };
            let decision = decide(
                &config,
                &request,
                warden_policy::demo::unix_now(),
                &mut cache,
            );
            let status = match decision.verdict {
                Verdict::Allow => 200,
                Verdict::Deny { status, .. } => status,
            };
            let where_ = format!("{}: {}", path.display(), case.name);
            if let Some(expected) = case.expect.status {
                assert_eq!(status, expected, "{where_}");
            }
            if let Some(expected) = &case.expect.reason {
                assert_eq!(decision.reason, expected, "{where_}");
            }
            checked += 1;
        }
    }
    assert!(checked >= 5, "only {checked} portable cases");
}
