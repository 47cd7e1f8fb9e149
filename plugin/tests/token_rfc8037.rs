//! The RFC 8037 Appendix A.4 Ed25519 JWS: it signs a sentence, not claims.

use serde_json::{Value, json};
use warden::verify::jwk::KeySet;
use warden::verify::jwt::verify_signature;
use warden::verify::{Algorithm, IssuerSpec, Issuers, TokenError};

const APPENDIX_A: &str = include_str!("vectors/rfc8037/appendix_a.json");

#[test]
fn the_ed25519_example_verifies_and_is_no_jwt() {
    let example: Value = serde_json::from_str(APPENDIX_A).unwrap();
    let jws = example["jws"].as_str().unwrap();
    let keys = KeySet::from_jwks(&json!({"keys": [example["jwk"]]}), &[]).unwrap();

    let payload = verify_signature(jws, &keys, &[Algorithm::EdDsa]).unwrap();
    assert_eq!(payload, example["payload"].as_str().unwrap().as_bytes());

    let flipped = jws.replacen("hgyY", "hgyZ", 1);
    assert_eq!(
        verify_signature(&flipped, &keys, &[Algorithm::EdDsa]),
        Err(TokenError::SignatureInvalid)
    );

    let spec: IssuerSpec = serde_json::from_value(json!({
        "name": "rfc", "issuer": "rfc", "audiences": ["rfc"], "algorithms": ["EdDSA"],
        "jwks": {"keys": [example["jwk"]]},
    }))
    .unwrap();
    let issuers = Issuers::compile(&[spec]).unwrap();
    assert_eq!(
        issuers.verify(jws, 0),
        Err(TokenError::ClaimsMalformed("not JSON"))
    );
}
