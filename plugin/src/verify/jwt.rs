//! JWS compact tokens (JWT, RFC 7519) checked against the policy's issuers.
//!
//! [`Issuers::verify`] runs the guard steps listed in the [module
//! docs](super) in order. The signature layer is also usable on its own
//! through [`verify_signature`], for payloads that are not JSON claims.

use super::algorithm::Algorithm;
use super::base64url;
use super::claims::{self, Claims};
use super::error::{Segment, TokenError};
use super::issuer::{Issuer, Issuers};
use super::json::{self, JsonError};
use super::jwk::{KeySet, MAX_KID_LEN};
use serde_json::{Map, Value};
use std::rc::Rc;

/// The longest token accepted, in bytes; longer ones are refused before any
/// decoding.
pub const MAX_TOKEN_LEN: usize = 8 * 1024;

/// The longest encoded header segment accepted, in bytes.
pub const MAX_HEADER_LEN: usize = 1024;

/// The longest encoded signature segment accepted, in bytes: a 4096-bit RSA
/// signature takes 683.
pub const MAX_SIGNATURE_LEN: usize = 700;

/// What a verified token proves.
///
/// Strings are shared (`Rc<str>`), so a cache hit hands out a copy without
/// allocating.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedToken {
    /// The policy name of the issuer that signed it.
    pub issuer: Rc<str>,
    /// The `sub` claim.
    pub subject: Rc<str>,
    /// The `exp` claim, in seconds since the Unix epoch.
    pub expires_at: Option<u64>,
    /// The `aud` value that matched one of the issuer's audiences.
    pub audience: Rc<str>,
    /// The `alg` the token was verified with.
    pub algorithm: Algorithm,
    /// The `kid` of the key that verified it, when the key has one.
    pub key_id: Option<Rc<str>>,
    /// The certificate the token is bound to (RFC 8705): the `x5t#S256`
    /// member of its `cnf` claim, a base64url SHA-256 thumbprint.
    pub certificate_thumbprint: Option<Rc<str>>,
}

impl VerifiedToken {
    /// What a token that passed every check proves.
    pub(crate) fn new(
        issuer: &Issuer,
        claims: Claims,
        audience: &str,
        algorithm: Algorithm,
        key_id: Option<&str>,
    ) -> Self {
        Self {
            issuer: issuer.name.as_str().into(),
            subject: claims.sub.unwrap_or_default().into(),
            expires_at: claims.exp,
            audience: audience.into(),
            algorithm,
            key_id: key_id.map(Rc::from),
            certificate_thumbprint: None,
        }
    }
}

/// The protected header members the verifier reads.
///
/// `jku`, `x5u`, `x5c`, `x5t` and `jwk` are deliberately not read: keys come
/// only from the issuer's declared set.
#[derive(Debug)]
struct Header {
    alg: String,
    kid: Option<String>,
    typ: Option<String>,
}

/// A token split and decoded, not yet verified.
#[derive(Debug)]
struct Compact<'a> {
    signing_input: &'a [u8],
    header: Header,
    payload: Vec<u8>,
    signature: Vec<u8>,
}

impl Issuers {
    /// Verifies a compact JWS at `now` (seconds since the Unix epoch).
    ///
    /// # Errors
    ///
    /// Returns the first guard step the token fails.
    pub fn verify(&self, token: &str, now: u64) -> Result<VerifiedToken, TokenError> {
        let jws = Compact::parse(token)?;

        let claims = parse_claims(&jws.payload)?;
        let iss = claims::json_issuer(&claims)?;
        let issuer = self.by_iss(iss).ok_or(TokenError::IssuerUnknown)?;
        if issuer.keys.is_empty() {
            return Err(TokenError::KeysUnavailable);
        }

        let alg = allowed_algorithm(&jws.header.alg, &issuer.algorithms)?;
        if !issuer.accepts_typ(jws.header.typ.as_deref()) {
            return Err(TokenError::TypeMismatch);
        }

        let key_id = issuer.keys.verify(
            jws.header.kid.as_deref(),
            alg,
            jws.signing_input,
            &jws.signature,
        )?;

        let certificate_thumbprint = confirmation(&claims)?;
        let claims = Claims::from_json(&claims)?;
        let audience = issuer.rules.check(&claims, now)?;

        let mut verified = VerifiedToken::new(issuer, claims, &audience, alg, key_id);
        verified.certificate_thumbprint = certificate_thumbprint.map(Rc::from);
        Ok(verified)
    }
}

impl Issuers {
    /// The policy name of the issuer a token claims, read without verifying
    /// anything. For deciding whether to wait for that issuer's keys; never
    /// for trusting the token.
    pub fn claimed_issuer(&self, token: &str) -> Option<&str> {
        if !token.contains('.') {
            return self.claimed_cwt_issuer(token);
        }
        let jws = Compact::parse(token).ok()?;
        let claims = parse_claims(&jws.payload).ok()?;
        let iss = claims::json_issuer(&claims).ok()?;
        self.by_iss(iss).map(|issuer| issuer.name.as_str())
    }
}

/// Checks a compact JWS's shape, header and signature against `keys`,
/// accepting the algorithms in `allowed`, and returns the payload bytes
/// without interpreting them.
///
/// # Errors
///
/// Returns the first guard step the token fails.
pub fn verify_signature(
    token: &str,
    keys: &KeySet,
    allowed: &[Algorithm],
) -> Result<Vec<u8>, TokenError> {
    let jws = Compact::parse(token)?;

    let alg = allowed_algorithm(&jws.header.alg, allowed)?;

    keys.verify(
        jws.header.kid.as_deref(),
        alg,
        jws.signing_input,
        &jws.signature,
    )?;
    Ok(jws.payload)
}

/// The `x5t#S256` certificate thumbprint of a `cnf` claim (RFC 8705
/// section 3.1). A `cnf` this verifier cannot honour is refused, never
/// ignored: ignoring it would accept a bound token from anyone holding it.
fn confirmation(claims: &Map<String, Value>) -> Result<Option<String>, TokenError> {
    let Some(cnf) = claims.get("cnf") else {
        return Ok(None);
    };
    let cnf = cnf.as_object().ok_or(TokenError::ClaimTypeInvalid("cnf"))?;
    let thumbprint = cnf
        .get("x5t#S256")
        .and_then(Value::as_str)
        .filter(|t| {
            t.len() == 43
                && t.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
        .ok_or(TokenError::ClaimTypeInvalid("cnf"))?;
    if cnf.len() != 1 {
        return Err(TokenError::ClaimTypeInvalid("cnf"));
    }
    Ok(Some(thumbprint.to_owned()))
}

/// Checks `alg` against an allow-list, before any cryptography.
fn allowed_algorithm(name: &str, allowed: &[Algorithm]) -> Result<Algorithm, TokenError> {
    if name.eq_ignore_ascii_case("none") {
        return Err(TokenError::AlgorithmNone);
    }
    Algorithm::from_name(name)
        .filter(|alg| alg.is_jws() && allowed.contains(alg))
        .ok_or(TokenError::AlgorithmNotAllowed)
}

fn parse_claims(payload: &[u8]) -> Result<Map<String, Value>, TokenError> {
    json::parse_object(payload).map_err(|e| match e {
        JsonError::DuplicateMember => TokenError::ClaimsDuplicateMember,
        JsonError::NotObject => TokenError::ClaimsMalformed("not a JSON object"),
        JsonError::Syntax => TokenError::ClaimsMalformed("not JSON"),
    })
}

impl<'a> Compact<'a> {
    /// Runs the steps that need no issuer: size caps, shape, base64url and
    /// the header.
    fn parse(token: &'a str) -> Result<Self, TokenError> {
        if token.len() > MAX_TOKEN_LEN {
            return Err(TokenError::TooLarge("token"));
        }

        let mut segments = token.split('.');
        let (header, payload, signature) = match (
            segments.next(),
            segments.next(),
            segments.next(),
            segments.next(),
        ) {
            (Some(h), Some(p), Some(s), None) => (h, p, s),
            _ => return Err(TokenError::Malformed("not three dot-separated segments")),
        };
        if header.is_empty() {
            return Err(TokenError::Malformed("empty header segment"));
        }
        if signature.is_empty() {
            return Err(TokenError::Malformed("empty signature segment"));
        }
        if header.len() > MAX_HEADER_LEN {
            return Err(TokenError::TooLarge("token header"));
        }
        if signature.len() > MAX_SIGNATURE_LEN {
            return Err(TokenError::TooLarge("token signature"));
        }

        let decode = |text: &str, segment| {
            base64url::decode(text.as_bytes()).map_err(|_| TokenError::Encoding(segment))
        };
        let header_bytes = decode(header, Segment::Header)?;
        let payload = decode(payload, Segment::Payload)?;
        let signature_bytes = decode(signature, Segment::Signature)?;

        let header = Header::parse(&header_bytes)?;

        let signed_len = token.len() - signature.len() - 1;
        let signing_input = token
            .as_bytes()
            .get(..signed_len)
            .ok_or(TokenError::Malformed("segment bounds"))?;
        Ok(Self {
            signing_input,
            header,
            payload,
            signature: signature_bytes,
        })
    }
}

impl Header {
    fn parse(bytes: &[u8]) -> Result<Self, TokenError> {
        let map = json::parse_object(bytes).map_err(|e| match e {
            JsonError::DuplicateMember => TokenError::HeaderDuplicateMember,
            JsonError::NotObject => TokenError::HeaderMalformed("not a JSON object"),
            JsonError::Syntax => TokenError::HeaderMalformed("not JSON"),
        })?;

        if map.contains_key("crit") {
            return Err(TokenError::CritUnsupported);
        }

        let alg = match map.get("alg") {
            Some(Value::String(alg)) => alg.clone(),
            Some(_) => return Err(TokenError::HeaderMalformed("`alg` is not a string")),
            None => return Err(TokenError::HeaderMalformed("no `alg`")),
        };

        let kid = match map.get("kid") {
            None => None,
            Some(Value::String(kid)) if kid.len() > MAX_KID_LEN => {
                return Err(TokenError::KidTooLong);
            }
            Some(Value::String(kid)) => Some(kid.clone()),
            Some(_) => return Err(TokenError::HeaderMalformed("`kid` is not a string")),
        };

        let typ = match map.get("typ") {
            None => None,
            Some(Value::String(typ)) => Some(typ.clone()),
            Some(_) => return Err(TokenError::HeaderMalformed("`typ` is not a string")),
        };
        Ok(Self { alg, kid, typ })
    }
}
