//! gRPC calls and streams to scripted upstreams, as Envoy's Wasm host
//! runs them.
//!
//! A test scripts, per cluster and method, what the server does
//! ([`GrpcAnswer`]); the filter's calls and streams become timed events
//! ([`GrpcEvent`]) that the plugin delivers in clock order, the way
//! Envoy's event loop delivers what its gRPC client receives:
//!
//! - A unary call ends with exactly one callback: the response message
//!   (`proxy_on_grpc_receive`) or, on failure, `proxy_on_grpc_close`.
//!   Envoy hands a unary call's metadata to nobody.
//! - A stream gets the server's initial metadata, each message, the
//!   trailing metadata and the close, in that order. A stream that cannot
//!   connect gets empty initial metadata, then Envoy's own trailers
//!   (`grpc-status: 14`), then the close.
//! - Tokens follow Envoy: per VM, calls are 5, 9, 13, ... and streams 6,
//!   10, 14, ...; the low two bits tell them apart from HTTP callouts.
//! - The status message `proxy_get_status` reports during
//!   `proxy_on_grpc_close` carries Envoy's response code details in braces
//!   (`not allowed here{via_upstream}`).

use std::collections::{BTreeMap, BTreeSet, HashMap};

use crate::abi::{Pairs, Status};

/// What a scripted gRPC upstream does with a call or stream.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum GrpcAnswer {
    /// The server answers.
    Respond(GrpcResponse),
    /// The connection fails: status 14 (`UNAVAILABLE`) with Envoy's
    /// connect-failure message, as for a closed port.
    Down,
    /// The server accepts and never answers: a call fails with status 14
    /// and `upstream request timeout` when its timeout expires (Envoy
    /// reports a deadline this way, not as 4); a stream, which has no
    /// timeout, waits for ever.
    Silent,
}

/// What a server that answers sends.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct GrpcResponse {
    /// Initial metadata the server adds after `:status` and
    /// `content-type`. Defaults to none.
    pub initial_metadata: Vec<(String, String)>,
    /// Request metadata the server sends back in its initial metadata, each
    /// as `<name>-echo`, after [`GrpcResponse::initial_metadata`]; a name
    /// the filter did not send is left out. Defaults to none.
    pub metadata_echo: Vec<String>,
    /// The reply to each message received: `Some(prefix)` answers the
    /// message with `prefix` followed by the message (an echo). A unary
    /// call with `None` gets [`GrpcResponse::messages`]' first message (or
    /// an empty one). Defaults to `None`.
    pub echo: Option<String>,
    /// Messages a stream's server sends as soon as it opens, after its
    /// initial metadata. Defaults to none.
    pub messages: Vec<Vec<u8>>,
    /// Trailing metadata after `grpc-status` and `grpc-message`. Defaults
    /// to none.
    pub trailing_metadata: Vec<(String, String)>,
    /// The status the server ends with; a unary call with a status other
    /// than 0 gets no message. Defaults to 0.
    pub status: u32,
    /// The status message. Defaults to empty.
    pub message: String,
    /// A stream's server ends after receiving this many messages, without
    /// waiting for the filter to half-close. Defaults to `None`: it ends
    /// when the filter half-closes.
    pub close_after: Option<usize>,
    /// How long the server takes to answer, in milliseconds of the
    /// plugin's clock. A call whose timeout is shorter fails as a
    /// deadline. Defaults to 0.
    pub delay_ms: u64,
}

impl GrpcResponse {
    /// A server that echoes every message with `prefix` and ends with
    /// status 0.
    pub fn echo(prefix: &str) -> GrpcResponse {
        GrpcResponse {
            echo: Some(prefix.to_owned()),
            ..GrpcResponse::default()
        }
    }

    /// A server that fails every call with `status` and `message`.
    pub fn failing(status: u32, message: &str) -> GrpcResponse {
        GrpcResponse {
            status,
            message: message.to_owned(),
            ..GrpcResponse::default()
        }
    }
}

/// A gRPC call or stream the filter opened, as the upstream received it.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct GrpcRecord {
    /// The token the filter got.
    pub token: u32,
    /// `true` for a stream, `false` for a unary call.
    pub stream: bool,
    /// The cluster named.
    pub cluster: String,
    /// The service name.
    pub service: String,
    /// The method name.
    pub method: String,
    /// The initial metadata the filter passed.
    pub metadata: Vec<(String, String)>,
    /// The messages the upstream received, in order: a unary call's
    /// request, or what the filter sent on a stream before it half-closed;
    /// none when the connection failed.
    pub messages: Vec<String>,
    /// The filter half-closed the stream.
    pub half_closed: bool,
    /// The filter cancelled the call or stream.
    pub cancelled: bool,
}

/// The scripted gRPC upstreams of a plugin, by cluster.
#[derive(Clone, Debug, Default)]
pub(crate) struct Upstreams {
    /// By cluster, then by method path (`service/method`); the empty path
    /// answers methods not named.
    clusters: HashMap<String, BTreeMap<String, GrpcAnswer>>,
    pub(crate) records: Vec<GrpcRecord>,
}

impl Upstreams {
    pub(crate) fn script(&mut self, cluster: &str, method: &str, answer: GrpcAnswer) {
        self.clusters
            .entry(cluster.to_owned())
            .or_default()
            .insert(method.to_owned(), answer);
    }

    fn knows(&self, cluster: &str) -> bool {
        self.clusters.contains_key(cluster)
    }

    /// The answer for a method; a method the cluster's script does not
    /// name gets status 12 (`UNIMPLEMENTED`), as from a real server.
    fn answer(&self, cluster: &str, service: &str, method: &str) -> GrpcAnswer {
        let methods = self.clusters.get(cluster);
        let path = format!("{service}/{method}");
        methods
            .and_then(|methods| methods.get(&path).or_else(|| methods.get("")))
            .cloned()
            .unwrap_or_else(|| GrpcAnswer::Respond(GrpcResponse::failing(12, "")))
    }

    fn record_mut(&mut self, token: u32) -> Option<&mut GrpcRecord> {
        self.records
            .iter_mut()
            .rev()
            .find(|record| record.token == token)
    }
}

/// What the filter passes to `proxy_grpc_call` or `proxy_grpc_stream`.
#[derive(Clone, Debug)]
pub(crate) struct Opening {
    pub(crate) target: Vec<u8>,
    pub(crate) service: String,
    pub(crate) method: String,
    pub(crate) metadata: Pairs,
    /// The request of a unary call; `None` for a stream.
    pub(crate) request: Option<Vec<u8>>,
    pub(crate) timeout_ms: u32,
}

/// One thing the filter hears about a call or stream.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum GrpcEventKind {
    InitialMetadata(Pairs),
    Message(Vec<u8>),
    TrailingMetadata(Pairs),
    Close(u32, Vec<u8>),
}

/// An event due at a time of the plugin's clock.
#[derive(Clone, Debug)]
pub(crate) struct GrpcEvent {
    pub(crate) due_ns: u64,
    pub(crate) sequence: u64,
    pub(crate) token: u32,
    pub(crate) kind: GrpcEventKind,
}

/// A stream the filter has open.
#[derive(Clone, Debug)]
struct OpenStream {
    response: Option<GrpcResponse>,
    received: usize,
    half_closed: bool,
    /// When the filter half-closed, for Envoy's upstream service time.
    half_closed_ns: Option<u64>,
    /// The server has ended the stream (its close is scheduled).
    ended: bool,
    /// The filter called `proxy_grpc_close`.
    local_closed: bool,
    /// The close has reached the filter.
    remote_closed: bool,
}

/// A VM's gRPC calls and streams, and what is due to reach the filter.
#[derive(Debug)]
pub(crate) struct Calls {
    next_call: u32,
    next_stream: u32,
    calls: BTreeSet<u32>,
    streams: BTreeMap<u32, OpenStream>,
    events: Vec<GrpcEvent>,
    sequence: u64,
}

impl Default for Calls {
    fn default() -> Calls {
        Calls {
            next_call: 1,
            next_stream: 2,
            calls: BTreeSet::new(),
            streams: BTreeMap::new(),
            events: Vec::new(),
            sequence: 0,
        }
    }
}

/// Envoy's message for a connection that fails, as its router reports it
/// in a gRPC reply.
const CONNECT_FAILURE: &str = "upstream connect error or disconnect/reset before headers. reset reason: remote connection failure";

/// The response code details Envoy appends to the connect failure.
const CONNECT_FAILURE_DETAILS: &str = "upstream_reset_before_response_started{remote_connection_failure|delayed_connect_error:_Connection_refused}";

/// Envoy's message and details for a call whose timeout expires.
const TIMEOUT: &str = "upstream request timeout{response_timeout}";

/// Envoy's message for a `GrpcService` naming a cluster it does not have.
const NO_CLUSTER: &str = "Cluster not available";

/// The message `proxy_get_status` reports: the status message followed by
/// Envoy's response code details in braces, or the details alone.
fn with_details(message: &str, details: &str) -> Vec<u8> {
    if message.is_empty() {
        details.as_bytes().to_vec()
    } else {
        format!("{message}{{{details}}}").into_bytes()
    }
}

fn pairs(list: &[(String, String)]) -> Pairs {
    list.iter()
        .map(|(k, v)| (k.to_ascii_lowercase().into_bytes(), v.clone().into_bytes()))
        .collect()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Where a call goes, as Envoy reads the service argument.
enum Target {
    /// A cluster, named directly or in a `GrpcService`.
    Cluster(String),
    /// A `GrpcService` naming a cluster Envoy does not have: the call
    /// starts and closes at once with status 14.
    Missing,
}

/// Reads the service argument: a serialized
/// `envoy.config.core.v3.GrpcService` if the bytes parse as one (its
/// `envoy_grpc.cluster_name`), else a cluster name. A name that is not a
/// scripted cluster is `ParseFailure`, as in Envoy; a `GrpcService`
/// without an Envoy gRPC cluster is `BadArgument`.
fn target(upstreams: &Upstreams, bytes: &[u8]) -> Result<Target, Status> {
    match proto::grpc_service_cluster(bytes) {
        Some(Some(cluster)) if upstreams.knows(&cluster) => Ok(Target::Cluster(cluster)),
        Some(Some(_)) => Ok(Target::Missing),
        Some(None) => Err(Status::BadArgument),
        None => {
            let name = std::str::from_utf8(bytes).map_err(|_| Status::ParseFailure)?;
            if upstreams.knows(name) {
                Ok(Target::Cluster(name.to_owned()))
            } else {
                Err(Status::ParseFailure)
            }
        }
    }
}

impl Calls {
    fn push(&mut self, due_ns: u64, token: u32, kind: GrpcEventKind) {
        self.sequence += 1;
        self.events.push(GrpcEvent {
            due_ns,
            sequence: self.sequence,
            token,
            kind,
        });
    }

    fn take_token(&mut self, stream: bool) -> u32 {
        let next = if stream {
            &mut self.next_stream
        } else {
            &mut self.next_call
        };
        *next = next.wrapping_add(4);
        *next
    }

    /// Starts a unary call (`opening.request` is `Some`) or a stream, and
    /// returns its token.
    pub(crate) fn open(
        &mut self,
        upstreams: &mut Upstreams,
        opening: Opening,
        now_ns: u64,
    ) -> Result<u32, Status> {
        let stream = opening.request.is_none();
        let target = target(upstreams, &opening.target)?;
        let token = self.take_token(stream);
        let cluster = match target {
            Target::Cluster(cluster) => cluster,
            Target::Missing => {
                let message = NO_CLUSTER.as_bytes().to_vec();
                self.push(now_ns, token, GrpcEventKind::Close(14, message));
                return Err(Status::InternalFailure);
            }
        };
        let answer = upstreams.answer(&cluster, &opening.service, &opening.method);
        upstreams.records.push(GrpcRecord {
            token,
            stream,
            cluster,
            service: opening.service,
            method: opening.method,
            metadata: opening
                .metadata
                .iter()
                .map(|(k, v)| (text(k), text(v)))
                .collect(),
            // A connection that fails delivers nothing.
            messages: opening
                .request
                .iter()
                .filter(|_| answer != GrpcAnswer::Down)
                .map(|m| text(m))
                .collect(),
            half_closed: false,
            cancelled: false,
        });
        match opening.request {
            Some(request) => {
                self.calls.insert(token);
                self.answer_call(token, &answer, &request, opening.timeout_ms, now_ns);
            }
            None => self.open_stream(token, answer, &opening.metadata, now_ns),
        }
        Ok(token)
    }

    fn answer_call(
        &mut self,
        token: u32,
        answer: &GrpcAnswer,
        request: &[u8],
        timeout_ms: u32,
        now_ns: u64,
    ) {
        let deadline = (timeout_ms > 0).then(|| at(now_ns, u64::from(timeout_ms)));
        let timed_out = |due: u64| deadline.is_some_and(|deadline| due >= deadline);
        let timeout = TIMEOUT.as_bytes().to_vec();
        match answer {
            GrpcAnswer::Respond(response) => {
                let due = at(now_ns, response.delay_ms);
                if let Some(deadline) = deadline.filter(|_| timed_out(due)) {
                    self.push(deadline, token, GrpcEventKind::Close(14, timeout));
                } else if response.status == 0 {
                    let reply = match &response.echo {
                        Some(prefix) => [prefix.as_bytes(), request].concat(),
                        None => response.messages.first().cloned().unwrap_or_default(),
                    };
                    self.push(due, token, GrpcEventKind::Message(reply));
                } else {
                    let message = with_details(&response.message, "via_upstream");
                    self.push(due, token, GrpcEventKind::Close(response.status, message));
                }
            }
            GrpcAnswer::Down => {
                let message = with_details(CONNECT_FAILURE, CONNECT_FAILURE_DETAILS);
                self.push(now_ns, token, GrpcEventKind::Close(14, message));
            }
            GrpcAnswer::Silent => {
                if let Some(deadline) = deadline {
                    self.push(deadline, token, GrpcEventKind::Close(14, timeout));
                }
            }
        }
    }

    fn open_stream(&mut self, token: u32, answer: GrpcAnswer, sent: &Pairs, now_ns: u64) {
        let mut open = OpenStream {
            response: None,
            received: 0,
            half_closed: false,
            half_closed_ns: None,
            ended: false,
            local_closed: false,
            remote_closed: false,
        };
        match answer {
            GrpcAnswer::Respond(response) => {
                let due = at(now_ns, response.delay_ms);
                let mut initial = vec![
                    (b":status".to_vec(), b"200".to_vec()),
                    (b"content-type".to_vec(), b"application/grpc".to_vec()),
                ];
                initial.extend(pairs(&response.initial_metadata));
                for name in &response.metadata_echo {
                    let value = sent.iter().find(|(key, _)| key == name.as_bytes());
                    if let Some((_, value)) = value {
                        initial.push((format!("{name}-echo").into_bytes(), value.clone()));
                    }
                }
                self.push(due, token, GrpcEventKind::InitialMetadata(initial));
                for message in &response.messages {
                    self.push(due, token, GrpcEventKind::Message(message.clone()));
                }
                open.response = Some(response);
            }
            GrpcAnswer::Down => {
                let trailers = vec![
                    (b":status".to_vec(), b"200".to_vec()),
                    (b"content-type".to_vec(), b"application/grpc".to_vec()),
                    (b"grpc-status".to_vec(), b"14".to_vec()),
                    (
                        b"grpc-message".to_vec(),
                        CONNECT_FAILURE.as_bytes().to_vec(),
                    ),
                ];
                let message = with_details(CONNECT_FAILURE, CONNECT_FAILURE_DETAILS);
                self.push(now_ns, token, GrpcEventKind::InitialMetadata(Vec::new()));
                self.push(now_ns, token, GrpcEventKind::TrailingMetadata(trailers));
                self.push(now_ns, token, GrpcEventKind::Close(14, message));
                open.ended = true;
            }
            GrpcAnswer::Silent => {}
        }
        self.streams.insert(token, open);
        if self.closes_now(token) {
            self.end_stream(token, now_ns);
        }
    }

    /// Whether a stream's server ends now: it ends after `close_after`
    /// messages, or once the filter has half-closed.
    fn closes_now(&self, token: u32) -> bool {
        let Some(open) = self.streams.get(&token) else {
            return false;
        };
        let Some(response) = &open.response else {
            return false;
        };
        !open.ended
            && (open.half_closed
                || response
                    .close_after
                    .is_some_and(|after| open.received >= after))
    }

    fn end_stream(&mut self, token: u32, now_ns: u64) {
        let Some(open) = self.streams.get_mut(&token) else {
            return;
        };
        let Some(response) = open.response.clone() else {
            return;
        };
        open.ended = true;
        let due = at(now_ns, response.delay_ms);
        let mut trailers = vec![
            (
                b"grpc-status".to_vec(),
                response.status.to_string().into_bytes(),
            ),
            (
                b"grpc-message".to_vec(),
                response.message.clone().into_bytes(),
            ),
        ];
        trailers.extend(pairs(&response.trailing_metadata));
        let message = with_details(&response.message, "via_upstream");
        self.push(due, token, GrpcEventKind::TrailingMetadata(trailers));
        self.push(due, token, GrpcEventKind::Close(response.status, message));
    }

    /// `proxy_grpc_send`: a message on a stream, and perhaps its
    /// half-close. A call's token is `BadArgument`, an unknown one
    /// `NotFound`. After the half-close the message is dropped, as Envoy
    /// drops it, and the call still succeeds.
    pub(crate) fn send(
        &mut self,
        upstreams: &mut Upstreams,
        token: u32,
        message: &[u8],
        end_stream: bool,
        now_ns: u64,
    ) -> Result<(), Status> {
        if kind(token) == Kind::Call {
            return Err(Status::BadArgument);
        }
        let open = self.streams.get_mut(&token).ok_or(Status::NotFound)?;
        if open.half_closed || open.remote_closed {
            return Ok(());
        }
        open.received += 1;
        let reply = match &open.response {
            Some(response) if !open.ended => response
                .echo
                .as_ref()
                .map(|prefix| (at(now_ns, response.delay_ms), prefix.clone())),
            _ => None,
        };
        let connected = open.response.is_some() || !open.ended;
        if let Some(record) = upstreams.record_mut(token).filter(|_| connected) {
            record.messages.push(text(message));
        }
        if let Some((due, prefix)) = reply {
            let echoed = [prefix.as_bytes(), message].concat();
            self.push(due, token, GrpcEventKind::Message(echoed));
        }
        if end_stream {
            self.half_close(upstreams, token, now_ns);
        }
        if self.closes_now(token) {
            self.end_stream(token, now_ns);
        }
        Ok(())
    }

    fn half_close(&mut self, upstreams: &mut Upstreams, token: u32, now_ns: u64) {
        if let Some(open) = self.streams.get_mut(&token) {
            open.half_closed = true;
            open.half_closed_ns.get_or_insert(now_ns);
        }
        if let Some(record) = upstreams.record_mut(token) {
            record.half_closed = true;
        }
        if self.closes_now(token) {
            self.end_stream(token, now_ns);
        }
    }

    /// `proxy_grpc_close`: half-closes a stream, which stays known until
    /// its close has reached the filter (at once if it already has), or
    /// cancels a call.
    pub(crate) fn close(
        &mut self,
        upstreams: &mut Upstreams,
        token: u32,
        now_ns: u64,
    ) -> Result<(), Status> {
        match kind(token) {
            Kind::Call => self.cancel(upstreams, token),
            Kind::Stream => {
                let open = self.streams.get_mut(&token).ok_or(Status::NotFound)?;
                if open.remote_closed {
                    self.streams.remove(&token);
                    return Ok(());
                }
                open.local_closed = true;
                self.half_close(upstreams, token, now_ns);
                Ok(())
            }
            Kind::Other => Err(Status::BadArgument),
        }
    }

    /// `proxy_grpc_cancel`: forgets a call or stream; nothing more about
    /// it reaches the filter.
    pub(crate) fn cancel(&mut self, upstreams: &mut Upstreams, token: u32) -> Result<(), Status> {
        let known = match kind(token) {
            Kind::Call => self.calls.remove(&token),
            Kind::Stream => self.streams.remove(&token).is_some(),
            Kind::Other => return Err(Status::BadArgument),
        };
        if !known {
            return Err(Status::NotFound);
        }
        self.events.retain(|event| event.token != token);
        if let Some(record) = upstreams.record_mut(token) {
            record.cancelled = true;
        }
        Ok(())
    }

    /// When the next event is due.
    pub(crate) fn next_due(&self) -> Option<u64> {
        self.events.iter().map(|event| event.due_ns).min()
    }

    /// Takes the earliest event (in scheduling order among equals). The
    /// call or stream stays known while the filter's callback runs;
    /// [`Calls::delivered`] ends it afterwards.
    pub(crate) fn take_next(&mut self) -> Option<GrpcEvent> {
        let index = self
            .events
            .iter()
            .enumerate()
            .min_by_key(|(_, event)| (event.due_ns, event.sequence))
            .map(|(index, _)| index)?;
        let mut event = self.events.remove(index);
        if let GrpcEventKind::InitialMetadata(pairs) = &mut event.kind
            && let Some(since) = self
                .streams
                .get(&event.token)
                .and_then(|open| open.half_closed_ns)
            && !pairs.is_empty()
        {
            // Envoy's router times the upstream from the end of the
            // request: only a stream already half-closed gets the header.
            let ms = event.due_ns.saturating_sub(since) / 1_000_000;
            pairs.push((
                b"x-envoy-upstream-service-time".to_vec(),
                ms.to_string().into_bytes(),
            ));
        }
        if let GrpcEventKind::Close(..) = event.kind
            && let Some(open) = self.streams.get_mut(&event.token)
        {
            open.remote_closed = true;
        }
        Some(event)
    }

    /// After the callback for `token`: a unary call ends with its response
    /// or close; a stream ends with its close if the filter has closed its
    /// side too, and otherwise stays known until it does (as Envoy keeps
    /// it).
    pub(crate) fn delivered(&mut self, token: u32, message: bool, close: bool) {
        if message || close {
            self.calls.remove(&token);
        }
        if close
            && self
                .streams
                .get(&token)
                .is_some_and(|open| open.local_closed)
        {
            self.streams.remove(&token);
        }
    }
}

fn at(now_ns: u64, delay_ms: u64) -> u64 {
    now_ns.saturating_add(delay_ms.saturating_mul(1_000_000))
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Call,
    Stream,
    Other,
}

/// Envoy tells tokens apart by their low two bits: 1 for calls, 2 for
/// streams (0 is an HTTP callout).
fn kind(token: u32) -> Kind {
    match token & 3 {
        1 => Kind::Call,
        2 => Kind::Stream,
        _ => Kind::Other,
    }
}

/// Just enough of the protobuf wire format to read a `GrpcService`.
mod proto {
    /// `None` if `bytes` is not a well-formed protobuf message (a
    /// `cluster_name` that is not UTF-8 makes it malformed, as protobuf's
    /// parser finds); else the `envoy_grpc.cluster_name` it carries
    /// (field 1, then field 1), if any.
    pub(super) fn grpc_service_cluster(bytes: &[u8]) -> Option<Option<String>> {
        let outer = fields(bytes)?;
        let Some(envoy_grpc) = last_bytes(&outer, 1) else {
            return Some(None);
        };
        let inner = fields(envoy_grpc)?;
        let name = last_bytes(&inner, 1).unwrap_or_default();
        Some(Some(String::from_utf8(name.to_vec()).ok()?))
    }

    fn last_bytes<'a>(fields: &[(u64, &'a [u8])], number: u64) -> Option<&'a [u8]> {
        fields
            .iter()
            .rev()
            .find(|(field, _)| *field == number)
            .map(|(_, value)| *value)
    }

    /// The length-delimited fields of a message, by number; `None` if the
    /// bytes are not a well-formed message.
    fn fields(bytes: &[u8]) -> Option<Vec<(u64, &[u8])>> {
        let mut out = Vec::new();
        let mut rest = bytes;
        let mut groups: Vec<u64> = Vec::new();
        while !rest.is_empty() {
            let (key, after) = varint(rest)?;
            rest = after;
            let number = key >> 3;
            if number == 0 {
                return None;
            }
            match key & 7 {
                0 => rest = varint(rest)?.1,
                1 => rest = rest.get(8..)?,
                2 => {
                    let (len, after) = varint(rest)?;
                    let len = usize::try_from(len).ok()?;
                    let value = after.get(..len)?;
                    if groups.is_empty() {
                        out.push((number, value));
                    }
                    rest = after.get(len..)?;
                }
                3 => groups.push(number),
                4 => {
                    if groups.pop() != Some(number) {
                        return None;
                    }
                }
                5 => rest = rest.get(4..)?,
                _ => return None,
            }
        }
        groups.is_empty().then_some(out)
    }

    fn varint(bytes: &[u8]) -> Option<(u64, &[u8])> {
        let mut value = 0u64;
        for (index, byte) in bytes.iter().enumerate().take(10) {
            value |= u64::from(byte & 0x7f) << (7 * index);
            if byte & 0x80 == 0 {
                return Some((value, bytes.get(index + 1..)?));
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn upstreams() -> Upstreams {
        let mut upstreams = Upstreams::default();
        upstreams.script(
            "grpc",
            "",
            GrpcAnswer::Respond(GrpcResponse::echo("echo: ")),
        );
        upstreams
    }

    fn opening(target: &[u8], request: Option<&[u8]>) -> Opening {
        Opening {
            target: target.to_vec(),
            service: "probe.Echo".into(),
            method: "Say".into(),
            metadata: Vec::new(),
            request: request.map(<[u8]>::to_vec),
            timeout_ms: 1000,
        }
    }

    #[test]
    fn a_cluster_is_named_directly_or_in_a_grpc_service() {
        let upstreams = upstreams();
        let service = [0x0a, 0x06, 0x0a, 0x04, b'g', b'r', b'p', b'c'];
        assert!(matches!(target(&upstreams, b"grpc"), Ok(Target::Cluster(c)) if c == "grpc"));
        assert!(matches!(target(&upstreams, &service), Ok(Target::Cluster(c)) if c == "grpc"));
        assert!(matches!(
            target(&upstreams, b"nowhere"),
            Err(Status::ParseFailure)
        ));
        let missing = [0x0a, 0x03, 0x0a, 0x01, b'x'];
        assert!(matches!(target(&upstreams, &missing), Ok(Target::Missing)));
        // An empty argument is an empty `GrpcService`: no cluster.
        assert!(matches!(target(&upstreams, b""), Err(Status::BadArgument)));
    }

    #[test]
    fn tokens_follow_envoy() {
        let mut upstreams = upstreams();
        let mut calls = Calls::default();
        let call = calls.open(&mut upstreams, opening(b"grpc", Some(b"a")), 0);
        let stream = calls.open(&mut upstreams, opening(b"grpc", None), 0);
        let again = calls.open(&mut upstreams, opening(b"grpc", Some(b"b")), 0);
        assert_eq!((call, stream, again), (Ok(5), Ok(6), Ok(9)));
        assert_eq!(
            calls.open(&mut upstreams, opening(b"nowhere", None), 0),
            Err(Status::ParseFailure)
        );
        assert_eq!(
            calls.open(&mut upstreams, opening(b"grpc", None), 0),
            Ok(10)
        );
    }

    #[test]
    fn a_stream_half_closed_ends_after_its_replies() {
        let mut upstreams = upstreams();
        let mut calls = Calls::default();
        let token = calls
            .open(&mut upstreams, opening(b"grpc", None), 0)
            .unwrap();
        assert_eq!(calls.send(&mut upstreams, token, b"one", true, 0), Ok(()));
        assert_eq!(calls.send(&mut upstreams, token, b"late", false, 0), Ok(()));
        let mut kinds = Vec::new();
        while let Some(event) = calls.take_next() {
            let close = matches!(event.kind, GrpcEventKind::Close(..));
            calls.delivered(event.token, false, close);
            kinds.push(event.kind);
        }
        assert!(matches!(&kinds[..], [
            GrpcEventKind::InitialMetadata(_),
            GrpcEventKind::Message(m),
            GrpcEventKind::TrailingMetadata(_),
            GrpcEventKind::Close(0, close),
        ] if m == b"echo: one" && close == b"via_upstream"));
        // Closed by the server only: still known, as in Envoy, until the
        // filter closes its side.
        assert_eq!(calls.send(&mut upstreams, token, b"x", false, 0), Ok(()));
        assert_eq!(calls.close(&mut upstreams, token, 0), Ok(()));
        assert_eq!(
            calls.send(&mut upstreams, token, b"x", false, 0),
            Err(Status::NotFound)
        );
        assert_eq!(upstreams.records[0].messages, vec!["one".to_owned()]);
    }

    #[test]
    fn cancel_forgets_and_close_checks_the_token_kind() {
        let mut upstreams = upstreams();
        let mut calls = Calls::default();
        let token = calls
            .open(&mut upstreams, opening(b"grpc", Some(b"a")), 0)
            .unwrap();
        assert_eq!(calls.cancel(&mut upstreams, token), Ok(()));
        assert!(calls.take_next().is_none());
        assert_eq!(calls.cancel(&mut upstreams, token), Err(Status::NotFound));
        assert_eq!(calls.close(&mut upstreams, token, 0), Err(Status::NotFound));
        assert_eq!(calls.close(&mut upstreams, 4, 0), Err(Status::BadArgument));
        assert_eq!(
            calls.send(&mut upstreams, token, b"", false, 0),
            Err(Status::BadArgument)
        );
    }

    #[test]
    fn a_call_past_its_timeout_fails_as_envoy_reports_it() {
        let mut upstreams = Upstreams::default();
        let slow = GrpcResponse {
            delay_ms: 2000,
            ..GrpcResponse::echo("")
        };
        upstreams.script("grpc", "", GrpcAnswer::Respond(slow));
        let mut calls = Calls::default();
        calls
            .open(&mut upstreams, opening(b"grpc", Some(b"a")), 0)
            .unwrap();
        let event = calls.take_next().unwrap();
        assert_eq!(event.due_ns, 1_000_000_000);
        assert_eq!(
            event.kind,
            GrpcEventKind::Close(14, b"upstream request timeout{response_timeout}".to_vec())
        );
    }
}
