//! CBOR Web Tokens in a real Envoy: a CWT in base64url as a bearer token,
//! checked against the same issuer, keys and claim rules as a JWT.

use serde_json::json;
use warden_host_test::envoy::Envoy;
use warden_policy::demo::{self, unix_now};
use warden_policy::mint::mint_cwt;

const BOOKS: &str = "books.demo.test";
const PARTNER: &str = "https://login.partner.demo.test";
const AUDIENCE: &str = "https://api.demo.test";

#[test]
fn a_signed_cwt_proves_its_subject_and_a_changed_one_does_not() {
    let demo = demo::generate(&demo::template().unwrap(), unix_now()).unwrap();
    let envoy = Envoy::start_demo(&demo, 2).unwrap();
    let key = &demo.issuer_keys["partner-idp"];
    let report = |token: &str| {
        let auth = format!("Bearer {token}");
        envoy
            .request(
                "GET",
                "/reports/2026-11",
                &[("host", BOOKS), ("authorization", &auth)],
            )
            .unwrap()
    };

    let cwt = mint_cwt(
        key,
        PARTNER,
        "auditor-7",
        AUDIENCE,
        unix_now(),
        unix_now() + 600,
    );
    let ok = report(&cwt);
    assert_eq!(ok.status, 200, "{}", String::from_utf8_lossy(&ok.body));
    assert_eq!(ok.upstream_header("x-warden-identity"), ["auditor-reports"]);
    assert_eq!(ok.upstream_header("x-warden-credential"), ["cwt"]);

    let expired = mint_cwt(
        key,
        PARTNER,
        "auditor-7",
        AUDIENCE,
        unix_now() - 7200,
        unix_now() - 3600,
    );
    assert_eq!(report(&expired).json()["reason"], json!("token_expired"));

    // The same signature over another subject's claims.
    let other = mint_cwt(
        key,
        PARTNER,
        "auditor-8",
        AUDIENCE,
        unix_now(),
        unix_now() + 600,
    );
    let (signed, forged) = (ok_bytes(&cwt), ok_bytes(&other));
    let spliced = splice_signature(&forged, &signed);
    let response = report(&spliced);
    assert_eq!(response.status, 401);
    assert_eq!(response.json()["reason"], json!("signature_invalid"));

    let garbage = report("not*base64url");
    assert_eq!(garbage.json()["reason"], json!("token_encoding_invalid"));
}

fn ok_bytes(token: &str) -> Vec<u8> {
    warden::verify::base64url::decode(token.as_bytes()).unwrap()
}

/// `forged` with its last 64 bytes (the ES256 signature) taken from
/// `signed`.
fn splice_signature(forged: &[u8], signed: &[u8]) -> String {
    let mut bytes = forged.to_vec();
    let n = bytes.len();
    bytes[n - 64..].copy_from_slice(&signed[signed.len() - 64..]);
    warden_policy::mint::base64url(&bytes)
}
