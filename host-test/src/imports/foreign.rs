//! Foreign functions: Envoy's extensions to the ABI, called by name
//! through `proxy_call_foreign_function`.
//!
//! The harness offers none yet: `NotFound`, as Envoy answers for a name
//! it does not know.

use wasmtime::{Caller, Linker};

use super::{ENV, status};
use crate::abi::Status;
use crate::host::HostState;
use crate::memory;
use crate::transcript::show;

pub(super) fn add(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
    proxy_call_foreign_function(linker)
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
