//! The probe filter: runs the operations its configuration lists for each
//! callback and logs every result at `info`, so that two hosts can be
//! compared line by line.
//!
//! Configuration, as JSON: an object from callback name (`vm_start`,
//! `configure`, `request_headers`, `request_body`, `request_trailers`,
//! `response_headers`, `response_body`, `response_trailers`, `log`, `done`,
//! `tick`, `queue_ready`, `callout`, and for gRPC `grpc_response` (a unary
//! call's answer), `grpc_initial_metadata`, `grpc_message`,
//! `grpc_trailing_metadata`, `grpc_close`) to a list of operations; see
//! [`Op`].

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;
use std::time::Duration;

use proxy_wasm::hostcalls;
use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{Action, BufferType, ContextType, LogLevel, MapType, MetricType};
use serde::Deserialize;

proxy_wasm::main! {{
    proxy_wasm::set_log_level(LogLevel::Trace);
    proxy_wasm::set_root_context(|_| -> Box<dyn RootContext> { Box::new(Root::default()) });
}}

type Script = HashMap<String, Vec<Op>>;

/// One operation. Every operation that asks the host something logs the
/// answer as `<callback>: <op> ... = <answer>`.
#[derive(Clone, Debug, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case", deny_unknown_fields)]
enum Op {
    Log { level: String, msg: String },
    Headers { map: String },
    GetHeader { map: String, name: String },
    AddHeader { map: String, name: String, value: String },
    SetHeader { map: String, name: String, value: String },
    RemoveHeader { map: String, name: String },
    SetHeaders { map: String, pairs: Vec<(String, String)> },
    Property { path: Vec<String>, #[serde(rename = "as")] kind: String },
    SetProperty { path: Vec<String>, value: String },
    Body { buffer: String },
    SetBody { buffer: String, start: usize, size: usize, value: String },
    Reply { status: u32, body: String, #[serde(default)] headers: Vec<(String, String)>, #[serde(default)] details: String },
    Callout { cluster: String, headers: Vec<(String, String)>, #[serde(default)] body: String, timeout_ms: u64 },
    CalloutResponse,
    Pause,
    Resume { which: String },
    SharedSet { key: String, value: String, #[serde(default)] cas: Option<u32> },
    SharedGet { key: String },
    QueueRegister { name: String },
    QueueEnqueue { vm_id: String, name: String, value: String },
    QueueDequeue { name: String },
    MetricDefine { kind: String, name: String },
    MetricIncrement { name: String, by: i64 },
    MetricRecord { name: String, value: u64 },
    MetricGet { name: String },
    TickPeriod { ms: u64 },
    Time,
    Print { stream: String, msg: String },
    Panic { msg: String },
    PanicIfHeader { name: String },
    /// Calls host functions with arguments no SDK would pass and logs the
    /// raw status of each.
    Abuse,
    /// Calls the foreign function `name` with `arg` (text, or bytes in hex
    /// with `hex`) and logs the raw status and the result in hex.
    Foreign { name: String, #[serde(default)] arg: String, #[serde(default)] hex: bool },
    /// Calls `proxy_call_foreign_function` with pointers no SDK would pass
    /// and logs the raw status and the size written of each.
    ForeignAbuse,
    /// Pauses (buffers) while the body seen so far is not empty and shorter
    /// than `size`.
    PauseWhileBodyBelow { buffer: String, size: usize },
    /// A unary gRPC call; its answer runs `grpc_response`.
    GrpcCall {
        cluster: String,
        #[serde(default = "default_service")]
        service: String,
        method: String,
        #[serde(default)]
        metadata: Vec<(String, String)>,
        #[serde(default)]
        message: String,
        /// Sends `message` repeated this many times (a large message).
        #[serde(default)]
        repeat: Option<usize>,
        timeout_ms: u64,
        /// Names the cluster through a serialized `GrpcService`.
        #[serde(default)]
        as_proto: bool,
    },
    /// A gRPC stream; its events run `grpc_initial_metadata`,
    /// `grpc_message`, `grpc_trailing_metadata` and `grpc_close`.
    GrpcStream {
        cluster: String,
        #[serde(default = "default_service")]
        service: String,
        method: String,
        #[serde(default)]
        metadata: Vec<(String, String)>,
        #[serde(default)]
        as_proto: bool,
    },
    /// Sends on the last stream opened (or `token`).
    GrpcSend {
        #[serde(default)]
        message: String,
        #[serde(default)]
        end_stream: bool,
        #[serde(default)]
        token: Option<u32>,
    },
    /// Cancels the last call or stream (or `token`).
    GrpcCancel {
        #[serde(default)]
        token: Option<u32>,
    },
    /// Closes the last call or stream (or `token`).
    GrpcClose {
        #[serde(default)]
        token: Option<u32>,
    },
    /// Logs `proxy_get_status`.
    GrpcStatus,
    /// Logs the received message (`grpc_receive` buffer).
    GrpcReceived,
    /// Logs a gRPC metadata map (`which`: `initial`, `trailing`).
    GrpcMetadata { which: String },
    /// gRPC host calls with arguments no SDK would pass.
    GrpcAbuse,
}

fn default_service() -> String {
    "probe.Echo".into()
}

thread_local! {
    /// The last gRPC token issued, for the operations that act on it.
    static LAST_GRPC: std::cell::Cell<u32> = const { std::cell::Cell::new(0) };
}

thread_local! {
    static METRICS: RefCell<HashMap<String, u32>> = RefCell::new(HashMap::new());
    static QUEUES: RefCell<HashMap<String, u32>> = RefCell::new(HashMap::new());
}

fn info(callback: &str, text: String) {
    let _ = hostcalls::log(LogLevel::Info, &format!("{callback}: {text}"));
}

fn map_type(name: &str) -> MapType {
    match name {
        "request_trailers" => MapType::HttpRequestTrailers,
        "response_headers" => MapType::HttpResponseHeaders,
        "response_trailers" => MapType::HttpResponseTrailers,
        "callout_headers" => MapType::HttpCallResponseHeaders,
        "callout_trailers" => MapType::HttpCallResponseTrailers,
        _ => MapType::HttpRequestHeaders,
    }
}

fn buffer_type(name: &str) -> BufferType {
    match name {
        "response" => BufferType::HttpResponseBody,
        "callout" => BufferType::HttpCallResponseBody,
        "plugin_configuration" => BufferType::PluginConfiguration,
        "vm_configuration" => BufferType::VmConfiguration,
        _ => BufferType::HttpRequestBody,
    }
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
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
        "map" => pairs(bytes),
        "len" => format!("<{} bytes>", bytes.len()),
        "hex" => bytes.iter().map(|byte| format!("{byte:02x}")).collect(),
        _ => text(bytes),
    }
}

fn pairs(bytes: &[u8]) -> String {
    let mut out = Vec::new();
    let count = bytes.get(0..4).map_or(0, |b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize);
    let mut at = 4 + count * 8;
    for index in 0..count {
        let size = |offset: usize| {
            bytes.get(offset..offset + 4).map_or(0, |b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize)
        };
        let (k, v) = (size(4 + index * 8), size(8 + index * 8));
        let key = bytes.get(at..at + k).map(text).unwrap_or_default();
        at += k + 1;
        let value = bytes.get(at..at + v).map(text).unwrap_or_default();
        at += v + 1;
        out.push(format!("{key}={value}"));
    }
    out.join(", ")
}

fn metric_kind(kind: &str) -> MetricType {
    match kind {
        "gauge" => MetricType::Gauge,
        "histogram" => MetricType::Histogram,
        _ => MetricType::Counter,
    }
}

mod raw {
    #[link(wasm_import_module = "env")]
    unsafe extern "C" {
        pub fn proxy_log(level: u32, data: *const u8, size: usize) -> u32;
        pub fn proxy_get_header_map_value(
            map: u32,
            key: *const u8,
            key_size: usize,
            value: *mut *mut u8,
            value_size: *mut usize,
        ) -> u32;
        pub fn proxy_get_header_map_pairs(map: u32, data: *mut *mut u8, size: *mut usize) -> u32;
        pub fn proxy_get_buffer_bytes(
            buffer: u32,
            start: usize,
            max: usize,
            data: *mut *mut u8,
            size: *mut usize,
        ) -> u32;
        pub fn proxy_get_property(
            path: *const u8,
            path_size: usize,
            data: *mut *mut u8,
            size: *mut usize,
        ) -> u32;
        pub fn proxy_continue_stream(stream: u32) -> u32;
        pub fn proxy_call_foreign_function(
            name: *const u8,
            name_size: usize,
            args: *const u8,
            args_size: usize,
            results: *mut *mut u8,
            results_size: *mut usize,
        ) -> u32;
        pub fn proxy_define_metric(kind: u32, name: *const u8, size: usize, id: *mut u32) -> u32;
        pub fn proxy_get_shared_data(
            key: *const u8,
            key_size: usize,
            data: *mut *mut u8,
            size: *mut usize,
            cas: *mut u32,
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
        pub fn proxy_grpc_call(
            service: *const u8,
            service_size: usize,
            name: *const u8,
            name_size: usize,
            method: *const u8,
            method_size: usize,
            metadata: *const u8,
            metadata_size: usize,
            message: *const u8,
            message_size: usize,
            timeout_ms: u32,
            token: *mut u32,
        ) -> u32;
        pub fn proxy_grpc_stream(
            service: *const u8,
            service_size: usize,
            name: *const u8,
            name_size: usize,
            method: *const u8,
            method_size: usize,
            metadata: *const u8,
            metadata_size: usize,
            token: *mut u32,
        ) -> u32;
        pub fn proxy_grpc_send(token: u32, message: *const u8, size: usize, end_stream: u32) -> u32;
        pub fn proxy_grpc_cancel(token: u32) -> u32;
        pub fn proxy_grpc_close(token: u32) -> u32;
        pub fn proxy_get_status(code: *mut u32, message: *mut *mut u8, size: *mut usize) -> u32;
    }
}

/// An address past the end of any linear memory the probe will have.
const WILD: usize = 0xfff0_0000;

fn abuse(cb: &str) {
    let key = b"x";
    let mut data: *mut u8 = std::ptr::null_mut();
    let mut size: usize = 0;
    let wild = WILD as *mut u8;
    // SAFETY: the host checks every pointer; the probe only ever reads
    // the two locals it passes by reference.
    let results = unsafe {
        [
            ("log with an unknown level", raw::proxy_log(42, key.as_ptr(), 1)),
            ("log from outside memory", raw::proxy_log(2, wild, 16)),
            (
                "header from an unknown map",
                raw::proxy_get_header_map_value(99, key.as_ptr(), 1, &mut data, &mut size),
            ),
            (
                "header named outside memory",
                raw::proxy_get_header_map_value(0, wild, 8, &mut data, &mut size),
            ),
            (
                "header pairs returned outside memory",
                raw::proxy_get_header_map_pairs(0, wild.cast(), wild.add(8).cast()),
            ),
            (
                "buffer of an unknown type",
                raw::proxy_get_buffer_bytes(99, 0, 10, &mut data, &mut size),
            ),
            ("property path outside memory", raw::proxy_get_property(wild, 4, &mut data, &mut size)),
            ("continue an unknown stream type", raw::proxy_continue_stream(42)),
            (
                "metric of an unknown kind",
                raw::proxy_define_metric(9, key.as_ptr(), 1, &mut size as *mut usize as *mut u32),
            ),
            (
                "shared data key outside memory",
                raw::proxy_get_shared_data(wild, 4, &mut data, &mut size, std::ptr::null_mut()),
            ),
        ]
    };
    for (what, status) in results {
        info(cb, format!("abuse: {what} = {status}"));
    }
}

fn unhex(text: &str) -> Vec<u8> {
    (0..text.len() / 2).filter_map(|i| u8::from_str_radix(text.get(2 * i..2 * i + 2)?, 16).ok()).collect()
}

fn foreign(cb: &str, name: &str, arg: &str, hex: bool) {
    let args = if hex { unhex(arg) } else { arg.as_bytes().to_vec() };
    let mut data: *mut u8 = std::ptr::null_mut();
    let mut size: usize = 0;
    // SAFETY: every pointer describes a live local; a result the host
    // placed was allocated by this module's allocator for `size` bytes.
    let (status, result) = unsafe {
        let status = raw::proxy_call_foreign_function(
            name.as_ptr(),
            name.len(),
            args.as_ptr(),
            args.len(),
            &mut data,
            &mut size,
        );
        let result = (!data.is_null()).then(|| Vec::from_raw_parts(data, size, size));
        (status, result)
    };
    let shown = match result {
        Some(bytes) => bytes.iter().map(|b| format!("{b:02x}")).collect::<String>(),
        None => "none".into(),
    };
    info(cb, format!("foreign {name} = {status} {shown} ({size} bytes)"));
}

fn foreign_abuse(cb: &str) {
    let wild = WILD as *const u8;
    let name = b"compress";
    let unknown = b"no_such_function";
    let args = b"hello";
    let mut data: *mut u8 = std::ptr::null_mut();
    let cases: [(&str, &[u8], *const u8, bool, bool); 5] = [
        ("name outside memory", name, wild, false, false),
        ("arguments outside memory", name, args.as_ptr(), true, false),
        ("result address outside memory", name, args.as_ptr(), false, true),
        ("no place for the result", name, args.as_ptr(), false, false),
        ("unknown name, result outside memory", unknown, args.as_ptr(), false, true),
    ];
    for (index, (what, function, args_ptr, wild_args, wild_result)) in cases.into_iter().enumerate() {
        let mut size: usize = 0;
        let name_ptr = if index == 0 { wild } else { function.as_ptr() };
        let args_ptr = if wild_args { wild } else { args_ptr };
        let results: *mut *mut u8 = if wild_result {
            WILD as *mut *mut u8
        } else if index == 3 {
            std::ptr::null_mut()
        } else {
            &mut data
        };
        // SAFETY: the host checks every pointer; the probe only ever reads
        // the two locals it passes by reference.
        let status = unsafe {
            raw::proxy_call_foreign_function(name_ptr, function.len(), args_ptr, 5, results, &mut size)
        };
        info(cb, format!("foreign_abuse: {what} = {status} ({size} bytes)"));
    }
    let _ = data;
}

fn encode_pairs(pairs: &[(String, String)]) -> Vec<u8> {
    let mut out = (pairs.len() as u32).to_le_bytes().to_vec();
    for (k, v) in pairs {
        out.extend((k.len() as u32).to_le_bytes());
        out.extend((v.len() as u32).to_le_bytes());
    }
    for (k, v) in pairs {
        out.extend(k.as_bytes());
        out.push(0);
        out.extend(v.as_bytes());
        out.push(0);
    }
    out
}

/// A cluster name as is, or wrapped in a serialized
/// `envoy.config.core.v3.GrpcService` (`envoy_grpc { cluster_name }`).
fn grpc_target(cluster: &str, as_proto: bool) -> String {
    if !as_proto {
        return cluster.to_owned();
    }
    let mut inner = vec![0x0a, cluster.len() as u8];
    inner.extend(cluster.as_bytes());
    let mut outer = vec![0x0a, inner.len() as u8];
    outer.extend(inner);
    String::from_utf8(outer).unwrap_or_default()
}

fn grpc_token(result: Result<u32, proxy_wasm::types::Status>) -> String {
    match result {
        Ok(token) => {
            LAST_GRPC.with(|last| last.set(token));
            format!("Ok token {token}")
        }
        Err(status) => format!("{status:?}"),
    }
}

/// Short messages as text, long ones by size and first bytes.
fn summary(bytes: &[u8]) -> String {
    if bytes.len() <= 64 {
        format!("{:?}", text(bytes))
    } else {
        format!("<{} bytes> {:?}...", bytes.len(), text(&bytes[..16]))
    }
}

fn grpc_abuse(cb: &str) {
    let name = b"probe.Echo";
    let method = b"Say";
    let cluster = b"grpc";
    let mut token: u32 = 0;
    let wild = WILD as *const u8;
    // SAFETY: the host checks every pointer; the probe only ever passes
    // its own locals or addresses the host must refuse.
    let results = unsafe {
        [
            (
                "call with the service outside memory",
                raw::proxy_grpc_call(wild, 4, name.as_ptr(), name.len(), method.as_ptr(), 3, name.as_ptr(), 0, name.as_ptr(), 0, 1000, &mut token),
            ),
            (
                "call with the token outside memory",
                raw::proxy_grpc_call(cluster.as_ptr(), 4, name.as_ptr(), name.len(), method.as_ptr(), 3, name.as_ptr(), 0, name.as_ptr(), 0, 1000, WILD as *mut u32),
            ),
            (
                "stream with the method outside memory",
                raw::proxy_grpc_stream(cluster.as_ptr(), 4, name.as_ptr(), name.len(), wild, 3, name.as_ptr(), 0, &mut token),
            ),
            ("send on an unknown stream", raw::proxy_grpc_send(998, name.as_ptr(), 1, 0)),
            ("send on a call token", raw::proxy_grpc_send(997, name.as_ptr(), 1, 0)),
            ("send from outside memory", raw::proxy_grpc_send(998, wild, 4, 0)),
            ("cancel an unknown call", raw::proxy_grpc_cancel(997)),
            ("cancel an unknown stream", raw::proxy_grpc_cancel(998)),
            ("cancel an http call token", raw::proxy_grpc_cancel(996)),
            ("close an unknown stream", raw::proxy_grpc_close(998)),
            ("close an http call token", raw::proxy_grpc_close(996)),
            (
                "status into memory outside",
                raw::proxy_get_status(WILD as *mut u32, WILD as *mut *mut u8, WILD as *mut usize),
            ),
        ]
    };
    for (what, status) in results {
        info(cb, format!("grpc_abuse: {what} = {status}"));
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
        Op::Headers { map } => {
            let result = hostcalls::get_map(map_type(map));
            let shown = match result {
                Ok(pairs) => {
                    pairs.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(", ")
                }
                Err(status) => format!("{status:?}"),
            };
            info(cb, format!("headers {map} = {shown}"));
        }
        Op::GetHeader { map, name } => {
            let result = hostcalls::get_map_value(map_type(map), name);
            info(cb, format!("get_header {map} {name} = {result:?}"));
        }
        Op::AddHeader { map, name, value } => {
            let result = hostcalls::add_map_value(map_type(map), name, value);
            info(cb, format!("add_header {map} {name} = {result:?}"));
        }
        Op::SetHeader { map, name, value } => {
            let result = hostcalls::set_map_value(map_type(map), name, Some(value));
            info(cb, format!("set_header {map} {name} = {result:?}"));
        }
        Op::RemoveHeader { map, name } => {
            let result = hostcalls::set_map_value(map_type(map), name, None);
            info(cb, format!("remove_header {map} {name} = {result:?}"));
        }
        Op::SetHeaders { map, pairs } => {
            let borrowed: Vec<(&str, &str)> = pairs.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
            let result = hostcalls::set_map(map_type(map), borrowed);
            info(cb, format!("set_headers {map} = {result:?}"));
        }
        Op::Property { path, kind } if kind == "status" => {
            // The raw status, which the SDK folds into `None` for both
            // `NotFound` and an empty value.
            let joined = path.join("\0");
            let mut data: *mut u8 = std::ptr::null_mut();
            let mut size: usize = 0;
            // SAFETY: the path is a live local and the host writes only the
            // two locals passed by reference.
            let status = unsafe { raw::proxy_get_property(joined.as_ptr(), joined.len(), &mut data, &mut size) };
            info(cb, format!("property {} = status {status}, {size} bytes", path.join(".")));
        }
        Op::Property { path, kind } => {
            let parts: Vec<&str> = path.iter().map(String::as_str).collect();
            let shown = match hostcalls::get_property(parts) {
                Ok(Some(bytes)) => decode(kind, &bytes),
                Ok(None) => "None".into(),
                Err(status) => format!("{status:?}"),
            };
            info(cb, format!("property {} = {shown}", path.join(".")));
        }
        Op::SetProperty { path, value } => {
            let parts: Vec<&str> = path.iter().map(String::as_str).collect();
            let result = hostcalls::set_property(parts, Some(value.as_bytes()));
            info(cb, format!("set_property {} = {result:?}", path.join(".")));
        }
        Op::Body { buffer } => {
            let shown = match hostcalls::get_buffer(buffer_type(buffer), 0, usize::MAX >> 1) {
                Ok(Some(bytes)) => text(&bytes),
                Ok(None) => "None".into(),
                Err(status) => format!("{status:?}"),
            };
            info(cb, format!("body {buffer} = {shown}"));
        }
        Op::SetBody { buffer, start, size, value } => {
            let result = hostcalls::set_buffer(buffer_type(buffer), *start, *size, value.as_bytes());
            info(cb, format!("set_body {buffer} = {result:?}"));
        }
        Op::Reply { status, body, headers, details } => {
            let encoded = encode_pairs(headers);
            // SAFETY: every pointer and size describes a live local buffer.
            let result = unsafe {
                raw::proxy_send_local_response(
                    *status,
                    details.as_ptr(),
                    details.len(),
                    body.as_ptr(),
                    body.len(),
                    encoded.as_ptr(),
                    encoded.len(),
                    -1,
                )
            };
            info(cb, format!("reply {status} = {result}"));
            return true;
        }
        Op::Callout { cluster, headers, body, timeout_ms } => {
            let borrowed: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
            let body = (!body.is_empty()).then_some(body.as_bytes());
            let result =
                hostcalls::dispatch_http_call(cluster, borrowed, body, vec![], Duration::from_millis(*timeout_ms));
            info(cb, format!("callout {cluster} = {}", if result.is_ok() { "Ok".to_string() } else { format!("{result:?}") }));
        }
        Op::CalloutResponse => {
            let status = hostcalls::get_map_value(MapType::HttpCallResponseHeaders, ":status");
            let body = hostcalls::get_buffer(BufferType::HttpCallResponseBody, 0, usize::MAX >> 1);
            let body = match body {
                Ok(Some(bytes)) => text(&bytes),
                other => format!("{other:?}"),
            };
            info(cb, format!("callout_response status = {status:?} body = {body}"));
        }
        Op::Pause => return true,
        Op::Resume { which } => {
            let result = if which == "response" {
                hostcalls::resume_http_response()
            } else {
                hostcalls::resume_http_request()
            };
            info(cb, format!("resume {which} = {result:?}"));
        }
        Op::SharedSet { key, value, cas } => {
            let result = hostcalls::set_shared_data(key, Some(value.as_bytes()), *cas);
            info(cb, format!("shared_set {key} = {result:?}"));
        }
        Op::SharedGet { key } => {
            let shown = match hostcalls::get_shared_data(key) {
                Ok((Some(value), cas)) => format!("{} cas={}", text(&value), cas.is_some()),
                Ok((None, _)) => "None".into(),
                Err(status) => format!("{status:?}"),
            };
            info(cb, format!("shared_get {key} = {shown}"));
        }
        Op::QueueRegister { name } => {
            let result = hostcalls::register_shared_queue(name);
            if let Ok(id) = result {
                QUEUES.with(|queues| queues.borrow_mut().insert(name.clone(), id));
            }
            info(cb, format!("queue_register {name} = {}", result.is_ok()));
        }
        Op::QueueEnqueue { vm_id, name, value } => {
            let shown = match hostcalls::resolve_shared_queue(vm_id, name) {
                Ok(Some(id)) => format!("{:?}", hostcalls::enqueue_shared_queue(id, Some(value.as_bytes()))),
                other => format!("resolve {other:?}"),
            };
            info(cb, format!("queue_enqueue {name} = {shown}"));
        }
        Op::QueueDequeue { name } => {
            let id = QUEUES.with(|queues| queues.borrow().get(name).copied()).unwrap_or(0);
            let shown = match hostcalls::dequeue_shared_queue(id) {
                Ok(Some(bytes)) => text(&bytes),
                Ok(None) => "None".into(),
                Err(status) => format!("{status:?}"),
            };
            info(cb, format!("queue_dequeue {name} = {shown}"));
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
        Op::MetricRecord { name, value } => {
            let id = METRICS.with(|metrics| metrics.borrow().get(name).copied()).unwrap_or(u32::MAX);
            let result = hostcalls::record_metric(id, *value);
            info(cb, format!("metric_record {name} = {result:?}"));
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
        Op::Time => {
            let shown = match hostcalls::get_current_time() {
                Ok(time) => time.duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs() > 1_600_000_000).unwrap_or(false).to_string(),
                Err(status) => format!("{status:?}"),
            };
            info(cb, format!("time plausible = {shown}"));
        }
        Op::Print { stream, msg } => {
            if stream == "stderr" {
                eprintln!("{msg}");
            } else {
                println!("{msg}");
            }
        }
        Op::Panic { msg } => panic!("{msg}"),
        Op::Abuse => abuse(cb),
        Op::Foreign { name, arg, hex } => foreign(cb, name, arg, *hex),
        Op::ForeignAbuse => foreign_abuse(cb),
        Op::PauseWhileBodyBelow { buffer, size } => {
            let seen = hostcalls::get_buffer(buffer_type(buffer), 0, usize::MAX >> 1);
            let seen = seen.ok().flatten().map_or(0, |bytes| bytes.len());
            info(cb, format!("pause_while_body_below {size}: {seen} bytes"));
            return seen > 0 && seen < *size;
        }
        Op::GrpcAbuse => grpc_abuse(cb),
        Op::GrpcCall { cluster, service, method, metadata, message, repeat, timeout_ms, as_proto } => {
            let target = grpc_target(cluster, *as_proto);
            let metadata: Vec<(&str, &[u8])> = metadata.iter().map(|(k, v)| (k.as_str(), v.as_bytes())).collect();
            let message = message.repeat(repeat.unwrap_or(1));
            let result = hostcalls::dispatch_grpc_call(
                &target,
                service,
                method,
                metadata,
                Some(message.as_bytes()),
                Duration::from_millis(*timeout_ms),
            );
            info(cb, format!("grpc_call {cluster} {method} = {}", grpc_token(result)));
        }
        Op::GrpcStream { cluster, service, method, metadata, as_proto } => {
            let target = grpc_target(cluster, *as_proto);
            let metadata: Vec<(&str, &[u8])> = metadata.iter().map(|(k, v)| (k.as_str(), v.as_bytes())).collect();
            let result = hostcalls::open_grpc_stream(&target, service, method, metadata);
            info(cb, format!("grpc_stream {cluster} {method} = {}", grpc_token(result)));
        }
        Op::GrpcSend { message, end_stream, token } => {
            let token = token.unwrap_or_else(|| LAST_GRPC.with(|last| last.get()));
            // SAFETY: the message is a live local buffer.
            let status = unsafe { raw::proxy_grpc_send(token, message.as_ptr(), message.len(), u32::from(*end_stream)) };
            info(cb, format!("grpc_send {token} {message:?} end_stream = {end_stream} = {status}"));
        }
        Op::GrpcCancel { token } => {
            let token = token.unwrap_or_else(|| LAST_GRPC.with(|last| last.get()));
            // SAFETY: no pointers.
            let status = unsafe { raw::proxy_grpc_cancel(token) };
            info(cb, format!("grpc_cancel {token} = {status}"));
        }
        Op::GrpcClose { token } => {
            let token = token.unwrap_or_else(|| LAST_GRPC.with(|last| last.get()));
            // SAFETY: no pointers.
            let status = unsafe { raw::proxy_grpc_close(token) };
            info(cb, format!("grpc_close {token} = {status}"));
        }
        Op::GrpcStatus => {
            let shown = match hostcalls::get_grpc_status() {
                Ok((code, message)) => format!("{code} {message:?}"),
                Err(status) => format!("{status:?}"),
            };
            info(cb, format!("grpc_status = {shown}"));
        }
        Op::GrpcReceived => {
            let shown = match hostcalls::get_buffer(BufferType::GrpcReceiveBuffer, 0, usize::MAX >> 1) {
                Ok(Some(bytes)) => summary(&bytes),
                Ok(None) => "None".into(),
                Err(status) => format!("{status:?}"),
            };
            info(cb, format!("grpc_received = {shown}"));
        }
        Op::GrpcMetadata { which } => {
            let map = if which == "trailing" {
                MapType::GrpcReceiveTrailingMetadata
            } else {
                MapType::GrpcReceiveInitialMetadata
            };
            let shown = match hostcalls::get_map_bytes(map) {
                Ok(pairs) => pairs.iter().map(|(k, v)| format!("{k}={}", text(v))).collect::<Vec<_>>().join(", "),
                Err(status) => format!("{status:?}"),
            };
            info(cb, format!("grpc_metadata {which} = {shown}"));
        }
        Op::PanicIfHeader { name } => {
            if let Ok(Some(value)) = hostcalls::get_map_value(MapType::HttpRequestHeaders, name) {
                panic!("{name}: {value}");
            }
        }
    }
    false
}

#[derive(Default)]
struct Root {
    script: Rc<Script>,
}

impl Context for Root {
    fn on_grpc_call_response(&mut self, token: u32, status: u32, size: usize) {
        info("grpc_response", format!("token = {token} status = {status} size = {size}"));
        run(&self.script, "grpc_response");
    }

    fn on_grpc_stream_initial_metadata(&mut self, token: u32, count: u32) {
        info("grpc_initial_metadata", format!("token = {token} count = {count}"));
        run(&self.script, "grpc_initial_metadata");
    }

    fn on_grpc_stream_message(&mut self, token: u32, size: usize) {
        info("grpc_message", format!("token = {token} size = {size}"));
        run(&self.script, "grpc_message");
    }

    fn on_grpc_stream_trailing_metadata(&mut self, token: u32, count: u32) {
        info("grpc_trailing_metadata", format!("token = {token} count = {count}"));
        run(&self.script, "grpc_trailing_metadata");
    }

    fn on_grpc_stream_close(&mut self, token: u32, status: u32) {
        info("grpc_close", format!("token = {token} status = {status}"));
        run(&self.script, "grpc_close");
    }
}

impl RootContext for Root {
    fn on_vm_start(&mut self, _size: usize) -> bool {
        true
    }

    fn on_configure(&mut self, _size: usize) -> bool {
        let config = hostcalls::get_buffer(BufferType::PluginConfiguration, 0, usize::MAX >> 1);
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
                let _ = hostcalls::log(LogLevel::Error, &format!("bad probe configuration: {error}"));
                false
            }
        }
    }

    fn on_tick(&mut self) {
        run(&self.script, "tick");
    }

    fn on_queue_ready(&mut self, _queue_id: u32) {
        run(&self.script, "queue_ready");
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }

    fn create_http_context(&self, _context_id: u32) -> Option<Box<dyn HttpContext>> {
        Some(Box::new(Stream { script: self.script.clone() }))
    }
}

struct Stream {
    script: Rc<Script>,
}

impl Context for Stream {
    fn on_grpc_call_response(&mut self, token: u32, status: u32, size: usize) {
        info("grpc_response", format!("token = {token} status = {status} size = {size}"));
        run(&self.script, "grpc_response");
    }

    fn on_grpc_stream_initial_metadata(&mut self, token: u32, count: u32) {
        info("grpc_initial_metadata", format!("token = {token} count = {count}"));
        run(&self.script, "grpc_initial_metadata");
    }

    fn on_grpc_stream_message(&mut self, token: u32, size: usize) {
        info("grpc_message", format!("token = {token} size = {size}"));
        run(&self.script, "grpc_message");
    }

    fn on_grpc_stream_trailing_metadata(&mut self, token: u32, count: u32) {
        info("grpc_trailing_metadata", format!("token = {token} count = {count}"));
        run(&self.script, "grpc_trailing_metadata");
    }

    fn on_grpc_stream_close(&mut self, token: u32, status: u32) {
        info("grpc_close", format!("token = {token} status = {status}"));
        run(&self.script, "grpc_close");
    }
    fn on_http_call_response(&mut self, _token: u32, _headers: usize, _body: usize, _trailers: usize) {
        run(&self.script, "callout");
    }

    fn on_done(&mut self) -> bool {
        run(&self.script, "done");
        true
    }
}

fn action(pause: bool) -> Action {
    if pause { Action::Pause } else { Action::Continue }
}

impl HttpContext for Stream {
    fn on_http_request_headers(&mut self, _count: usize, end: bool) -> Action {
        info("request_headers", format!("end_of_stream = {end}"));
        action(run(&self.script, "request_headers"))
    }

    fn on_http_request_body(&mut self, size: usize, end: bool) -> Action {
        info("request_body", format!("size = {size} end_of_stream = {end}"));
        action(run(&self.script, "request_body"))
    }

    fn on_http_request_trailers(&mut self, count: usize) -> Action {
        info("request_trailers", format!("count = {count}"));
        action(run(&self.script, "request_trailers"))
    }

    fn on_http_response_headers(&mut self, _count: usize, end: bool) -> Action {
        info("response_headers", format!("end_of_stream = {end}"));
        action(run(&self.script, "response_headers"))
    }

    fn on_http_response_body(&mut self, size: usize, end: bool) -> Action {
        info("response_body", format!("size = {size} end_of_stream = {end}"));
        action(run(&self.script, "response_body"))
    }

    fn on_http_response_trailers(&mut self, count: usize) -> Action {
        info("response_trailers", format!("count = {count}"));
        action(run(&self.script, "response_trailers"))
    }

    fn on_log(&mut self) {
        info("log", "stream ends".into());
        run(&self.script, "log");
    }
}
