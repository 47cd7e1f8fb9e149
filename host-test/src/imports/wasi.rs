//! The WASI functions Envoy provides, with Envoy's answers.
//!
//! Filters built for `wasm32-wasip1` import these through their standard
//! library. Envoy offers no file system: standard output becomes `info`
//! log lines and standard error `error` lines (one per write, a trailing
//! newline dropped), reads fail with `ENOSYS`, there are no preopened
//! directories and no arguments. `proc_exit` fails the VM. Registered
//! under both `wasi_snapshot_preview1` and `wasi_unstable`.

use wasmtime::{Caller, Linker};

use crate::abi::LogLevel;
use crate::host::HostState;
use crate::memory;
use crate::transcript::show;

const SUCCESS: i32 = 0;
const EBADF: i32 = 8;
const EFAULT: i32 = 21;
const ENOSYS: i32 = 52;
const ENOTSUP: i32 = 58;

const MODULES: [&str; 2] = ["wasi_snapshot_preview1", "wasi_unstable"];

pub(super) fn add(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
    for module in MODULES {
        fd_write(linker, module)?;
        fd_read(linker, module)?;
        fd_seek(linker, module)?;
        fd_close(linker, module)?;
        fd_fdstat_get(linker, module)?;
        fd_prestat_get(linker, module)?;
        fd_prestat_dir_name(linker, module)?;
        environ_get(linker, module)?;
        environ_sizes_get(linker, module)?;
        args_get(linker, module)?;
        args_sizes_get(linker, module)?;
        clock_time_get(linker, module)?;
        clock_res_get(linker, module)?;
        random_get(linker, module)?;
        sched_yield(linker, module)?;
        poll_oneoff(linker, module)?;
        proc_exit(linker, module)?;
    }
    Ok(())
}

fn errno(result: Result<(), crate::abi::Status>) -> i32 {
    if result.is_ok() { SUCCESS } else { EFAULT }
}

fn fd_write(linker: &mut Linker<HostState>, module: &str) -> wasmtime::Result<()> {
    linker.func_wrap(
        module,
        "fd_write",
        |mut caller: Caller<'_, HostState>,
         fd: i32,
         iovs: i32,
         iovs_len: i32,
         written_ptr: i32|
         -> i32 {
            let level = match fd {
                1 => LogLevel::Info,
                2 => LogLevel::Error,
                _ => return EBADF,
            };
            let Some(text) = gather(&mut caller, iovs, iovs_len) else {
                return EFAULT;
            };
            let written = crate::abi::len_u32(text.len());
            let line = text.strip_suffix(b"\n").unwrap_or(&text);
            if !text.is_empty() {
                caller.data_mut().log(level, memory::text(line));
            }
            caller.data_mut().note(
                || format!("fd_write({fd}, {})", show(&text)),
                || "0".to_owned(),
            );
            errno(memory::write_u32(&mut caller, written_ptr, written))
        },
    )?;
    Ok(())
}

/// Concatenates the buffers of an iovec array; `None` if any lies outside
/// memory.
fn gather(caller: &mut Caller<'_, HostState>, iovs: i32, count: i32) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    for index in 0..count.max(0) {
        let entry = memory::read(caller, iovs.checked_add(index.checked_mul(8)?)?, 8).ok()?;
        let ptr = i32::from_le_bytes(entry.get(0..4)?.try_into().ok()?);
        let len = i32::from_le_bytes(entry.get(4..8)?.try_into().ok()?);
        if len != 0 {
            out.extend(memory::read(caller, ptr, len).ok()?);
        }
    }
    Some(out)
}

fn fd_read(linker: &mut Linker<HostState>, module: &str) -> wasmtime::Result<()> {
    linker.func_wrap(
        module,
        "fd_read",
        |_: Caller<'_, HostState>, _: i32, _: i32, _: i32, _: i32| -> i32 { ENOSYS },
    )?;
    Ok(())
}

fn fd_seek(linker: &mut Linker<HostState>, module: &str) -> wasmtime::Result<()> {
    linker.func_wrap(
        module,
        "fd_seek",
        |_: Caller<'_, HostState>, _: i32, _: i64, _: i32, _: i32| -> i32 { SUCCESS },
    )?;
    Ok(())
}

fn fd_close(linker: &mut Linker<HostState>, module: &str) -> wasmtime::Result<()> {
    linker.func_wrap(
        module,
        "fd_close",
        |_: Caller<'_, HostState>, _: i32| -> i32 { SUCCESS },
    )?;
    Ok(())
}

/// Only standard output and error exist, writable.
fn fd_fdstat_get(linker: &mut Linker<HostState>, module: &str) -> wasmtime::Result<()> {
    linker.func_wrap(
        module,
        "fd_fdstat_get",
        |mut caller: Caller<'_, HostState>, fd: i32, stat: i32| -> i32 {
            if fd != 1 && fd != 2 {
                return EBADF;
            }
            let mut bytes = [0u8; 24];
            if let Some(rights) = bytes.get_mut(8..16) {
                rights.copy_from_slice(&64u64.to_le_bytes());
            }
            errno(memory::write(&mut caller, stat, &bytes))
        },
    )?;
    Ok(())
}

fn fd_prestat_get(linker: &mut Linker<HostState>, module: &str) -> wasmtime::Result<()> {
    linker.func_wrap(
        module,
        "fd_prestat_get",
        |_: Caller<'_, HostState>, _: i32, _: i32| -> i32 { EBADF },
    )?;
    Ok(())
}

fn fd_prestat_dir_name(linker: &mut Linker<HostState>, module: &str) -> wasmtime::Result<()> {
    linker.func_wrap(
        module,
        "fd_prestat_dir_name",
        |_: Caller<'_, HostState>, _: i32, _: i32, _: i32| -> i32 { ENOSYS },
    )?;
    Ok(())
}

fn environment(caller: &Caller<'_, HostState>) -> Vec<Vec<u8>> {
    caller
        .data()
        .info
        .environment
        .iter()
        .map(|(k, v)| format!("{k}={v}\0").into_bytes())
        .collect()
}

fn environ_get(linker: &mut Linker<HostState>, module: &str) -> wasmtime::Result<()> {
    linker.func_wrap(
        module,
        "environ_get",
        |mut caller: Caller<'_, HostState>, array: i32, buf: i32| -> i32 {
            let (mut array, mut buf) = (array, buf);
            for entry in environment(&caller) {
                let Ok(len) = i32::try_from(entry.len()) else {
                    return EFAULT;
                };
                if memory::write_u32(&mut caller, array, buf.cast_unsigned()).is_err()
                    || memory::write(&mut caller, buf, &entry).is_err()
                {
                    return EFAULT;
                }
                array = array.wrapping_add(4);
                buf = buf.wrapping_add(len);
            }
            SUCCESS
        },
    )?;
    Ok(())
}

fn environ_sizes_get(linker: &mut Linker<HostState>, module: &str) -> wasmtime::Result<()> {
    linker.func_wrap(
        module,
        "environ_sizes_get",
        |mut caller: Caller<'_, HostState>, count: i32, size: i32| -> i32 {
            let entries = environment(&caller);
            let total: usize = entries.iter().map(Vec::len).sum();
            errno(
                memory::write_u32(&mut caller, count, crate::abi::len_u32(entries.len())).and_then(
                    |()| memory::write_u32(&mut caller, size, crate::abi::len_u32(total)),
                ),
            )
        },
    )?;
    Ok(())
}

fn args_get(linker: &mut Linker<HostState>, module: &str) -> wasmtime::Result<()> {
    linker.func_wrap(
        module,
        "args_get",
        |_: Caller<'_, HostState>, _: i32, _: i32| -> i32 { SUCCESS },
    )?;
    Ok(())
}

fn args_sizes_get(linker: &mut Linker<HostState>, module: &str) -> wasmtime::Result<()> {
    linker.func_wrap(
        module,
        "args_sizes_get",
        |mut caller: Caller<'_, HostState>, count: i32, size: i32| -> i32 {
            errno(
                memory::write_u32(&mut caller, count, 0)
                    .and_then(|()| memory::write_u32(&mut caller, size, 0)),
            )
        },
    )?;
    Ok(())
}

/// The realtime and monotonic clocks both read the plugin's clock.
fn clock_time_get(linker: &mut Linker<HostState>, module: &str) -> wasmtime::Result<()> {
    linker.func_wrap(
        module,
        "clock_time_get",
        |mut caller: Caller<'_, HostState>, clock: i32, _precision: i64, ptr: i32| -> i32 {
            if clock != 0 && clock != 1 {
                return ENOTSUP;
            }
            let now = caller.data().now_ns();
            errno(memory::write_u64(&mut caller, ptr, now))
        },
    )?;
    Ok(())
}

fn clock_res_get(linker: &mut Linker<HostState>, module: &str) -> wasmtime::Result<()> {
    linker.func_wrap(
        module,
        "clock_res_get",
        |mut caller: Caller<'_, HostState>, _: i32, ptr: i32| -> i32 {
            errno(memory::write_u64(&mut caller, ptr, 1))
        },
    )?;
    Ok(())
}

/// Deterministic bytes, so that a run repeats exactly; Envoy's are random.
fn random_get(linker: &mut Linker<HostState>, module: &str) -> wasmtime::Result<()> {
    linker.func_wrap(
        module,
        "random_get",
        |mut caller: Caller<'_, HostState>, ptr: i32, len: i32| -> i32 {
            let Ok(len) = usize::try_from(len) else {
                return EFAULT;
            };
            if len > 1 << 20 {
                return EFAULT;
            }
            let bytes = caller.data_mut().random_bytes(len);
            errno(memory::write(&mut caller, ptr, &bytes))
        },
    )?;
    Ok(())
}

fn sched_yield(linker: &mut Linker<HostState>, module: &str) -> wasmtime::Result<()> {
    linker.func_wrap(module, "sched_yield", |_: Caller<'_, HostState>| -> i32 {
        SUCCESS
    })?;
    Ok(())
}

fn poll_oneoff(linker: &mut Linker<HostState>, module: &str) -> wasmtime::Result<()> {
    linker.func_wrap(
        module,
        "poll_oneoff",
        |_: Caller<'_, HostState>, _: i32, _: i32, _: i32, _: i32| -> i32 { ENOSYS },
    )?;
    Ok(())
}

fn proc_exit(linker: &mut Linker<HostState>, module: &str) -> wasmtime::Result<()> {
    linker.func_wrap(
        module,
        "proc_exit",
        |_: Caller<'_, HostState>, code: i32| -> wasmtime::Result<()> {
            Err(wasmtime::format_err!("proc_exit({code})"))
        },
    )?;
    Ok(())
}
