//! Compact JWS tokens for demos and tests.

use crate::keys::SigningKey;
use serde_json::{Value, json};

/// Signs `claims` with `key`; the header holds `alg`, `typ: JWT` and `kid`.
pub fn mint(key: &SigningKey, claims: &Value) -> String {
    let header = json!({ "alg": key.alg(), "typ": "JWT", "kid": key.kid() });
    mint_with_header(key, &header, claims)
}

/// Signs `claims` under an arbitrary header, for tests of bad headers.
pub fn mint_with_header(key: &SigningKey, header: &Value, claims: &Value) -> String {
    let signing_input = format!(
        "{}.{}",
        base64url(header.to_string().as_bytes()),
        base64url(claims.to_string().as_bytes())
    );
    let signature = key.sign(signing_input.as_bytes());
    format!("{signing_input}.{}", base64url(&signature))
}

/// The same token with one claim changed and the signature kept, as an
/// attacker would try.
pub fn tamper(token: &str, claim: &str, value: Value) -> String {
    let mut parts = token.splitn(3, '.');
    let (header, payload, signature) = (parts.next(), parts.next(), parts.next());
    let mut claims: Value = payload
        .and_then(base64url_decode)
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or(Value::Null);
    if let Some(object) = claims.as_object_mut() {
        object.insert(claim.to_owned(), value);
    }
    format!(
        "{}.{}.{}",
        header.unwrap_or_default(),
        base64url(claims.to_string().as_bytes()),
        signature.unwrap_or_default()
    )
}

/// Signs a CWT (RFC 8392): a tagged COSE_Sign1 with `alg` and `kid` in the
/// protected header, claims `iss` (1), `sub` (2), `aud` (3), `exp` (4),
/// `nbf` (5) and `iat` (6). Returns it in base64url, as a bearer token.
pub fn mint_cwt(key: &SigningKey, iss: &str, sub: &str, aud: &str, iat: u64, exp: u64) -> String {
    use ciborium::value::{Integer, Value as Cbor};
    let int = |n: i64| Cbor::Integer(Integer::from(n));
    let uint = |n: u64| Cbor::Integer(Integer::from(n));
    let text = |t: &str| Cbor::Text(t.to_owned());
    let alg = if key.alg() == "ES256" { -7 } else { -257 };
    let protected = cbor(&Cbor::Map(vec![
        (int(1), int(alg)),
        (int(4), Cbor::Bytes(key.kid().as_bytes().to_vec())),
    ]));
    let claims = cbor(&Cbor::Map(vec![
        (int(1), text(iss)),
        (int(2), text(sub)),
        (int(3), text(aud)),
        (int(4), uint(exp)),
        (int(5), uint(iat)),
        (int(6), uint(iat)),
    ]));
    let to_sign = cbor(&Cbor::Array(vec![
        text("Signature1"),
        Cbor::Bytes(protected.clone()),
        Cbor::Bytes(Vec::new()),
        Cbor::Bytes(claims.clone()),
    ]));
    let signature = key.sign(&to_sign);
    let sign1 = Cbor::Array(vec![
        Cbor::Bytes(protected),
        Cbor::Map(Vec::new()),
        Cbor::Bytes(claims),
        Cbor::Bytes(signature),
    ]);
    let message = Cbor::Tag(61, Box::new(Cbor::Tag(18, Box::new(sign1))));
    base64url(&cbor(&message))
}

fn cbor(value: &ciborium::value::Value) -> Vec<u8> {
    let mut out = Vec::new();
    // Writing to a Vec cannot fail.
    let _ = ciborium::ser::into_writer(value, &mut out);
    out
}

const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/// Base64url without padding (RFC 7515 section 2).
pub fn base64url(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = u32::from(b[0]) << 16 | u32::from(b[1]) << 8 | u32::from(b[2]);
        for i in 0..=chunk.len() {
            out.push(char::from(ALPHABET[(n >> (18 - 6 * i) & 63) as usize]));
        }
    }
    out
}

fn base64url_decode(text: &str) -> Option<Vec<u8>> {
    let mut bits = 0u32;
    let mut count = 0;
    let mut out = Vec::new();
    for c in text.bytes() {
        let v = ALPHABET.iter().position(|&a| a == c)?;
        bits = bits << 6 | v as u32;
        count += 6;
        if count >= 8 {
            count -= 8;
            out.push((bits >> count & 0xff) as u8);
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64url_matches_rfc4648_vectors() {
        let cases = [
            ("", ""),
            ("f", "Zg"),
            ("fo", "Zm8"),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg"),
        ];
        for (plain, encoded) in cases {
            assert_eq!(base64url(plain.as_bytes()), encoded);
            assert_eq!(base64url_decode(encoded).unwrap(), plain.as_bytes());
        }
        assert_eq!(base64url(&[0xfb, 0xff]), "-_8");
    }
}
