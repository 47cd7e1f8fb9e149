//! Shared data: a key-value store every VM of the plugin sees, with
//! compare-and-swap tokens.

use wasmtime::{Caller, Linker};

use super::{ENV, status};
use crate::abi::Status;
use crate::host::HostState;
use crate::memory;
use crate::transcript::show;

pub(super) fn add(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
    proxy_get_shared_data(linker)?;
    proxy_set_shared_data(linker)?;
    Ok(())
}

fn proxy_get_shared_data(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
    linker.func_wrap(
        ENV,
        "proxy_get_shared_data",
        |mut caller: Caller<'_, HostState>,
         key_ptr: i32,
         key_size: i32,
         ptr_ptr: i32,
         size_ptr: i32,
         cas_ptr: i32| {
            let key = memory::read(&mut caller, key_ptr, key_size);
            let found = key.clone().and_then(|key| {
                caller
                    .data()
                    .world
                    .lock()
                    .get_shared(&key)
                    .ok_or(Status::NotFound)
            });
            let result = match &found {
                Ok((value, cas)) => match memory::hand_over(&mut caller, value, ptr_ptr, size_ptr)?
                {
                    Ok(()) => memory::write_u32(&mut caller, cas_ptr, *cas),
                    Err(status) => Err(status),
                },
                Err(status) => Err(*status),
            };
            caller.data_mut().note(
                || format!("proxy_get_shared_data({})", show(&key.unwrap_or_default())),
                || match (&found, result) {
                    (Ok((value, cas)), Ok(())) => format!("Ok {} cas {cas}", show(value)),
                    _ => status(result).name().to_owned(),
                },
            );
            wasmtime::Result::Ok(status(result).code())
        },
    )?;
    Ok(())
}

fn proxy_set_shared_data(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
    linker.func_wrap(
        ENV,
        "proxy_set_shared_data",
        |mut caller: Caller<'_, HostState>,
         key_ptr: i32,
         key_size: i32,
         value_ptr: i32,
         value_size: i32,
         cas: i32|
         -> i32 {
            let key = memory::read(&mut caller, key_ptr, key_size);
            let value = memory::read(&mut caller, value_ptr, value_size);
            let shown = (
                key.clone().unwrap_or_default(),
                value.clone().unwrap_or_default(),
            );
            let result = key.and_then(|key| {
                let value = value?;
                match caller
                    .data()
                    .world
                    .lock()
                    .set_shared(&key, &value, cas.cast_unsigned())
                {
                    Status::Ok => Ok(()),
                    failure => Err(failure),
                }
            });
            caller.data_mut().note(
                || {
                    format!(
                        "proxy_set_shared_data({}, {}, cas {})",
                        show(&shown.0),
                        show(&shown.1),
                        cas.cast_unsigned()
                    )
                },
                || status(result).name().to_owned(),
            );
            status(result).code()
        },
    )?;
    Ok(())
}
