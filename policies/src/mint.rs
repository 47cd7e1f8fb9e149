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
