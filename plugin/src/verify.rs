//! Step 2 of the data path: prove a presented credential genuine.
//!
//! Tokens are verified against the issuers the policy declares; API keys
//! against the SHA-256 hashes stored with each identity.

pub mod apikey;
pub mod jwt;

pub use jwt::{IssuerError, IssuerSpec, Issuers, TokenError, VerifiedToken};
