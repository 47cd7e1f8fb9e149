//! A proxy-wasm filter for ABI 0.2.0, on the raw ABI: request headers
//! answer the number the plugin configuration gives (1, `StopIteration`,
//! by default); the root context's next tick makes the paused stream effective
//! and resumes it with `proxy_continue_stream`. Every status is logged at
//! `info`. (Envoy 1.40 has no `proxy_continue_request` or
//! `proxy_continue_response` to import.)

use std::cell::Cell;

mod host {
    #[link(wasm_import_module = "env")]
    unsafe extern "C" {
        pub fn proxy_log(level: u32, data: *const u8, size: usize) -> u32;
        pub fn proxy_set_tick_period_milliseconds(period: u32) -> u32;
        pub fn proxy_set_effective_context(context: u32) -> u32;
        pub fn proxy_continue_stream(stream: u32) -> u32;
        pub fn proxy_get_buffer_bytes(
            buffer: u32,
            start: usize,
            max: usize,
            data: *mut *mut u8,
            size: *mut usize,
        ) -> u32;
    }
}

thread_local! {
    static PAUSED: Cell<u32> = const { Cell::new(0) };
    /// What `proxy_on_request_headers` returns: the plugin configuration,
    /// a number. Defaults to 1 (`StopIteration`).
    static ANSWER: Cell<u32> = const { Cell::new(1) };
}

/// The plugin configuration (buffer type 7) as a number, if it is one.
fn configured_answer(size: u32) -> Option<u32> {
    let mut data: *mut u8 = std::ptr::null_mut();
    let mut got: usize = 0;
    // SAFETY: the host writes a pointer it allocated with
    // `proxy_on_memory_allocate` and its size into the two locals.
    let bytes = unsafe {
        if host::proxy_get_buffer_bytes(7, 0, size as usize, &mut data, &mut got) != 0 || data.is_null() {
            return None;
        }
        Vec::from_raw_parts(data, got, got)
    };
    std::str::from_utf8(&bytes).ok()?.trim().parse().ok()
}

fn log(text: &str) {
    // SAFETY: the pointer and size describe a live string.
    unsafe {
        host::proxy_log(2, text.as_ptr(), text.len());
    }
}

#[unsafe(no_mangle)]
pub extern "C" fn proxy_abi_version_0_2_0() {}

#[unsafe(no_mangle)]
pub extern "C" fn proxy_on_memory_allocate(size: usize) -> *mut u8 {
    let mut buffer: Vec<u8> = Vec::with_capacity(size);
    let pointer = buffer.as_mut_ptr();
    std::mem::forget(buffer);
    pointer
}

#[unsafe(no_mangle)]
pub extern "C" fn proxy_on_context_create(_context: u32, root: u32) {
    if root == 0 {
        log("root_context: created");
    } else {
        log("stream_context: created");
    }
}

#[unsafe(no_mangle)]
pub extern "C" fn proxy_on_vm_start(_root: u32, _size: u32) -> u32 {
    log("vm_start: started");
    1
}

#[unsafe(no_mangle)]
pub extern "C" fn proxy_on_configure(_root: u32, size: u32) -> u32 {
    if let Some(answer) = configured_answer(size) {
        ANSWER.set(answer);
    }
    // SAFETY: a plain host call.
    let status = unsafe { host::proxy_set_tick_period_milliseconds(500) };
    log(&format!("configure: tick period = {status}, request headers answer {}", ANSWER.get()));
    1
}

#[unsafe(no_mangle)]
pub extern "C" fn proxy_on_request_headers(context: u32, headers: u32, end: u32) -> u32 {
    log(&format!("request_headers: {headers} headers, end_of_stream = {end}"));
    PAUSED.set(context);
    ANSWER.get()
}

#[unsafe(no_mangle)]
pub extern "C" fn proxy_on_tick(_root: u32) {
    let paused = PAUSED.replace(0);
    if paused == 0 {
        return;
    }
    // SAFETY: plain host calls.
    let (effective, resumed) = unsafe {
        (
            host::proxy_set_effective_context(paused),
            host::proxy_continue_stream(0),
        )
    };
    log(&format!("tick: effective = {effective}, continue_stream(request) = {resumed}"));
}

#[unsafe(no_mangle)]
pub extern "C" fn proxy_on_response_headers(_context: u32, headers: u32, end: u32) -> u32 {
    log(&format!("response_headers: {headers} headers, end_of_stream = {end}"));
    0
}

#[unsafe(no_mangle)]
pub extern "C" fn proxy_on_log(_context: u32) {
    log("log: stream ends");
}

#[unsafe(no_mangle)]
pub extern "C" fn proxy_on_done(_context: u32) -> u32 {
    1
}

#[unsafe(no_mangle)]
pub extern "C" fn proxy_on_delete(_context: u32) {}
