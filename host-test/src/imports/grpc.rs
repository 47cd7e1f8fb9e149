//! gRPC calls and streams and `proxy_get_status`.
//!
//! The harness has no gRPC upstreams: the gRPC calls return
//! `Unimplemented` where Envoy would start a call.

use wasmtime::{Caller, Linker};

use super::{ENV, status};
use crate::abi::Status;
use crate::host::HostState;
use crate::memory;

pub(super) fn add(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
    proxy_grpc_call(linker)?;
    proxy_grpc_stream(linker)?;
    proxy_grpc_send(linker)?;
    proxy_grpc_cancel(linker)?;
    proxy_grpc_close(linker)?;
    proxy_get_status(linker)?;
    Ok(())
}

fn unimplemented(caller: &mut Caller<'_, HostState>, name: &'static str) -> i32 {
    caller.data_mut().note(
        || format!("{name}(…)"),
        || Status::Unimplemented.name().to_owned(),
    );
    Status::Unimplemented.code()
}

fn proxy_grpc_call(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
    linker.func_wrap(
        ENV,
        "proxy_grpc_call",
        |mut caller: Caller<'_, HostState>,
         _: i32,
         _: i32,
         _: i32,
         _: i32,
         _: i32,
         _: i32,
         _: i32,
         _: i32,
         _: i32,
         _: i32,
         _: i32,
         _: i32|
         -> i32 { unimplemented(&mut caller, "proxy_grpc_call") },
    )?;
    Ok(())
}

fn proxy_grpc_stream(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
    linker.func_wrap(
        ENV,
        "proxy_grpc_stream",
        |mut caller: Caller<'_, HostState>,
         _: i32,
         _: i32,
         _: i32,
         _: i32,
         _: i32,
         _: i32,
         _: i32,
         _: i32,
         _: i32|
         -> i32 { unimplemented(&mut caller, "proxy_grpc_stream") },
    )?;
    Ok(())
}

fn proxy_grpc_send(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
    linker.func_wrap(
        ENV,
        "proxy_grpc_send",
        |mut caller: Caller<'_, HostState>, _: i32, _: i32, _: i32, _: i32| -> i32 {
            unimplemented(&mut caller, "proxy_grpc_send")
        },
    )?;
    Ok(())
}

fn proxy_grpc_cancel(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
    linker.func_wrap(
        ENV,
        "proxy_grpc_cancel",
        |mut caller: Caller<'_, HostState>, _: i32| -> i32 {
            unimplemented(&mut caller, "proxy_grpc_cancel")
        },
    )?;
    Ok(())
}

fn proxy_grpc_close(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
    linker.func_wrap(
        ENV,
        "proxy_grpc_close",
        |mut caller: Caller<'_, HostState>, _: i32| -> i32 {
            unimplemented(&mut caller, "proxy_grpc_close")
        },
    )?;
    Ok(())
}

/// The status of the last gRPC call: with no gRPC, always `0` and no
/// message.
fn proxy_get_status(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
    linker.func_wrap(
        ENV,
        "proxy_get_status",
        |mut caller: Caller<'_, HostState>, code_ptr: i32, ptr_ptr: i32, size_ptr: i32| -> i32 {
            let result = memory::write_u32(&mut caller, code_ptr, 0)
                .and_then(|()| memory::write_u32(&mut caller, ptr_ptr, 0))
                .and_then(|()| memory::write_u32(&mut caller, size_ptr, 0));
            caller.data_mut().note(
                || "proxy_get_status()".to_owned(),
                || status(result).name().to_owned(),
            );
            status(result).code()
        },
    )?;
    Ok(())
}
