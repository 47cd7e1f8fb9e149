//! `warden.wasm` in the harness, through the flows Warden uses every host
//! facility for: a cold start that fetches an issuer's keys on the root
//! context's timer while the first request waits, the answer when the key
//! server is down, and a token checked against the controllable clock.

use serde_json::json;
use warden_host_test::{CalloutAnswer, Engine, Plugin, Request, testing};
use warden_policy::demo::{self, Demo, claims, unix_now};
use warden_policy::keys::SigningKey;
use warden_policy::mint::mint;

const BOOKS: &str = "books.demo.test";
const PARTNER: &str = "https://login.partner.demo.test";
const AUDIENCE: &str = "https://api.demo.test";

fn demo() -> Demo {
    demo::generate(&demo::template().unwrap(), unix_now()).unwrap()
}

fn plugin(demo: &Demo) -> Plugin {
    let config = warden_policy::plugin_config(&demo.policy).unwrap();
    let filter = Engine::new()
        .unwrap()
        .load_file(testing::warden_wasm())
        .unwrap();
    filter
        .plugin()
        .name("warden")
        .root_id("warden")
        .vm_id("warden")
        .start_time_ns(unix_now() * 1_000_000_000)
        .configuration(config)
        .start()
        .unwrap()
}

fn jwks(keys: &[&SigningKey]) -> Vec<u8> {
    json!({ "keys": keys.iter().map(|k| k.public_jwk()).collect::<Vec<_>>() })
        .to_string()
        .into_bytes()
}

fn report(token: &str) -> Request {
    Request::get("/reports/2026-11")
        .authority(BOOKS)
        .header("authorization", &format!("Bearer {token}"))
}

fn reason(body: &str) -> serde_json::Value {
    serde_json::from_str::<serde_json::Value>(body).unwrap_or_default()["reason"].clone()
}

#[test]
fn the_first_request_waits_for_the_key_fetch_and_passes() {
    let demo = demo();
    let key = &demo.issuer_keys["partner-idp"];
    let mut plugin = plugin(&demo);
    plugin.upstream_after(
        "jwks",
        CalloutAnswer::Respond {
            status: 200,
            headers: vec![],
            body: jwks(&[key]),
            trailers: vec![],
        },
        40,
    );
    let token = mint(key, &claims(PARTNER, "auditor-7", AUDIENCE, unix_now()));
    let exchange = plugin.send(report(&token)).unwrap();
    exchange
        .assert_status(200)
        .assert_upstream_header("x-warden-identity", Some("auditor-reports"))
        .assert_upstream_header("authorization", None);
    let callouts = plugin.world().callouts();
    assert_eq!(callouts.len(), 1, "{callouts:?}");
    assert_eq!(callouts[0].cluster, "jwks");
    let path = callouts[0]
        .headers
        .iter()
        .find(|(k, _)| k == ":path")
        .map(|(_, v)| v.as_str());
    assert_eq!(path, Some("/partner-idp.json"));
    // The second request finds the keys installed: no new callout.
    plugin.send(report(&token)).unwrap().assert_status(200);
    assert_eq!(plugin.world().callouts().len(), 1);
}

#[test]
fn a_key_server_that_is_down_leaves_the_request_unverifiable() {
    let demo = demo();
    let key = &demo.issuer_keys["partner-idp"];
    let mut plugin = plugin(&demo);
    plugin.upstream("jwks", CalloutAnswer::Fail);
    let token = mint(key, &claims(PARTNER, "auditor-7", AUDIENCE, unix_now()));
    let exchange = plugin.send(report(&token)).unwrap();
    exchange.assert_status(503).assert_forwarded(false);
    assert_eq!(
        reason(&exchange.outcome.body),
        json!("keys_unavailable"),
        "{exchange}"
    );
}

#[test]
fn a_token_expires_as_the_clock_moves() {
    let demo = demo();
    let mut plugin = plugin(&demo);
    let token = demo.tokens["ledger-sync"].clone();
    let ledger = || {
        Request::get("/ledger/2026")
            .authority(BOOKS)
            .header("authorization", &format!("Bearer {token}"))
    };
    plugin.send(ledger()).unwrap().assert_status(200);
    plugin.advance(366 * 24 * 3600 * 1000);
    let exchange = plugin.send(ledger()).unwrap();
    exchange.assert_status(401);
    assert_eq!(
        reason(&exchange.outcome.body),
        json!("token_expired"),
        "{exchange}"
    );
}
