//! Metrics: counters, gauges and histograms, shared by the plugin's VMs
//! as Envoy's stats store shares them across workers.

use wasmtime::{Caller, Linker};

use super::{ENV, status};
use crate::abi::{MetricKind, Status};
use crate::host::HostState;
use crate::memory;
use crate::transcript::show;

pub(super) fn add(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
    proxy_define_metric(linker)?;
    proxy_increment_metric(linker)?;
    proxy_record_metric(linker)?;
    proxy_get_metric(linker)?;
    Ok(())
}

fn proxy_define_metric(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
    linker.func_wrap(
        ENV,
        "proxy_define_metric",
        |mut caller: Caller<'_, HostState>,
         kind: i32,
         name_ptr: i32,
         name_size: i32,
         id_ptr: i32|
         -> i32 {
            let name = memory::read(&mut caller, name_ptr, name_size);
            let shown = name.clone().unwrap_or_default();
            let result = name.and_then(|name| {
                let kind = MetricKind::from_code(kind).ok_or(Status::BadArgument)?;
                let name = String::from_utf8(name).map_err(|_| Status::BadArgument)?;
                let id = caller.data().world.lock().define_metric(kind, &name);
                memory::write_u32(&mut caller, id_ptr, id).map(|()| id)
            });
            caller.data_mut().note(
                || format!("proxy_define_metric({kind}, {})", show(&shown)),
                || result.map_or_else(|s| s.name().to_owned(), |id| format!("Ok id {id}")),
            );
            status(result.map(|_| ())).code()
        },
    )?;
    Ok(())
}

fn proxy_increment_metric(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
    linker.func_wrap(
        ENV,
        "proxy_increment_metric",
        |mut caller: Caller<'_, HostState>, id: i32, offset: i64| -> i32 {
            let result = caller
                .data()
                .world
                .lock()
                .increment_metric(id.cast_unsigned(), offset);
            caller.data_mut().note(
                || format!("proxy_increment_metric({}, {offset})", id.cast_unsigned()),
                || result.name().to_owned(),
            );
            result.code()
        },
    )?;
    Ok(())
}

fn proxy_record_metric(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
    linker.func_wrap(
        ENV,
        "proxy_record_metric",
        |mut caller: Caller<'_, HostState>, id: i32, value: i64| -> i32 {
            let value = value.cast_unsigned();
            let result = caller
                .data()
                .world
                .lock()
                .record_metric(id.cast_unsigned(), value);
            caller.data_mut().note(
                || format!("proxy_record_metric({}, {value})", id.cast_unsigned()),
                || result.name().to_owned(),
            );
            result.code()
        },
    )?;
    Ok(())
}

fn proxy_get_metric(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
    linker.func_wrap(
        ENV,
        "proxy_get_metric",
        |mut caller: Caller<'_, HostState>, id: i32, value_ptr: i32| -> i32 {
            let value = caller.data().world.lock().get_metric(id.cast_unsigned());
            let result = value.and_then(|value| memory::write_u64(&mut caller, value_ptr, value));
            caller.data_mut().note(
                || format!("proxy_get_metric({})", id.cast_unsigned()),
                || match (value, result) {
                    (Ok(value), Ok(())) => format!("Ok {value}"),
                    _ => status(result).name().to_owned(),
                },
            );
            status(result).code()
        },
    )?;
    Ok(())
}
