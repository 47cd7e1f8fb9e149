//! Step 2 of the data path: prove a presented credential genuine.
//!
//! Tokens are verified against the issuers the policy declares; API keys
//! against the SHA-256 hashes stored with each identity.
//!
//! A token goes through ordered guard steps, each refusing with its own
//! [`TokenError`] and reason code, and no step does work that an earlier step
//! could have refused more cheaply:
//!
//! 1. size caps, before anything is decoded ([`jwt::MAX_TOKEN_LEN`]);
//! 2. shape (three segments) and strict base64url ([`base64url`]);
//! 3. the protected header, as JSON without repeated members: `alg`, a
//!    bounded `kid`, `typ`; `crit` is refused; `jku`, `x5u`, `x5c` and an
//!    embedded `jwk` are ignored, so they never select a key and never
//!    cause a fetch;
//! 4. the issuer, chosen by the still unverified `iss` claim;
//! 5. `alg` against that issuer's allow-list (never `none`), before any
//!    cryptography, then the issuer's `typ` profile;
//! 6. the key: exact `kid` lookup, key type against the algorithm, the key's
//!    `use`/`key_ops`, then the key's own `alg`;
//! 7. the signature, in the algorithm's fixed form only;
//! 8. the claims: `exp`, `nbf`, `iat`, lifetime, `aud`, then `sub`.
//!
//! CWTs ([`cwt`], RFC 8392) go through the same steps in their CBOR form and
//! are held to the same issuers, keys and claim rules.
//!
//! [`cache`] keeps verified tokens per VM so that a repeated token costs one
//! hash and one comparison: keep one [`TokenCache`] per VM and call
//! [`Issuers::verify_cached`] instead of [`Issuers::verify`].
//!
//! Issuer declarations ([`IssuerSpec`]) are validated completely by
//! [`Issuers::compile`], keys included ([`jwk`]), so a policy with a weak or
//! malformed key never reaches a filter.

pub mod algorithm;
pub mod apikey;
pub mod base64url;
pub mod cache;
mod claims;
pub mod cwt;
mod error;
pub mod fetch;
pub mod issuer;
mod json;
pub mod jwk;
pub mod jwt;
mod roca;
pub mod spiffe;

pub use algorithm::Algorithm;
pub use cache::TokenCache;
pub use error::{IssuerError, Segment, TokenError};
pub use issuer::{IssuerSpec, Issuers};
pub use jwt::VerifiedToken;
