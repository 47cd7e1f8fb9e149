//! CBOR Web Tokens (RFC 8392): COSE_Sign1 and COSE_Mac0 messages (RFC 9052)
//! carrying CBOR claims, checked against the same issuers, keys and claim
//! rules as JWTs.
//!
//! The guard steps mirror the JWT ones:
//!
//! 1. a size cap before any decoding ([`MAX_CWT_LEN`]);
//! 2. strict CBOR: the bytes must be exactly what re-encoding the decoded
//!    value gives, which refuses indefinite lengths, non-minimal integers
//!    and lengths, and trailing bytes; maps must not repeat a key;
//! 3. the message shape: an optional CWT tag (61) around a COSE_Sign1 (tag
//!    18) or COSE_Mac0 (tag 17) array of four. Untagged messages are refused,
//!    since only the tag tells a signature from a MAC;
//! 4. the protected header: `alg` is read only from it, and an `alg` in the
//!    unprotected header is refused; `crit` is refused; `kid` (either
//!    header) is an exact, bounded lookup key;
//! 5. the issuer, by the unverified `iss` claim, then `alg` against its
//!    allow-list, then the key, then the signature or MAC over the
//!    `Sig_structure` / `MAC_structure` built from the exact received
//!    protected bytes;
//! 6. the claims, with the JWT rules.

use super::algorithm::{Algorithm, KeyFamily};
use super::claims::{Claims, Rounding, numeric_date};
use super::error::TokenError;
use super::issuer::Issuers;
use super::jwk::{KeySet, MAX_KID_LEN};
use super::jwt::VerifiedToken;
use ciborium::value::Value;

/// The longest CWT accepted, in bytes; longer ones are refused before any
/// decoding.
pub const MAX_CWT_LEN: usize = 8 * 1024;

/// CBOR tags of RFC 8392 and RFC 9052.
const TAG_CWT: u64 = 61;
const TAG_SIGN1: u64 = 18;
const TAG_MAC0: u64 = 17;

/// COSE header labels (RFC 9052 section 3.1).
const LABEL_ALG: i128 = 1;
const LABEL_CRIT: i128 = 2;
const LABEL_KID: i128 = 4;
const LABEL_TYP: i128 = 16;

/// Which COSE structure a message is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Sign1,
    Mac0,
}

/// A COSE message split and its header read, not yet verified.
#[derive(Debug)]
struct Cose {
    kind: Kind,
    protected: Vec<u8>,
    alg: Option<i128>,
    kid: Option<Vec<u8>>,
    typ: Option<String>,
    payload: Vec<u8>,
    signature: Vec<u8>,
}

impl Issuers {
    /// Verifies a CWT sent as a bearer token: base64url without padding, as
    /// a compact JWS is, but without its dots.
    ///
    /// # Errors
    ///
    /// [`TokenError::TooLarge`] and [`TokenError::Encoding`] before any
    /// decoding of CBOR, then as [`Issuers::verify_cwt`].
    pub fn verify_cwt_text(&self, text: &str, now: u64) -> Result<VerifiedToken, TokenError> {
        if text.len() > MAX_CWT_LEN.div_ceil(3) * 4 {
            return Err(TokenError::TooLarge("token"));
        }
        let bytes = super::base64url::decode(text.as_bytes())
            .map_err(|_| TokenError::Encoding(super::error::Segment::Payload))?;
        self.verify_cwt(&bytes, now)
    }

    /// The policy name of the issuer a base64url CWT claims, read without
    /// verifying anything: for deciding whether to wait for keys, never for
    /// trusting the token.
    pub(crate) fn claimed_cwt_issuer(&self, text: &str) -> Option<&str> {
        if text.len() > MAX_CWT_LEN.div_ceil(3) * 4 {
            return None;
        }
        let bytes = super::base64url::decode(text.as_bytes()).ok()?;
        let cose = Cose::parse(&bytes).ok()?;
        let claims = parse_claims(&cose.payload).ok()?;
        let issuer = self.by_iss(claims.iss.as_deref()?)?;
        Some(issuer.name.as_str())
    }

    /// Verifies a CWT (the raw CBOR bytes) at `now` (seconds since the Unix
    /// epoch).
    ///
    /// # Errors
    ///
    /// Returns the first guard step the token fails.
    pub fn verify_cwt(&self, cwt: &[u8], now: u64) -> Result<VerifiedToken, TokenError> {
        let cose = Cose::parse(cwt)?;

        let claims = parse_claims(&cose.payload)?;
        let iss = claims.iss.as_deref().ok_or(TokenError::IssuerMissing)?;
        let issuer = self.by_iss(iss).ok_or(TokenError::IssuerUnknown)?;
        if issuer.keys.is_empty() {
            return Err(TokenError::KeysUnavailable);
        }

        let alg = cose.allowed_algorithm(&issuer.algorithms)?;
        if !issuer.accepts_typ(cose.typ.as_deref()) {
            return Err(TokenError::TypeMismatch);
        }

        let key_id = cose.verify(&issuer.keys, alg, &[])?;

        let audience = issuer.rules.check(&claims, now)?;

        Ok(VerifiedToken::new(
            issuer,
            claims,
            &audience,
            alg,
            key_id.as_deref(),
        ))
    }
}

/// Checks a COSE_Sign1 or COSE_Mac0 message's shape, header and signature
/// against `keys`, accepting the algorithms in `allowed`, with
/// `external_aad` as the externally supplied data; returns the payload
/// without interpreting it.
///
/// # Errors
///
/// Returns the first guard step the message fails.
pub fn verify_cose(
    message: &[u8],
    keys: &KeySet,
    allowed: &[Algorithm],
    external_aad: &[u8],
) -> Result<Vec<u8>, TokenError> {
    let cose = Cose::parse(message)?;

    let alg = cose.allowed_algorithm(allowed)?;

    cose.verify(keys, alg, external_aad)?;
    Ok(cose.payload)
}

/// Decodes one CBOR item that must be in its preferred (shortest, definite
/// length) encoding, with no trailing bytes and no repeated map keys.
fn decode_strict(bytes: &[u8]) -> Option<Value> {
    let value: Value = ciborium::de::from_reader(bytes).ok()?;

    let mut encoded = Vec::with_capacity(bytes.len());
    ciborium::ser::into_writer(&value, &mut encoded).ok()?;
    if encoded != bytes || has_oversize_map(&value) || has_duplicate_keys(&value) {
        return None;
    }
    Some(value)
}

/// The most entries a CBOR map may have. The duplicate check compares keys
/// pairwise, so this bounds its work (with [`MAX_CWT_LEN`] bounding the
/// number of maps).
pub const MAX_MAP_ENTRIES: usize = 128;

/// Whether any map, at any depth, is over [`MAX_MAP_ENTRIES`].
fn has_oversize_map(value: &Value) -> bool {
    match value {
        Value::Map(entries) => {
            entries.len() > MAX_MAP_ENTRIES
                || entries
                    .iter()
                    .any(|(k, v)| has_oversize_map(k) || has_oversize_map(v))
        }
        Value::Array(items) => items.iter().any(has_oversize_map),
        Value::Tag(_, inner) => has_oversize_map(inner),
        _ => false,
    }
}

/// Whether any map, at any depth, repeats a key. Call only on values that
/// passed [`has_oversize_map`].
fn has_duplicate_keys(value: &Value) -> bool {
    match value {
        Value::Map(entries) => {
            let repeated = entries
                .iter()
                .enumerate()
                .any(|(i, (key, _))| entries.iter().skip(i + 1).any(|(other, _)| other == key));
            repeated
                || entries
                    .iter()
                    .any(|(k, v)| has_duplicate_keys(k) || has_duplicate_keys(v))
        }
        Value::Array(items) => items.iter().any(has_duplicate_keys),
        Value::Tag(_, inner) => has_duplicate_keys(inner),
        _ => false,
    }
}

impl Cose {
    fn parse(bytes: &[u8]) -> Result<Self, TokenError> {
        if bytes.len() > MAX_CWT_LEN {
            return Err(TokenError::TooLarge("token"));
        }

        let value = decode_strict(bytes).ok_or(TokenError::Malformed("not strict CBOR"))?;

        let (kind, parts) = unwrap_message(value)?;

        let [protected, unprotected, payload, signature] = parts;
        let (Value::Bytes(protected), Value::Map(unprotected)) = (protected, unprotected) else {
            return Err(TokenError::Malformed(
                "headers are not a byte string and a map",
            ));
        };
        let (Value::Bytes(payload), Value::Bytes(signature)) = (payload, signature) else {
            return Err(TokenError::Malformed(
                "payload or signature is not a byte string",
            ));
        };

        let header = parse_protected(&protected)?;
        let mut cose = Self {
            kind,
            protected,
            alg: None,
            kid: None,
            typ: None,
            payload,
            signature,
        };
        cose.read_headers(&header, &unprotected)?;
        Ok(cose)
    }

    /// Reads `alg` (protected only), `crit`, `kid` and `typ`.
    fn read_headers(
        &mut self,
        protected: &[(Value, Value)],
        unprotected: &[(Value, Value)],
    ) -> Result<(), TokenError> {
        if label(protected, LABEL_CRIT).is_some() || label(unprotected, LABEL_CRIT).is_some() {
            return Err(TokenError::CritUnsupported);
        }
        if label(unprotected, LABEL_ALG).is_some() {
            return Err(TokenError::HeaderMalformed(
                "`alg` outside the protected header",
            ));
        }
        if protected
            .iter()
            .any(|(k, _)| unprotected.iter().any(|(other, _)| other == k))
        {
            return Err(TokenError::HeaderDuplicateMember);
        }

        self.alg = match label(protected, LABEL_ALG) {
            None => None,
            Some(Value::Integer(id)) => Some(i128::from(*id)),
            Some(_) => return Err(TokenError::AlgorithmNotAllowed),
        };

        let kid = label(protected, LABEL_KID).or_else(|| label(unprotected, LABEL_KID));
        self.kid = match kid {
            None => None,
            Some(Value::Bytes(kid)) if kid.len() > MAX_KID_LEN => {
                return Err(TokenError::KidTooLong);
            }
            Some(Value::Bytes(kid)) => Some(kid.clone()),
            Some(_) => return Err(TokenError::HeaderMalformed("`kid` is not a byte string")),
        };

        self.typ = match label(protected, LABEL_TYP).or_else(|| label(unprotected, LABEL_TYP)) {
            None => None,
            Some(Value::Text(typ)) => Some(typ.clone()),
            Some(_) => return Err(TokenError::HeaderMalformed("`typ` is not a text string")),
        };
        Ok(())
    }

    /// Checks `alg` against an allow-list and the message kind, before any
    /// cryptography.
    fn allowed_algorithm(&self, allowed: &[Algorithm]) -> Result<Algorithm, TokenError> {
        let id = self.alg.ok_or(TokenError::HeaderMalformed(
            "no `alg` in the protected header",
        ))?;
        let alg = i64::try_from(id)
            .ok()
            .and_then(Algorithm::from_cose_id)
            .filter(|alg| allowed.contains(alg))
            .ok_or(TokenError::AlgorithmNotAllowed)?;

        let is_mac = alg.family() == KeyFamily::Secret;
        if is_mac != (self.kind == Kind::Mac0) {
            return Err(TokenError::AlgorithmNotAllowed);
        }
        Ok(alg)
    }

    /// Verifies the signature or MAC; returns the `kid` of the key used.
    fn verify(
        &self,
        keys: &KeySet,
        alg: Algorithm,
        external_aad: &[u8],
    ) -> Result<Option<String>, TokenError> {
        let kid = match &self.kid {
            None => None,
            Some(bytes) => Some(std::str::from_utf8(bytes).map_err(|_| TokenError::KeyUnknown)?),
        };

        let context = match self.kind {
            Kind::Sign1 => "Signature1",
            Kind::Mac0 => "MAC0",
        };
        let to_be_signed = Value::Array(vec![
            Value::Text(context.into()),
            Value::Bytes(self.protected.clone()),
            Value::Bytes(external_aad.to_vec()),
            Value::Bytes(self.payload.clone()),
        ]);
        let mut message = Vec::with_capacity(self.protected.len() + self.payload.len() + 32);
        ciborium::ser::into_writer(&to_be_signed, &mut message)
            .map_err(|_| TokenError::Malformed("cannot encode the signed structure"))?;

        let used = keys.verify(kid, alg, &message, &self.signature)?;
        Ok(used.map(str::to_owned))
    }
}

/// Strips the optional CWT tag and the COSE tag; returns the message kind
/// and its four parts.
fn unwrap_message(value: Value) -> Result<(Kind, [Value; 4]), TokenError> {
    let value = match value {
        Value::Tag(TAG_CWT, inner) => *inner,
        other => other,
    };
    let (kind, inner) = match value {
        Value::Tag(TAG_SIGN1, inner) => (Kind::Sign1, *inner),
        Value::Tag(TAG_MAC0, inner) => (Kind::Mac0, *inner),
        Value::Tag(..) => return Err(TokenError::Malformed("not a COSE_Sign1 or COSE_Mac0 tag")),
        _ => return Err(TokenError::Malformed("untagged COSE message")),
    };
    let Value::Array(parts) = inner else {
        return Err(TokenError::Malformed("COSE message is not an array"));
    };
    let parts: [Value; 4] = parts
        .try_into()
        .map_err(|_| TokenError::Malformed("COSE message is not four parts"))?;
    Ok((kind, parts))
}

/// Decodes the protected header: an empty byte string or a strict map.
fn parse_protected(bytes: &[u8]) -> Result<Vec<(Value, Value)>, TokenError> {
    if bytes.is_empty() {
        return Ok(Vec::new());
    }
    match decode_strict(bytes) {
        Some(Value::Map(entries)) => Ok(entries),
        Some(_) => Err(TokenError::HeaderMalformed("protected header is not a map")),
        None if ciborium::de::from_reader::<Value, _>(bytes)
            .is_ok_and(|v| !has_oversize_map(&v) && has_duplicate_keys(&v)) =>
        {
            Err(TokenError::HeaderDuplicateMember)
        }
        None => Err(TokenError::HeaderMalformed(
            "protected header is not strict CBOR",
        )),
    }
}

/// The value under an integer label.
fn label(map: &[(Value, Value)], wanted: i128) -> Option<&Value> {
    map.iter()
        .find(|(key, _)| matches!(key, Value::Integer(i) if i128::from(*i) == wanted))
        .map(|(_, value)| value)
}

/// Reads the registered claims of a CWT payload (RFC 8392 section 3.1).
fn parse_claims(payload: &[u8]) -> Result<Claims, TokenError> {
    let entries = match decode_strict(payload) {
        Some(Value::Map(entries)) => entries,
        Some(_) => return Err(TokenError::ClaimsMalformed("not a CBOR map")),
        None if ciborium::de::from_reader::<Value, _>(payload)
            .is_ok_and(|v| !has_oversize_map(&v) && has_duplicate_keys(&v)) =>
        {
            return Err(TokenError::ClaimsDuplicateMember);
        }
        None => return Err(TokenError::ClaimsMalformed("not strict CBOR")),
    };

    Ok(Claims {
        iss: text_claim(&entries, 1, "iss")?,
        sub: text_claim(&entries, 2, "sub")?,
        aud: audience_claim(&entries)?,
        exp: date_claim(&entries, 4, "exp", Rounding::Down)?,
        nbf: date_claim(&entries, 5, "nbf", Rounding::Up)?,
        iat: date_claim(&entries, 6, "iat", Rounding::Up)?,
    })
}

fn text_claim(
    entries: &[(Value, Value)],
    key: i128,
    name: &'static str,
) -> Result<Option<String>, TokenError> {
    match label(entries, key) {
        None => Ok(None),
        Some(Value::Text(text)) => Ok(Some(text.clone())),
        Some(_) => Err(TokenError::ClaimTypeInvalid(name)),
    }
}

fn audience_claim(entries: &[(Value, Value)]) -> Result<Option<Vec<String>>, TokenError> {
    let invalid = TokenError::ClaimTypeInvalid("aud");
    match label(entries, 3) {
        None => Ok(None),
        Some(Value::Text(aud)) => Ok(Some(vec![aud.clone()])),
        Some(Value::Array(list)) => list
            .iter()
            .map(|aud| aud.as_text().map(str::to_owned).ok_or(invalid.clone()))
            .collect::<Result<Vec<_>, _>>()
            .map(Some),
        Some(_) => Err(invalid),
    }
}

fn date_claim(
    entries: &[(Value, Value)],
    key: i128,
    name: &'static str,
    rounding: Rounding,
) -> Result<Option<u64>, TokenError> {
    let invalid = TokenError::ClaimTypeInvalid(name);
    match label(entries, key) {
        None => Ok(None),
        Some(Value::Integer(seconds)) => u64::try_from(*seconds).map(Some).map_err(|_| invalid),
        Some(Value::Float(seconds)) => numeric_date(*seconds, rounding).map(Some).ok_or(invalid),
        Some(_) => Err(invalid),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ciborium::value::Integer;

    #[test]
    fn strict_decoding_refuses_non_preferred_encodings() {
        // 1 as a one-byte integer, then as a two-byte one.
        assert_eq!(
            decode_strict(&[0x01]),
            Some(Value::Integer(Integer::from(1)))
        );
        assert_eq!(decode_strict(&[0x18, 0x01]), None);
        // An indefinite-length byte string holding "a".
        assert_eq!(decode_strict(&[0x5f, 0x41, 0x61, 0xff]), None);
        // Trailing bytes.
        assert_eq!(decode_strict(&[0x01, 0x01]), None);
        // {1: 1, 1: 2}
        assert_eq!(decode_strict(&[0xa2, 0x01, 0x01, 0x01, 0x02]), None);
        // A map of MAX_MAP_ENTRIES + 1 distinct keys.
        let entries = (0..=MAX_MAP_ENTRIES as i64)
            .map(|i| (Value::Integer(i.into()), Value::Null))
            .collect();
        let mut big = Vec::new();
        ciborium::ser::into_writer(&Value::Map(entries), &mut big).unwrap();
        assert_eq!(decode_strict(&big), None);
    }
}
