//! `proxy_log` and `proxy_get_log_level`.

use wasmtime::{Caller, Linker};

use super::{ENV, status};
use crate::abi::{LogLevel, Status};
use crate::host::HostState;
use crate::memory;
use crate::transcript::show;

pub(super) fn add(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
    proxy_log(linker)?;
    proxy_get_log_level(linker)?;
    Ok(())
}

fn proxy_log(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
    linker.func_wrap(
        ENV,
        "proxy_log",
        |mut caller: Caller<'_, HostState>, level: i32, ptr: i32, len: i32| -> i32 {
            let result = log(&mut caller, level, ptr, len);
            let message = memory::read(&mut caller, ptr, len).unwrap_or_default();
            let name = LogLevel::from_code(level).map_or("?", LogLevel::name);
            caller.data_mut().note(
                || format!("proxy_log({name}, {})", show(&message)),
                || status(result).name().to_owned(),
            );
            status(result).code()
        },
    )?;
    Ok(())
}

fn log(caller: &mut Caller<'_, HostState>, level: i32, ptr: i32, len: i32) -> Result<(), Status> {
    let level = LogLevel::from_code(level).ok_or(Status::BadArgument)?;
    let message = memory::read(caller, ptr, len)?;
    caller.data_mut().log(level, memory::text(&message));
    Ok(())
}

fn proxy_get_log_level(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
    linker.func_wrap(
        ENV,
        "proxy_get_log_level",
        |mut caller: Caller<'_, HostState>, ptr: i32| -> i32 {
            let level = caller.data().info.log_level;
            let result = memory::write_u32(&mut caller, ptr, level.code().cast_unsigned());
            caller.data_mut().note(
                || "proxy_get_log_level()".to_owned(),
                || format!("{} {}", status(result).name(), level.name()),
            );
            status(result).code()
        },
    )?;
    Ok(())
}
