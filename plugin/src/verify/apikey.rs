//! API keys: `<key_id>.<secret>`, checked against a stored SHA-256.
//!
//! The key id is public and finds the identity; the whole key is hashed
//! and compared with the stored hash in constant time, so the comparison
//! reveals nothing about how much of a guess was right. Keys are read only
//! from the configured header, never from the query string.

use crate::policy::{Identity, Policy};
use sha2::{Digest, Sha256};
use std::fmt;
use subtle::ConstantTimeEq;

/// Longest API key accepted, in bytes, before any hashing.
pub const MAX_KEY_LEN: usize = 256;

/// Why an API key was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ApiKeyError {
    /// Not `<key_id>.<secret>` with a valid id and a secret of 16 to 256
    /// visible ASCII characters.
    Malformed,
    /// No identity holds this key id.
    UnknownKeyId,
    /// The key id is known but the key does not hash to the stored value.
    Mismatch,
}

impl ApiKeyError {
    /// The stable reason code.
    pub fn reason(self) -> &'static str {
        match self {
            Self::Malformed => "api_key_malformed",
            Self::UnknownKeyId => "api_key_unknown",
            Self::Mismatch => "api_key_invalid",
        }
    }
}

impl fmt::Display for ApiKeyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Malformed => "api key is not `<key_id>.<secret>`",
            Self::UnknownKeyId => "api key id is not in the policy",
            Self::Mismatch => "api key does not match the stored hash",
        })
    }
}

/// Splits a presented key into its id, checking the shape of both parts.
///
/// # Errors
///
/// Returns [`ApiKeyError::Malformed`] for anything but `<key_id>.<secret>`.
pub fn key_id(key: &str) -> Result<&str, ApiKeyError> {
    if key.len() > MAX_KEY_LEN {
        return Err(ApiKeyError::Malformed);
    }
    let (id, secret) = key.split_once('.').ok_or(ApiKeyError::Malformed)?;
    check_key_id(id).map_err(|_| ApiKeyError::Malformed)?;
    let secret_ok = secret.len() >= 16 && secret.bytes().all(|b| b.is_ascii_graphic());
    if secret_ok {
        Ok(id)
    } else {
        Err(ApiKeyError::Malformed)
    }
}

/// Checks a key id: 1 to 64 of `[A-Za-z0-9_-]`.
///
/// # Errors
///
/// Returns a message naming the id.
pub fn check_key_id(id: &str) -> Result<(), String> {
    let valid = (1..=64).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if valid {
        Ok(())
    } else {
        Err(format!("key id `{id}`: must be 1 to 64 of `[A-Za-z0-9_-]`"))
    }
}

/// Verifies a presented key against the policy and returns the identity it
/// proves.
///
/// # Errors
///
/// Returns why the key was refused.
pub fn verify<'p>(policy: &'p Policy, key: &str) -> Result<&'p Identity, ApiKeyError> {
    let id = key_id(key)?;

    let (identity, stored) = policy
        .identity_by_key_id(id)
        .ok_or(ApiKeyError::UnknownKeyId)?;

    if matches(key, stored) {
        Ok(identity)
    } else {
        Err(ApiKeyError::Mismatch)
    }
}

/// Whether `key` hashes to `stored`, compared in constant time.
pub fn matches(key: &str, stored: &[u8; 32]) -> bool {
    let digest = Sha256::digest(key.as_bytes());
    bool::from(digest.as_slice().ct_eq(stored.as_slice()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_id_is_the_part_before_the_dot() {
        assert_eq!(key_id("ledger_01.s3cr3t-s3cr3t-s3cr3t"), Ok("ledger_01"));
    }

    #[test]
    fn malformed_keys_are_refused() {
        let long = format!("id.{}", "x".repeat(MAX_KEY_LEN));
        for key in [
            "",
            "nodot",
            ".secretsecretsecret",
            "id.short",
            "i d.secretsecretsecret",
            &long,
        ] {
            assert_eq!(key_id(key), Err(ApiKeyError::Malformed), "{key}");
        }
    }

    #[test]
    fn matches_compares_the_whole_key_hash() {
        let key = "ledger_01.s3cr3t-s3cr3t-s3cr3t";
        let stored: [u8; 32] = Sha256::digest(key.as_bytes()).into();
        assert!(matches(key, &stored));
        assert!(!matches("ledger_01.s3cr3t-s3cr3t-s3cr3T", &stored));
    }
}
