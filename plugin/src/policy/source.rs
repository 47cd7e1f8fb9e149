//! The policy as written: plain data, deserialized strictly.
//!
//! Unknown fields are errors, so a misspelt field cannot silently drop a
//! restriction.

use crate::verify::IssuerSpec;
use serde::Deserialize;

/// A whole policy as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicySource {
    /// A label for this version of the policy, copied into every decision
    /// record. Required.
    pub revision: String,
    /// Token issuers whose signatures Warden accepts. Defaults to none.
    #[serde(default)]
    pub issuers: Vec<IssuerSpec>,
    /// Groups and the access each grants. Defaults to none.
    #[serde(default)]
    pub groups: Vec<GroupSource>,
    /// API clients, each an account with an owner and a lifecycle status.
    /// Defaults to none.
    #[serde(default)]
    pub identities: Vec<IdentitySource>,
    /// Client certificates as credentials. Defaults to none: a client
    /// certificate then proves nothing by itself, though tokens bound to a
    /// certificate are still checked against it.
    #[serde(default)]
    pub mtls: Option<MtlsSource>,
}

/// Client certificates (mTLS) as credentials.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MtlsSource {
    /// SPIFFE trust domains whose IDs may prove identities. Required,
    /// non-empty.
    pub trust_domains: Vec<String>,
}

/// A group of identities and the access it grants.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GroupSource {
    /// Unique name, `[a-z0-9._-]`, 1 to 64 characters.
    pub name: String,
    /// Free text for people. Defaults to empty.
    #[serde(default)]
    pub description: String,
    /// What members may reach. Defaults to nothing.
    #[serde(default)]
    pub grants: Vec<GrantSource>,
}

/// One permission: methods on hosts under path patterns.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GrantSource {
    /// Name unique within its group, reported in decision records.
    pub name: String,
    /// HTTP methods in upper case, or `"*"` for any. Required, non-empty.
    pub methods: Vec<String>,
    /// Hosts: `api.example.com`, `*.example.com` (one label), or `"*"`.
    /// Matched without the port, case-insensitively. Required, non-empty.
    pub hosts: Vec<String>,
    /// Path patterns (see [`crate::policy::PathPattern`]). Required,
    /// non-empty.
    pub paths: Vec<String>,
}

/// An API client's account.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IdentitySource {
    /// Unique id, `[a-z0-9._-]`, 1 to 64 characters; sent upstream.
    pub id: String,
    /// Who answers for this client (a team or a person). Required.
    pub owner: String,
    /// Lifecycle status. Required.
    pub status: StatusSource,
    /// Why the status is not `active`. Required unless `active`.
    #[serde(default)]
    pub status_reason: Option<String>,
    /// Since when (`YYYY-MM-DD`) the status holds. Required unless `active`.
    #[serde(default)]
    pub status_since: Option<String>,
    /// Groups this identity belongs to. Defaults to none.
    #[serde(default)]
    pub groups: Vec<String>,
    /// Credentials that prove this identity. Defaults to none.
    #[serde(default)]
    pub credentials: Vec<CredentialSource>,
}

/// Lifecycle of an identity. Only `active` identities are ever allowed;
/// the others stay in the policy so their history can be audited.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StatusSource {
    /// In service.
    Active,
    /// Temporarily barred, for example during an investigation.
    Suspended,
    /// Permanently out of service.
    Retired,
}

/// A credential that proves an identity.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum CredentialSource {
    /// A token from a declared issuer whose `sub` claim equals `subject`.
    Jwt {
        /// The issuer's `name` in this policy.
        issuer: String,
        /// The exact `sub` claim.
        subject: String,
        /// Whether the token must be bound to the client certificate of the
        /// connection (RFC 8705 `cnf` `x5t#S256`). Defaults to `false`;
        /// a token that carries a binding is checked either way.
        #[serde(default)]
        certificate_bound: bool,
    },
    /// A client certificate whose URI SAN is this SPIFFE ID; needs `mtls`.
    Spiffe {
        /// The SPIFFE ID, in a trust domain listed under `mtls`.
        id: String,
    },
    /// An API key `<key_id>.<secret>`, stored as the SHA-256 of the whole
    /// key in lower-case hex. The key itself never appears in a policy.
    ApiKey {
        /// The public part before the dot, `[A-Za-z0-9_-]`, 1 to 64
        /// characters.
        key_id: String,
        /// SHA-256 of the whole key, 64 lower-case hex digits.
        sha256: String,
    },
}
