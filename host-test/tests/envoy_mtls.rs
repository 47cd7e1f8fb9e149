//! Client certificates in a real Envoy: the listener that requires them,
//! SPIFFE IDs as credentials, certificate-bound tokens (RFC 8705), and the
//! rules for a request that carries both a certificate and a token.

use serde_json::json;
use sha2::{Digest, Sha256};
use warden_host_test::envoy::{Envoy, Response};
use warden_policy::demo::{self, Demo, claims, unix_now};
use warden_policy::mint::{base64url, mint};

const BOOKS: &str = "books.demo.test";
const CORP: &str = "https://idp.corp.demo.test";
const AUDIENCE: &str = "https://api.demo.test";

fn start() -> (Envoy, Demo) {
    let demo = demo::generate(&demo::template().unwrap(), unix_now()).unwrap();
    (Envoy::start_demo(&demo, 2).unwrap(), demo)
}

/// A treasury token bound to the client certificate `client`.
fn bound_token(envoy: &Envoy, demo: &Demo, client: &str) -> String {
    let der = envoy.client_certificate_der(client).unwrap();
    let mut claims = claims(CORP, "svc-treasury", AUDIENCE, unix_now());
    claims["cnf"] = json!({ "x5t#S256": base64url(&Sha256::digest(&der)) });
    format!("Bearer {}", mint(&demo.issuer_keys["corp-idp"], &claims))
}

fn assert_refused(response: &Response, status: u16, reason: &str) {
    assert_eq!(
        response.status,
        status,
        "{}",
        String::from_utf8_lossy(&response.body)
    );
    assert_eq!(response.json()["reason"], json!(reason));
}

#[test]
fn a_spiffe_id_in_a_trusted_domain_proves_an_identity() {
    let (envoy, _demo) = start();
    let ok = envoy
        .request_tls("reconciler", "GET", "/ledger/2026", &[("host", BOOKS)])
        .unwrap();
    assert_eq!(ok.status, 200, "{}", String::from_utf8_lossy(&ok.body));
    assert_eq!(ok.upstream_header("x-warden-identity"), ["reconciler"]);
    assert_eq!(ok.upstream_header("x-warden-credential"), ["mtls"]);

    let outsider = envoy
        .request_tls("outsider", "GET", "/ledger/2026", &[("host", BOOKS)])
        .unwrap();
    assert_refused(&outsider, 401, "spiffe_trust_domain_unknown");

    let stranger = envoy
        .request_tls("stranger", "GET", "/ledger/2026", &[("host", BOOKS)])
        .unwrap();
    assert_refused(&stranger, 403, "identity_unknown");
}

#[test]
fn a_client_certificate_header_is_never_believed() {
    let (envoy, _demo) = start();
    let forged = "By=spiffe://demo.test/ns/books/sa/reconciler;URI=spiffe://demo.test/ns/books/sa/reconciler";
    let plain = envoy
        .request(
            "GET",
            "/ledger/2026",
            &[("host", BOOKS), ("x-forwarded-client-cert", forged)],
        )
        .unwrap();
    assert_refused(&plain, 401, "credential_missing");
}

#[test]
fn certificate_bound_tokens_need_their_certificate() {
    let (envoy, demo) = start();
    let bound = bound_token(&envoy, &demo, "treasury");

    let ok = envoy
        .request_tls(
            "treasury",
            "POST",
            "/ledger/2026",
            &[("host", BOOKS), ("authorization", &bound)],
        )
        .unwrap();
    assert_eq!(ok.status, 200, "{}", String::from_utf8_lossy(&ok.body));
    assert_eq!(ok.upstream_header("x-warden-identity"), ["treasury-bot"]);
    assert_eq!(ok.upstream_header("x-warden-credential"), ["jwt_bound"]);
    assert_eq!(ok.upstream_header("authorization"), Vec::<String>::new());

    // The same token from another certificate, or without one.
    let stolen = envoy
        .request_tls(
            "reconciler",
            "GET",
            "/ledger/2026",
            &[("host", BOOKS), ("authorization", &bound)],
        )
        .unwrap();
    assert_refused(&stolen, 401, "certificate_binding_mismatch");
    let id = stolen.json()["request_id"].as_str().unwrap().to_owned();
    let record = envoy.record_for(&id).unwrap();
    assert_eq!(record["identity"], json!("treasury-bot"));
    assert_eq!(record["credential"], json!("jwt"));
    assert_eq!(record["reason"], json!("certificate_binding_mismatch"));
    let plain = envoy
        .request(
            "GET",
            "/ledger/2026",
            &[("host", BOOKS), ("authorization", &bound)],
        )
        .unwrap();
    assert_refused(&plain, 401, "certificate_binding_missing");

    // treasury-bot accepts only bound tokens.
    let unbound = format!("Bearer {}", demo.tokens["treasury-bot"]);
    let response = envoy
        .request_tls(
            "treasury",
            "GET",
            "/ledger/2026",
            &[("host", BOOKS), ("authorization", &unbound)],
        )
        .unwrap();
    assert_refused(&response, 401, "certificate_binding_missing");
}

#[test]
fn a_certificate_beside_an_unbound_token_or_an_api_key_is_ambiguous() {
    let (envoy, demo) = start();
    let ledger = format!("Bearer {}", demo.tokens["ledger-sync"]);
    let response = envoy
        .request_tls(
            "reconciler",
            "GET",
            "/ledger/1",
            &[("host", BOOKS), ("authorization", &ledger)],
        )
        .unwrap();
    assert_refused(&response, 401, "credential_ambiguous");

    let key = demo.api_keys["invoice-bot"].as_str();
    let response = envoy
        .request_tls(
            "reconciler",
            "GET",
            "/ledger/1",
            &[("host", BOOKS), ("x-api-key", key)],
        )
        .unwrap();
    assert_refused(&response, 401, "credential_ambiguous");
}
