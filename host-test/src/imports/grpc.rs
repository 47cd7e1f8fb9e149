//! gRPC calls and streams and `proxy_get_status`.
//!
//! Calls and streams belong to the root context, whichever context opens
//! them, as in Envoy; they go to the scripted upstreams of
//! [`crate::grpc`], which also says what the filter hears back and when.

use wasmtime::{Caller, Linker};

use super::{ENV, status};
use crate::abi::{Status, decode_pairs};
use crate::grpc::{Calls, Opening, Upstreams};
use crate::host::HostState;
use crate::memory;
use crate::transcript::show;

pub(super) fn add(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
    proxy_grpc_call(linker)?;
    proxy_grpc_stream(linker)?;
    proxy_grpc_send(linker)?;
    proxy_grpc_cancel(linker)?;
    proxy_grpc_close(linker)?;
    proxy_get_status(linker)?;
    Ok(())
}

/// What `proxy_grpc_call` and `proxy_grpc_stream` read from the guest;
/// any pointer outside memory is `InvalidMemoryAccess` before anything
/// starts, as in Envoy.
struct Arguments {
    target: (i32, i32),
    service: (i32, i32),
    method: (i32, i32),
    metadata: (i32, i32),
    request: Option<(i32, i32)>,
    timeout_ms: u32,
}

fn read_opening(
    caller: &mut Caller<'_, HostState>,
    arguments: &Arguments,
) -> Result<Opening, Status> {
    let mut read = |(ptr, size): (i32, i32)| memory::read(caller, ptr, size);
    let target = read(arguments.target)?;
    let service = read(arguments.service)?;
    let method = read(arguments.method)?;
    let metadata = read(arguments.metadata)?;
    let request = arguments.request.map(&mut read).transpose()?;
    Ok(Opening {
        target,
        service: memory::text(&service),
        method: memory::text(&method),
        metadata: decode_pairs(&metadata),
        request,
        timeout_ms: arguments.timeout_ms,
    })
}

/// Opens a call or stream and stores its token. Like Envoy, a token that
/// cannot be stored leaves the call running and reports
/// `InvalidMemoryAccess`.
fn open(
    caller: &mut Caller<'_, HostState>,
    name: &str,
    arguments: &Arguments,
    token_ptr: i32,
) -> i32 {
    let opening = read_opening(caller, arguments);
    let shown = opening.as_ref().map_or_else(
        |_| String::new(),
        |o| format!("{}, {}/{}", show(&o.target), o.service, o.method),
    );
    let result = opening.and_then(|opening| {
        let state = caller.data_mut();
        let now = state.now_ns();
        let world = state.world.clone();
        let mut shared = world.lock();
        let token = state.grpc.open(&mut shared.grpc, opening, now)?;
        drop(shared);
        memory::write_u32(caller, token_ptr, token)?;
        Ok(token)
    });
    caller.data_mut().note(
        || format!("{name}({shown})"),
        || match result {
            Ok(token) => format!("Ok token {token}"),
            Err(status) => status.name().to_owned(),
        },
    );
    status(result.map(|_| ())).code()
}

fn proxy_grpc_call(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
    linker.func_wrap(
        ENV,
        "proxy_grpc_call",
        |mut caller: Caller<'_, HostState>,
         target_ptr: i32,
         target_size: i32,
         service_ptr: i32,
         service_size: i32,
         method_ptr: i32,
         method_size: i32,
         metadata_ptr: i32,
         metadata_size: i32,
         request_ptr: i32,
         request_size: i32,
         timeout_ms: i32,
         token_ptr: i32|
         -> i32 {
            let arguments = Arguments {
                target: (target_ptr, target_size),
                service: (service_ptr, service_size),
                method: (method_ptr, method_size),
                metadata: (metadata_ptr, metadata_size),
                request: Some((request_ptr, request_size)),
                timeout_ms: timeout_ms.cast_unsigned(),
            };
            open(&mut caller, "proxy_grpc_call", &arguments, token_ptr)
        },
    )?;
    Ok(())
}

fn proxy_grpc_stream(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
    linker.func_wrap(
        ENV,
        "proxy_grpc_stream",
        |mut caller: Caller<'_, HostState>,
         target_ptr: i32,
         target_size: i32,
         service_ptr: i32,
         service_size: i32,
         method_ptr: i32,
         method_size: i32,
         metadata_ptr: i32,
         metadata_size: i32,
         token_ptr: i32|
         -> i32 {
            let arguments = Arguments {
                target: (target_ptr, target_size),
                service: (service_ptr, service_size),
                method: (method_ptr, method_size),
                metadata: (metadata_ptr, metadata_size),
                request: None,
                timeout_ms: 0,
            };
            open(&mut caller, "proxy_grpc_stream", &arguments, token_ptr)
        },
    )?;
    Ok(())
}

fn proxy_grpc_send(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
    linker.func_wrap(
        ENV,
        "proxy_grpc_send",
        |mut caller: Caller<'_, HostState>,
         token: i32,
         message_ptr: i32,
         message_size: i32,
         end_stream: i32|
         -> i32 {
            let token = token.cast_unsigned();
            let message = memory::read(&mut caller, message_ptr, message_size);
            let shown = message.clone().unwrap_or_default();
            let result = message.and_then(|message| {
                with_calls(caller.data_mut(), |calls, upstreams, now| {
                    calls.send(upstreams, token, &message, end_stream != 0, now)
                })
            });
            caller.data_mut().note(
                || {
                    format!(
                        "proxy_grpc_send({token}, {}, {})",
                        show(&shown),
                        end_stream != 0
                    )
                },
                || status(result).name().to_owned(),
            );
            status(result).code()
        },
    )?;
    Ok(())
}

fn proxy_grpc_cancel(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
    linker.func_wrap(
        ENV,
        "proxy_grpc_cancel",
        |mut caller: Caller<'_, HostState>, token: i32| -> i32 {
            let token = token.cast_unsigned();
            let result = with_calls(caller.data_mut(), |calls, upstreams, _| {
                calls.cancel(upstreams, token)
            });
            caller.data_mut().note(
                || format!("proxy_grpc_cancel({token})"),
                || status(result).name().to_owned(),
            );
            status(result).code()
        },
    )?;
    Ok(())
}

fn proxy_grpc_close(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
    linker.func_wrap(
        ENV,
        "proxy_grpc_close",
        |mut caller: Caller<'_, HostState>, token: i32| -> i32 {
            let token = token.cast_unsigned();
            let result = with_calls(caller.data_mut(), |calls, upstreams, now| {
                calls.close(upstreams, token, now)
            });
            caller.data_mut().note(
                || format!("proxy_grpc_close({token})"),
                || status(result).name().to_owned(),
            );
            status(result).code()
        },
    )?;
    Ok(())
}

/// Runs `f` on the VM's calls with the plugin's gRPC upstreams and clock.
fn with_calls<T>(state: &mut HostState, f: impl FnOnce(&mut Calls, &mut Upstreams, u64) -> T) -> T {
    let now = state.now_ns();
    let world = state.world.clone();
    let mut shared = world.lock();
    f(&mut state.grpc, &mut shared.grpc, now)
}

/// The status of the last gRPC close: its code (0 until a call or stream
/// closes, and kept afterwards) and, while `proxy_on_grpc_close` runs, its
/// message; outside that callback the message is a null pointer, as in
/// Envoy.
fn proxy_get_status(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
    linker.func_wrap(
        ENV,
        "proxy_get_status",
        |mut caller: Caller<'_, HostState>, code_ptr: i32, ptr_ptr: i32, size_ptr: i32| {
            let (code, message) = caller.data().grpc_status.clone();
            let message = message.unwrap_or_default();
            let result = match memory::write_u32(&mut caller, code_ptr, code) {
                Ok(()) => memory::hand_over(&mut caller, &message, ptr_ptr, size_ptr)?,
                Err(status) => Err(status),
            };
            caller.data_mut().note(
                || "proxy_get_status()".to_owned(),
                || match result {
                    Ok(()) => format!("Ok {code} {}", show(&message)),
                    Err(status) => status.name().to_owned(),
                },
            );
            wasmtime::Result::Ok(status(result).code())
        },
    )?;
    Ok(())
}
