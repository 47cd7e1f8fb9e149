//! The plugin configuration: how a proxy hands Warden its policy and
//! settings.
//!
//! The configuration is one JSON document (in Envoy, the `value` of a
//! `google.protobuf.StringValue` in the Wasm filter's `configuration`):
//!
//! ```json
//! {
//!   "policy": { "revision": "...", "issuers": [], "groups": [], "identities": [] },
//!   "api_key_header": "x-api-key",
//!   "header_prefix": "x-warden-"
//! }
//! ```
//!
//! It is compiled completely before the filter serves a request; a
//! configuration that does not compile is refused with an error that says
//! where, and the proxy rejects it.

use crate::policy::{Policy, PolicySource, describe_json_error};
use serde::Deserialize;
use std::fmt;

/// The configuration as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ConfigSource {
    /// The policy, inline. Required.
    policy: PolicySource,
    /// The header that carries API keys. Defaults to `x-api-key`.
    #[serde(default = "default_api_key_header")]
    api_key_header: String,
    /// Prefix of every header Warden sets upstream. Inbound headers with
    /// this prefix are removed before anything else happens, so a client
    /// can never pose as an identity. Defaults to `x-warden-`.
    #[serde(default = "default_header_prefix")]
    header_prefix: String,
}

fn default_api_key_header() -> String {
    "x-api-key".into()
}

fn default_header_prefix() -> String {
    "x-warden-".into()
}

/// A compiled configuration.
#[derive(Debug)]
pub struct Config {
    policy: Policy,
    api_key_header: String,
    header_prefix: String,
}

/// A configuration that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError(String);

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ConfigError {}

impl Config {
    /// Parses and compiles a configuration.
    ///
    /// # Errors
    ///
    /// Returns the position of a syntax error, or the path to the first
    /// setting or policy element that does not make sense.
    pub fn from_json(bytes: &[u8]) -> Result<Self, ConfigError> {
        let source: ConfigSource = serde_json::from_slice(bytes)
            .map_err(|e| ConfigError(format!("configuration: {}", describe_json_error(&e))))?;
        check_header_name("api_key_header", &source.api_key_header)?;
        check_header_name("header_prefix", &source.header_prefix)?;
        if source.api_key_header.starts_with(&source.header_prefix) {
            return Err(ConfigError(format!(
                "configuration: api_key_header `{}` starts with header_prefix `{}` and would be removed",
                source.api_key_header, source.header_prefix
            )));
        }
        let policy = Policy::compile(&source.policy)
            .map_err(|e| ConfigError(format!("configuration: policy: {e}")))?;
        Ok(Self {
            policy,
            api_key_header: source.api_key_header,
            header_prefix: source.header_prefix,
        })
    }

    /// The compiled policy.
    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    /// The compiled policy, for installing fetched keys.
    pub fn policy_mut(&mut self) -> &mut Policy {
        &mut self.policy
    }

    /// The header that carries API keys, lower case.
    pub fn api_key_header(&self) -> &str {
        &self.api_key_header
    }

    /// The prefix of every header Warden sets upstream, lower case.
    pub fn header_prefix(&self) -> &str {
        &self.header_prefix
    }

    /// The name of an upstream header Warden sets: prefix plus `suffix`.
    pub fn upstream_header(&self, suffix: &str) -> String {
        format!("{}{suffix}", self.header_prefix)
    }
}

fn check_header_name(field: &str, name: &str) -> Result<(), ConfigError> {
    let valid = !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    if valid {
        Ok(())
    } else {
        Err(ConfigError(format!(
            "configuration: {field} `{name}`: must be lower-case letters, digits and `-`"
        )))
    }
}
