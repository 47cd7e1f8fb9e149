//! Every case of the Wycheproof JWS and JWK files, run through the signature
//! layer (`verify_signature`) and the key set loader.
//!
//! Wycheproof payloads are mostly not JSON claims (`Zm9v` is "foo"), so these
//! cases exercise the steps up to and including the signature; claims are
//! covered by `token_jwt.rs`.
//!
//! Every case is accounted for: its label decides the expected outcome,
//! except for the cases in the deviation lists below, each with the reason.

use serde_json::{Value, json};
use std::collections::BTreeMap;
use warden::verify::Algorithm;
use warden::verify::jwk::KeySet;
use warden::verify::jwt::verify_signature;

const JWS: &str = include_str!("vectors/wycheproof/json_web_signature_test.json");
const JWK: &str = include_str!("vectors/wycheproof/json_web_key_test.json");

/// JWS cases labelled `valid` that this verifier refuses, and why.
const JWS_REFUSED_VALID: [(u64, &str); 6] = [
    (346, "key pinned to PS256 by its `alg`, token signed PS384"),
    (350, "key pinned to PS256 by its `alg`, token signed PS384"),
    (
        347,
        "`ES521` is not a JWA algorithm and P-521 is not supported",
    ),
    (
        351,
        "`ES521` is not a JWA algorithm and P-521 is not supported",
    ),
    (372, "contains `?`, outside the base64url alphabet"),
    (373, "contains `?`, outside the base64url alphabet"),
];

/// JWS cases labelled `invalid` that this verifier accepts, and why.
const JWS_ACCEPTED_INVALID: [(u64, &str); 2] = [
    (
        367,
        "byte-identical to the valid tc357: the malformation was lost upstream",
    ),
    (
        370,
        "byte-identical to the valid tc357: the malformation was lost upstream",
    ),
];

/// The outcome of one case: accepted, or refused with a reason code.
fn outcome(keys: &Result<KeySet, String>, jws: &str) -> Result<(), String> {
    let keys = keys.as_ref().map_err(|e| format!("key set refused: {e}"))?;
    verify_signature(jws, keys, &Algorithm::ALL)
        .map(|_| ())
        .map_err(|e| e.reason().to_owned())
}

fn load(keys: Value) -> Result<KeySet, String> {
    let hs = [Algorithm::Hs256, Algorithm::Hs384, Algorithm::Hs512];
    KeySet::from_jwks(&keys, &hs).map_err(|e| e.to_string())
}

/// One case: its id, whether it is labelled valid, and what the verifier did.
type CaseResult = (u64, bool, Result<(), String>);

/// Runs one file; returns the declared case count and each case's result.
fn run(text: &str, single_key: bool) -> (u64, Vec<CaseResult>) {
    let file: Value = serde_json::from_str(text).unwrap();
    let mut results = Vec::new();
    for group in file["testGroups"].as_array().unwrap() {
        let key = if group["public"].is_null() {
            &group["private"]
        } else {
            &group["public"]
        };
        let keys = if single_key {
            load(json!({"keys": [key]}))
        } else {
            load(key.clone())
        };
        for case in group["tests"].as_array().unwrap() {
            let id = case["tcId"].as_u64().unwrap();
            let valid = match case["result"].as_str().unwrap() {
                "valid" => true,
                "invalid" => false,
                other => panic!("tc{id}: unexpected result `{other}`"),
            };
            results.push((id, valid, outcome(&keys, case["jws"].as_str().unwrap())));
        }
    }
    (file["numberOfTests"].as_u64().unwrap(), results)
}

/// Checks each case against its label and the deviation lists, and that every
/// deviation is used.
fn account(
    results: &[CaseResult],
    refused_valid: &[(u64, &str)],
    accepted_invalid: &[(u64, &str)],
) {
    let refused_valid: BTreeMap<u64, &str> = refused_valid.iter().copied().collect();
    let accepted_invalid: BTreeMap<u64, &str> = accepted_invalid.iter().copied().collect();
    let mut wrong = Vec::new();
    for (id, valid, outcome) in results {
        let expect_accept = if *valid {
            !refused_valid.contains_key(id)
        } else {
            accepted_invalid.contains_key(id)
        };
        if outcome.is_ok() != expect_accept {
            wrong.push(format!("tc{id}: labelled valid={valid}, got {outcome:?}"));
        }
    }
    assert!(
        wrong.is_empty(),
        "{} cases disagree:\n{}",
        wrong.len(),
        wrong.join("\n")
    );

    for id in refused_valid.keys().chain(accepted_invalid.keys()) {
        assert!(
            results.iter().any(|(case, ..)| case == id),
            "deviation tc{id} is not in the file"
        );
    }
}

#[test]
fn every_wycheproof_jws_case_is_accounted_for() {
    let (declared, results) = run(JWS, true);
    assert_eq!(results.len() as u64, declared);
    assert_eq!(declared, 401);
    account(&results, &JWS_REFUSED_VALID, &JWS_ACCEPTED_INVALID);
}

/// How the JWS cases are refused, pinned so that a change in which guard step
/// catches them is a visible change.
#[test]
fn wycheproof_jws_refusals_by_reason() {
    let (_, results) = run(JWS, true);
    let mut counts: BTreeMap<String, usize> = BTreeMap::new();
    for (_, _, outcome) in &results {
        let reason = match outcome {
            Ok(()) => "accepted".to_owned(),
            Err(e) if e.starts_with("key set refused") => "key set refused".to_owned(),
            Err(e) => e.clone(),
        };
        *counts.entry(reason).or_default() += 1;
    }
    let expected: BTreeMap<String, usize> = [
        ("accepted", 42),
        ("key set refused", 2),
        ("key_algorithm_mismatch", 7),
        ("key_not_for_signing", 4),
        ("key_type_mismatch", 1),
        ("key_unknown", 3),
        ("signature_invalid", 285),
        ("signature_malformed", 11),
        ("token_encoding_invalid", 14),
        ("token_malformed", 32),
    ]
    .into_iter()
    .map(|(reason, count)| (reason.to_owned(), count))
    .collect();
    assert_eq!(counts, expected);
}

/// The JWK cases, each with the exact outcome: most are refused when the key
/// set is loaded, before any token is seen.
#[test]
fn every_wycheproof_jwk_case_is_accounted_for() {
    let (declared, results) = run(JWK, false);
    assert_eq!(results.len() as u64, declared);
    assert_eq!(declared, 26);
    account(&results, &[], &[]);

    let refused_at_load = |problem: &str| Err(format!("key set refused: {problem}"));
    let reason = |code: &str| Err(code.to_owned());
    let expected: Vec<(u64, Result<(), String>)> = vec![
        (
            1,
            refused_at_load("key set mixes shared secrets with public keys"),
        ),
        (2, Ok(())),
        (3, reason("signature_invalid")),
        // The second key's `k` is not canonical base64url, which the loader
        // catches before the repeated `kid` (tested on its own in
        // `token_attacks.rs`).
        (
            4,
            refused_at_load(
                "key `kid-aes-sign`: `k`: non-zero unused bits in the last base64url character",
            ),
        ),
        (5, Ok(())),
        (6, reason("key_not_for_signing")),
        (
            7,
            refused_at_load(
                "key `kid-rsa-roca-sign`: RSA modulus has the ROCA fingerprint (CVE-2017-15361)",
            ),
        ),
        (
            8,
            refused_at_load(
                "key `RS256_1024`: RSA modulus of 1024 bits is under the 2048-bit minimum",
            ),
        ),
        (
            9,
            refused_at_load(
                "key `RS256_2048`: RSA public key is invalid (modulus or exponent refused)",
            ),
        ),
        (
            10,
            refused_at_load(
                "key `short_hs256_key`: HMAC key of 31 bytes is under the 32-byte minimum for `HS256`",
            ),
        ),
        (
            11,
            refused_at_load(
                "key `short_hs384_key`: HMAC key of 47 bytes is under the 48-byte minimum for `HS384`",
            ),
        ),
        (
            12,
            refused_at_load(
                "key `short_hs512_key`: HMAC key of 63 bytes is under the 64-byte minimum for `HS512`",
            ),
        ),
        (13, Ok(())),
        (14, Ok(())),
        (15, Ok(())),
        (16, refused_at_load("key `hs256_key`: HMAC key is empty")),
        (17, refused_at_load("key `hs384_key`: HMAC key is empty")),
        (18, refused_at_load("key `hs512_key`: HMAC key is empty")),
        (
            19,
            refused_at_load("key `kid-ec-sign`: unsupported `alg` `ES521`"),
        ),
        (
            20,
            refused_at_load("key `kid-ec-sign`: unsupported `alg` `ES224`"),
        ),
        (21, reason("key_not_for_signing")),
        (
            22,
            refused_at_load("key `kid-ec-sign`: point is not on `P-256`"),
        ),
        (
            23,
            refused_at_load("key `kid-ec-sign`: `P-384` coordinates must be 48 bytes each"),
        ),
        (
            24,
            refused_at_load("key `kid-ec-sign`: member `crv` does not belong to a `RSA` key"),
        ),
        (25, reason("key_not_for_signing")),
        (26, reason("key_not_for_signing")),
    ];
    let actual: Vec<(u64, Result<(), String>)> = results
        .into_iter()
        .map(|(id, _, outcome)| (id, outcome))
        .collect();
    assert_eq!(actual, expected);
}
