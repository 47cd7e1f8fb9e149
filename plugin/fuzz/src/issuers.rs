//! The issuers every fuzz target verifies against: an RSA and P-256 issuer
//! and a shared-secret issuer, with the public keys of the Wycheproof JWS
//! vectors.

use serde_json::{Value, json};
use std::sync::OnceLock;
use warden::verify::{IssuerSpec, Issuers};

const WYCHEPROOF: &str =
    include_str!("../../tests/vectors/wycheproof/json_web_signature_test.json");

/// A Wycheproof key, without its `alg` so that it serves every algorithm of
/// its family (the RSA key both `RS256` and `PS256`, the HMAC key both
/// `HS256` and `HMAC 256/64`).
fn public_key(kid: &str, alg: &str) -> Value {
    let file: Value = serde_json::from_str(WYCHEPROOF).unwrap_or(Value::Null);
    let groups = file["testGroups"].as_array().cloned().unwrap_or_default();
    groups
        .into_iter()
        .map(|group| {
            if group["public"].is_null() {
                group["private"].clone()
            } else {
                group["public"].clone()
            }
        })
        .find(|key| key["kid"] == kid && key["alg"] == alg)
        .map(|mut key| {
            if let Some(members) = key.as_object_mut() {
                members.remove("alg");
            }
            key
        })
        .unwrap_or(Value::Null)
}

fn spec(name: &str, iss: &str, algorithms: &[&str], keys: Vec<Value>) -> IssuerSpec {
    let value = json!({
        "name": name,
        "issuer": iss,
        "audiences": ["https://api.example.com"],
        "algorithms": algorithms,
        "jwks": {"keys": keys},
    });
    serde_json::from_value(value).unwrap_or_else(|e| panic!("fuzz issuer `{name}`: {e}"))
}

/// The compiled issuers, built once per process.
pub fn issuers() -> &'static Issuers {
    static ISSUERS: OnceLock<Issuers> = OnceLock::new();
    ISSUERS.get_or_init(|| {
        let specs = [
            spec(
                "public",
                "https://idp.example.com",
                &["RS256", "PS256", "ES256"],
                vec![
                    public_key("kid-rsa-sign", "RS256"),
                    public_key("kid-ec-sign", "ES256"),
                ],
            ),
            spec(
                "shared",
                "https://shared.example.com",
                &["HS256", "HMAC 256/64"],
                vec![public_key("kid-aes-sign", "HS256")],
            ),
        ];
        Issuers::compile(&specs).unwrap_or_else(|e| panic!("fuzz issuers: {e}"))
    })
}
