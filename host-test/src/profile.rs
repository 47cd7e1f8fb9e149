//! Everything that makes the harness answer like Envoy 1.40 rather than
//! like proxy-wasm in general, kept in one place so that a profile for
//! another host could sit beside it.
//!
//! The profile decides which headers the host adds around the filter,
//! how local responses look, how a failed VM answers, and what each
//! property is called and how its value is encoded.

use crate::abi::{Pairs, Status, encode_pairs};
use std::collections::BTreeMap;

use crate::request::{Connection, Protocol, Request, UpstreamFailure, UpstreamResponse};

mod xds;

use xds::Attr;
pub use xds::{
    BuildVersion, Cluster, Listener, Locality, Metadata, Node, Route, Struct, StructValue,
    UpstreamHost, Xds,
};

/// The host behaviour a plugin runs under.
#[derive(Clone, Debug, PartialEq)]
pub struct Profile {
    /// The proxy imitated, for reports.
    pub name: &'static str,
    /// The route timeout, in milliseconds: the router announces it
    /// upstream and answers `504` when the upstream has not answered
    /// within it. Defaults to Envoy's 15000. 0, Envoy's "no timeout", is
    /// not modelled: an upstream that never answers times out at once.
    pub route_timeout_ms: u64,
    /// Routes with a timeout of their own, by path prefix: the first whose
    /// prefix starts the request's path sets its timeout in place of
    /// `route_timeout_ms`. Defaults to none. Only the timeout is per
    /// route; the `xds.*` properties come from `xds` whatever the path.
    pub route_timeouts: Vec<RouteTimeout>,
    /// The proxy's own address, which Envoy appends to `x-forwarded-for`
    /// for clients on loopback. Defaults to `192.0.2.1`; the fidelity
    /// corpus sets the machine's address.
    pub local_address: String,
    /// Whether the HTTP/1.1 codec hands request trailers to filters
    /// (`http_protocol_options.enable_trailers`). Defaults to false, as in
    /// Envoy: trailers are dropped and the body ends with an empty frame.
    pub http1_trailers: bool,
    /// Whether the upstream cluster's HTTP/1.1 codec hands response
    /// trailers on (`enable_trailers` in the cluster's
    /// `HttpProtocolOptions`). Defaults to false, as in Envoy: an
    /// upstream's trailers are dropped and its body ends with an empty
    /// frame.
    pub upstream_trailers: bool,
    /// The node, listener, route, cluster and upstream host the `xds.*` and
    /// `upstream.*` properties come from. Defaults to those of
    /// `tests/fidelity/envoy.yaml`.
    pub xds: Xds,
}

/// A route's own timeout, matched by path prefix.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RouteTimeout {
    /// The path prefix the route matches, as Envoy's `match.prefix`.
    pub prefix: String,
    /// The route's `timeout`, in milliseconds.
    pub timeout_ms: u64,
}

/// What Envoy's router does when the main request's upstream fails
/// before the response starts: its own reply.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct RouterReply {
    pub(crate) status: u32,
    pub(crate) body: &'static str,
    pub(crate) details: &'static str,
}

/// Envoy's response flags (`%RESPONSE_FLAGS%`) as bits of the
/// `response.flags` property, for the failures the harness models.
pub mod response_flags {
    /// `UT`: the upstream did not answer within the route timeout.
    pub const UPSTREAM_REQUEST_TIMEOUT: u64 = 1 << 2;
    /// `UF`: the connection to the upstream failed.
    pub const UPSTREAM_CONNECTION_FAILURE: u64 = 1 << 5;
    /// `UC`: the upstream closed the connection.
    pub const UPSTREAM_CONNECTION_TERMINATION: u64 = 1 << 6;
    /// `UPE`: the upstream broke the HTTP protocol (a body cut short).
    pub const UPSTREAM_PROTOCOL_ERROR: u64 = 1 << 23;
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
    pub(crate) response_details: Option<&'a str>,
    pub(crate) progress: &'a Progress,
    /// What the filter stored with `proxy_set_property`, by dotted path.
    pub(crate) filter_state: &'a std::collections::BTreeMap<String, Vec<u8>>,
}

/// How far a stream has come, for the properties whose presence or value
/// depends on it. The harness's driver keeps it up to date.
#[derive(Clone, Debug, Default)]
pub(crate) struct Progress {
    /// The filter is in its request headers callback, or stopped there
    /// and not resumed: Envoy's filter holds the header map only then.
    pub(crate) request_headers_visible: bool,
    /// Likewise for the response headers.
    pub(crate) response_headers_visible: bool,
    /// `proxy_on_log` runs: Envoy reads the access log's header maps.
    pub(crate) logging: bool,
    /// The router picked the upstream host and sent the request.
    pub(crate) forwarded: bool,
    /// Body bytes received from the client so far.
    pub(crate) received: usize,
    /// Body bytes sent to the client so far.
    pub(crate) sent: usize,
    /// When the stream completed, in the harness's clock.
    pub(crate) end_ns: Option<u64>,
    /// The client asked to close the connection after the response
    /// (`connection: close`), so Envoy adds the same to the response.
    pub(crate) client_closes: bool,
    /// How the upstream failed, once the router has seen it fail.
    pub(crate) upstream_failure: Option<UpstreamFailure>,
    /// The protocol the client speaks, for `request.protocol`.
    pub(crate) protocol: Protocol,
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
            Value::Map(pairs) => xds::property_pairs(&pairs),
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
            route_timeouts: Vec::new(),
            local_address: "192.0.2.1".into(),
            http1_trailers: false,
            upstream_trailers: false,
            xds: Xds::default(),
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
        let authority = (
            b":authority".to_vec(),
            request.authority.as_bytes().to_vec(),
        );
        let path = (
            b":path".to_vec(),
            normalize_path(&request.path).into_bytes(),
        );
        let method = (b":method".to_vec(), request.method.as_bytes().to_vec());
        let scheme = (b":scheme".to_vec(), request.scheme.as_bytes().to_vec());
        // HTTP/1.1 has Envoy build the pseudo-headers; HTTP/2 has them in
        // the order the client sent them, curl's.
        let mut pairs: Pairs = match request.protocol {
            Protocol::Http1 => vec![authority, path, method, scheme],
            Protocol::Http2 => vec![method, path, scheme, authority],
        };
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

    /// Whether the request goes upstream chunked: the client sent it
    /// chunked, or (over HTTP/2) its headers did not end the stream and
    /// carried no `content-length`, as for trailers without a body.
    pub(crate) fn upstream_chunked(&self, request: &Request, headers: &Pairs) -> bool {
        let sent_chunked = request
            .headers
            .get("transfer-encoding")
            .is_some_and(|te| te.contains("chunked"));
        let more = request.body.as_ref().is_some_and(|body| !body.is_empty())
            || !request.trailers.0.is_empty();
        let unknown_length = request.protocol == Protocol::Http2
            && more
            && header(headers, "content-length").is_none();
        sent_chunked || unknown_length
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
        let path = header(headers, ":path").unwrap_or_default();
        pairs.push((
            b"x-envoy-expected-rq-timeout-ms".to_vec(),
            self.route_timeout_for(path).to_string().into_bytes(),
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
    /// upstream sent a body without one (`transfer-encoding: chunked`
    /// instead when it sends trailers, which need it), and the router's
    /// `x-envoy-upstream-service-time`.
    pub(crate) fn upstream_response_headers(
        &self,
        status: u16,
        headers: &[(String, String)],
        body: Option<&str>,
        trailers: bool,
    ) -> Pairs {
        let mut pairs: Pairs = vec![(b":status".to_vec(), status.to_string().into_bytes())];
        for (name, value) in headers {
            pairs.push((
                name.to_ascii_lowercase().into_bytes(),
                value.as_bytes().to_vec(),
            ));
        }
        let has = |wanted: &str| {
            headers
                .iter()
                .any(|(name, _)| name.eq_ignore_ascii_case(wanted))
        };
        let has_length = has("content-length") || has("transfer-encoding");
        if trailers && !has_length {
            pairs.push((b"transfer-encoding".to_vec(), b"chunked".to_vec()));
        } else if !has_length {
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

    /// How Envoy's codec hands a client's body to filters. HTTP/1.1: the
    /// data, then an empty frame that ends the stream; with trailers, the
    /// data alone and the trailers end the stream. No body and no
    /// trailers: no frames, the headers end the stream.
    pub(crate) fn request_body_frames(
        &self,
        protocol: Protocol,
        body: Option<&[u8]>,
        trailers: bool,
    ) -> Vec<(Vec<u8>, bool)> {
        match protocol {
            Protocol::Http1 => self.body_frames(body, trailers),
            // HTTP/2: the last data frame ends the stream, unless trailers
            // follow.
            Protocol::Http2 => match body.filter(|body| !body.is_empty()) {
                Some(body) => vec![(body.to_vec(), !trailers)],
                None => Vec::new(),
            },
        }
    }

    /// Whether the codec hands the client's trailers to filters: HTTP/2's
    /// always does, HTTP/1.1's only with `http1_trailers`.
    pub(crate) fn delivers_request_trailers(&self, protocol: Protocol) -> bool {
        protocol == Protocol::Http2 || self.http1_trailers
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

    /// The timeout of the route a path takes: the first of
    /// `route_timeouts` whose prefix starts it, else `route_timeout_ms`.
    pub(crate) fn route_timeout_for(&self, path: &[u8]) -> u64 {
        self.route_timeouts
            .iter()
            .find(|route| path.starts_with(route.prefix.as_bytes()))
            .map_or(self.route_timeout_ms, |route| route.timeout_ms)
    }

    /// The reply Envoy's router sends when the upstream fails before its
    /// response starts, as measured against Envoy 1.40 with an HTTP/1.1
    /// upstream; `None` once the response has started, when the router
    /// resets the stream instead.
    pub(crate) fn router_reply(&self, failure: UpstreamFailure) -> Option<RouterReply> {
        Some(match failure {
            UpstreamFailure::Refused => RouterReply {
                status: 503,
                body: "upstream connect error or disconnect/reset before headers. \
                       reset reason: remote connection failure",
                details: "upstream_reset_before_response_started\
                          {remote_connection_failure|delayed_connect_error:_Connection_refused}",
            },
            UpstreamFailure::ResetBeforeResponse => RouterReply {
                status: 503,
                body: "upstream connect error or disconnect/reset before headers. \
                       reset reason: connection termination",
                details: "upstream_reset_before_response_started{connection_termination}",
            },
            UpstreamFailure::NoAnswer => RouterReply {
                status: 504,
                body: "upstream request timeout",
                details: "response_timeout",
            },
            UpstreamFailure::ResetAfterResponseStarted => return None,
        })
    }

    /// When the upstream answers, in milliseconds after the request reached
    /// it, and whether it fails: an answer due at or past the route's
    /// timeout never comes, and the router times out.
    pub(crate) fn upstream_plan(
        &self,
        upstream: &UpstreamResponse,
        request_headers: &Pairs,
    ) -> (u64, Option<UpstreamFailure>) {
        let path = header(request_headers, ":path").unwrap_or_default();
        let timeout = self.route_timeout_for(path);
        match upstream.failure {
            Some(UpstreamFailure::NoAnswer) => (timeout, Some(UpstreamFailure::NoAnswer)),
            _ if upstream.delay_ms >= timeout => (timeout, Some(UpstreamFailure::NoAnswer)),
            failure => (upstream.delay_ms, failure),
        }
    }

    /// The response code details of a stream the upstream reset after its
    /// response started.
    pub(crate) fn reset_after_response_details(&self) -> &'static str {
        "upstream_reset_after_response_started{protocol_error}"
    }

    /// The response flags a failure raises.
    fn failure_flags(&self, failure: UpstreamFailure) -> u64 {
        match failure {
            UpstreamFailure::Refused => response_flags::UPSTREAM_CONNECTION_FAILURE,
            UpstreamFailure::ResetBeforeResponse => response_flags::UPSTREAM_CONNECTION_TERMINATION,
            UpstreamFailure::ResetAfterResponseStarted => response_flags::UPSTREAM_PROTOCOL_ERROR,
            UpstreamFailure::NoAnswer => response_flags::UPSTREAM_REQUEST_TIMEOUT,
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
            "request" => return stream_property(view, rest, |s, f| self.request_field(s, f)),
            "response" => return stream_property(view, rest, |s, f| self.response_field(s, f)),
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
            "xds" => return self.xds_property(view, rest),
            "upstream" => return self.upstream_property(view, rest),
            "metadata" | "filter_state" | "upstream_filter_state" => {
                return self.state_property(view, name, rest);
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
            _ => {
                let (empty, progress, state) = (Vec::new(), Progress::default(), BTreeMap::new());
                return self.property(&connection_view(view, &empty, &progress, &state), path);
            }
        };
        Ok(value.encode())
    }
}

/// The HTTP view of a connection without a request, for the properties
/// both kinds of context share: no headers seen, nothing forwarded.
fn connection_view<'a>(
    view: &NetworkView<'a>,
    empty: &'a Pairs,
    progress: &'a Progress,
    filter_state: &'a BTreeMap<String, Vec<u8>>,
) -> PropertyView<'a> {
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
            response_details: None,
            progress,
            filter_state,
        }),
    }
}

fn stream_property(
    view: &PropertyView<'_>,
    rest: &[&[u8]],
    field: impl Fn(&StreamView<'_>, &str) -> Option<Value>,
) -> Result<Vec<u8>, Status> {
    let stream = view.stream.as_ref().ok_or(Status::NotFound)?;
    // Envoy cannot list these maps' keys to serialize them whole.
    let (name, rest) = rest.split_first().ok_or(Status::SerializationFailure)?;
    let name = std::str::from_utf8(name).map_err(|_| Status::NotFound)?;
    let value = field(stream, name).ok_or(Status::NotFound)?;
    match (value, rest) {
        (value, []) => Ok(value.encode()),
        // Header names are looked up lowercased, as Envoy looks them up.
        (Value::Map(pairs), [key]) => pairs
            .iter()
            .find(|(name, _)| name.eq_ignore_ascii_case(key))
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

// --- request and response properties, the configuration's and the
// upstream's, with the timing Envoy gives them -------------------------------

impl StreamView<'_> {
    /// The request headers Envoy's filter can read now: during the request
    /// headers callback (and after it, if it stopped there and was not
    /// resumed), and at `proxy_on_log`, where the access log's map carries
    /// the router's `x-envoy-expected-rq-timeout-ms` once forwarded.
    fn visible_request_headers(&self, profile: &Profile) -> Option<Pairs> {
        let progress = self.progress;
        if progress.logging && progress.forwarded {
            let mut pairs = self.request_headers.clone();
            let path = header(&pairs, ":path").unwrap_or_default();
            let timeout = profile.route_timeout_for(path).to_string().into_bytes();
            pairs.push((b"x-envoy-expected-rq-timeout-ms".to_vec(), timeout));
            return Some(pairs);
        }
        (progress.logging || progress.request_headers_visible).then(|| self.request_headers.clone())
    }

    /// The response headers Envoy's filter can read now; at `proxy_on_log`
    /// as the connection manager leaves them on the way out: without
    /// `transfer-encoding`, with `date`, `server: envoy`, and
    /// `connection: close` for a client that asked.
    fn visible_response_headers(&self) -> Option<Pairs> {
        let progress = self.progress;
        let headers = self.response_headers?;
        if !progress.logging {
            return progress.response_headers_visible.then(|| headers.clone());
        }
        let mut pairs = headers.clone();
        // The connection manager drops the upstream's `transfer-encoding`
        // on the way out; the codec frames the body itself.
        pairs.retain(|(name, _)| name != b"transfer-encoding");
        let now = self.progress.end_ns.unwrap_or(self.start_ns);
        set_in_place(&mut pairs, b"date", http_date(now));
        set_in_place(&mut pairs, b"server", "envoy".to_owned());
        if progress.client_closes {
            set_in_place(&mut pairs, b"connection", "close".to_owned());
        }
        Some(pairs)
    }

    fn visible_response_trailers(&self) -> Option<&Pairs> {
        let progress = self.progress;
        (progress.logging || progress.response_headers_visible).then_some(self.response_trailers?)
    }
}

/// A header map as a property sees it: pseudo-headers left out, each name
/// once, the values of a repeated header joined with commas.
fn joined(pairs: &Pairs) -> Pairs {
    let mut out: Pairs = Vec::new();
    for (name, value) in without_pseudo(pairs) {
        match out.iter_mut().find(|(seen, _)| *seen == name) {
            Some((_, joined)) => {
                joined.push(b',');
                joined.extend_from_slice(&value);
            }
            None => out.push((name, value)),
        }
    }
    out
}

/// Envoy's `byteSize()` of a header map: the lengths of every name and
/// value.
fn byte_size(pairs: Option<&Pairs>) -> i64 {
    let total: usize = pairs
        .into_iter()
        .flatten()
        .map(|(name, value)| name.len() + value.len())
        .sum();
    i64::try_from(total).unwrap_or(i64::MAX)
}

fn int(value: usize) -> Value {
    Value::Int(i64::try_from(value).unwrap_or(i64::MAX))
}

/// Envoy's mapping of an HTTP status to a gRPC status, for a response
/// without `grpc-status`.
fn grpc_status_of_http(code: i64) -> i64 {
    match code {
        400 => 13,
        401 => 16,
        403 => 7,
        404 => 12,
        429 | 502..=504 => 14,
        _ => 2,
    }
}

/// A `grpc-status` header: its code, or -1 when it is not one of the
/// seventeen well-known codes.
fn grpc_status_header(pairs: Option<&Pairs>) -> Option<i64> {
    let value = header(pairs?, "grpc-status")?;
    let code = std::str::from_utf8(value)
        .ok()
        .and_then(|v| v.parse::<u64>().ok());
    Some(match code {
        Some(code) if code <= 16 => i64::try_from(code).unwrap_or(-1),
        _ => -1,
    })
}

impl Profile {
    fn request_field(&self, stream: &StreamView<'_>, field: &str) -> Option<Value> {
        let visible = stream.visible_request_headers(self);
        let headers = visible.as_ref();
        let bytes = |name: &str| header(headers?, name).map(|value| Value::Bytes(value.to_vec()));
        let path = headers.and_then(|headers| header(headers, ":path"));
        let split = path.map(|path| match path.iter().position(|&byte| byte == b'?') {
            Some(at) => {
                let (url_path, query) = path.split_at(at);
                (url_path, query.get(1..).unwrap_or_default())
            }
            None => (path, &b""[..]),
        });
        Some(match field {
            "path" => bytes(":path")?,
            "url_path" => Value::Bytes(split?.0.to_vec()),
            "query" => {
                let query = split?.1.split(|&byte| byte == b'#').next();
                Value::Bytes(query.unwrap_or_default().to_vec())
            }
            "host" => bytes(":authority")?,
            "scheme" => bytes(":scheme")?,
            "method" => bytes(":method")?,
            "headers" => Value::Map(headers.map(joined).unwrap_or_default()),
            "headers_bytes" => Value::Int(byte_size(headers)),
            "referer" => bytes("referer")?,
            "useragent" => bytes("user-agent")?,
            "id" => bytes("x-request-id")?,
            "protocol" => Value::text(match stream.progress.protocol {
                Protocol::Http1 => "HTTP/1.1",
                Protocol::Http2 => "HTTP/2",
            }),
            "time" => Value::Int(i64::try_from(stream.start_ns).ok()?),
            "size" => match headers.and_then(|headers| header(headers, "content-length")) {
                Some(length) => Value::Int(std::str::from_utf8(length).ok()?.parse().ok()?),
                None => int(stream.progress.received),
            },
            "total_size" => {
                Value::Int(i64::try_from(stream.progress.received).ok()? + byte_size(headers))
            }
            "duration" => {
                let end = stream.progress.end_ns.filter(|_| stream.progress.logging)?;
                Value::Int(i64::try_from(end.saturating_sub(stream.start_ns)).ok()?)
            }
            _ => return None,
        })
    }

    fn response_field(&self, stream: &StreamView<'_>, field: &str) -> Option<Value> {
        let visible = stream.visible_response_headers();
        let headers = visible.as_ref();
        let trailers = stream.visible_response_trailers();
        let code = || -> Option<i64> {
            let status = header(stream.response_headers?, ":status")?;
            std::str::from_utf8(status).ok()?.parse().ok()
        };
        Some(match field {
            "code" => Value::Int(code()?),
            "code_details" => Value::text(stream.response_details?),
            "headers" => Value::Map(headers.map(joined).unwrap_or_default()),
            "headers_bytes" => Value::Int(byte_size(headers)),
            "trailers" => Value::Map(trailers.map(joined).unwrap_or_default()),
            "size" => int(stream.progress.sent),
            "total_size" => Value::Int(
                i64::try_from(stream.progress.sent).ok()?
                    + byte_size(headers)
                    + byte_size(trailers),
            ),
            // A local reply raises no flag; only the upstream's failures do.
            "flags" => {
                let failure = stream.progress.upstream_failure;
                let flags = failure.map_or(0, |failure| self.failure_flags(failure));
                Value::Int(i64::try_from(flags).ok()?)
            }
            "grpc_status" => Value::Int(
                grpc_status_header(trailers)
                    .or_else(|| grpc_status_header(headers))
                    .or_else(|| code().map(grpc_status_of_http))?,
            ),
            // Only for a response the upstream finished.
            "backend_latency" => {
                let progress = stream.progress;
                let answered = progress.forwarded && progress.upstream_failure.is_none();
                (progress.logging && answered).then_some(Value::Int(0))?
            }
            _ => return None,
        })
    }

    /// `xds.*`: the node everywhere; the rest only on a stream, the
    /// upstream host's metadata once the router has picked the host.
    fn xds_property(&self, view: &PropertyView<'_>, rest: &[&[u8]]) -> Result<Vec<u8>, Status> {
        let (name, rest) = rest.split_first().ok_or(Status::SerializationFailure)?;
        let xds = &self.xds;
        let attr = match (*name, view.stream.as_ref()) {
            (b"node", _) => xds::node_attr(&xds.node),
            (_, None) => return Err(Status::NotFound),
            (b"cluster_name", _) => Attr::text(&xds.cluster.name),
            (b"cluster_metadata", _) => xds::metadata_attr(&xds.cluster.metadata),
            (b"route_name", _) => Attr::text(&xds.route.name),
            (b"route_metadata", _) => xds::metadata_attr(&xds.route.metadata),
            (b"virtual_host_name", _) => Attr::text(&xds.route.virtual_host),
            (b"virtual_host_metadata", _) => xds::metadata_attr(&xds.route.virtual_host_metadata),
            (b"filter_chain_name", _) => Attr::text(&xds.listener.filter_chain_name),
            (b"listener_metadata", _) => xds::metadata_attr(&xds.listener.metadata),
            (b"listener_direction", _) => Attr::Int(xds.listener.direction),
            (b"upstream_host_metadata", Some(stream)) if stream.progress.forwarded => {
                let metadata = xds.upstream_host.metadata.as_ref();
                metadata.map_or(Attr::Null, xds::metadata_attr)
            }
            (b"upstream_host_locality_metadata", Some(stream)) if stream.progress.forwarded => {
                let metadata = xds.upstream_host.locality_metadata.as_ref();
                metadata.map_or(Attr::Null, xds::metadata_attr)
            }
            _ => return Err(Status::NotFound),
        };
        attr.walk(rest)?.encode()
    }

    /// `upstream.*`: the cluster's size and the attempt count from the
    /// start, the host's address, locality and connection once the router
    /// has picked it. No upstream TLS: its TLS fields are not found.
    fn upstream_property(
        &self,
        view: &PropertyView<'_>,
        rest: &[&[u8]],
    ) -> Result<Vec<u8>, Status> {
        let stream = view.stream.as_ref().ok_or(Status::NotFound)?;
        let (name, rest) = rest.split_first().ok_or(Status::SerializationFailure)?;
        let host = &self.xds.upstream_host;
        let forwarded = stream.progress.forwarded;
        let refused = stream.progress.upstream_failure == Some(UpstreamFailure::Refused);
        let attr = match (*name, forwarded) {
            (b"num_endpoints", _) => Attr::Uint(self.xds.cluster.endpoints),
            (b"request_attempt_count", _) => Attr::Uint(u64::from(forwarded)),
            (b"address", true) => Attr::text(&host.address),
            (b"port", true) => {
                let (_, port) = host.address.rsplit_once(':').ok_or(Status::NotFound)?;
                Attr::Int(port.parse().map_err(|_| Status::NotFound)?)
            }
            // A refused connection has no local end.
            (b"local_address", true) if !refused => Attr::text(&host.local_address),
            (b"locality", true) => xds::locality_attr(&host.locality),
            (b"transport_failure_reason", true) if refused => {
                Attr::text("delayed connect error: Connection refused")
            }
            (b"transport_failure_reason", true) => Attr::text(""),
            // The harness's connection pool is ready at once.
            (b"cx_pool_ready_duration", true) => Attr::Int(0),
            _ => return Err(Status::NotFound),
        };
        attr.walk(rest)?.encode()
    }

    /// `metadata` (the stream's dynamic metadata, which no filter of the
    /// harness sets), `filter_state` (what the filter stored, under
    /// `wasm.` and its path) and `upstream_filter_state` (none).
    fn state_property(
        &self,
        view: &PropertyView<'_>,
        name: &str,
        rest: &[&[u8]],
    ) -> Result<Vec<u8>, Status> {
        let stream = view.stream.as_ref().ok_or(Status::NotFound)?;
        match (name, rest) {
            ("metadata", _) => xds::metadata_attr(&Metadata::default())
                .walk(rest)?
                .encode(),
            // Envoy cannot list the filter state's keys to serialize it.
            ("filter_state", []) => Err(Status::SerializationFailure),
            ("filter_state", [key]) => {
                let key = std::str::from_utf8(key).map_err(|_| Status::NotFound)?;
                let path = key.strip_prefix("wasm.").ok_or(Status::NotFound)?;
                stream
                    .filter_state
                    .get(&path.replace('\0', "."))
                    .cloned()
                    .ok_or(Status::NotFound)
            }
            _ => Err(Status::NotFound),
        }
    }
}

/// An IMF-fixdate (`Thu, 01 Jan 2026 00:00:00 GMT`) for nanoseconds since
/// the epoch.
fn http_date(now_ns: u64) -> String {
    const DAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let seconds = now_ns / 1_000_000_000;
    let days = seconds / 86_400;
    let (hour, minute, second) = (seconds / 3600 % 24, seconds / 60 % 60, seconds % 60);
    // Days to a civil date, after Howard Hinnant's algorithm.
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
    let weekday = DAYS.get((days % 7) as usize).copied().unwrap_or("Thu");
    let month_name = MONTHS.get((month - 1) as usize).copied().unwrap_or("Jan");
    format!("{weekday}, {day:02} {month_name} {year} {hour:02}:{minute:02}:{second:02} GMT")
}

#[cfg(test)]
mod property_tests {
    use super::*;

    #[test]
    fn http_dates_are_imf_fixdates() {
        assert_eq!(
            http_date(crate::plugin::DEFAULT_START_NS),
            "Thu, 01 Jan 2026 00:00:00 GMT"
        );
        let leap_day = 1_709_210_096 * 1_000_000_000;
        assert_eq!(http_date(leap_day), "Thu, 29 Feb 2024 12:34:56 GMT");
    }

    #[test]
    fn http_statuses_map_to_grpc_statuses_as_envoy_maps_them() {
        let codes = [400, 401, 403, 404, 429, 502, 503, 504, 200, 500];
        let grpc: Vec<i64> = codes.into_iter().map(grpc_status_of_http).collect();
        assert_eq!(grpc, [13, 16, 7, 12, 14, 14, 14, 14, 2, 2]);
    }

    #[test]
    fn a_grpc_status_header_outside_the_known_codes_is_minus_one() {
        let pairs = |value: &str| vec![(b"grpc-status".to_vec(), value.as_bytes().to_vec())];
        assert_eq!(grpc_status_header(Some(&pairs("16"))), Some(16));
        assert_eq!(grpc_status_header(Some(&pairs("17"))), Some(-1));
        assert_eq!(grpc_status_header(Some(&pairs("x"))), Some(-1));
        assert_eq!(grpc_status_header(Some(&Vec::new())), None);
    }
}
