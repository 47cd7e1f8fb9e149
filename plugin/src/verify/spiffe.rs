//! SPIFFE IDs from client certificates (mTLS).
//!
//! The peer's identity comes only from the connection: the URI SAN and the
//! certificate digest the proxy reports after it verified the client's
//! certificate chain. A header such as `x-forwarded-client-cert` is never
//! read, so a client cannot claim a certificate it did not present.
//!
//! A SPIFFE ID is `spiffe://<trust domain>/<path>`: the trust domain holds
//! only `[a-z0-9.-_]`, each path segment only `[A-Za-z0-9.-_]`, with no
//! empty, `.` or `..` segment, no port, user info, query or fragment, and
//! the whole at most 2048 bytes.

use std::fmt;

/// Longest SPIFFE ID accepted, in bytes.
pub const MAX_ID_LEN: usize = 2048;

/// A syntactically valid SPIFFE ID.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct SpiffeId(String);

/// Why a SPIFFE ID was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SpiffeError {
    /// Not `spiffe://` followed by a trust domain.
    Scheme,
    /// Empty, or with characters outside `[a-z0-9.-_]`.
    TrustDomain,
    /// An empty, `.` or `..` segment, a trailing `/`, or characters outside
    /// `[A-Za-z0-9.-_]`.
    Path,
    /// Over [`MAX_ID_LEN`] bytes.
    TooLong,
}

impl fmt::Display for SpiffeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Scheme => "not a `spiffe://` URI",
            Self::TrustDomain => "trust domain must be `[a-z0-9.-_]+`",
            Self::Path => "path segments must be non-empty `[A-Za-z0-9.-_]+`, not `.` or `..`",
            Self::TooLong => "longer than 2048 bytes",
        })
    }
}

impl SpiffeId {
    /// Parses and validates a SPIFFE ID.
    ///
    /// # Errors
    ///
    /// Returns the rule it breaks.
    pub fn parse(text: &str) -> Result<Self, SpiffeError> {
        if text.len() > MAX_ID_LEN {
            return Err(SpiffeError::TooLong);
        }
        let rest = text.strip_prefix("spiffe://").ok_or(SpiffeError::Scheme)?;
        let (domain, path) = match rest.find('/') {
            Some(at) => (
                rest.get(..at).unwrap_or_default(),
                rest.get(at..).unwrap_or_default(),
            ),
            None => (rest, ""),
        };
        let domain_ok = !domain.is_empty()
            && domain
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"-._".contains(&b));
        if !domain_ok {
            return Err(SpiffeError::TrustDomain);
        }
        if !path.is_empty() && !path.split('/').skip(1).all(valid_segment) {
            return Err(SpiffeError::Path);
        }
        Ok(Self(text.to_owned()))
    }

    /// The trust domain.
    pub fn trust_domain(&self) -> &str {
        let rest = self.0.get("spiffe://".len()..).unwrap_or_default();
        rest.split('/').next().unwrap_or_default()
    }

    /// The whole ID.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

fn valid_segment(segment: &str) -> bool {
    !segment.is_empty()
        && segment != "."
        && segment != ".."
        && segment
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._".contains(&b))
}

/// The base64url SHA-256 thumbprint (as in `x5t#S256`) of a certificate
/// whose digest the proxy reports in hex.
pub fn thumbprint_from_hex(hex: &str) -> Option<String> {
    if hex.len() != 64 {
        return None;
    }
    let mut bytes = Vec::with_capacity(32);
    for pair in hex.as_bytes().chunks_exact(2) {
        let text = std::str::from_utf8(pair).ok()?;
        bytes.push(u8::from_str_radix(text, 16).ok()?);
    }
    Some(super::base64url::encode(&bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn valid_ids_parse_with_their_trust_domain() {
        let id = SpiffeId::parse("spiffe://demo.test/ns/books/sa/reconciler").unwrap();
        assert_eq!(id.trust_domain(), "demo.test");
        assert_eq!(
            SpiffeId::parse("spiffe://demo.test")
                .unwrap()
                .trust_domain(),
            "demo.test"
        );
    }

    #[test]
    fn invalid_ids_are_refused_with_their_rule() {
        let long = format!("spiffe://d/{}", "a".repeat(MAX_ID_LEN));
        let cases = [
            ("https://demo.test/a", SpiffeError::Scheme),
            ("spiffe://", SpiffeError::TrustDomain),
            ("spiffe://Demo.test/a", SpiffeError::TrustDomain),
            ("spiffe://demo.test:443/a", SpiffeError::TrustDomain),
            ("spiffe://user@demo.test/a", SpiffeError::TrustDomain),
            ("spiffe://demo.test/a//b", SpiffeError::Path),
            ("spiffe://demo.test/a/../b", SpiffeError::Path),
            ("spiffe://demo.test/a/", SpiffeError::Path),
            ("spiffe://demo.test/a?x=1", SpiffeError::Path),
            ("spiffe://demo.test/a#f", SpiffeError::Path),
            ("spiffe://demo.test/a%2Fb", SpiffeError::Path),
            (long.as_str(), SpiffeError::TooLong),
        ];
        for (text, error) in cases {
            assert_eq!(SpiffeId::parse(text), Err(error), "{text}");
        }
    }

    #[test]
    fn thumbprints_are_base64url_of_the_digest() {
        let hex = "00".repeat(32);
        assert_eq!(thumbprint_from_hex(&hex).unwrap(), "A".repeat(43));
        assert_eq!(thumbprint_from_hex("abc"), None);
        assert_eq!(thumbprint_from_hex(&"zz".repeat(32)), None);
    }
}
