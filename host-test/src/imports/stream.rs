//! Stream control: resume, close, local responses, and the calls that
//! choose which context later calls act on.
//!
//! Like Envoy, the host acts on these after the guest's callback returns:
//! a `proxy_continue_stream` inside a callout's callback resumes the
//! stream once that callback is done. On a network connection the
//! directions are the downstream and the upstream; see
//! `continue_network` and `close_network`.
//!
//! `proxy_continue_request` and `proxy_continue_response` (ABI 0.1.0's
//! spelling, still in some 0.2.0 filters) are not offered: Envoy 1.40
//! refuses a module that imports them (`missing import`), and so does the
//! harness.

use wasmtime::{Caller, Linker};

use super::{ENV, status};
use crate::abi::{Status, StreamType, decode_pairs};
use crate::host::{HostState, LocalReply};
use crate::memory;
use crate::transcript::show;

pub(super) fn add(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
    proxy_continue_stream(linker)?;
    proxy_close_stream(linker)?;
    proxy_send_local_response(linker)?;
    proxy_set_effective_context(linker)?;
    proxy_done(linker)?;
    proxy_clear_route_cache(linker)?;
    Ok(())
}

/// Marks the current stream to resume in `direction`. Outside a stream
/// (a root context) the call does nothing and succeeds, as in Envoy.
fn resume(state: &mut HostState, direction: StreamType) {
    if let Some(stream) = state.stream_mut() {
        stream.resume = Some(direction);
    }
}

fn proxy_continue_stream(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
    linker.func_wrap(
        ENV,
        "proxy_continue_stream",
        |mut caller: Caller<'_, HostState>, kind: i32| -> i32 {
            let result = match StreamType::from_code(kind) {
                Some(direction) if caller.data().in_network() => {
                    continue_network(caller.data_mut(), direction)
                }
                Some(direction @ (StreamType::Request | StreamType::Response)) => {
                    resume(caller.data_mut(), direction);
                    Ok(())
                }
                Some(_) => Err(Status::Unimplemented),
                None => Err(Status::BadArgument),
            };
            caller.data_mut().note(
                || format!("proxy_continue_stream({kind})"),
                || status(result).name().to_owned(),
            );
            status(result).code()
        },
    )?;
    Ok(())
}

/// `proxy_continue_stream` on a network connection, as Envoy answers it:
/// the downstream resumes reading (what the filter held goes on), the
/// upstream direction cannot be resumed (`Unimplemented`), and the HTTP
/// directions succeed without effect.
fn continue_network(state: &mut HostState, direction: StreamType) -> Result<(), Status> {
    match direction {
        StreamType::Downstream => {
            if let Some(stream) = state.stream_mut() {
                stream.resume = Some(direction);
            }
            Ok(())
        }
        StreamType::Upstream => Err(Status::Unimplemented),
        StreamType::Request | StreamType::Response => Ok(()),
    }
}

/// `proxy_close_stream` on a network connection: closing either direction
/// closes the client's connection (and with it the upstream's), as Envoy
/// does; the HTTP directions succeed without effect.
fn close_network(state: &mut HostState, direction: StreamType) {
    if matches!(direction, StreamType::Downstream | StreamType::Upstream)
        && let Some(stream) = state.stream_mut()
    {
        stream.close = true;
    }
}

/// Envoy resets the HTTP stream: the client gets no response.
fn proxy_close_stream(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
    linker.func_wrap(
        ENV,
        "proxy_close_stream",
        |mut caller: Caller<'_, HostState>, kind: i32| -> i32 {
            let result = match StreamType::from_code(kind) {
                Some(direction) if caller.data().in_network() => {
                    close_network(caller.data_mut(), direction);
                    Ok(())
                }
                Some(StreamType::Request | StreamType::Response) => {
                    if let Some(stream) = caller.data_mut().stream_mut() {
                        stream.close = true;
                    }
                    Ok(())
                }
                Some(_) => Err(Status::Unimplemented),
                None => Err(Status::BadArgument),
            };
            caller.data_mut().note(
                || format!("proxy_close_stream({kind})"),
                || status(result).name().to_owned(),
            );
            status(result).code()
        },
    )?;
    Ok(())
}

fn proxy_send_local_response(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
    linker.func_wrap(
        ENV,
        "proxy_send_local_response",
        |mut caller: Caller<'_, HostState>,
         code: i32,
         details_ptr: i32,
         details_size: i32,
         body_ptr: i32,
         body_size: i32,
         headers_ptr: i32,
         headers_size: i32,
         _grpc_status: i32|
         -> i32 {
            let details = memory::read(&mut caller, details_ptr, details_size);
            let body = memory::read(&mut caller, body_ptr, body_size);
            let headers = memory::read(&mut caller, headers_ptr, headers_size);
            let shown = (
                details.clone().unwrap_or_default(),
                body.clone().unwrap_or_default(),
            );
            let result = (|| {
                let (details, body, headers) = (details?, body?, headers?);
                let state = caller.data_mut();
                let details = state.info.profile.details(&details);
                if let Some(stream) = state.stream_mut() {
                    stream.local_reply = Some(LocalReply {
                        status: code.cast_unsigned(),
                        details,
                        body,
                        headers: decode_pairs(&headers),
                    });
                }
                Ok(())
            })();
            caller.data_mut().note(
                || {
                    format!(
                        "proxy_send_local_response({code}, {}, {})",
                        show(&shown.0),
                        show(&shown.1)
                    )
                },
                || status(result).name().to_owned(),
            );
            status(result).code()
        },
    )?;
    Ok(())
}

fn proxy_set_effective_context(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
    linker.func_wrap(
        ENV,
        "proxy_set_effective_context",
        |mut caller: Caller<'_, HostState>, context: i32| -> i32 {
            let id = context.cast_unsigned();
            let state = caller.data_mut();
            let result = if id == state.root_context || state.streams.contains_key(&id) {
                state.effective = Some(id);
                Ok(())
            } else {
                Err(Status::BadArgument)
            };
            state.note(
                || format!("proxy_set_effective_context({id})"),
                || status(result).name().to_owned(),
            );
            status(result).code()
        },
    )?;
    Ok(())
}

/// The root context says it has finished draining.
fn proxy_done(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
    linker.func_wrap(
        ENV,
        "proxy_done",
        |mut caller: Caller<'_, HostState>| -> i32 {
            let state = caller.data_mut();
            state.done_called = true;
            state.note(|| "proxy_done()".to_owned(), || "Ok".to_owned());
            0
        },
    )?;
    Ok(())
}

/// The harness has one route, so there is no cache to clear.
fn proxy_clear_route_cache(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
    linker.func_wrap(
        ENV,
        "proxy_clear_route_cache",
        |mut caller: Caller<'_, HostState>| -> i32 {
            caller.data_mut().note(
                || "proxy_clear_route_cache()".to_owned(),
                || "Ok".to_owned(),
            );
            0
        },
    )?;
    Ok(())
}
