//! Shared queues: a VM registers a queue under its `vm_id`, any VM may
//! resolve and enqueue to it, and the owner's root context hears of new
//! items through `proxy_on_queue_ready` once the current callback returns.

use wasmtime::{Caller, Linker};

use super::{ENV, status};
use crate::abi::Status;
use crate::host::HostState;
use crate::memory;
use crate::transcript::show;

pub(super) fn add(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
    proxy_register_shared_queue(linker)?;
    proxy_resolve_shared_queue(linker)?;
    proxy_enqueue_shared_queue(linker)?;
    proxy_dequeue_shared_queue(linker)?;
    Ok(())
}

fn proxy_register_shared_queue(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
    linker.func_wrap(
        ENV,
        "proxy_register_shared_queue",
        |mut caller: Caller<'_, HostState>, name_ptr: i32, name_size: i32, token_ptr: i32| -> i32 {
            let name = memory::read(&mut caller, name_ptr, name_size);
            let shown = name.clone().unwrap_or_default();
            let result = name.and_then(|name| {
                let state = caller.data();
                let (worker, root) = (state.worker, state.root_context);
                let vm_id = state.info.vm_id.clone();
                let token =
                    state
                        .world
                        .lock()
                        .register_queue(vm_id.as_bytes(), &name, worker, root);
                memory::write_u32(&mut caller, token_ptr, token).map(|()| token)
            });
            caller.data_mut().note(
                || format!("proxy_register_shared_queue({})", show(&shown)),
                || result.map_or_else(|s| s.name().to_owned(), |token| format!("Ok token {token}")),
            );
            status(result.map(|_| ())).code()
        },
    )?;
    Ok(())
}

fn proxy_resolve_shared_queue(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
    linker.func_wrap(
        ENV,
        "proxy_resolve_shared_queue",
        |mut caller: Caller<'_, HostState>,
         vm_ptr: i32,
         vm_size: i32,
         name_ptr: i32,
         name_size: i32,
         token_ptr: i32|
         -> i32 {
            let vm_id = memory::read(&mut caller, vm_ptr, vm_size);
            let name = memory::read(&mut caller, name_ptr, name_size);
            let shown = (
                vm_id.clone().unwrap_or_default(),
                name.clone().unwrap_or_default(),
            );
            let result = vm_id.and_then(|vm_id| {
                let name = name?;
                let token = caller
                    .data()
                    .world
                    .lock()
                    .resolve_queue(&vm_id, &name)
                    .ok_or(Status::NotFound)?;
                memory::write_u32(&mut caller, token_ptr, token).map(|()| token)
            });
            caller.data_mut().note(
                || {
                    format!(
                        "proxy_resolve_shared_queue({}, {})",
                        show(&shown.0),
                        show(&shown.1)
                    )
                },
                || result.map_or_else(|s| s.name().to_owned(), |token| format!("Ok token {token}")),
            );
            status(result.map(|_| ())).code()
        },
    )?;
    Ok(())
}

fn proxy_enqueue_shared_queue(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
    linker.func_wrap(
        ENV,
        "proxy_enqueue_shared_queue",
        |mut caller: Caller<'_, HostState>, token: i32, ptr: i32, size: i32| -> i32 {
            let value = memory::read(&mut caller, ptr, size);
            let shown = value.clone().unwrap_or_default();
            let result = value.and_then(|value| {
                match caller
                    .data()
                    .world
                    .lock()
                    .enqueue(token.cast_unsigned(), &value)
                {
                    Status::Ok => Ok(()),
                    failure => Err(failure),
                }
            });
            caller.data_mut().note(
                || {
                    format!(
                        "proxy_enqueue_shared_queue({}, {})",
                        token.cast_unsigned(),
                        show(&shown)
                    )
                },
                || status(result).name().to_owned(),
            );
            status(result).code()
        },
    )?;
    Ok(())
}

fn proxy_dequeue_shared_queue(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
    linker.func_wrap(
        ENV,
        "proxy_dequeue_shared_queue",
        |mut caller: Caller<'_, HostState>, token: i32, ptr_ptr: i32, size_ptr: i32| {
            let item = caller.data().world.lock().dequeue(token.cast_unsigned());
            let result = match &item {
                Ok(value) => memory::hand_over(&mut caller, value, ptr_ptr, size_ptr)?,
                Err(status) => Err(*status),
            };
            caller.data_mut().note(
                || format!("proxy_dequeue_shared_queue({})", token.cast_unsigned()),
                || match (&item, result) {
                    (Ok(value), Ok(())) => format!("Ok {}", show(value)),
                    _ => status(result).name().to_owned(),
                },
            );
            wasmtime::Result::Ok(status(result).code())
        },
    )?;
    Ok(())
}
