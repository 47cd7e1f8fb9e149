//! Warden: an in-line zero-trust enforcement point for APIs.
//!
//! This crate is the filter a proxy loads as `warden.wasm`, and the engine
//! behind it. A request travels through the modules in this order:
//!
//! 1. [`extract`]: find the credential the caller presented (a bearer
//!    token or an API key) and refuse ambiguous requests.
//! 2. [`verify`]: prove the credential genuine: signature, issuer,
//!    audience and lifetime for tokens; the stored hash for API keys.
//! 3. [`resolve`]: map the proven credential to an identity in the
//!    policy's directory and check its lifecycle status.
//! 4. [`authorize`]: match method, host and path against the grants of the
//!    identity's groups. Anything not granted is denied.
//! 5. [`decide`]: run steps 1 to 4 and produce a [`decide::Decision`] that
//!    carries its evidence and a stable reason code.
//! 6. [`record`]: render the decision as one JSON line for the audit log.
//!
//! The proxy-wasm layer, `enforce`, is compiled only for `wasm32`: it strips
//! spoofable headers, asks [`decide`] for a decision and carries it out. All
//! other modules are plain Rust and are tested natively.
//!
//! [`policy`] holds the policy model and its compiler, which validates a
//! policy source completely before a filter may use it; [`config`] is the
//! plugin configuration that carries the policy into the proxy.

// A panic inside the proxy takes the VM down for every later request on that
// worker: impossible states become errors that fail closed instead.
#![deny(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

pub mod authorize;
pub mod config;
pub mod decide;
pub mod extract;
pub mod policy;
pub mod record;
pub mod resolve;
pub mod verify;

#[cfg(target_arch = "wasm32")]
mod enforce;
