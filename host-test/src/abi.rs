//! The proxy-wasm ABI's numbers and wire formats.
//!
//! Everything here is fixed by the ABI (versions 0.2.0 and 0.2.1) rather
//! than by a particular proxy: status codes, the enumerations passed as
//! integers, and the encoding of header maps ("pairs") that crosses the
//! boundary in both directions.

/// The status a host call returns to the guest.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(i32)]
pub enum Status {
    /// The call succeeded.
    Ok = 0,
    /// The key, property, queue or context does not exist.
    NotFound = 1,
    /// An argument is out of range or inconsistent.
    BadArgument = 2,
    /// A value could not be serialized.
    SerializationFailure = 3,
    /// An argument could not be parsed (Envoy: a gRPC call to a cluster
    /// it does not know).
    ParseFailure = 4,
    /// The guest passed pointers or sizes outside its memory.
    InvalidMemoryAccess = 6,
    /// A queue or buffer is empty.
    Empty = 7,
    /// A compare-and-swap on shared data lost the race.
    CasMismatch = 8,
    /// The host failed.
    InternalFailure = 10,
    /// The call exists in the ABI but the host does not implement it.
    Unimplemented = 12,
}

impl Status {
    /// The status as the guest receives it.
    pub fn code(self) -> i32 {
        self as i32
    }

    /// The name used in transcripts.
    pub fn name(self) -> &'static str {
        match self {
            Status::Ok => "Ok",
            Status::NotFound => "NotFound",
            Status::BadArgument => "BadArgument",
            Status::SerializationFailure => "SerializationFailure",
            Status::ParseFailure => "ParseFailure",
            Status::InvalidMemoryAccess => "InvalidMemoryAccess",
            Status::Empty => "Empty",
            Status::CasMismatch => "CasMismatch",
            Status::InternalFailure => "InternalFailure",
            Status::Unimplemented => "Unimplemented",
        }
    }
}

/// The result a `proxy_on_*` stream callback returns to the host.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    /// Hand the headers, body or trailers on to the next filter.
    Continue,
    /// Hold them until the filter calls `proxy_continue_stream` (headers,
    /// trailers) or buffer them until more arrives (bodies).
    Pause,
}

impl Action {
    /// Decodes the guest's return value. Envoy reads it as a filter
    /// status, where every value but `0` stops iteration (headers
    /// callbacks also continue on `2`; the plugin checks that itself).
    pub fn from_code(code: i32) -> Action {
        if code == 0 {
            Action::Continue
        } else {
            Action::Pause
        }
    }
}

/// Log levels, in the ABI's order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum LogLevel {
    /// `trace`
    Trace,
    /// `debug`
    Debug,
    /// `info`
    Info,
    /// `warn`
    Warn,
    /// `error`
    Error,
    /// `critical`
    Critical,
}

impl LogLevel {
    /// Decodes a level; `None` for numbers past `critical`.
    pub fn from_code(code: i32) -> Option<LogLevel> {
        Some(match code {
            0 => LogLevel::Trace,
            1 => LogLevel::Debug,
            2 => LogLevel::Info,
            3 => LogLevel::Warn,
            4 => LogLevel::Error,
            5 => LogLevel::Critical,
            _ => return None,
        })
    }

    /// The level as the guest sees it.
    pub fn code(self) -> i32 {
        self as i32
    }

    /// The lowercase name Envoy prints (`warning`, not `warn`).
    pub fn name(self) -> &'static str {
        match self {
            LogLevel::Trace => "trace",
            LogLevel::Debug => "debug",
            LogLevel::Info => "info",
            LogLevel::Warn => "warning",
            LogLevel::Error => "error",
            LogLevel::Critical => "critical",
        }
    }

    /// Parses a lowercase level name; `warn` is accepted for `warning`.
    pub fn from_name(name: &str) -> Option<LogLevel> {
        if name == "warn" {
            return Some(LogLevel::Warn);
        }
        [
            LogLevel::Trace,
            LogLevel::Debug,
            LogLevel::Info,
            LogLevel::Warn,
            LogLevel::Error,
            LogLevel::Critical,
        ]
        .into_iter()
        .find(|level| level.name() == name)
    }
}

/// The header maps a filter can address.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum MapType {
    /// Request headers, pseudo-headers included.
    RequestHeaders,
    /// Request trailers.
    RequestTrailers,
    /// Response headers, `:status` included.
    ResponseHeaders,
    /// Response trailers.
    ResponseTrailers,
    /// gRPC initial metadata, during `proxy_on_grpc_receive_initial_metadata`.
    GrpcInitialMetadata,
    /// gRPC trailing metadata, during `proxy_on_grpc_receive_trailing_metadata`.
    GrpcTrailingMetadata,
    /// Headers of the response to an HTTP callout.
    CallResponseHeaders,
    /// Trailers of the response to an HTTP callout.
    CallResponseTrailers,
}

impl MapType {
    /// Decodes a map type; `None` for numbers the ABI does not define.
    pub fn from_code(code: i32) -> Option<MapType> {
        Some(match code {
            0 => MapType::RequestHeaders,
            1 => MapType::RequestTrailers,
            2 => MapType::ResponseHeaders,
            3 => MapType::ResponseTrailers,
            4 => MapType::GrpcInitialMetadata,
            5 => MapType::GrpcTrailingMetadata,
            6 => MapType::CallResponseHeaders,
            7 => MapType::CallResponseTrailers,
            _ => return None,
        })
    }

    /// The name used in transcripts.
    pub fn name(self) -> &'static str {
        match self {
            MapType::RequestHeaders => "request_headers",
            MapType::RequestTrailers => "request_trailers",
            MapType::ResponseHeaders => "response_headers",
            MapType::ResponseTrailers => "response_trailers",
            MapType::GrpcInitialMetadata => "grpc_initial_metadata",
            MapType::GrpcTrailingMetadata => "grpc_trailing_metadata",
            MapType::CallResponseHeaders => "call_response_headers",
            MapType::CallResponseTrailers => "call_response_trailers",
        }
    }
}

/// The byte buffers a filter can address.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum BufferType {
    /// The request body seen so far.
    RequestBody,
    /// The response body seen so far.
    ResponseBody,
    /// Downstream TCP data: the client's bytes, for network filters.
    DownstreamData,
    /// Upstream TCP data: the upstream's bytes, for network filters.
    UpstreamData,
    /// The body of the response to an HTTP callout.
    CallResponseBody,
    /// A received gRPC message, during `proxy_on_grpc_receive`.
    GrpcReceive,
    /// The VM configuration, during `proxy_on_vm_start`.
    VmConfiguration,
    /// The plugin configuration, during `proxy_on_configure`.
    PluginConfiguration,
    /// Foreign-function call data (not supported).
    CallData,
}

impl BufferType {
    /// Decodes a buffer type; `None` for numbers the ABI does not define.
    pub fn from_code(code: i32) -> Option<BufferType> {
        Some(match code {
            0 => BufferType::RequestBody,
            1 => BufferType::ResponseBody,
            2 => BufferType::DownstreamData,
            3 => BufferType::UpstreamData,
            4 => BufferType::CallResponseBody,
            5 => BufferType::GrpcReceive,
            6 => BufferType::VmConfiguration,
            7 => BufferType::PluginConfiguration,
            8 => BufferType::CallData,
            _ => return None,
        })
    }

    /// The name used in transcripts.
    pub fn name(self) -> &'static str {
        match self {
            BufferType::RequestBody => "request_body",
            BufferType::ResponseBody => "response_body",
            BufferType::DownstreamData => "downstream_data",
            BufferType::UpstreamData => "upstream_data",
            BufferType::CallResponseBody => "call_response_body",
            BufferType::GrpcReceive => "grpc_receive",
            BufferType::VmConfiguration => "vm_configuration",
            BufferType::PluginConfiguration => "plugin_configuration",
            BufferType::CallData => "call_data",
        }
    }
}

/// The directions of a stream `proxy_continue_stream` and
/// `proxy_close_stream` address.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StreamType {
    /// The request flowing to the upstream.
    Request,
    /// The response flowing to the client.
    Response,
    /// Downstream TCP: the client's side of a network connection.
    Downstream,
    /// Upstream TCP: the upstream's side of a network connection.
    Upstream,
}

impl StreamType {
    /// Decodes a stream type; `None` for numbers the ABI does not define.
    pub fn from_code(code: i32) -> Option<StreamType> {
        Some(match code {
            0 => StreamType::Request,
            1 => StreamType::Response,
            2 => StreamType::Downstream,
            3 => StreamType::Upstream,
            _ => return None,
        })
    }
}

/// The kinds of metric a filter can define.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum MetricKind {
    /// Only ever increases.
    Counter,
    /// Goes up and down, or is set.
    Gauge,
    /// Records samples.
    Histogram,
}

impl MetricKind {
    /// Decodes a metric type; `None` for numbers the ABI does not define.
    pub fn from_code(code: i32) -> Option<MetricKind> {
        Some(match code {
            0 => MetricKind::Counter,
            1 => MetricKind::Gauge,
            2 => MetricKind::Histogram,
            _ => return None,
        })
    }
}

/// A header map as ordered `(name, value)` pairs of bytes.
pub type Pairs = Vec<(Vec<u8>, Vec<u8>)>;

/// Encodes pairs in the ABI's layout: a little-endian `u32` count, then a
/// `u32` size for each name and value, then each name and value followed by
/// a NUL byte. An empty map encodes as no bytes at all, as Envoy sends it.
pub fn encode_pairs<K: AsRef<[u8]>, V: AsRef<[u8]>>(pairs: &[(K, V)]) -> Vec<u8> {
    if pairs.is_empty() {
        return Vec::new();
    }
    let mut out = Vec::new();
    out.extend_from_slice(&len_u32(pairs.len()).to_le_bytes());
    for (name, value) in pairs {
        out.extend_from_slice(&len_u32(name.as_ref().len()).to_le_bytes());
        out.extend_from_slice(&len_u32(value.as_ref().len()).to_le_bytes());
    }
    for (name, value) in pairs {
        out.extend_from_slice(name.as_ref());
        out.push(0);
        out.extend_from_slice(value.as_ref());
        out.push(0);
    }
    out
}

/// Decodes pairs sent by the guest. Like Envoy, a buffer too short for the
/// count it announces decodes as an empty map rather than an error.
pub fn decode_pairs(bytes: &[u8]) -> Pairs {
    decode_pairs_checked(bytes).unwrap_or_default()
}

fn decode_pairs_checked(bytes: &[u8]) -> Option<Pairs> {
    let count = read_u32(bytes, 0)? as usize;
    let mut sizes = Vec::with_capacity(count.min(1024));
    for index in 0..count {
        let at = 4usize.checked_add(index.checked_mul(8)?)?;
        sizes.push((
            read_u32(bytes, at)? as usize,
            read_u32(bytes, at + 4)? as usize,
        ));
    }
    let mut at = 4usize.checked_add(count.checked_mul(8)?)?;
    let mut pairs = Vec::with_capacity(sizes.len());
    for (name_len, value_len) in sizes {
        let name = bytes.get(at..at.checked_add(name_len)?)?.to_vec();
        at = at.checked_add(name_len)?.checked_add(1)?;
        let value = bytes.get(at..at.checked_add(value_len)?)?.to_vec();
        at = at.checked_add(value_len)?.checked_add(1)?;
        pairs.push((name, value));
    }
    Some(pairs)
}

fn read_u32(bytes: &[u8], at: usize) -> Option<u32> {
    let slice = bytes.get(at..at.checked_add(4)?)?;
    Some(u32::from_le_bytes(slice.try_into().ok()?))
}

/// Converts a length to the ABI's `u32`, saturating: buffers the harness
/// builds never approach 4 GiB, and guest memory cannot hold more.
pub fn len_u32(len: usize) -> u32 {
    u32::try_from(len).unwrap_or(u32::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pairs_round_trip() {
        let pairs = vec![
            (b":path".to_vec(), b"/".to_vec()),
            (b"a".to_vec(), b"".to_vec()),
        ];
        assert_eq!(decode_pairs(&encode_pairs(&pairs)), pairs);
    }

    #[test]
    fn empty_map_encodes_as_nothing() {
        let none: [(&str, &str); 0] = [];
        assert!(encode_pairs(&none).is_empty());
        assert!(decode_pairs(&[]).is_empty());
    }

    #[test]
    fn truncated_pairs_decode_as_empty() {
        let mut bytes = encode_pairs(&[("name", "value")]);
        bytes.truncate(bytes.len() - 3);
        assert!(decode_pairs(&bytes).is_empty());
        assert!(decode_pairs(&[255, 255, 255, 255]).is_empty());
    }
}
