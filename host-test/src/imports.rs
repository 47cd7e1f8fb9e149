//! The host functions, one module per family of calls.
//!
//! Each import is registered on the [`Linker`] by its own small function,
//! which decodes the guest's arguments, does the work against
//! [`HostState`], records the call in the transcript and returns the ABI
//! status. The families follow the ABI's own grouping.

use wasmtime::Linker;

use crate::abi::Status;
use crate::host::HostState;

mod buffers;
mod foreign;
mod grpc;
mod headers;
mod http_call;
mod log;
mod metrics;
mod properties;
mod shared_data;
mod shared_queue;
mod stream;
mod time;
mod wasi;

pub(crate) use foreign::Declarations;

/// Registers every host function the harness provides.
///
/// # Errors
///
/// Only if two registrations clash, which is a bug of the harness.
pub(crate) fn add_to_linker(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
    log::add(linker)?;
    time::add(linker)?;
    headers::add(linker)?;
    buffers::add(linker)?;
    properties::add(linker)?;
    stream::add(linker)?;
    http_call::add(linker)?;
    shared_data::add(linker)?;
    shared_queue::add(linker)?;
    metrics::add(linker)?;
    grpc::add(linker)?;
    foreign::add(linker)?;
    wasi::add(linker)?;
    Ok(())
}

/// The module proxy-wasm imports live in.
const ENV: &str = "env";

/// Collapses a step's result into the status the guest receives.
fn status(result: Result<(), Status>) -> Status {
    result.err().unwrap_or(Status::Ok)
}
