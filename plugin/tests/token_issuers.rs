//! Issuer declarations and key sets refused at compile time, with the exact
//! message an operator reads.

mod token_support;

use serde_json::{Value, json};
use token_support::*;
use warden::verify::{IssuerSpec, Issuers};

fn compile_error(spec: IssuerSpec) -> String {
    Issuers::compile(&[spec]).unwrap_err().to_string()
}

fn with_jwk(algorithms: &[&str], edit: impl FnOnce(&mut Value)) -> String {
    let key = TestKey::rsa();
    let mut jwk = key.jwk();
    edit(&mut jwk);
    compile_error(spec_with(algorithms, json!({"keys": [jwk]})))
}

/// The Wycheproof 1024-bit RSA key, renamed `k1`.
fn rsa_1024() -> Value {
    let file: Value =
        serde_json::from_str(include_str!("vectors/wycheproof/json_web_key_test.json")).unwrap();
    let mut key = file["testGroups"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["comment"] == "keysize_too_small")
        .unwrap()["public"]["keys"][0]
        .clone();
    key["kid"] = json!("k1");
    key
}

#[test]
fn weak_and_malformed_keys_are_named_with_their_problem() {
    let key = TestKey::rsa();
    let cases = [
        (
            spec_with(&["RS256"], json!({"keys": [rsa_1024()]})),
            "issuer `corp-idp`: key `k1`: RSA modulus of 1024 bits is under the 2048-bit minimum",
        ),
        (
            spec_with(
                &["HS256"],
                json!({"keys": [{"kty": "oct", "kid": "s", "k": "c2hvcnQ"}]}),
            ),
            "issuer `corp-idp`: key `s`: HMAC key of 5 bytes is under the 32-byte minimum for `HS256`",
        ),
        (
            spec_with(&["RS256"], json!({"keys": [key.jwk(), key.jwk()]})),
            "issuer `corp-idp`: duplicate `kid` `kid-rsa-sign`",
        ),
        (
            spec_with(
                &["RS256"],
                json!({"keys": [key.jwk(), TestKey::hmac().jwk()]}),
            ),
            "issuer `corp-idp`: key set mixes shared secrets with public keys",
        ),
        (
            spec_with(&["RS256"], json!({"keys": []})),
            "issuer `corp-idp`: key set has no keys",
        ),
        (
            spec_with(&["RS256"], json!([key.jwk()])),
            "issuer `corp-idp`: key set is not an object with a `keys` array",
        ),
        (
            spec_with(&["ES256"], json!({"keys": [key.jwk()]})),
            "issuer `corp-idp`: no key in `jwks` can verify `ES256`",
        ),
    ];
    for (spec, expected) in cases {
        assert_eq!(compile_error(spec), expected);
    }
}

#[test]
fn key_members_are_checked() {
    type Edit = fn(&mut Value);
    let cases: [(Edit, &str); 8] = [
        (
            |jwk| jwk["d"] = json!("AQAB"),
            "issuer `corp-idp`: key `kid-rsa-sign`: carries private key member `d`",
        ),
        (
            |jwk| jwk["crv"] = json!("P-256"),
            "issuer `corp-idp`: key `kid-rsa-sign`: member `crv` does not belong to a `RSA` key",
        ),
        (
            |jwk| {
                jwk["use"] = json!("sig");
                jwk["key_ops"] = json!(["encrypt"]);
            },
            "issuer `corp-idp`: key `kid-rsa-sign`: `use` `sig` disagrees with `key_ops`",
        ),
        (
            |jwk| jwk["key_ops"] = json!(["verify", "verify"]),
            "issuer `corp-idp`: key `kid-rsa-sign`: `key_ops` repeats `verify`",
        ),
        (
            |jwk| jwk["alg"] = json!("ES256"),
            "issuer `corp-idp`: key `kid-rsa-sign`: `alg` `ES256` does not fit the key's type or curve",
        ),
        (
            |jwk| jwk["alg"] = json!("RS1"),
            "issuer `corp-idp`: key `kid-rsa-sign`: unsupported `alg` `RS1`",
        ),
        (
            |jwk| jwk["n"] = json!("AAAA"),
            "issuer `corp-idp`: key `kid-rsa-sign`: RSA `n` or `e` has a leading zero byte",
        ),
        (
            |jwk| jwk["kid"] = json!("k".repeat(300)),
            "issuer `corp-idp`: key at index 0: `kid` of 300 bytes is over the 256-byte bound",
        ),
    ];
    for (edit, expected) in cases {
        assert_eq!(with_jwk(&["RS256"], edit), expected);
    }
}

#[test]
fn declarations_are_checked() {
    let key = TestKey::p256();
    let mut skew = spec(&["ES256"], &[&key]);
    skew.clock_skew_secs = Some(3600);
    let mut empty_aud = spec(&["ES256"], &[&key]);
    empty_aud.audiences = vec![];
    let cases = [
        (
            spec(&["ES512"], &[&key]),
            "issuer `corp-idp`: unsupported algorithm `ES512`",
        ),
        (
            spec(&["ES256", "ES256"], &[&key]),
            "issuer `corp-idp`: algorithm `ES256` is listed twice",
        ),
        (
            spec(&[], &[&key]),
            "issuer `corp-idp`: `algorithms` is empty",
        ),
        (
            skew,
            "issuer `corp-idp`: `clock_skew_secs` of 3600 is over the maximum of 600",
        ),
        (
            empty_aud,
            "issuer `corp-idp`: `audiences` must list at least one non-empty audience",
        ),
    ];
    for (spec, expected) in cases {
        assert_eq!(compile_error(spec), expected);
    }
}

#[test]
fn names_and_iss_values_are_unique() {
    let key = TestKey::p256();
    let first = spec(&["ES256"], &[&key]);
    let mut same_name = first.clone();
    same_name.issuer = "https://other.example.com".into();
    let err = Issuers::compile(&[first.clone(), same_name]).unwrap_err();
    assert_eq!(err.to_string(), "issuer `corp-idp`: is declared twice");

    let mut same_iss = first.clone();
    same_iss.name = "other-idp".into();
    let err = Issuers::compile(&[first, same_iss]).unwrap_err();
    assert_eq!(
        err.to_string(),
        "issuer `other-idp`: `iss` `https://idp.example.com` is already declared by issuer `corp-idp`"
    );
}

#[test]
fn unknown_fields_are_refused() {
    let key = TestKey::p256();
    let mut value = serde_json::to_value(json!({
        "name": "corp-idp", "issuer": ISS, "audiences": [AUD], "algorithms": ["ES256"],
        "jwks": {"keys": [key.jwk()]}, "clock_skew": 30
    }))
    .unwrap();
    let err = serde_json::from_value::<IssuerSpec>(value.take()).unwrap_err();
    assert!(
        err.to_string().starts_with("unknown field `clock_skew`"),
        "{err}"
    );
}
