//! A proxy-wasm host on wasmtime, for testing filters without a proxy.
//!
//! The harness loads any proxy-wasm module (ABI 0.2.1, and 0.2.0), starts
//! its VMs the way Envoy 1.40 does (a configuration canary, the main
//! thread's VM, one VM per worker), and sends requests through it, or
//! opens network (TCP) connections through it as Envoy's network filter in
//! front of `tcp_proxy`. Every host call the Rust SDK imports is
//! implemented with Envoy's semantics: header and trailer maps with
//! pseudo-headers, bodies, properties, local responses, pausing and
//! resuming, HTTP callouts and gRPC calls and streams to scripted
//! upstreams, ticks on a controllable clock, shared data and queues across
//! VMs, metrics, and logs by level. A trap fails the VM and the request
//! the way Envoy fails it.
//!
//! The data path through the crate:
//!
//! - [`engine`] compiles a module once (cached in memory and on disk) and
//!   links the host functions of `imports`, one module per family.
//! - `vm` holds one `Store` per VM and calls the filter's `proxy_on_*`
//!   exports; [`host`] is the state the host functions work on.
//! - [`plugin`] runs streams through the VMs, delivering callouts, gRPC
//!   events, ticks and queue notifications, and [`plugin::connection`]
//!   network (TCP) connections; [`world`] is what the VMs share; [`grpc`]
//!   runs gRPC calls and streams to scripted upstreams.
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
pub mod grpc;
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
pub use grpc::{GrpcAnswer, GrpcRecord, GrpcResponse};
pub use host::CalloutAnswer;
pub use outcome::{Disposition, Forwarded, LogLine, Outcome};
pub use plugin::connection::{
    CloseReason, Closed, Closer, ConnectionId, Conversation, Received, Step, TcpOutcome,
    TcpUpstream, UpstreamScript,
};
pub use plugin::{FailurePolicy, Plugin, PluginBuilder, StreamId};
pub use profile::Profile;
pub use request::{
    Connection, Headers, PeerCertificate, Protocol, Request, Tls, UpstreamFailure, UpstreamResponse,
};
pub use world::World;
