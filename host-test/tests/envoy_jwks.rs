//! Fetched key sets in a real Envoy: the partner issuer of the demo policy
//! publishes its JWKS on a key server that the test controls, to show cold
//! start, rotation, an outage, and a key server that never had keys.

use serde_json::{Value, json};
use std::time::{Duration, Instant};
use warden_host_test::envoy::{Envoy, Options, Response, warden_wasm};
use warden_policy::demo::{self, Demo, claims, unix_now};
use warden_policy::keys::SigningKey;
use warden_policy::mint::mint;

const BOOKS: &str = "books.demo.test";
const PARTNER: &str = "https://login.partner.demo.test";
const AUDIENCE: &str = "https://api.demo.test";
const JWKS: &str = "partner-idp.json";

/// The demo, with unknown-kid refetches allowed every second so the test
/// need not wait for the default 30.
fn demo() -> Demo {
    let mut template = demo::template().unwrap();
    template["issuers"][1]["jwks_fetch"]["min_refetch_secs"] = json!(1);
    demo::generate(&template, unix_now()).unwrap()
}

fn report(envoy: &Envoy, token: &str) -> Response {
    let auth = format!("Bearer {token}");
    envoy
        .request(
            "GET",
            "/reports/2026-11",
            &[("host", BOOKS), ("authorization", &auth)],
        )
        .unwrap()
}

fn reason(response: &Response) -> Value {
    response.json()["reason"].clone()
}

fn partner_token(key: &SigningKey) -> String {
    mint(key, &claims(PARTNER, "auditor-7", AUDIENCE, unix_now()))
}

fn jwks(keys: &[&SigningKey]) -> String {
    json!({ "keys": keys.iter().map(|k| k.public_jwk()).collect::<Vec<_>>() }).to_string()
}

/// Waits out a fetch backoff: retries a bounded number of times.
fn eventually(envoy: &Envoy, token: &str, status: u16) -> Response {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let response = report(envoy, token);
        if response.status == status || Instant::now() > deadline {
            return response;
        }
        std::thread::sleep(Duration::from_millis(300));
    }
}

#[test]
fn rotation_is_followed_and_an_outage_keeps_the_last_good_keys() {
    let demo = demo();
    let config = warden_policy::plugin_config(&demo.policy).unwrap();
    let first = &demo.issuer_keys["partner-idp"];
    // One worker: each worker's VM keeps its own keys, and this test
    // follows one VM through rotation and outage.
    let served = [(JWKS, jwks(&[first]))];
    let options = Options {
        documents: &served,
        workers: Some(1),
        template: None,
    };
    let envoy = Envoy::start_with(&config, &warden_wasm(), &options).unwrap();

    // Cold start: the first request waits for the fetch, then passes.
    let old_token = partner_token(first);
    let response = report(&envoy, &old_token);
    assert_eq!(
        response.status,
        200,
        "{}",
        String::from_utf8_lossy(&response.body)
    );
    assert_eq!(
        response.upstream_header("x-warden-identity"),
        ["auditor-reports"]
    );

    // Rotation: the issuer adds a key and signs with it. The unknown kid
    // triggers a refetch, and the request waits for it.
    let second = SigningKey::generate("ES256", "partner-idp-2").unwrap();
    envoy.serve(JWKS, &jwks(&[first, &second])).unwrap();
    std::thread::sleep(Duration::from_millis(1100));
    let new_token = partner_token(&second);
    let response = report(&envoy, &new_token);
    assert_eq!(
        response.status,
        200,
        "{}",
        String::from_utf8_lossy(&response.body)
    );

    // Outage: the key server answers 404. A token with yet another kid is
    // refused as `key_unknown` after the failed refetch, and the keys that
    // were good keep working, on both workers: each connection lands on
    // either, and both had adopted the rotated set.
    std::thread::sleep(Duration::from_millis(500));
    envoy.withdraw(JWKS).unwrap();
    std::thread::sleep(Duration::from_millis(1100));
    let third = SigningKey::generate("ES256", "partner-idp-3").unwrap();
    let response = report(&envoy, &partner_token(&third));
    assert_eq!(response.status, 401);
    assert_eq!(reason(&response), json!("key_unknown"));
    for _ in 0..6 {
        assert_eq!(report(&envoy, &old_token).status, 200);
        assert_eq!(report(&envoy, &new_token).status, 200);
    }
    assert!(
        envoy
            .log()
            .contains("issuer `partner-idp`: key fetch failed, keeping current keys: status `404`"),
        "{}",
        envoy.log()
    );

    // A bad key set never replaces a good one.
    envoy
        .serve(JWKS, "{\"keys\": [{\"kty\": \"EC\", \"crv\": \"P-256\"}]}")
        .unwrap();
    std::thread::sleep(Duration::from_millis(1100));
    let response = report(&envoy, &partner_token(&third));
    assert_eq!(reason(&response), json!("key_unknown"));
    assert_eq!(report(&envoy, &new_token).status, 200);
}

#[test]
fn no_keys_at_all_is_503_not_401() {
    let demo = demo();
    let config = warden_policy::plugin_config(&demo.policy).unwrap();
    let envoy = Envoy::start_serving(&config, &warden_wasm(), &[]).unwrap();
    let token = partner_token(&demo.issuer_keys["partner-idp"]);

    let response = report(&envoy, &token);
    assert_eq!(
        response.status,
        503,
        "{}",
        String::from_utf8_lossy(&response.body)
    );
    assert_eq!(reason(&response), json!("keys_unavailable"));
    assert_eq!(response.header("www-authenticate"), None);

    // Tokens of issuers with inline keys are unaffected.
    let ledger = format!("Bearer {}", demo.tokens["ledger-sync"]);
    let ok = envoy
        .request(
            "GET",
            "/ledger/1",
            &[("host", BOOKS), ("authorization", &ledger)],
        )
        .unwrap();
    assert_eq!(ok.status, 200);

    // Once the key server has keys, the next fetch (after the backoff)
    // lets the same token through.
    envoy
        .serve(JWKS, &jwks(&[&demo.issuer_keys["partner-idp"]]))
        .unwrap();
    let response = eventually(&envoy, &token, 200);
    assert_eq!(
        response.status,
        200,
        "{}",
        String::from_utf8_lossy(&response.body)
    );
}

#[test]
fn keys_are_renewed_in_the_background_before_they_go_stale() {
    let mut template = demo::template().unwrap();
    template["issuers"][1]["jwks_fetch"]["refresh_secs"] = json!(10);
    let demo = demo::generate(&template, unix_now()).unwrap();
    let envoy = Envoy::start_demo(&demo, 1).unwrap();
    let installed = || {
        envoy
            .log()
            .matches("issuer `partner-idp`: installed 1 fetched keys")
            .count()
    };

    // The first fetch happens at start, with no request asking for it; the
    // renewal at three quarters of refresh_secs, again unasked.
    let deadline = Instant::now() + Duration::from_secs(3);
    while installed() < 1 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(installed(), 1, "{}", envoy.log());
    std::thread::sleep(Duration::from_millis(8500));
    assert_eq!(installed(), 2, "{}", envoy.log());
}
