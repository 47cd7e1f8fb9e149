//! JWS compact tokens (JWT) checked against the policy's issuers.
//!
//! Placeholder interface: the verifier itself lands with the token work.

use serde::Deserialize;
use std::fmt;

/// A token issuer as a policy declares it.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IssuerSpec {
    /// The name identities use to refer to this issuer.
    pub name: String,
    /// The exact `iss` claim value.
    pub issuer: String,
    /// Accepted `aud` values; a token must carry at least one of them.
    pub audiences: Vec<String>,
    /// Allowed `alg` values.
    pub algorithms: Vec<String>,
    /// The issuer's public keys, as an inline JWKS.
    pub jwks: serde_json::Value,
}

/// The policy's issuers, compiled for verification.
#[derive(Debug, Default)]
pub struct Issuers {
    names: Vec<String>,
}

/// An issuer declaration that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IssuerError(String);

impl fmt::Display for IssuerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for IssuerError {}

/// Why a token was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenError {
    /// The verifier is not built yet.
    Unsupported,
}

impl TokenError {
    /// The stable reason code for decisions and responses.
    pub fn reason(&self) -> &'static str {
        "token_unsupported"
    }
}

impl fmt::Display for TokenError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("token verification is not available")
    }
}

impl std::error::Error for TokenError {}

/// What a verified token proves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedToken {
    /// The policy name of the issuer that signed it.
    pub issuer: String,
    /// The `sub` claim.
    pub subject: String,
    /// The `exp` claim, in seconds since the Unix epoch.
    pub expires_at: Option<u64>,
}

impl Issuers {
    /// Compiles the policy's issuer declarations.
    ///
    /// # Errors
    ///
    /// Returns an error naming the issuer and the problem.
    pub fn compile(specs: &[IssuerSpec]) -> Result<Self, IssuerError> {
        Ok(Self {
            names: specs.iter().map(|s| s.name.clone()).collect(),
        })
    }

    /// Whether an issuer of this policy name exists.
    pub fn contains(&self, name: &str) -> bool {
        self.names.iter().any(|n| n == name)
    }

    /// Verifies a compact JWS at `now` (seconds since the Unix epoch).
    ///
    /// # Errors
    ///
    /// Returns the first guard step the token fails.
    pub fn verify(&self, _token: &str, _now: u64) -> Result<VerifiedToken, TokenError> {
        Err(TokenError::Unsupported)
    }
}
