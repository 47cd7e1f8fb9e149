//! Keys, signers and issuer declarations shared by the token tests.
//!
//! RSA, P-256 and HMAC keys are the private keys published in the Wycheproof
//! JWS vectors (`tests/vectors/wycheproof/`); P-384 and Ed25519 keys are
//! derived from fixed bytes, since Wycheproof publishes none for JWS.

#![allow(dead_code, reason = "each test binary uses a different part")]

use rsa::{BoxedUint, Pkcs1v15Sign, Pss};
use serde_json::{Value, json};
use sha2::{Digest, Sha256, Sha384, Sha512};
use signature::Signer as _;
use warden::verify::base64url;
use warden::verify::{IssuerSpec, Issuers};

/// A fixed "now" for the tests: 2026-01-01T00:00:00Z.
pub const NOW: u64 = 1_767_225_600;

pub const ISS: &str = "https://idp.example.com";
pub const AUD: &str = "https://api.example.com";

/// The Wycheproof JWS test file.
pub fn wycheproof_jws() -> Value {
    let text = include_str!("../vectors/wycheproof/json_web_signature_test.json");
    serde_json::from_str(text).unwrap()
}

/// The first private JWK in the Wycheproof JWS file with this `kid` and `alg`.
pub fn wycheproof_private_key(kid: &str, alg: &str) -> Value {
    let file = wycheproof_jws();
    file["testGroups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|group| &group["private"])
        .find(|key| key["kid"] == kid && key["alg"] == alg)
        .cloned()
        .unwrap_or_else(|| panic!("no private key `{kid}` for `{alg}`"))
}

/// A key that can sign test tokens, with its public JWK.
pub enum TestKey {
    Rsa(Box<rsa::PrivateKey>, Value),
    P256(p256::ecdsa::SigningKey, Value),
    P384(p384::ecdsa::SigningKey, Value),
    Ed25519(ed25519_dalek::SigningKey, Value),
    Hmac(Vec<u8>, Value),
}

fn b64(value: &Value) -> Vec<u8> {
    base64url::decode(value.as_str().unwrap().as_bytes()).unwrap()
}

fn big(value: &Value) -> BoxedUint {
    BoxedUint::from_be_slice_vartime(&b64(value))
}

impl TestKey {
    /// The Wycheproof 2048-bit RSA key, `kid` `kid-rsa-sign`.
    pub fn rsa() -> Self {
        let jwk = wycheproof_private_key("kid-rsa-sign", "RS256");
        let key = rsa::PrivateKey::from_components(
            big(&jwk["n"]),
            big(&jwk["e"]),
            big(&jwk["d"]),
            vec![big(&jwk["p"]), big(&jwk["q"])],
        )
        .unwrap();
        let public = json!({"kty": "RSA", "kid": "kid-rsa-sign", "n": jwk["n"], "e": jwk["e"]});
        Self::Rsa(Box::new(key), public)
    }

    /// The Wycheproof P-256 key, `kid` `kid-ec-sign`.
    pub fn p256() -> Self {
        let jwk = wycheproof_private_key("kid-ec-sign", "ES256");
        let key = p256::ecdsa::SigningKey::from_slice(&b64(&jwk["d"])).unwrap();
        let public = json!({
            "kty": "EC", "crv": "P-256", "kid": "kid-ec-sign", "x": jwk["x"], "y": jwk["y"]
        });
        Self::P256(key, public)
    }

    /// A P-384 key from fixed bytes, `kid` `p384`.
    pub fn p384() -> Self {
        let key = p384::ecdsa::SigningKey::from_slice(&[0x42; 48]).unwrap();
        let point = key.verifying_key().to_sec1_point(false);
        let bytes = point.as_bytes();
        let public = json!({
            "kty": "EC", "crv": "P-384", "kid": "p384",
            "x": base64url::encode(&bytes[1..49]), "y": base64url::encode(&bytes[49..97])
        });
        Self::P384(key, public)
    }

    /// An Ed25519 key from fixed bytes, `kid` `ed25519`.
    pub fn ed25519() -> Self {
        let key = ed25519_dalek::SigningKey::from_bytes(&[0x17; 32]);
        let public = json!({
            "kty": "OKP", "crv": "Ed25519", "kid": "ed25519",
            "x": base64url::encode(key.verifying_key().as_bytes())
        });
        Self::Ed25519(key, public)
    }

    /// A 64-byte HMAC secret, `kid` `hmac`.
    pub fn hmac() -> Self {
        let secret: Vec<u8> = (0u8..64).collect();
        let jwk = json!({"kty": "oct", "kid": "hmac", "k": base64url::encode(&secret)});
        Self::Hmac(secret, jwk)
    }

    /// The JWK an issuer declares for this key.
    pub fn jwk(&self) -> Value {
        match self {
            Self::Rsa(_, jwk)
            | Self::P256(_, jwk)
            | Self::P384(_, jwk)
            | Self::Ed25519(_, jwk)
            | Self::Hmac(_, jwk) => jwk.clone(),
        }
    }

    /// The key's `kid`.
    pub fn kid(&self) -> String {
        self.jwk()["kid"].as_str().unwrap().to_owned()
    }

    /// Signs `input` with `alg`, whatever the key's type (so tests can
    /// produce confused tokens on purpose).
    pub fn sign(&self, alg: &str, input: &[u8]) -> Vec<u8> {
        match (self, alg) {
            (Self::Rsa(key, _), "RS256") => key
                .sign(Pkcs1v15Sign::new::<Sha256>(), &Sha256::digest(input))
                .unwrap(),
            (Self::Rsa(key, _), "RS384") => key
                .sign(Pkcs1v15Sign::new::<Sha384>(), &Sha384::digest(input))
                .unwrap(),
            (Self::Rsa(key, _), "RS512") => key
                .sign(Pkcs1v15Sign::new::<Sha512>(), &Sha512::digest(input))
                .unwrap(),
            (Self::Rsa(key, _), "PS256") => key
                .sign(Pss::<Sha256>::new(), &Sha256::digest(input))
                .unwrap(),
            (Self::Rsa(key, _), "PS384") => key
                .sign(Pss::<Sha384>::new(), &Sha384::digest(input))
                .unwrap(),
            (Self::Rsa(key, _), "PS512") => key
                .sign(Pss::<Sha512>::new(), &Sha512::digest(input))
                .unwrap(),
            (Self::P256(key, _), _) => {
                let sig: p256::ecdsa::Signature = key.sign(input);
                sig.to_bytes().to_vec()
            }
            (Self::P384(key, _), _) => {
                let sig: p384::ecdsa::Signature = key.sign(input);
                sig.to_bytes().to_vec()
            }
            (Self::Ed25519(key, _), _) => key.sign(input).to_bytes().to_vec(),
            (Self::Hmac(secret, _), alg) => hmac(secret, alg, input),
            (Self::Rsa(..), other) => panic!("cannot sign `{other}` with RSA"),
        }
    }
}

/// HMAC with the hash `alg` names, for tests only.
pub fn hmac(secret: &[u8], alg: &str, input: &[u8]) -> Vec<u8> {
    use hmac::{KeyInit, Mac};
    match alg {
        "HS256" => {
            let mut mac = <hmac::Hmac<Sha256> as KeyInit>::new_from_slice(secret).unwrap();
            mac.update(input);
            mac.finalize().into_bytes().to_vec()
        }
        "HS384" => {
            let mut mac = <hmac::Hmac<Sha384> as KeyInit>::new_from_slice(secret).unwrap();
            mac.update(input);
            mac.finalize().into_bytes().to_vec()
        }
        _ => {
            let mut mac = <hmac::Hmac<Sha512> as KeyInit>::new_from_slice(secret).unwrap();
            mac.update(input);
            mac.finalize().into_bytes().to_vec()
        }
    }
}

/// Builds a compact JWS from a header and claims, signed by `key`.
pub fn token(key: &TestKey, header: &Value, claims: &Value) -> String {
    let alg = header["alg"].as_str().unwrap_or("none");
    token_raw(
        key,
        alg,
        header.to_string().as_bytes(),
        claims.to_string().as_bytes(),
    )
}

/// Builds a compact JWS from raw header and payload bytes.
pub fn token_raw(key: &TestKey, alg: &str, header: &[u8], payload: &[u8]) -> String {
    let input = format!(
        "{}.{}",
        base64url::encode(header),
        base64url::encode(payload)
    );
    let signature = key.sign(alg, input.as_bytes());
    format!("{input}.{}", base64url::encode(&signature))
}

/// A header naming `alg` and the key's `kid`.
pub fn header(key: &TestKey, alg: &str) -> Value {
    json!({"alg": alg, "kid": key.kid()})
}

/// Claims valid at [`NOW`] for the test issuer.
pub fn claims() -> Value {
    json!({
        "iss": ISS, "sub": "svc-billing", "aud": AUD,
        "iat": NOW - 60, "nbf": NOW - 60, "exp": NOW + 3600
    })
}

/// A declaration for the test issuer trusting `keys` for `algorithms`.
pub fn spec(algorithms: &[&str], keys: &[&TestKey]) -> IssuerSpec {
    spec_with(
        algorithms,
        json!({"keys": keys.iter().map(|k| k.jwk()).collect::<Vec<_>>()}),
    )
}

/// A declaration for the test issuer with an explicit JWKS.
pub fn spec_with(algorithms: &[&str], jwks: Value) -> IssuerSpec {
    serde_json::from_value(json!({
        "name": "corp-idp",
        "issuer": ISS,
        "audiences": [AUD],
        "algorithms": algorithms,
        "jwks": jwks,
    }))
    .unwrap()
}

/// Compiled issuers for [`spec`].
pub fn issuers(algorithms: &[&str], keys: &[&TestKey]) -> Issuers {
    Issuers::compile(&[spec(algorithms, keys)]).unwrap()
}

/// CBOR values, for the CWT tests.
pub use ciborium::value::Value as Cbor;

/// Encodes a CBOR value.
pub fn cbor(value: &Cbor) -> Vec<u8> {
    let mut out = Vec::new();
    ciborium::ser::into_writer(value, &mut out).unwrap();
    out
}

/// A CBOR integer.
pub fn int(i: i64) -> Cbor {
    Cbor::Integer(i.into())
}

/// CWT claims valid at [`NOW`] for the test issuer.
pub fn claims_cbor() -> Vec<u8> {
    cbor(&Cbor::Map(vec![
        (int(1), Cbor::Text(ISS.into())),
        (int(2), Cbor::Text("svc-billing".into())),
        (int(3), Cbor::Text(AUD.into())),
        (int(4), int(NOW as i64 + 3600)),
        (int(6), int(NOW as i64 - 60)),
    ]))
}

/// A COSE message of `tag` signed (or MACed) by `key` under `alg_name`.
pub fn cose(
    key: &TestKey,
    alg_name: &str,
    tag: u64,
    protected: Vec<(Cbor, Cbor)>,
    unprotected: Vec<(Cbor, Cbor)>,
    payload: &[u8],
) -> Vec<u8> {
    let protected = if protected.is_empty() {
        Vec::new()
    } else {
        cbor(&Cbor::Map(protected))
    };
    let context = if tag == 17 { "MAC0" } else { "Signature1" };
    let to_sign = cbor(&Cbor::Array(vec![
        Cbor::Text(context.into()),
        Cbor::Bytes(protected.clone()),
        Cbor::Bytes(Vec::new()),
        Cbor::Bytes(payload.to_vec()),
    ]));
    let signature = key.sign(alg_name, &to_sign);
    cbor(&Cbor::Tag(
        tag,
        Box::new(Cbor::Array(vec![
            Cbor::Bytes(protected),
            Cbor::Map(unprotected),
            Cbor::Bytes(payload.to_vec()),
            Cbor::Bytes(signature),
        ])),
    ))
}
