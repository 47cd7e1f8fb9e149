//! `proxy_get_property` and `proxy_set_property`.
//!
//! Paths arrive as NUL-separated segments (`source\0address`). Values are
//! computed by the [`Profile`](crate::Profile); a value the filter set is
//! kept per stream, as Envoy keeps it in the stream's filter state, and
//! read back under the same path.

use wasmtime::{Caller, Linker};

use super::{ENV, status};
use crate::abi::Status;
use crate::host::HostState;
use crate::memory;
use crate::transcript::show;

pub(super) fn add(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
    proxy_get_property(linker)?;
    proxy_set_property(linker)?;
    Ok(())
}

fn dotted(path: &[u8]) -> String {
    path.split(|&byte| byte == 0)
        .map(|part| String::from_utf8_lossy(part))
        .collect::<Vec<_>>()
        .join(".")
}

fn proxy_get_property(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
    linker.func_wrap(
        ENV,
        "proxy_get_property",
        |mut caller: Caller<'_, HostState>,
         path_ptr: i32,
         path_size: i32,
         ptr_ptr: i32,
         size_ptr: i32| {
            let path = memory::read(&mut caller, path_ptr, path_size);
            let value = path.clone().and_then(|path| caller.data().property(&path));
            let result = match &value {
                Ok(value) => memory::hand_over(&mut caller, value, ptr_ptr, size_ptr)?,
                Err(status) => Err(*status),
            };
            caller.data_mut().note(
                || format!("proxy_get_property({})", dotted(&path.unwrap_or_default())),
                || match (&value, result) {
                    (Ok(value), Ok(())) => format!("Ok {}", show(value)),
                    _ => status(result).name().to_owned(),
                },
            );
            wasmtime::Result::Ok(status(result).code())
        },
    )?;
    Ok(())
}

fn proxy_set_property(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
    linker.func_wrap(
        ENV,
        "proxy_set_property",
        |mut caller: Caller<'_, HostState>,
         path_ptr: i32,
         path_size: i32,
         ptr: i32,
         size: i32|
         -> i32 {
            let path = memory::read(&mut caller, path_ptr, path_size);
            let value = memory::read(&mut caller, ptr, size);
            let shown = (
                path.clone().unwrap_or_default(),
                value.clone().unwrap_or_default(),
            );
            let result = path.and_then(|path| {
                let value = value?;
                let state = caller.data_mut();
                let readonly = state.declared.readonly(state.root_context, &path);
                let stream = state.stream_mut().ok_or(Status::NotFound)?;
                if readonly && stream.filter_state.contains_key(&dotted(&path)) {
                    // Envoy's read-only filter state takes one value.
                    return Err(Status::BadArgument);
                }
                stream.filter_state.insert(dotted(&path), value);
                Ok(())
            });
            caller.data_mut().note(
                || {
                    format!(
                        "proxy_set_property({}, {})",
                        dotted(&shown.0),
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
