//! Everything that makes the harness answer like Envoy 1.40 rather than
//! like proxy-wasm in general, kept in one place so that a profile for
//! another host could sit beside it.
//!
//! The profile decides which headers the host adds around the filter,
//! how local responses look, how a failed VM answers, and what each
//! property is called and how its value is encoded.

use crate::abi::{Pairs, Status, encode_pairs};
use crate::request::{Connection, Request};

/// The host behaviour a plugin runs under.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Profile {
    /// The proxy imitated, for reports.
    pub name: &'static str,
    /// The route timeout the router announces upstream, in milliseconds.
    pub route_timeout_ms: u64,
    /// The proxy's own address, which Envoy appends to `x-forwarded-for`
    /// for clients on loopback. Defaults to `192.0.2.1`; the fidelity
    /// corpus sets the machine's address.
    pub local_address: String,
    /// Whether the HTTP/1.1 codec hands request trailers to filters
    /// (`http_protocol_options.enable_trailers`). Defaults to false, as in
    /// Envoy: trailers are dropped and the body ends with an empty frame.
    pub http1_trailers: bool,
}

impl Default for Profile {
    fn default() -> Profile {
        Profile::envoy()
    }
}

/// The view of a stream that properties are computed from.
#[derive(Debug)]
pub(crate) struct PropertyView<'a> {
    pub(crate) plugin_name: &'a str,
    pub(crate) root_id: &'a str,
    pub(crate) vm_id: &'a str,
    pub(crate) stream: Option<StreamView<'a>>,
}

/// The parts of a stream properties read.
#[derive(Debug)]
pub(crate) struct StreamView<'a> {
    pub(crate) request_headers: &'a Pairs,
    pub(crate) response_headers: Option<&'a Pairs>,
    pub(crate) response_trailers: Option<&'a Pairs>,
    pub(crate) connection: &'a Connection,
    pub(crate) start_ns: u64,
    pub(crate) request_body_size: usize,
    pub(crate) response_body_size: usize,
    pub(crate) response_details: Option<&'a str>,
}

/// A property lookup's result before encoding.
enum Value {
    Bytes(Vec<u8>),
    Int(i64),
    Uint(u64),
    Bool(bool),
    Map(Pairs),
}

impl Value {
    fn text(text: &str) -> Value {
        Value::Bytes(text.as_bytes().to_vec())
    }

    fn encode(self) -> Vec<u8> {
        match self {
            Value::Bytes(bytes) => bytes,
            Value::Int(value) => value.to_le_bytes().to_vec(),
            Value::Uint(value) => value.to_le_bytes().to_vec(),
            Value::Bool(value) => vec![u8::from(value)],
            Value::Map(pairs) => encode_pairs(&pairs),
        }
    }
}

impl Profile {
    /// Envoy 1.40 with an HTTP connection manager, one route to one
    /// cluster, and the Wasm filter first in the chain.
    pub fn envoy() -> Profile {
        Profile {
            name: "envoy-1.40",
            route_timeout_ms: 15_000,
            local_address: "192.0.2.1".into(),
            http1_trailers: false,
        }
    }

    /// The request headers as the filter first sees them, as the
    /// connection manager of `examples/envoy/envoy.yaml` leaves them
    /// (`use_remote_address: true`, no trusted hops, request ids not
    /// preserved): pseudo-headers, the client's headers lowercased (minus
    /// `x-envoy-*` ones, which external clients may not set), a
    /// `content-length` for a body sent without one, then
    /// `x-forwarded-for` with the client's address appended (Envoy's own
    /// address when the client is on loopback), `x-forwarded-proto` from
    /// the connection, `x-envoy-external-address` for an external client or
    /// `x-envoy-internal: true` for an internal one, and a fresh
    /// `x-request-id`.
    pub(crate) fn request_headers(&self, request: &Request, stream_id: u32) -> Pairs {
        let client_ip = ip_of(&request.connection.source);
        let internal = is_internal(client_ip);
        let mut pairs: Pairs = vec![
            (
                b":authority".to_vec(),
                request.authority.as_bytes().to_vec(),
            ),
            (
                b":path".to_vec(),
                normalize_path(&request.path).into_bytes(),
            ),
            (b":method".to_vec(), request.method.as_bytes().to_vec()),
            (b":scheme".to_vec(), request.scheme.as_bytes().to_vec()),
        ];
        for (name, value) in &request.headers.0 {
            let name = name.to_ascii_lowercase();
            let hop_by_hop = name == "transfer-encoding" || name == "connection";
            if hop_by_hop || (!internal && name.starts_with("x-envoy-")) {
                continue;
            }
            pairs.push((name.into_bytes(), value.as_bytes().to_vec()));
        }
        if let Some(body) = &request.body
            && !body.is_empty()
            && request.headers.get("content-length").is_none()
            && request.headers.get("transfer-encoding").is_none()
        {
            let length = body.len().to_string().into_bytes();
            pairs.push((b"content-length".to_vec(), length));
        }
        let appended = if is_loopback(client_ip) {
            self.local_address.as_str()
        } else {
            client_ip
        };
        let forwarded_for = match first(&pairs, b"x-forwarded-for") {
            Some(existing) => format!("{existing},{appended}"),
            None => appended.to_owned(),
        };
        set_in_place(&mut pairs, b"x-forwarded-for", forwarded_for);
        let proto = if request.connection.tls.is_some() {
            "https"
        } else {
            "http"
        };
        set_in_place(&mut pairs, b"x-forwarded-proto", proto.to_owned());
        if internal {
            pairs.push((b"x-envoy-internal".to_vec(), b"true".to_vec()));
        } else {
            let address = client_ip.as_bytes().to_vec();
            pairs.push((b"x-envoy-external-address".to_vec(), address));
        }
        let id = match first(&pairs, b"x-request-id") {
            Some(id) if internal => id,
            _ => format!("00000000-0000-4000-8000-{stream_id:012x}"),
        };
        set_in_place(&mut pairs, b"x-request-id", id);
        pairs
    }

    /// The headers of an HTTP callout as the upstream receives them: the
    /// filter's, then `x-envoy-internal: true` and the router's timeout.
    pub(crate) fn callout_headers(&self, headers: &Pairs, timeout_ms: u32) -> Pairs {
        let mut pairs = headers.clone();
        pairs.push((b"x-envoy-internal".to_vec(), b"true".to_vec()));
        pairs.push((
            b"x-envoy-expected-rq-timeout-ms".to_vec(),
            timeout_ms.to_string().into_bytes(),
        ));
        pairs
    }

    /// The request headers the upstream receives: the filter's result plus
    /// the router's `x-envoy-expected-rq-timeout-ms`, then what the
    /// HTTP/1.1 codec adds: `transfer-encoding: chunked` for a body the
    /// client sent chunked, or `content-length: 0` for a request without a
    /// body whose method may carry one (anything but `GET`, `HEAD` and
    /// `DELETE`; the corpus checks `POST`, `PATCH` and `DELETE`, the policy
    /// cases `PUT`).
    pub(crate) fn upstream_request_headers(
        &self,
        headers: &Pairs,
        chunked: bool,
        body: &[u8],
    ) -> Pairs {
        let mut pairs = headers.clone();
        pairs.push((
            b"x-envoy-expected-rq-timeout-ms".to_vec(),
            self.route_timeout_ms.to_string().into_bytes(),
        ));
        let has = |name: &[u8]| pairs.iter().any(|(key, _)| key == name);
        let method = pairs
            .iter()
            .find(|(key, _)| key == b":method")
            .map(|(_, value)| value.clone())
            .unwrap_or_default();
        if chunked {
            pairs.push((b"transfer-encoding".to_vec(), b"chunked".to_vec()));
        } else if body.is_empty()
            && !has(b"content-length")
            && !matches!(method.as_slice(), b"GET" | b"HEAD" | b"DELETE")
        {
            pairs.push((b"content-length".to_vec(), b"0".to_vec()));
        }
        pairs
    }

    /// The response headers as the filter sees them arrive from upstream:
    /// `:status`, the upstream's headers, a `content-length` when the
    /// upstream sent a body without one, and the router's
    /// `x-envoy-upstream-service-time`.
    pub(crate) fn upstream_response_headers(
        &self,
        status: u16,
        headers: &[(String, String)],
        body: Option<&str>,
    ) -> Pairs {
        let mut pairs: Pairs = vec![(b":status".to_vec(), status.to_string().into_bytes())];
        for (name, value) in headers {
            pairs.push((
                name.to_ascii_lowercase().into_bytes(),
                value.as_bytes().to_vec(),
            ));
        }
        let has_length = headers
            .iter()
            .any(|(name, _)| name.eq_ignore_ascii_case("content-length"));
        if !has_length {
            let length = body.map_or(0, str::len);
            pairs.push((b"content-length".to_vec(), length.to_string().into_bytes()));
        }
        pairs.push((b"x-envoy-upstream-service-time".to_vec(), b"0".to_vec()));
        pairs
    }

    /// The headers of a local response as the filter sees them: `:status`,
    /// the filter's own headers (added, not replacing), then, when there is
    /// a body, `content-length` and `content-type: text/plain` unless the
    /// filter set one. The codec adds `content-length: 0` to an empty
    /// response on the wire only.
    pub(crate) fn local_reply_headers(&self, status: u32, body: &[u8], extra: &Pairs) -> Pairs {
        let mut pairs: Pairs = vec![(b":status".to_vec(), status.to_string().into_bytes())];
        for (name, value) in extra {
            pairs.push((name.to_ascii_lowercase(), value.clone()));
        }
        if !body.is_empty() {
            pairs.retain(|(name, _)| name != b"content-length");
            let length = body.len().to_string().into_bytes();
            pairs.push((b"content-length".to_vec(), length));
            if !pairs.iter().any(|(name, _)| name == b"content-type") {
                pairs.push((b"content-type".to_vec(), b"text/plain".to_vec()));
            }
        }
        pairs
    }

    /// How Envoy's HTTP/1.1 codec hands a body to filters: the data, then
    /// an empty frame that ends the stream; with trailers, the data alone
    /// and the trailers end the stream. No body and no trailers: no frames,
    /// the headers end the stream.
    pub(crate) fn body_frames(&self, body: Option<&[u8]>, trailers: bool) -> Vec<(Vec<u8>, bool)> {
        match (body.filter(|body| !body.is_empty()), trailers) {
            (Some(body), false) => vec![(body.to_vec(), false), (Vec::new(), true)],
            (Some(body), true) => vec![(body.to_vec(), false)],
            (None, _) => Vec::new(),
        }
    }

    /// Envoy stores response code details without whitespace.
    pub(crate) fn details(&self, details: &[u8]) -> String {
        String::from_utf8_lossy(details)
            .chars()
            .map(|ch| if ch.is_whitespace() { '_' } else { ch })
            .collect()
    }

    /// What a failed VM answers when the plugin fails closed.
    pub(crate) fn failure_reply(&self) -> (u32, &'static str) {
        (503, "wasm_fail_stream")
    }

    /// The value of a property, encoded as Envoy encodes it: strings as
    /// their bytes, integers as 8 bytes little-endian, booleans as one
    /// byte, timestamps as nanoseconds since the epoch, maps as pairs.
    /// `NotFound` when the property does not exist or has no value here.
    pub(crate) fn property(
        &self,
        view: &PropertyView<'_>,
        path: &[&[u8]],
    ) -> Result<Vec<u8>, Status> {
        let (first, rest) = path.split_first().ok_or(Status::NotFound)?;
        let name = std::str::from_utf8(first).map_err(|_| Status::NotFound)?;
        let value = match name {
            "plugin_name" => Value::text(view.plugin_name),
            "plugin_root_id" => Value::text(view.root_id),
            "plugin_vm_id" => Value::text(view.vm_id),
            "request" => return stream_property(view, rest, request_field),
            "response" => return stream_property(view, rest, response_field),
            "source" => {
                return stream_property(view, rest, |s, f| address_field(&s.connection.source, f));
            }
            "destination" => {
                return stream_property(view, rest, |s, f| {
                    address_field(&s.connection.destination, f)
                });
            }
            "connection" => return stream_property(view, rest, connection_field),
            "connection_id" => {
                let stream = view.stream.as_ref().ok_or(Status::NotFound)?;
                Value::Uint(stream.connection.id)
            }
            _ => return Err(Status::NotFound),
        };
        if !rest.is_empty() {
            return Err(Status::NotFound);
        }
        Ok(value.encode())
    }
}

/// The view of a network (TCP) connection that its properties are
/// computed from.
#[derive(Debug)]
pub(crate) struct NetworkView<'a> {
    pub(crate) plugin_name: &'a str,
    pub(crate) root_id: &'a str,
    pub(crate) vm_id: &'a str,
    pub(crate) connection: &'a Connection,
    pub(crate) start_ns: u64,
    pub(crate) upstream_address: Option<&'a str>,
}

/// An empty map as Envoy encodes one for a property: a zero count.
const EMPTY_MAP: [u8; 4] = [0; 4];

impl Profile {
    /// A property as a network filter sees it in Envoy (measured by the
    /// TCP corpus): the connection's `source.*`, `destination.*` and
    /// `connection.*` as for HTTP, except that `requested_server_name` is
    /// empty rather than absent without TLS; `upstream.address` and
    /// `upstream.port` once `tcp_proxy` has connected; and of the request
    /// and response that do not exist, only `request.time`, sizes of 0 and
    /// empty header and trailer maps. Every other `request.*` and `response.*` is
    /// `NotFound`.
    pub(crate) fn network_property(
        &self,
        view: &NetworkView<'_>,
        path: &[&[u8]],
    ) -> Result<Vec<u8>, Status> {
        let (first, rest) = path.split_first().ok_or(Status::NotFound)?;
        let field = match rest {
            [field] => std::str::from_utf8(field).ok(),
            _ => None,
        };
        let value = match (*first, field) {
            (b"request", Some("time")) => Value::Int(i64::try_from(view.start_ns).unwrap_or(0)),
            (b"request" | b"response", Some("size")) => Value::Int(0),
            (b"request" | b"response", Some("headers")) | (b"response", Some("trailers")) => {
                return Ok(EMPTY_MAP.to_vec());
            }
            (b"request" | b"response", _) => return Err(Status::NotFound),
            (b"upstream", Some(field)) => {
                let address = view.upstream_address.ok_or(Status::NotFound)?;
                address_field(address, field).ok_or(Status::NotFound)?
            }
            (b"connection", Some("requested_server_name")) => {
                let tls = view.connection.tls.as_ref();
                Value::text(tls.and_then(|tls| tls.server_name.as_deref()).unwrap_or(""))
            }
            _ => return self.property(&self.connection_view(view, &Vec::new()), path),
        };
        Ok(value.encode())
    }

    /// The HTTP view of a connection without a request, for the
    /// properties both kinds of context share.
    fn connection_view<'a>(&self, view: &NetworkView<'a>, empty: &'a Pairs) -> PropertyView<'a> {
        PropertyView {
            plugin_name: view.plugin_name,
            root_id: view.root_id,
            vm_id: view.vm_id,
            stream: Some(StreamView {
                request_headers: empty,
                response_headers: None,
                response_trailers: None,
                connection: view.connection,
                start_ns: view.start_ns,
                request_body_size: 0,
                response_body_size: 0,
                response_details: None,
            }),
        }
    }
}

fn stream_property(
    view: &PropertyView<'_>,
    rest: &[&[u8]],
    field: impl Fn(&StreamView<'_>, &str) -> Option<Value>,
) -> Result<Vec<u8>, Status> {
    let stream = view.stream.as_ref().ok_or(Status::NotFound)?;
    let (name, rest) = rest.split_first().ok_or(Status::NotFound)?;
    let name = std::str::from_utf8(name).map_err(|_| Status::NotFound)?;
    let value = field(stream, name).ok_or(Status::NotFound)?;
    match (value, rest) {
        (value, []) => Ok(value.encode()),
        (Value::Map(pairs), [key]) => pairs
            .iter()
            .find(|(name, _)| name == key)
            .map(|(_, value)| value.clone())
            .ok_or(Status::NotFound),
        _ => Err(Status::NotFound),
    }
}

fn header<'a>(pairs: &'a Pairs, name: &str) -> Option<&'a [u8]> {
    pairs
        .iter()
        .find(|(key, _)| key.as_slice() == name.as_bytes())
        .map(|(_, value)| value.as_slice())
}

fn without_pseudo(pairs: &Pairs) -> Pairs {
    pairs
        .iter()
        .filter(|(key, _)| key.first() != Some(&b':'))
        .cloned()
        .collect()
}

fn request_field(stream: &StreamView<'_>, field: &str) -> Option<Value> {
    let headers = stream.request_headers;
    let bytes = |name: &str| header(headers, name).map(|value| Value::Bytes(value.to_vec()));
    let path = header(headers, ":path").unwrap_or_default();
    let (url_path, query) = match path.iter().position(|&byte| byte == b'?') {
        Some(at) => (path.get(..at)?, path.get(at + 1..)?),
        None => (path, &b""[..]),
    };
    Some(match field {
        "path" => bytes(":path")?,
        "url_path" => Value::Bytes(url_path.to_vec()),
        "query" => Value::Bytes(query.to_vec()),
        "host" => bytes(":authority")?,
        "scheme" => bytes(":scheme")?,
        "method" => bytes(":method")?,
        "headers" => Value::Map(without_pseudo(headers)),
        "referer" => bytes("referer")?,
        "useragent" => bytes("user-agent")?,
        "id" => bytes("x-request-id")?,
        "protocol" => Value::text("HTTP/1.1"),
        "time" => Value::Int(i64::try_from(stream.start_ns).ok()?),
        "size" => Value::Int(i64::try_from(stream.request_body_size).ok()?),
        _ => return None,
    })
}

fn response_field(stream: &StreamView<'_>, field: &str) -> Option<Value> {
    let headers = stream.response_headers?;
    Some(match field {
        "code" => {
            let status = std::str::from_utf8(header(headers, ":status")?).ok()?;
            Value::Int(status.parse().ok()?)
        }
        "code_details" => Value::text(stream.response_details?),
        "headers" => Value::Map(without_pseudo(headers)),
        "trailers" => Value::Map(stream.response_trailers.cloned().unwrap_or_default()),
        "size" => Value::Int(i64::try_from(stream.response_body_size).ok()?),
        _ => return None,
    })
}

fn address_field(address: &str, field: &str) -> Option<Value> {
    Some(match field {
        "address" => Value::text(address),
        "port" => {
            let (_, port) = address.rsplit_once(':')?;
            Value::Int(port.parse().ok()?)
        }
        _ => return None,
    })
}

fn connection_field(stream: &StreamView<'_>, field: &str) -> Option<Value> {
    let tls = stream.connection.tls.as_ref();
    let peer = tls.and_then(|tls| tls.peer_certificate.as_ref());
    Some(match field {
        "id" => Value::Uint(stream.connection.id),
        "mtls" => Value::Bool(peer.is_some()),
        "tls_version" => Value::text(tls?.version.as_deref().unwrap_or("TLSv1.3")),
        "requested_server_name" => Value::text(tls?.server_name.as_deref().unwrap_or("")),
        "subject_local_certificate" => Value::text(tls?.local_subject.as_deref()?),
        "subject_peer_certificate" => Value::text(&peer?.subject),
        "uri_san_peer_certificate" => Value::text(peer?.uri_sans.first()?),
        "dns_san_peer_certificate" => Value::text(peer?.dns_sans.first()?),
        "sha256_peer_certificate_digest" => Value::text(&peer?.sha256),
        _ => return None,
    })
}

/// Encodes a property override given in a request file: strings as bytes,
/// integers as 8 bytes little-endian, booleans as one byte, arrays of
/// strings as pairs with empty values.
///
/// # Errors
///
/// The value is a float, an object, or an array of anything but strings.
pub fn encode_override(path: &str, value: &serde_json::Value) -> Result<Vec<u8>, String> {
    use serde_json::Value as Json;
    match value {
        Json::String(text) => Ok(text.as_bytes().to_vec()),
        Json::Bool(flag) => Ok(vec![u8::from(*flag)]),
        Json::Number(number) => number
            .as_i64()
            .map(|int| int.to_le_bytes().to_vec())
            .or_else(|| number.as_u64().map(|int| int.to_le_bytes().to_vec()))
            .ok_or_else(|| format!("property `{path}`: `{number}` is not an integer")),
        Json::Array(items) => {
            let mut pairs = Vec::new();
            for item in items {
                let text = item
                    .as_str()
                    .ok_or_else(|| format!("property `{path}`: list items must be strings"))?;
                pairs.push((text.to_owned(), String::new()));
            }
            Ok(encode_pairs(&pairs))
        }
        Json::Null | Json::Object(_) => Err(format!(
            "property `{path}`: expected a string, an integer, a boolean or a list"
        )),
    }
}

/// The first value of a header.
fn first(pairs: &Pairs, name: &[u8]) -> Option<String> {
    pairs
        .iter()
        .find(|(key, _)| key == name)
        .map(|(_, value)| String::from_utf8_lossy(value).into_owned())
}

/// Sets a header where it stands, dropping repeats, or appends it: how
/// Envoy sets its own headers (`x-forwarded-for`, `x-request-id`, ...).
fn set_in_place(pairs: &mut Pairs, name: &[u8], value: String) {
    match pairs.iter().position(|(key, _)| key == name) {
        Some(at) => {
            let mut index = 0;
            pairs.retain(|(key, _)| {
                index += 1;
                index - 1 == at || key != name
            });
            if let Some(slot) = pairs.get_mut(at) {
                slot.1 = value.into_bytes();
            }
        }
        None => pairs.push((name.to_vec(), value.into_bytes())),
    }
}

/// The IP part of `ip:port` or `[ip]:port`.
fn ip_of(address: &str) -> &str {
    let host = address.rsplit_once(':').map_or(address, |(host, _)| host);
    host.trim_start_matches('[').trim_end_matches(']')
}

fn is_loopback(ip: &str) -> bool {
    ip.parse::<std::net::IpAddr>()
        .is_ok_and(|ip| ip.is_loopback())
}

/// Envoy's notion of an internal address: RFC 1918 IPv4 and unique-local
/// IPv6. Loopback is not internal.
fn is_internal(ip: &str) -> bool {
    match ip.parse::<std::net::IpAddr>() {
        Ok(std::net::IpAddr::V4(v4)) => v4.is_private(),
        Ok(std::net::IpAddr::V6(v6)) => v6.segments().first().is_some_and(|s| s & 0xfe00 == 0xfc00),
        Err(_) => false,
    }
}

/// `normalize_path` and `merge_slashes`: dot segments resolved (RFC 3986
/// section 5.2.4) and repeated slashes merged, in the path only; the
/// query is left alone.
pub(crate) fn normalize_path(path: &str) -> String {
    let (path_part, query) = match path.split_once('?') {
        Some((path, query)) => (path, Some(query)),
        None => (path, None),
    };
    if !path_part.starts_with('/') {
        return path.to_owned();
    }
    let mut segments: Vec<&str> = Vec::new();
    let parts: Vec<&str> = path_part.split('/').skip(1).collect();
    let trailing = matches!(parts.last(), Some(&"") | Some(&".") | Some(&".."));
    for part in &parts {
        match *part {
            "" | "." => {}
            ".." => {
                segments.pop();
            }
            segment => segments.push(segment),
        }
    }
    let mut out = format!("/{}", segments.join("/"));
    if trailing && !segments.is_empty() {
        out.push('/');
    }
    if let Some(query) = query {
        out.push('?');
        out.push_str(query);
    }
    out
}
