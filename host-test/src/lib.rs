//! A proxy-wasm host on wasmtime, for testing filters without a proxy.
//!
//! The harness loads any proxy-wasm module (ABI 0.2.1, and 0.2.0), starts
//! it in one VM per worker the way Envoy 1.40 does, and sends requests
//! through it. Every host call the Rust SDK imports is implemented with
//! Envoy's semantics: header and trailer maps with pseudo-headers, bodies,
//! properties, local responses, pausing and resuming, HTTP callouts to
//! scripted upstreams, ticks on a controllable clock, shared data and
//! queues across VMs, metrics, and logs by level. A trap fails the VM and
//! the request the way Envoy fails it.
//!
//! The data path through the crate:
//!
//! - [`engine`] compiles a module once (cached in memory and on disk) and
//!   links the host functions of `imports`, one module per family.
//! - `vm` holds one `Store` per VM and calls the filter's `proxy_on_*`
//!   exports; [`host`] is the state the host functions work on.
//! - [`plugin`] runs streams through the VMs, delivering callouts, ticks
//!   and queue notifications; [`world`] is what the VMs share.
//! - [`profile`] keeps everything Envoy-specific in one place.
//! - [`exchange`] and [`transcript`] are the test API: the outcome of a
//!   request, assertions, and the record of every call.
//! - [`cli`] is the `warden` command.
//! - [`testing`] builds the test filters under `tests/filters/`;
//!   [`envoy`] starts real Envoy on loopback, which the fidelity corpus
//!   compares the harness with.

pub mod abi;
pub mod cli;
pub mod engine;
pub mod envoy;
mod error;
pub mod exchange;
pub mod host;
mod imports;
mod memory;
pub mod outcome;
pub mod plugin;
pub mod profile;
pub mod request;
pub mod testing;
pub mod transcript;
mod vm;
pub mod world;

pub use engine::{Engine, Filter};
pub use error::{Error, ErrorKind, Result};
pub use exchange::Exchange;
pub use host::CalloutAnswer;
pub use outcome::{Disposition, Forwarded, LogLine, Outcome};
pub use plugin::{FailurePolicy, Plugin, PluginBuilder, StreamId};
pub use profile::Profile;
pub use request::{
    Connection, Headers, PeerCertificate, Protocol, Request, Tls, UpstreamFailure, UpstreamResponse,
};
pub use world::World;
