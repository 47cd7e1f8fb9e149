//! gRPC calls and streams, foreign functions and `proxy_get_status`.
//!
//! The harness has no gRPC upstreams: the gRPC calls return
//! `Unimplemented` where Envoy would start a call. Foreign functions are
//! Envoy extensions (`compress`, `declare_property`, ...) the harness does
//! not offer: `NotFound`, as Envoy answers for a name it does not know.

use wasmtime::{Caller, Linker};

use super::{ENV, status};
use crate::abi::Status;
use crate::host::HostState;
use crate::memory;
use crate::transcript::show;

pub(super) fn add(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
    proxy_grpc_call(linker)?;
    proxy_grpc_stream(linker)?;
    proxy_grpc_send(linker)?;
    proxy_grpc_cancel(linker)?;
    proxy_grpc_close(linker)?;
    proxy_call_foreign_function(linker)?;
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

fn proxy_call_foreign_function(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
    linker.func_wrap(
        ENV,
        "proxy_call_foreign_function",
        |mut caller: Caller<'_, HostState>,
         name_ptr: i32,
         name_size: i32,
         _: i32,
         _: i32,
         _: i32,
         _: i32|
         -> i32 {
            let name = memory::read(&mut caller, name_ptr, name_size);
            let result: Result<(), Status> = name.clone().and(Err(Status::NotFound));
            caller.data_mut().note(
                || {
                    format!(
                        "proxy_call_foreign_function({})",
                        show(&name.unwrap_or_default())
                    )
                },
                || status(result).name().to_owned(),
            );
            status(result).code()
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
