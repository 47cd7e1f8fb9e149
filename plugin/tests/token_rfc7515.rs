//! The RFC 7515 Appendix A examples, with an injected clock: their claims
//! (`iss: joe`, `exp: 1300819380`) expired in 2011.

use serde_json::{Value, json};
use warden::verify::jwk::KeySet;
use warden::verify::jwt::verify_signature;
use warden::verify::{Algorithm, IssuerSpec, Issuers, TokenError};

const APPENDIX_A: &str = include_str!("vectors/rfc7515/appendix_a.json");

fn appendix() -> Value {
    serde_json::from_str(APPENDIX_A).unwrap()
}

fn issuers_for(example: &Value) -> Issuers {
    let spec: IssuerSpec = serde_json::from_value(json!({
        "name": "rfc-joe",
        "issuer": "joe",
        "audiences": ["https://api.example.com"],
        "algorithms": [example["alg"]],
        "jwks": {"keys": [example["jwk"]]},
    }))
    .unwrap();
    Issuers::compile(&[spec]).unwrap()
}

#[test]
fn signatures_of_appendix_a_verify() {
    for example in appendix()["examples"].as_array().unwrap() {
        let keys =
            KeySet::from_jwks(&json!({"keys": [example["jwk"]]}), &[Algorithm::Hs256]).unwrap();
        let payload = verify_signature(example["jws"].as_str().unwrap(), &keys, &Algorithm::ALL)
            .unwrap_or_else(|e| panic!("{}: {e}", example["name"]));
        assert!(
            payload.starts_with(b"{\"iss\":\"joe\",\r\n"),
            "{}",
            example["name"]
        );
    }
}

#[test]
fn appendix_a_tokens_follow_the_injected_clock() {
    let file = appendix();
    let exp = file["claims_expire_at"].as_u64().unwrap();
    for example in file["examples"].as_array().unwrap() {
        let issuers = issuers_for(example);
        let jws = example["jws"].as_str().unwrap();

        // Before expiry the signature and time claims pass; the examples carry
        // no `aud`, which this verifier always requires.
        assert_eq!(
            issuers.verify(jws, exp - 3600),
            Err(TokenError::AudienceMissing)
        );

        // Within the 60-second skew after `exp`, still only the audience fails.
        assert_eq!(
            issuers.verify(jws, exp + 59),
            Err(TokenError::AudienceMissing)
        );

        // Past the skew the token has expired; today it is long expired.
        assert_eq!(issuers.verify(jws, exp + 60), Err(TokenError::Expired));
        assert_eq!(issuers.verify(jws, 1_767_225_600), Err(TokenError::Expired));
    }
}

#[test]
fn the_unsecured_example_is_refused() {
    let file = appendix();
    let jws = file["unsecured"]["jws"].as_str().unwrap();
    let issuers = issuers_for(&file["examples"][0]);
    assert_eq!(
        issuers.verify(jws, 0),
        Err(TokenError::Malformed("empty signature segment"))
    );

    // With any signature bytes added, `alg: none` itself is what is refused.
    let padded = format!("{jws}AAAA");
    assert_eq!(issuers.verify(&padded, 0), Err(TokenError::AlgorithmNone));
}
