//! Step 1 of the data path: find the one credential a request presents.
//!
//! A request may present a bearer token in `Authorization`, an API key in
//! the configured header, or (where the policy makes client certificates
//! credentials) a client certificate; never a header twice. A request that
//! could be read as two callers is refused as ambiguous; the one allowed
//! pair, a token bound to the client certificate, is checked in
//! [`crate::decide`]. Keys in the query string are never looked at.

use std::fmt;

/// The credential a request presents, borrowed from its headers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Credential<'a> {
    /// `Authorization: Bearer <token>`: a compact JWS, or a CWT in base64url.
    Bearer(&'a str),
    /// The API key header's value.
    ApiKey(&'a str),
    /// The client certificate of the connection, alone.
    ClientCertificate,
}

impl Credential<'_> {
    /// What kind of credential this is.
    pub fn kind(&self) -> CredentialKind {
        match self {
            Self::Bearer(_) => CredentialKind::Jwt,
            Self::ApiKey(_) => CredentialKind::ApiKey,
            Self::ClientCertificate => CredentialKind::Mtls,
        }
    }
}

/// Kinds of credential, as named in decision records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CredentialKind {
    /// A signed token.
    Jwt,
    /// An API key.
    ApiKey,
    /// A client certificate's SPIFFE ID.
    Mtls,
    /// A signed token bound to the client certificate it came with.
    BoundJwt,
    /// A CBOR Web Token.
    Cwt,
}

impl CredentialKind {
    /// The name used in records and upstream headers.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Jwt => "jwt",
            Self::ApiKey => "api_key",
            Self::Mtls => "mtls",
            Self::BoundJwt => "jwt_bound",
            Self::Cwt => "cwt",
        }
    }
}

/// Why no single credential could be taken from a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExtractError {
    /// Neither header is present.
    Missing,
    /// Both headers, or one of them twice.
    Ambiguous,
    /// `Authorization` is present but is not `Bearer <token>`.
    NotBearer,
}

impl ExtractError {
    /// The stable reason code.
    pub fn reason(self) -> &'static str {
        match self {
            Self::Missing => "credential_missing",
            Self::Ambiguous => "credential_ambiguous",
            Self::NotBearer => "credential_malformed",
        }
    }
}

impl fmt::Display for ExtractError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Missing => "no bearer token and no api key",
            Self::Ambiguous => "more than one credential presented",
            Self::NotBearer => "authorization header is not `Bearer <token>`",
        })
    }
}

/// Takes the credential from request headers. `api_key_header` is lower
/// case; `certificate` says whether the connection carries a client
/// certificate that counts as a credential.
///
/// # Errors
///
/// Returns why no single credential was found.
pub fn extract<'a>(
    headers: &'a [(String, String)],
    api_key_header: &str,
    certificate: bool,
) -> Result<Credential<'a>, ExtractError> {
    let authorization = only(headers, "authorization")?;
    let api_key = only(headers, api_key_header)?;
    match (authorization, api_key, certificate) {
        (Some(_), Some(_), _) | (None, Some(_), true) => Err(ExtractError::Ambiguous),
        (Some(value), None, _) => bearer(value).map(Credential::Bearer),
        (None, Some(value), false) => Ok(Credential::ApiKey(value)),
        (None, None, true) => Ok(Credential::ClientCertificate),
        (None, None, false) => Err(ExtractError::Missing),
    }
}

/// The value of a header that must appear at most once.
fn only<'a>(headers: &'a [(String, String)], name: &str) -> Result<Option<&'a str>, ExtractError> {
    let mut values = headers.iter().filter(|(n, _)| n.eq_ignore_ascii_case(name));
    let first = values.next().map(|(_, v)| v.as_str());
    if values.next().is_some() {
        Err(ExtractError::Ambiguous)
    } else {
        Ok(first)
    }
}

/// The token of a `Bearer` authorization, scheme matched case-insensitively
/// and exactly one space before a non-empty token.
fn bearer(value: &str) -> Result<&str, ExtractError> {
    let (scheme, token) = value.split_once(' ').ok_or(ExtractError::NotBearer)?;
    let valid = scheme.eq_ignore_ascii_case("bearer")
        && !token.is_empty()
        && token.bytes().all(|b| b.is_ascii_graphic());
    if valid {
        Ok(token)
    } else {
        Err(ExtractError::NotBearer)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(n, v)| ((*n).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn bearer_token_is_taken() {
        let h = headers(&[("authorization", "Bearer abc.def.ghi")]);
        assert_eq!(
            extract(&h, "x-api-key", false),
            Ok(Credential::Bearer("abc.def.ghi"))
        );
        let h = headers(&[("authorization", "bearer abc")]);
        assert_eq!(
            extract(&h, "x-api-key", false),
            Ok(Credential::Bearer("abc"))
        );
    }

    #[test]
    fn api_key_is_taken_from_the_configured_header_only() {
        let h = headers(&[("x-api-key", "id.secret")]);
        assert_eq!(
            extract(&h, "x-api-key", false),
            Ok(Credential::ApiKey("id.secret"))
        );
        assert_eq!(
            extract(&h, "x-other-key", false),
            Err(ExtractError::Missing)
        );
    }

    #[test]
    fn refusals_have_their_own_reason() {
        let cases = [
            (vec![], ExtractError::Missing),
            (
                vec![("authorization", "Basic dXNlcg==")],
                ExtractError::NotBearer,
            ),
            (vec![("authorization", "Bearer")], ExtractError::NotBearer),
            (
                vec![("authorization", "Bearer  two-spaces")],
                ExtractError::NotBearer,
            ),
            (
                vec![("authorization", "Bearer a b")],
                ExtractError::NotBearer,
            ),
            (
                vec![("authorization", "Bearer a"), ("x-api-key", "k")],
                ExtractError::Ambiguous,
            ),
            (
                vec![("authorization", "Bearer a"), ("authorization", "Bearer b")],
                ExtractError::Ambiguous,
            ),
            (
                vec![("x-api-key", "a"), ("x-api-key", "b")],
                ExtractError::Ambiguous,
            ),
        ];
        for (pairs, error) in cases {
            assert_eq!(
                extract(&headers(&pairs), "x-api-key", false),
                Err(error),
                "{pairs:?}"
            );
        }
    }
}
