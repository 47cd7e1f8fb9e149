//! Warden in a real Envoy 1.40: the compiled `warden.wasm`, the shipped
//! example configuration and the demo policy with freshly generated keys.
//!
//! Every case asserts the exact status, reason code, challenge, what the
//! upstream received, and the decision record Envoy logged.

use serde_json::{Value, json};
use warden_host_test::envoy::{Envoy, Response, warden_wasm};
use warden_policy::demo::{self, Demo, unix_now};

const BOOKS: &str = "books.demo.test";
const PEOPLE: &str = "people.demo.test";

fn start() -> (Envoy, Demo) {
    let demo = demo::generate(&demo::template().unwrap(), unix_now()).unwrap();
    (Envoy::start_demo(&demo, 2).unwrap(), demo)
}

fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

/// The request id Envoy gave the request: from the local reply's body, or
/// from what the echo upstream received.
fn request_id(response: &Response) -> String {
    let body = response.json();
    if let Some(id) = body.get("request_id").and_then(Value::as_str) {
        return id.to_owned();
    }
    response
        .upstream_header("x-request-id")
        .into_iter()
        .next()
        .unwrap()
}

/// The record for a response, with the fields that vary per run removed.
fn record(envoy: &Envoy, response: &Response) -> Value {
    let id = request_id(response);
    let mut record = envoy.record_for(&id).unwrap_or_else(|| {
        panic!(
            "no decision record for request `{id}`; envoy log:\n{}",
            envoy.log()
        )
    });
    let object = record.as_object_mut().unwrap();
    assert!(
        object
            .remove("ts")
            .unwrap()
            .as_str()
            .unwrap()
            .ends_with('Z')
    );
    assert!(
        object
            .remove("source")
            .unwrap()
            .as_str()
            .unwrap()
            .starts_with("127.0.0.1:")
    );
    assert_eq!(object.remove("request_id").unwrap(), json!(id));
    assert_eq!(
        object.remove("policy_revision").unwrap(),
        json!("demo-2026-12-03")
    );
    object.remove("detail");
    record
}

fn assert_denied(response: &Response, status: u16, reason: &str, challenge: Option<&str>) {
    assert_eq!(
        response.status,
        status,
        "body: {}",
        String::from_utf8_lossy(&response.body)
    );
    assert_eq!(response.json()["reason"], json!(reason));
    assert_eq!(response.json()["status"], json!(status));
    assert_eq!(response.header("www-authenticate"), challenge);
    assert_eq!(response.header("content-type"), Some("application/json"));
}

fn expected_record(
    identity: Option<&str>,
    credential: Option<&str>,
    (method, host, path): (&str, &str, &str),
    (status, reason): (u16, &str),
    permit: Option<(&str, &str)>,
) -> Value {
    json!({
        "identity": identity,
        "credential": credential,
        "method": method,
        "host": host,
        "path": path,
        "decision": if status == 200 { "allow" } else { "deny" },
        "status": status,
        "reason": reason,
        "group": permit.map(|p| p.0),
        "grant": permit.map(|p| p.1),
    })
}

#[test]
fn tokens_are_verified_and_identities_resolved() {
    let (envoy, demo) = start();
    let token = |name: &str| bearer(&demo.tokens[name]);

    // A permitted call: the identity goes upstream, the token does not.
    let ledger = token("ledger-sync");
    let ok = envoy
        .request(
            "GET",
            "/ledger/2026/12?page=2",
            &[("host", BOOKS), ("authorization", &ledger)],
        )
        .unwrap();
    assert_eq!(ok.status, 200, "{}", String::from_utf8_lossy(&ok.body));
    assert_eq!(ok.upstream_header("x-warden-identity"), ["ledger-sync"]);
    assert_eq!(ok.upstream_header("x-warden-groups"), ["finance"]);
    assert_eq!(ok.upstream_header("x-warden-credential"), ["jwt"]);
    assert_eq!(ok.upstream_header("authorization"), Vec::<String>::new());
    assert_eq!(
        record(&envoy, &ok),
        expected_record(
            Some("ledger-sync"),
            Some("jwt"),
            ("GET", BOOKS, "/ledger/2026/12"),
            (200, "granted"),
            Some(("finance", "bookkeeping"))
        )
    );

    let raw = &demo.tokens["ledger-sync"];
    assert!(
        !envoy.log().contains(raw.as_str()),
        "the token appears in envoy's log"
    );
    let signature = raw.rsplit('.').next().unwrap();
    assert!(
        !envoy.log().contains(signature),
        "the token's signature appears in envoy's log"
    );

    // ES256 from the partner issuer.
    let auditor = token("auditor-reports");
    let ok = envoy
        .request(
            "GET",
            "/reports/2026-11",
            &[("host", BOOKS), ("authorization", &auditor)],
        )
        .unwrap();
    assert_eq!(ok.status, 200);
    assert_eq!(ok.upstream_header("x-warden-identity"), ["auditor-reports"]);

    // Known identity, wrong group: finance may not read employee records.
    let wrong = envoy
        .request(
            "GET",
            "/employees/17",
            &[("host", PEOPLE), ("authorization", &ledger)],
        )
        .unwrap();
    assert_denied(&wrong, 403, "not_granted", None);
    assert_eq!(
        record(&envoy, &wrong),
        expected_record(
            Some("ledger-sync"),
            Some("jwt"),
            ("GET", PEOPLE, "/employees/17"),
            (403, "not_granted"),
            None
        )
    );

    // HR may, with its own token.
    let payroll = token("payroll-export");
    let hr = envoy
        .request(
            "PUT",
            "/employees/17/address",
            &[("host", PEOPLE), ("authorization", &payroll)],
        )
        .unwrap();
    assert_eq!(hr.status, 200);

    // A retired identity keeps its account but is refused.
    let legacy = token("legacy-payroll");
    let retired = envoy
        .request(
            "GET",
            "/employees/17",
            &[("host", PEOPLE), ("authorization", &legacy)],
        )
        .unwrap();
    assert_denied(&retired, 403, "identity_retired", None);
    assert_eq!(
        record(&envoy, &retired),
        expected_record(
            Some("legacy-payroll"),
            Some("jwt"),
            ("GET", PEOPLE, "/employees/17"),
            (403, "identity_retired"),
            None
        )
    );
}

#[test]
fn bad_or_missing_tokens_get_401_with_a_challenge() {
    let (envoy, demo) = start();
    let invalid = Some("Bearer realm=\"warden\", error=\"invalid_token\"");
    let cases = [
        ("expired", "token_expired"),
        ("tampered", "signature_invalid"),
        ("wrong-issuer", "issuer_unknown"),
    ];
    for (name, reason) in cases {
        let auth = bearer(&demo.tokens[name]);
        let response = envoy
            .request(
                "GET",
                "/ledger/1",
                &[("host", BOOKS), ("authorization", &auth)],
            )
            .unwrap();
        assert_denied(&response, 401, reason, invalid);
        assert_eq!(
            record(&envoy, &response),
            expected_record(
                None,
                Some("jwt"),
                ("GET", BOOKS, "/ledger/1"),
                (401, reason),
                None
            ),
            "{name}"
        );
    }

    let missing = envoy
        .request("GET", "/ledger/1", &[("host", BOOKS)])
        .unwrap();
    assert_denied(
        &missing,
        401,
        "credential_missing",
        Some("Bearer realm=\"warden\""),
    );
    assert_eq!(
        record(&envoy, &missing),
        expected_record(
            None,
            None,
            ("GET", BOOKS, "/ledger/1"),
            (401, "credential_missing"),
            None
        )
    );

    let basic = envoy
        .request(
            "GET",
            "/ledger/1",
            &[("host", BOOKS), ("authorization", "Basic bGVkZ2VyOnB3")],
        )
        .unwrap();
    assert_denied(
        &basic,
        401,
        "credential_malformed",
        Some("Bearer realm=\"warden\""),
    );
}

#[test]
fn api_keys_work_and_are_never_forwarded() {
    let (envoy, demo) = start();
    let key = demo.api_keys["invoice-bot"].as_str();

    let ok = envoy
        .request(
            "POST",
            "/invoices/INV-88",
            &[("host", BOOKS), ("x-api-key", key)],
        )
        .unwrap();
    assert_eq!(ok.status, 200, "{}", String::from_utf8_lossy(&ok.body));
    assert_eq!(ok.upstream_header("x-warden-identity"), ["invoice-bot"]);
    assert_eq!(ok.upstream_header("x-warden-credential"), ["api_key"]);
    assert_eq!(ok.upstream_header("x-api-key"), Vec::<String>::new());
    assert_eq!(
        record(&envoy, &ok),
        expected_record(
            Some("invoice-bot"),
            Some("api_key"),
            ("POST", BOOKS, "/invoices/INV-88"),
            (200, "granted"),
            Some(("finance", "bookkeeping"))
        )
    );
    assert!(
        !envoy.log().contains(key),
        "the api key appears in envoy's log"
    );

    let wrong = format!("{}x", &key[..key.len() - 1]);
    let response = envoy
        .request(
            "GET",
            "/ledger/1",
            &[("host", BOOKS), ("x-api-key", &wrong)],
        )
        .unwrap();
    assert_denied(
        &response,
        401,
        "api_key_invalid",
        Some("ApiKey realm=\"warden\""),
    );

    let unknown = envoy
        .request(
            "GET",
            "/ledger/1",
            &[
                ("host", BOOKS),
                ("x-api-key", "nobody01.aaaaaaaaaaaaaaaaaaaaaaaa"),
            ],
        )
        .unwrap();
    assert_denied(
        &unknown,
        401,
        "api_key_unknown",
        Some("ApiKey realm=\"warden\""),
    );

    let scraper = demo.api_keys["stats-scraper"].as_str();
    let suspended = envoy
        .request(
            "GET",
            "/reports/1",
            &[("host", BOOKS), ("x-api-key", scraper)],
        )
        .unwrap();
    assert_denied(&suspended, 403, "identity_suspended", None);
    assert_eq!(
        record(&envoy, &suspended),
        expected_record(
            Some("stats-scraper"),
            Some("api_key"),
            ("GET", BOOKS, "/reports/1"),
            (403, "identity_suspended"),
            None
        )
    );

    let both = bearer(&demo.tokens["ledger-sync"]);
    let ambiguous = envoy
        .request(
            "GET",
            "/ledger/1",
            &[
                ("host", BOOKS),
                ("x-api-key", key),
                ("authorization", &both),
            ],
        )
        .unwrap();
    assert_denied(
        &ambiguous,
        401,
        "credential_ambiguous",
        Some("Bearer realm=\"warden\""),
    );
}

#[test]
fn spoofed_identity_headers_never_reach_the_upstream() {
    let (envoy, demo) = start();
    let key = demo.api_keys["invoice-bot"].as_str();
    let spoofed = [
        ("host", BOOKS),
        ("x-api-key", key),
        ("x-warden-identity", "payroll-export"),
        ("X-Warden-Groups", "hr,admin"),
        ("x-warden-anything", "1"),
    ];
    let ok = envoy.request("GET", "/ledger/1", &spoofed).unwrap();
    assert_eq!(ok.status, 200);
    assert_eq!(ok.upstream_header("x-warden-identity"), ["invoice-bot"]);
    assert_eq!(ok.upstream_header("x-warden-groups"), ["finance"]);
    assert_eq!(
        ok.upstream_header("x-warden-anything"),
        Vec::<String>::new()
    );

    // Header values that are not UTF-8 are refused, never a crash.
    let mut raw =
        b"GET /ledger/1 HTTP/1.1\r\nhost: books.demo.test\r\nconnection: close\r\n".to_vec();
    raw.extend_from_slice(b"x-api-key: \xff\xfe\r\n\r\n");
    let response = envoy.request_raw(&raw).unwrap();
    assert_denied(
        &response,
        401,
        "api_key_malformed",
        Some("ApiKey realm=\"warden\""),
    );

    // The filter still answers afterwards.
    let again = envoy
        .request("GET", "/ledger/1", &[("host", BOOKS), ("x-api-key", key)])
        .unwrap();
    assert_eq!(again.status, 200);
}

#[test]
fn envoy_refuses_a_policy_that_does_not_compile() {
    let mut policy = demo::generate(&demo::template().unwrap(), unix_now())
        .unwrap()
        .policy;
    let copy = policy["identities"][0].clone();
    let duplicate = policy["identities"].as_array().unwrap().len();
    policy["identities"].as_array_mut().unwrap().push(copy);
    let config = json!({ "policy": policy }).to_string();

    let error = Envoy::start(&config, &warden_wasm())
        .unwrap_err()
        .to_string();
    assert!(error.starts_with("envoy exited"), "{error}");
    assert!(
        error.contains(&format!(
            "configuration refused: configuration: policy: identities[{duplicate}] \
             `ledger-sync`: duplicate identity id"
        )),
        "{error}"
    );
}
