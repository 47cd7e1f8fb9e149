//! CWTs and COSE messages from the cose-wg examples: RFC 8392 A.3 (signed)
//! and A.4 (MACed) with an injected clock, and every `sign1-tests` case.

use serde_json::{Value, json};
use warden::verify::base64url::encode;
use warden::verify::cwt::verify_cose;
use warden::verify::jwk::KeySet;
use warden::verify::{Algorithm, IssuerSpec, Issuers, TokenError, VerifiedToken};

fn hex(text: &str) -> Vec<u8> {
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).unwrap())
        .collect()
}

fn example(path: &str) -> Value {
    let text = std::fs::read_to_string(format!(
        "{}/tests/vectors/cose-wg/{path}",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap();
    serde_json::from_str(&text).unwrap()
}

/// The RFC 8392 A.1 claims: `exp` 1444064944, `nbf` and `iat` 1443944944.
const ISSUED: u64 = 1_443_944_944;
const EXPIRES: u64 = 1_444_064_944;

fn issuers(algorithm: &str, jwk: Value) -> Issuers {
    let spec: IssuerSpec = serde_json::from_value(json!({
        "name": "coap-as",
        "issuer": "coap://as.example.com",
        "audiences": ["coap://light.example.com"],
        "algorithms": [algorithm],
        "jwks": {"keys": [jwk]},
    }))
    .unwrap();
    Issuers::compile(&[spec]).unwrap()
}

fn verified(algorithm: Algorithm) -> VerifiedToken {
    VerifiedToken {
        issuer: "coap-as".into(),
        subject: "erikw".into(),
        expires_at: Some(EXPIRES),
        audience: "coap://light.example.com".into(),
        algorithm,
        key_id: None,
        certificate_thumbprint: None,
    }
}

#[test]
fn rfc8392_a3_signed_cwt_follows_the_injected_clock() {
    let file = example("CWT/A_3.json");
    let key = &file["input"]["sign0"]["key"];
    let jwk = json!({
        "kty": "EC", "crv": "P-256",
        "x": encode(&hex(key["x_hex"].as_str().unwrap())),
        "y": encode(&hex(key["y_hex"].as_str().unwrap())),
    });
    let issuers = issuers("ES256", jwk);
    let cwt = hex(file["output"]["cbor"].as_str().unwrap());

    assert_eq!(
        issuers.verify_cwt(&cwt, ISSUED - 61),
        Err(TokenError::NotYetValid)
    );
    assert_follows_clock(&issuers, &cwt, Algorithm::Es256);
}

#[test]
fn rfc8392_a4_maced_cwt_follows_the_injected_clock() {
    let file = example("CWT/A_4.json");
    let key = &file["input"]["mac0"]["recipients"][0]["key"];
    // The example marks the key `use: enc` as a COSE recipient key; as an
    // issuer's MAC key it is declared without `use`.
    let jwk = json!({"kty": "oct", "k": encode(&hex(key["k_hex"].as_str().unwrap()))});
    let issuers = issuers("HMAC 256/64", jwk);
    let cwt = hex(file["output"]["cbor"].as_str().unwrap());

    assert_follows_clock(&issuers, &cwt, Algorithm::Hs256Trunc64);
}

/// The token verifies inside its validity window, is expired after it,
/// and fails its signature or MAC check with its last byte flipped.
fn assert_follows_clock(issuers: &Issuers, cwt: &[u8], algorithm: Algorithm) {
    assert_eq!(
        issuers.verify_cwt(cwt, ISSUED + 10),
        Ok(verified(algorithm))
    );
    assert_eq!(
        issuers.verify_cwt(cwt, EXPIRES + 60),
        Err(TokenError::Expired)
    );
    let mut tampered = cwt.to_vec();
    let last = tampered.len() - 1;
    tampered[last] ^= 1;
    assert_eq!(
        issuers.verify_cwt(&tampered, ISSUED + 10),
        Err(TokenError::SignatureInvalid)
    );
}

#[test]
fn the_truncated_mac_must_be_allowed_by_name() {
    let file = example("CWT/A_4.json");
    let key = &file["input"]["mac0"]["recipients"][0]["key"];
    let jwk = json!({"kty": "oct", "k": encode(&hex(key["k_hex"].as_str().unwrap()))});
    let issuers = issuers("HS256", jwk);
    let cwt = hex(file["output"]["cbor"].as_str().unwrap());
    assert_eq!(
        issuers.verify_cwt(&cwt, ISSUED + 10),
        Err(TokenError::AlgorithmNotAllowed)
    );
}

/// Cases whose label this verifier deliberately overrides, and why.
const SIGN1_DEVIATIONS: [(&str, &str); 2] = [
    (
        "sign-pass-01.json",
        "`alg` only in the unprotected header: read from the protected one only",
    ),
    (
        "sign-pass-03.json",
        "untagged message: only the COSE tag tells a signature from a MAC",
    ),
];

#[test]
fn every_sign1_case_is_accounted_for() {
    let dir = format!(
        "{}/tests/vectors/cose-wg/sign1-tests",
        env!("CARGO_MANIFEST_DIR")
    );
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|entry| entry.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert_eq!(names.len(), 9);

    let mut outcomes = Vec::new();
    for name in &names {
        let case = example(&format!("sign1-tests/{name}"));
        let sign0 = &case["input"]["sign0"];
        let mut jwk = sign0["key"].clone();
        jwk.as_object_mut().unwrap().remove("d");
        let keys = KeySet::from_jwks(&json!({"keys": [jwk]}), &[]).unwrap();
        let aad = hex(sign0["external"].as_str().unwrap_or(""));
        let message = hex(case["output"]["cbor"].as_str().unwrap());

        let outcome = verify_cose(&message, &keys, &[Algorithm::Es256], &aad)
            .map(|payload| String::from_utf8(payload).unwrap());
        let labelled_pass = !case["fail"].as_bool().unwrap_or(false);
        let deviates = SIGN1_DEVIATIONS.iter().any(|(file, _)| file == name);
        assert_eq!(
            outcome.is_ok(),
            labelled_pass != deviates,
            "{name}: {outcome:?}"
        );
        outcomes.push((name.as_str(), outcome));
    }

    let content = || Ok("This is the content.".to_owned());
    assert_eq!(
        outcomes,
        [
            (
                "sign-fail-01.json",
                Err(TokenError::Malformed("not a COSE_Sign1 or COSE_Mac0 tag"))
            ),
            ("sign-fail-02.json", Err(TokenError::SignatureInvalid)),
            ("sign-fail-03.json", Err(TokenError::AlgorithmNotAllowed)),
            ("sign-fail-04.json", Err(TokenError::AlgorithmNotAllowed)),
            ("sign-fail-06.json", Err(TokenError::SignatureInvalid)),
            ("sign-fail-07.json", Err(TokenError::SignatureInvalid)),
            (
                "sign-pass-01.json",
                Err(TokenError::HeaderMalformed(
                    "`alg` outside the protected header"
                ))
            ),
            ("sign-pass-02.json", content()),
            (
                "sign-pass-03.json",
                Err(TokenError::Malformed("untagged COSE message"))
            ),
        ]
    );
}
