//! The policy toolchain: everything that happens to a policy before a proxy
//! loads it, and the keys and tokens that exercise it.
//!
//! - [`check`] compiles a policy source with the same compiler the filter
//!   uses, so an error shows up at the author's desk, not in the proxy.
//! - [`plugin_config`] wraps a policy into the plugin configuration a proxy
//!   hands to `warden.wasm`, and [`envoy`] renders an Envoy configuration
//!   around it.
//! - [`keys`] and [`mint`] make signing keys and tokens for demos and tests;
//!   [`demo`] fills the demo policy with fresh keys.
//!
//! Signed bundles and their distribution will be built here too, on top of
//! [`plugin_config`].

pub mod demo;
pub mod envoy;
pub mod keys;
pub mod mint;

use std::fmt;
use std::path::Path;

/// A tool error: what failed, with the file it concerns.
#[derive(Debug)]
pub struct Error(pub String);

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Error {}

/// Reads a file, naming it in the error.
///
/// # Errors
///
/// Returns the path and the I/O error.
pub fn read(path: &Path) -> Result<String, Error> {
    std::fs::read_to_string(path).map_err(|e| Error(format!("{}: {e}", path.display())))
}

/// Compiles the policy in `path` and returns its revision.
///
/// # Errors
///
/// Returns the file name followed by the compiler's message.
pub fn check(path: &Path) -> Result<warden::policy::Policy, Error> {
    let text = read(path)?;
    warden::policy::Policy::from_json(&text).map_err(|e| Error(format!("{}: {e}", path.display())))
}

/// The plugin configuration for a policy, as one JSON document.
///
/// # Errors
///
/// Returns an error when the policy is not JSON or does not compile.
pub fn plugin_config(policy: &serde_json::Value) -> Result<String, Error> {
    let config = serde_json::json!({ "policy": policy });
    let text = config.to_string();
    warden::config::Config::from_json(text.as_bytes()).map_err(|e| Error(e.to_string()))?;
    Ok(text)
}
