//! The policy: a directory of API identities, the groups they belong to,
//! the grants those groups hold, and the token issuers that vouch for them.
//!
//! A policy arrives as JSON ([`PolicySource`], documented field by field in
//! `policies/README.md`) and is compiled into a [`Policy`] before any request
//! sees it. Compilation checks everything that can be checked up front:
//! unknown references, duplicates, malformed patterns, unusable keys. A
//! policy that does not compile is never used, so a bad edit cannot open a
//! hole; the proxy keeps the last policy that did.
//!
//! Everything not granted is denied: there is no allow-by-default switch.

mod compile;
mod path;
mod source;

pub(crate) use compile::describe_json_error;
pub use compile::{Group, Identity, Policy, PolicyError, Status};
pub use path::{PathPattern, canonical_path};
pub use source::{
    CredentialSource, GrantSource, GroupSource, IdentitySource, MtlsSource, PolicySource,
    StatusSource,
};
