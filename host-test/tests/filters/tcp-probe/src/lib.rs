//! The TCP probe: a network filter that runs the operations its
//! configuration lists for each callback and logs every result at
//! `info`, so that two hosts can be compared line by line.
//!
//! Configuration, as JSON: an object from callback name (`configure`,
//! `new_connection`, `downstream_data`, `upstream_data`,
//! `downstream_close`, `upstream_close`, `log`, `done`, `tick`) to a list
//! of operations; see [`Op`]. Every callback of a connection logs its own
//! line first (`downstream_data: size = 5 end_of_stream = false`), then
//! one line per operation (`downstream_data: data downstream = hello`).

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::rc::Rc;
use std::time::Duration;

use proxy_wasm::hostcalls;
use proxy_wasm::traits::{Context, RootContext, StreamContext};
use proxy_wasm::types::{Action, ContextType, LogLevel, MetricType, PeerType};
use serde::Deserialize;

proxy_wasm::main! {{
    proxy_wasm::set_log_level(LogLevel::Trace);
    proxy_wasm::set_root_context(|_| -> Box<dyn RootContext> { Box::new(Root::default()) });
}}

type Script = HashMap<String, Vec<Op>>;

/// One operation. Every operation that asks the host something logs the
/// answer as `<callback>: <op> ... = <answer>`; statuses by name.
#[derive(Clone, Debug, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case", deny_unknown_fields)]
enum Op {
    /// A log line at `level`.
    Log { level: String, msg: String },
    /// Reads a whole buffer: `downstream`, `upstream`, or an HTTP one
    /// (`request`, `response`) to see what a network filter gets.
    Data { buffer: String },
    /// Reads `max` bytes of a buffer from `start`.
    DataRange { buffer: String, start: u32, max: u32 },
    /// `proxy_set_buffer_bytes(buffer, start, size, value)`.
    SetData { buffer: String, start: u32, size: u32, value: String },
    /// Reads a property, decoded `as` `string`, `int`, `bool` or `len`.
    Property { path: Vec<String>, #[serde(rename = "as")] kind: String },
    /// Sets a property.
    SetProperty { path: Vec<String>, value: String },
    /// The callback returns `StopIteration`.
    Pause,
    /// The callback returns `StopIteration` unless the data of its
    /// direction holds `needle`.
    PauseUntil { needle: String },
    /// `proxy_continue_stream` for `downstream`, `upstream`, `request` or
    /// `response`.
    Resume { which: String },
    /// `proxy_close_stream` for the same directions.
    Close { which: String },
    /// Acts on the last connection from here on (for ticks, which run on
    /// the root context): `proxy_set_effective_context`.
    OnLastConnection,
    /// `proxy_get_header_map_value` on an HTTP map.
    GetHeader { map: String, name: String },
    /// `proxy_add_header_map_value` on an HTTP map.
    AddHeader { map: String, name: String, value: String },
    /// `proxy_send_local_response`.
    Reply { status: u32, body: String },
    /// Defines a metric (`counter`, `gauge`, `histogram`).
    MetricDefine { kind: String, name: String },
    /// Increments a metric.
    MetricIncrement { name: String, by: i64 },
    /// Reads a metric.
    MetricGet { name: String },
    /// Sets the root context's tick period.
    TickPeriod { ms: u64 },
    /// Calls the network host functions with arguments no SDK would pass
    /// (pointers outside memory, unknown types) and logs each status.
    Abuse,
    /// Panics, which traps the VM.
    Panic { msg: String },
    /// Panics when the downstream data contains `needle`.
    PanicIfData { needle: String },
}

thread_local! {
    static METRICS: RefCell<HashMap<String, u32>> = RefCell::new(HashMap::new());
    static LAST_CONNECTION: Cell<u32> = const { Cell::new(0) };
}

mod raw {
    #[link(wasm_import_module = "env")]
    unsafe extern "C" {
        pub fn proxy_get_buffer_bytes(
            buffer: u32,
            start: u32,
            max: u32,
            data: *mut *mut u8,
            size: *mut usize,
        ) -> u32;
        pub fn proxy_set_buffer_bytes(
            buffer: u32,
            start: u32,
            size: u32,
            data: *const u8,
            data_size: usize,
        ) -> u32;
        pub fn proxy_get_property(
            path: *const u8,
            path_size: usize,
            data: *mut *mut u8,
            size: *mut usize,
        ) -> u32;
        pub fn proxy_set_property(
            path: *const u8,
            path_size: usize,
            data: *const u8,
            size: usize,
        ) -> u32;
        pub fn proxy_continue_stream(stream: u32) -> u32;
        pub fn proxy_close_stream(stream: u32) -> u32;
        pub fn proxy_set_effective_context(context: u32) -> u32;
        pub fn proxy_get_header_map_value(
            map: u32,
            key: *const u8,
            key_size: usize,
            value: *mut *mut u8,
            value_size: *mut usize,
        ) -> u32;
        pub fn proxy_add_header_map_value(
            map: u32,
            key: *const u8,
            key_size: usize,
            value: *const u8,
            value_size: usize,
        ) -> u32;
        pub fn proxy_send_local_response(
            status_code: u32,
            details_data: *const u8,
            details_size: usize,
            body_data: *const u8,
            body_size: usize,
            headers_data: *const u8,
            headers_size: usize,
            grpc_status: i32,
        ) -> u32;
    }
}

/// An address past the end of any linear memory the probe will have.
const WILD: usize = 0xfff0_0000;

fn abuse(cb: &str) {
    let mut data: *mut u8 = std::ptr::null_mut();
    let mut size: usize = 0;
    let wild = WILD as *mut u8;
    let path = b"source\0address";
    // SAFETY: the host checks every pointer; the probe only ever reads
    // the two locals it passes by reference.
    let results = unsafe {
        [
            (
                "downstream data into pointers outside memory",
                raw::proxy_get_buffer_bytes(2, 0, 16, wild.cast(), wild.add(8).cast()),
            ),
            (
                "downstream data from outside memory",
                raw::proxy_set_buffer_bytes(2, 0, 0, wild, 4),
            ),
            (
                "buffer of an unknown type",
                raw::proxy_get_buffer_bytes(42, 0, 16, &mut data, &mut size),
            ),
            (
                "property into pointers outside memory",
                raw::proxy_get_property(path.as_ptr(), path.len(), wild.cast(), wild.add(8).cast()),
            ),
            ("continue an unknown stream type", raw::proxy_continue_stream(42)),
            ("close an unknown stream type", raw::proxy_close_stream(42)),
        ]
    };
    for (what, code) in results {
        info(cb, format!("abuse: {what} = {}", status(code)));
    }
}

fn info(callback: &str, text: String) {
    let _ = hostcalls::log(LogLevel::Info, &format!("{callback}: {text}"));
}

fn status(code: u32) -> String {
    let name = match code {
        0 => "Ok",
        1 => "NotFound",
        2 => "BadArgument",
        3 => "SerializationFailure",
        4 => "ParseFailure",
        6 => "InvalidMemoryAccess",
        7 => "Empty",
        8 => "CasMismatch",
        10 => "InternalFailure",
        12 => "Unimplemented",
        other => return format!("status {other}"),
    };
    name.to_owned()
}

fn buffer_code(name: &str) -> u32 {
    match name {
        "request" => 0,
        "response" => 1,
        "downstream" => 2,
        "upstream" => 3,
        _ => 99,
    }
}

fn stream_code(name: &str) -> u32 {
    match name {
        "request" => 0,
        "response" => 1,
        "downstream" => 2,
        "upstream" => 3,
        _ => 99,
    }
}

fn map_code(name: &str) -> u32 {
    match name {
        "request_headers" => 0,
        "request_trailers" => 1,
        "response_headers" => 2,
        "response_trailers" => 3,
        _ => 99,
    }
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Takes ownership of a buffer the host allocated in this module.
fn owned(data: *mut u8, size: usize) -> Vec<u8> {
    if data.is_null() || size == 0 {
        return Vec::new();
    }
    // SAFETY: the host allocated `size` bytes at `data` with this
    // module's allocator and handed them over.
    unsafe { Vec::from_raw_parts(data, size, size) }
}

fn read_buffer(buffer: &str, start: u32, max: u32) -> String {
    let mut data: *mut u8 = std::ptr::null_mut();
    let mut size: usize = 0;
    // SAFETY: the two out-pointers are live locals.
    let code = unsafe {
        raw::proxy_get_buffer_bytes(buffer_code(buffer), start, max, &mut data, &mut size)
    };
    if code == 0 {
        format!("Ok {:?}", text(&owned(data, size)))
    } else {
        status(code)
    }
}

fn decode(kind: &str, bytes: &[u8]) -> String {
    match kind {
        "int" => match <[u8; 8]>::try_from(bytes) {
            Ok(raw) => i64::from_le_bytes(raw).to_string(),
            Err(_) => format!("<{} bytes>", bytes.len()),
        },
        "bool" => match bytes {
            [0] => "false".into(),
            [1] => "true".into(),
            _ => format!("<{} bytes>", bytes.len()),
        },
        "len" => format!("<{} bytes>", bytes.len()),
        _ => text(bytes),
    }
}

fn joined(path: &[String]) -> Vec<u8> {
    path.join("\0").into_bytes()
}

fn metric_kind(kind: &str) -> MetricType {
    match kind {
        "gauge" => MetricType::Gauge,
        "histogram" => MetricType::Histogram,
        _ => MetricType::Counter,
    }
}

/// Runs a callback's operations; returns whether one asked to pause.
fn run(script: &Script, callback: &str) -> bool {
    let mut pause = false;
    for op in script.get(callback).into_iter().flatten() {
        pause |= apply(callback, op);
    }
    pause
}

fn apply(cb: &str, op: &Op) -> bool {
    match op {
        Op::Log { level, msg } => {
            let level = match level.as_str() {
                "trace" => LogLevel::Trace,
                "debug" => LogLevel::Debug,
                "warn" => LogLevel::Warn,
                "error" => LogLevel::Error,
                "critical" => LogLevel::Critical,
                _ => LogLevel::Info,
            };
            let _ = hostcalls::log(level, msg);
        }
        Op::Data { buffer } => {
            let shown = read_buffer(buffer, 0, u32::MAX >> 1);
            info(cb, format!("data {buffer} = {shown}"));
        }
        Op::DataRange { buffer, start, max } => {
            let shown = read_buffer(buffer, *start, *max);
            info(cb, format!("data {buffer} [{start}, +{max}] = {shown}"));
        }
        Op::SetData { buffer, start, size, value } => {
            // SAFETY: the pointer and size describe a live string.
            let code = unsafe {
                raw::proxy_set_buffer_bytes(
                    buffer_code(buffer),
                    *start,
                    *size,
                    value.as_ptr(),
                    value.len(),
                )
            };
            info(cb, format!("set_data {buffer} [{start}, {size}] {value:?} = {}", status(code)));
        }
        Op::Property { path, kind } => {
            let name = joined(path);
            let mut data: *mut u8 = std::ptr::null_mut();
            let mut size: usize = 0;
            // SAFETY: the path is a live local; the out-pointers too.
            let code = unsafe {
                raw::proxy_get_property(name.as_ptr(), name.len(), &mut data, &mut size)
            };
            let shown = if code == 0 {
                decode(kind, &owned(data, size))
            } else {
                status(code)
            };
            info(cb, format!("property {} = {shown}", path.join(".")));
        }
        Op::SetProperty { path, value } => {
            let name = joined(path);
            // SAFETY: both pointers describe live locals.
            let code = unsafe {
                raw::proxy_set_property(name.as_ptr(), name.len(), value.as_ptr(), value.len())
            };
            info(cb, format!("set_property {} = {}", path.join("."), status(code)));
        }
        Op::Pause => return true,
        Op::PauseUntil { needle } => {
            let buffer = if cb == "upstream_data" { "upstream" } else { "downstream" };
            let held = read_buffer(buffer, 0, u32::MAX >> 1);
            let pause = !held.contains(needle.as_str());
            info(cb, format!("pause_until {needle:?} = {pause}"));
            return pause;
        }
        Op::Resume { which } => {
            // SAFETY: no pointers.
            let code = unsafe { raw::proxy_continue_stream(stream_code(which)) };
            info(cb, format!("resume {which} = {}", status(code)));
        }
        Op::Close { which } => {
            // SAFETY: no pointers.
            let code = unsafe { raw::proxy_close_stream(stream_code(which)) };
            info(cb, format!("close {which} = {}", status(code)));
        }
        Op::OnLastConnection => {
            let id = LAST_CONNECTION.with(Cell::get);
            // SAFETY: no pointers.
            let code = unsafe { raw::proxy_set_effective_context(id) };
            info(cb, format!("on_last_connection = {}", status(code)));
        }
        Op::GetHeader { map, name } => {
            let mut data: *mut u8 = std::ptr::null_mut();
            let mut size: usize = 0;
            // SAFETY: the name is a live local; the out-pointers too.
            let code = unsafe {
                raw::proxy_get_header_map_value(
                    map_code(map),
                    name.as_ptr(),
                    name.len(),
                    &mut data,
                    &mut size,
                )
            };
            let shown = if code == 0 {
                format!("Ok {:?}", text(&owned(data, size)))
            } else {
                status(code)
            };
            info(cb, format!("get_header {map} {name} = {shown}"));
        }
        Op::AddHeader { map, name, value } => {
            // SAFETY: both pointers describe live locals.
            let code = unsafe {
                raw::proxy_add_header_map_value(
                    map_code(map),
                    name.as_ptr(),
                    name.len(),
                    value.as_ptr(),
                    value.len(),
                )
            };
            info(cb, format!("add_header {map} {name} = {}", status(code)));
        }
        Op::Reply { status: code, body } => {
            // SAFETY: every pointer and size describes a live local.
            let result = unsafe {
                raw::proxy_send_local_response(
                    *code,
                    std::ptr::null(),
                    0,
                    body.as_ptr(),
                    body.len(),
                    std::ptr::null(),
                    0,
                    -1,
                )
            };
            info(cb, format!("reply {code} = {}", status(result)));
        }
        Op::MetricDefine { kind, name } => {
            let result = hostcalls::define_metric(metric_kind(kind), name);
            if let Ok(id) = result {
                METRICS.with(|metrics| metrics.borrow_mut().insert(name.clone(), id));
            }
            info(cb, format!("metric_define {name} = {}", result.is_ok()));
        }
        Op::MetricIncrement { name, by } => {
            let id = METRICS.with(|metrics| metrics.borrow().get(name).copied()).unwrap_or(u32::MAX);
            let result = hostcalls::increment_metric(id, *by);
            info(cb, format!("metric_increment {name} = {result:?}"));
        }
        Op::MetricGet { name } => {
            let id = METRICS.with(|metrics| metrics.borrow().get(name).copied()).unwrap_or(u32::MAX);
            let result = hostcalls::get_metric(id);
            info(cb, format!("metric_get {name} = {result:?}"));
        }
        Op::TickPeriod { ms } => {
            let result = hostcalls::set_tick_period(Duration::from_millis(*ms));
            info(cb, format!("tick_period {ms} = {result:?}"));
        }
        Op::Abuse => abuse(cb),
        Op::Panic { msg } => panic!("{msg}"),
        Op::PanicIfData { needle } => {
            let mut data: *mut u8 = std::ptr::null_mut();
            let mut size: usize = 0;
            // SAFETY: the out-pointers are live locals.
            let code = unsafe {
                raw::proxy_get_buffer_bytes(2, 0, u32::MAX >> 1, &mut data, &mut size)
            };
            let bytes = if code == 0 { owned(data, size) } else { Vec::new() };
            if text(&bytes).contains(needle.as_str()) {
                panic!("data holds {needle:?}");
            }
        }
    }
    false
}

#[derive(Default)]
struct Root {
    script: Rc<Script>,
}

impl Context for Root {}

impl RootContext for Root {
    fn on_vm_start(&mut self, _size: usize) -> bool {
        true
    }

    fn on_configure(&mut self, _size: usize) -> bool {
        let config = hostcalls::get_buffer(
            proxy_wasm::types::BufferType::PluginConfiguration,
            0,
            usize::MAX >> 1,
        );
        let bytes = match config {
            Ok(Some(bytes)) => bytes,
            _ => b"{}".to_vec(),
        };
        match serde_json::from_slice::<Script>(&bytes) {
            Ok(script) => {
                self.script = Rc::new(script);
                run(&self.script, "configure");
                true
            }
            Err(error) => {
                let _ = hostcalls::log(LogLevel::Error, &format!("bad tcp-probe configuration: {error}"));
                false
            }
        }
    }

    fn on_tick(&mut self) {
        run(&self.script, "tick");
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::StreamContext)
    }

    fn create_stream_context(&self, context_id: u32) -> Option<Box<dyn StreamContext>> {
        LAST_CONNECTION.with(|last| last.set(context_id));
        Some(Box::new(Connection { script: self.script.clone() }))
    }
}

struct Connection {
    script: Rc<Script>,
}

impl Context for Connection {
    fn on_done(&mut self) -> bool {
        info("done", "connection done".into());
        run(&self.script, "done");
        true
    }
}

fn action(pause: bool) -> Action {
    if pause { Action::Pause } else { Action::Continue }
}

fn peer(peer: PeerType) -> &'static str {
    match peer {
        PeerType::Local => "local",
        PeerType::Remote => "remote",
        _ => "unknown",
    }
}

impl StreamContext for Connection {
    fn on_new_connection(&mut self) -> Action {
        info("new_connection", "opened".into());
        action(run(&self.script, "new_connection"))
    }

    fn on_downstream_data(&mut self, size: usize, end: bool) -> Action {
        info("downstream_data", format!("size = {size} end_of_stream = {end}"));
        action(run(&self.script, "downstream_data"))
    }

    fn on_downstream_close(&mut self, peer_type: PeerType) {
        info("downstream_close", format!("peer = {}", peer(peer_type)));
        run(&self.script, "downstream_close");
    }

    fn on_upstream_data(&mut self, size: usize, end: bool) -> Action {
        info("upstream_data", format!("size = {size} end_of_stream = {end}"));
        action(run(&self.script, "upstream_data"))
    }

    fn on_upstream_close(&mut self, peer_type: PeerType) {
        info("upstream_close", format!("peer = {}", peer(peer_type)));
        run(&self.script, "upstream_close");
    }

    fn on_log(&mut self) {
        info("log", "connection ends".into());
        run(&self.script, "log");
    }
}
