//! The clock and the root context's tick timer.
//!
//! The clock is the plugin's controllable clock, shared by its VMs; it
//! moves only when the test advances it, or when the harness jumps to the
//! next timer while a stream waits.

use wasmtime::{Caller, Linker};

use super::{ENV, status};
use crate::host::HostState;
use crate::memory;

pub(super) fn add(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
    proxy_get_current_time_nanoseconds(linker)?;
    proxy_set_tick_period_milliseconds(linker)?;
    Ok(())
}

fn proxy_get_current_time_nanoseconds(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
    linker.func_wrap(
        ENV,
        "proxy_get_current_time_nanoseconds",
        |mut caller: Caller<'_, HostState>, ptr: i32| -> i32 {
            let now = caller.data().now_ns();
            let result = memory::write_u64(&mut caller, ptr, now);
            caller.data_mut().note(
                || "proxy_get_current_time_nanoseconds()".to_owned(),
                || format!("{} {now}", status(result).name()),
            );
            status(result).code()
        },
    )?;
    Ok(())
}

/// Envoy keeps one tick timer per root context; a period of zero stops it.
/// The first tick fires one period after the call.
fn proxy_set_tick_period_milliseconds(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
    linker.func_wrap(
        ENV,
        "proxy_set_tick_period_milliseconds",
        |mut caller: Caller<'_, HostState>, period: i32| -> i32 {
            let period = period.cast_unsigned();
            let state = caller.data_mut();
            let now = state.now_ns();
            state.tick_period_ms = period;
            state.next_tick_ns =
                (period > 0).then(|| now.saturating_add(u64::from(period) * 1_000_000));
            state.note(
                || format!("proxy_set_tick_period_milliseconds({period})"),
                || "Ok".into(),
            );
            0
        },
    )?;
    Ok(())
}
