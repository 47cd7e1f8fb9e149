//! What a test sends: a request, the connection it arrives on, and the
//! response the upstream gives if the filter lets the request through.
//!
//! The same types are read from JSON or YAML by `warden check` and
//! `warden test`, so every field has a default stated in its doc.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// An ordered list of header (or trailer) pairs.
///
/// Written in files either as a map (`{"accept": "*/*"}`) or, to repeat a
/// name or fix the order, as a list of pairs (`[["a", "1"], ["a", "2"]]`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct Headers(pub Vec<(String, String)>);

impl<'de> Deserialize<'de> for Headers {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Headers, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Form {
            Map(BTreeMap<String, String>),
            List(Vec<(String, String)>),
        }
        Ok(match Form::deserialize(deserializer)? {
            Form::Map(map) => Headers(map.into_iter().collect()),
            Form::List(list) => Headers(list),
        })
    }
}

impl Headers {
    /// The first value of `name`, compared case-insensitively.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
    }
}

impl<K: Into<String>, V: Into<String>> FromIterator<(K, V)> for Headers {
    fn from_iter<I: IntoIterator<Item = (K, V)>>(iter: I) -> Headers {
        Headers(
            iter.into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
        )
    }
}

/// One HTTP request from a client.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Request {
    /// `:method`. Defaults to `GET`.
    pub method: String,
    /// `:path`, query included. Defaults to `/`.
    pub path: String,
    /// `:authority`. Defaults to `example.com`.
    pub authority: String,
    /// `:scheme`. Defaults to `http`.
    pub scheme: String,
    /// Headers other than pseudo-headers, names as given (Envoy lowercases
    /// them; so does the harness). Defaults to none.
    pub headers: Headers,
    /// The request body. Defaults to none: the headers end the stream.
    pub body: Option<String>,
    /// The request body in frames, as a client that sends it in pieces
    /// (chunked, pausing between them) has Envoy deliver it: one
    /// `proxy_on_request_body` call per chunk, then an empty frame that
    /// ends the stream. Send `transfer-encoding: chunked` with it. Replaces
    /// `body` when not empty. Defaults to none.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub body_chunks: Vec<String>,
    /// Request trailers. Defaults to none.
    pub trailers: Headers,
    /// Properties that override what the host would compute, by dotted
    /// path (`"source.address": "10.1.2.3:5555"`): strings as bytes,
    /// integers as 8-byte little-endian, booleans as one byte. Defaults to
    /// none.
    pub properties: BTreeMap<String, serde_json::Value>,
    /// The connection the request arrives on. Defaults to plaintext from
    /// `127.0.0.1:50000`.
    pub connection: Connection,
    /// The wall-clock time the request arrives, as RFC 3339
    /// (`2026-01-01T00:00:00Z`) or Unix seconds. Defaults to the plugin's
    /// clock, which starts at 2026-01-01T00:00:00Z.
    pub time: Option<Time>,
    /// What the upstream answers if the request reaches it. Defaults to
    /// `200` with no body.
    pub upstream: UpstreamResponse,
    /// How the client speaks to Envoy. Defaults to HTTP/1.1.
    pub protocol: Protocol,
}

/// The protocol of the client's connection to Envoy (the upstream is
/// spoken to in HTTP/1.1 either way).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum Protocol {
    /// HTTP/1.1, written `http1`: Envoy's HTTP/1.1 codec.
    #[default]
    #[serde(rename = "http1")]
    Http1,
    /// HTTP/2 over cleartext (h2c with prior knowledge), written `http2`:
    /// pseudo-headers in the order a client such as curl sends them
    /// (`:method`, `:path`, `:scheme`, `:authority`), the body's last
    /// frame ends the stream, trailers always reach the filter.
    #[serde(rename = "http2")]
    Http2,
}

impl Default for Request {
    fn default() -> Request {
        Request {
            method: "GET".into(),
            path: "/".into(),
            authority: "example.com".into(),
            scheme: "http".into(),
            headers: Headers::default(),
            body: None,
            body_chunks: Vec::new(),
            trailers: Headers::default(),
            properties: BTreeMap::new(),
            connection: Connection::default(),
            time: None,
            upstream: UpstreamResponse::default(),
            protocol: Protocol::Http1,
        }
    }
}

impl Request {
    /// A `GET` of `path`.
    pub fn get(path: &str) -> Request {
        Request {
            path: path.into(),
            ..Request::default()
        }
    }

    /// A request with the given method and path.
    pub fn new(method: &str, path: &str) -> Request {
        Request {
            method: method.into(),
            path: path.into(),
            ..Request::default()
        }
    }

    /// Adds a header.
    pub fn header(mut self, name: &str, value: &str) -> Request {
        self.headers.0.push((name.into(), value.into()));
        self
    }

    /// Sets the body.
    pub fn body(mut self, body: &str) -> Request {
        self.body = Some(body.into());
        self
    }

    /// Adds a trailer.
    pub fn trailer(mut self, name: &str, value: &str) -> Request {
        self.trailers.0.push((name.into(), value.into()));
        self
    }

    /// Sets `:authority`.
    pub fn authority(mut self, authority: &str) -> Request {
        self.authority = authority.into();
        self
    }

    /// Overrides a property.
    pub fn property(mut self, path: &str, value: impl Into<serde_json::Value>) -> Request {
        self.properties.insert(path.into(), value.into());
        self
    }

    /// Sets the connection.
    pub fn connection(mut self, connection: Connection) -> Request {
        self.connection = connection;
        self
    }

    /// Sets the arrival time, in Unix seconds.
    pub fn at_unix(mut self, seconds: i64) -> Request {
        self.time = Some(Time::Unix(seconds));
        self
    }

    /// Sets the protocol the client speaks.
    pub fn protocol(mut self, protocol: Protocol) -> Request {
        self.protocol = protocol;
        self
    }

    /// Sets what the upstream answers.
    pub fn upstream(mut self, upstream: UpstreamResponse) -> Request {
        self.upstream = upstream;
        self
    }
}

/// A point in time as written in a file.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Time {
    /// Seconds since the Unix epoch.
    Unix(i64),
    /// RFC 3339 in UTC, e.g. `2026-01-01T00:00:00Z`.
    Text(String),
}

impl Time {
    /// Nanoseconds since the Unix epoch.
    ///
    /// # Errors
    ///
    /// The text is not RFC 3339 in UTC, or the time is before 1970.
    pub fn unix_nanos(&self) -> Result<u64, String> {
        let seconds = match self {
            Time::Unix(seconds) => *seconds,
            Time::Text(text) => parse_rfc3339(text).ok_or_else(|| {
                format!("invalid time `{text}`: expected e.g. `2026-01-01T00:00:00Z`")
            })?,
        };
        u64::try_from(seconds)
            .ok()
            .and_then(|seconds| seconds.checked_mul(1_000_000_000))
            .ok_or_else(|| format!("time `{seconds}` is before 1970 or too far ahead"))
    }
}

/// Parses `YYYY-MM-DDTHH:MM:SSZ` (fractions of a second are dropped).
fn parse_rfc3339(text: &str) -> Option<i64> {
    let text = text
        .strip_suffix('Z')
        .or_else(|| text.strip_suffix("+00:00"))?;
    let (date, time) = text.split_once(['T', ' '])?;
    let time = time.split('.').next()?;
    let mut date = date.splitn(3, '-').map(str::parse::<i64>);
    let (year, month, day) = (date.next()?.ok()?, date.next()?.ok()?, date.next()?.ok()?);
    let mut time = time.splitn(3, ':').map(str::parse::<i64>);
    let (hour, minute, second) = (time.next()?.ok()?, time.next()?.ok()?, time.next()?.ok()?);
    let valid = (1..=12).contains(&month)
        && (1..=31).contains(&day)
        && (0..24).contains(&hour)
        && (0..60).contains(&minute)
        && (0..=60).contains(&second);
    valid.then(|| days_from_civil(year, month, day) * 86_400 + hour * 3600 + minute * 60 + second)
}

/// Days since 1970-01-01 of a proleptic Gregorian date.
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year - era * 400;
    let month_index = (month + 9) % 12;
    let day_of_year = (153 * month_index + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

/// The connection a request arrives on.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Connection {
    /// The client's address, `ip:port`. Defaults to `127.0.0.1:50000`.
    pub source: String,
    /// The listener's address, `ip:port`. Defaults to `127.0.0.1:10000`.
    pub destination: String,
    /// Envoy's connection id. Defaults to `1`.
    pub id: u64,
    /// TLS details; absent for plaintext, the default.
    pub tls: Option<Tls>,
}

impl Default for Connection {
    fn default() -> Connection {
        Connection {
            source: "127.0.0.1:50000".into(),
            destination: "127.0.0.1:10000".into(),
            id: 1,
            tls: None,
        }
    }
}

/// A TLS session and the client's certificate, if it presented one.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Tls {
    /// `TLSv1.3` or `TLSv1.2`. Defaults to `TLSv1.3`.
    pub version: Option<String>,
    /// The SNI the client sent. Defaults to none.
    pub server_name: Option<String>,
    /// The client certificate; present means mutual TLS. Defaults to none.
    pub peer_certificate: Option<PeerCertificate>,
    /// The subject of the listener's own certificate. Defaults to none.
    pub local_subject: Option<String>,
}

/// The fields of a client certificate a filter can read.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PeerCertificate {
    /// RFC 2253 subject, e.g. `CN=client,O=example`.
    pub subject: String,
    /// URI subject alternative names, e.g. SPIFFE ids.
    pub uri_sans: Vec<String>,
    /// DNS subject alternative names.
    pub dns_sans: Vec<String>,
    /// Lowercase hex SHA-256 of the DER certificate.
    pub sha256: String,
}

/// What the upstream answers.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct UpstreamResponse {
    /// The status. Defaults to `200`.
    pub status: u16,
    /// Headers other than `:status`. Defaults to none.
    pub headers: Headers,
    /// The body. Defaults to none.
    pub body: Option<String>,
    /// The body in frames, as an upstream that sends it chunked, pausing
    /// between chunks, has Envoy deliver it: one `proxy_on_response_body`
    /// call per chunk, then an empty frame that ends the stream. Send
    /// `transfer-encoding: chunked` with it. Replaces `body` when not
    /// empty. Defaults to none.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub body_chunks: Vec<String>,
    /// Trailers. Defaults to none.
    pub trailers: Headers,
    /// How long the upstream takes to answer (or to fail), in milliseconds
    /// of the plugin's clock; ticks and callout answers due meanwhile are
    /// delivered first. A delay at or past the route's timeout is a
    /// timeout, as [`UpstreamFailure::NoAnswer`]. Defaults to 0.
    pub delay_ms: u64,
    /// How the upstream fails, if it does; with
    /// [`UpstreamFailure::ResetAfterResponseStarted`], `status`, `headers`
    /// and `body` are what it sent before the reset. Defaults to none: the
    /// upstream answers.
    pub failure: Option<UpstreamFailure>,
}

impl Default for UpstreamResponse {
    fn default() -> UpstreamResponse {
        UpstreamResponse {
            status: 200,
            headers: Headers::default(),
            body: None,
            body_chunks: Vec::new(),
            trailers: Headers::default(),
            delay_ms: 0,
            failure: None,
        }
    }
}

impl UpstreamResponse {
    /// An upstream that fails in the given way.
    pub fn failing(failure: UpstreamFailure) -> UpstreamResponse {
        UpstreamResponse {
            failure: Some(failure),
            ..UpstreamResponse::default()
        }
    }

    /// Sets how long the upstream takes, in milliseconds.
    pub fn after_ms(mut self, delay_ms: u64) -> UpstreamResponse {
        self.delay_ms = delay_ms;
        self
    }
}

/// How the upstream of the main request fails. Envoy's router then
/// answers for it (or, once the response has started, resets the stream);
/// [`Profile`](crate::profile::Profile) holds what it answers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UpstreamFailure {
    /// The connection is refused (a closed port): `503`, response flag
    /// `UF`.
    Refused,
    /// The upstream takes the request and closes the connection before it
    /// answers: `503`, response flag `UC`.
    ResetBeforeResponse,
    /// The upstream sends its status, headers and part of its body, then
    /// closes the connection: the client gets what was sent and the stream
    /// is reset; response flag `UPE` (Envoy's HTTP/1.1 codec calls a body
    /// cut short a protocol error).
    ResetAfterResponseStarted,
    /// The upstream takes the request and never answers: after the route's
    /// timeout, `504`, response flag `UT`.
    NoAnswer,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_rfc3339_in_utc() {
        assert_eq!(parse_rfc3339("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(parse_rfc3339("2026-01-01T00:00:00Z"), Some(1_767_225_600));
        assert_eq!(parse_rfc3339("2000-02-29T12:30:15.5Z"), Some(951_827_415));
        assert_eq!(parse_rfc3339("2026-13-01T00:00:00Z"), None);
        assert_eq!(parse_rfc3339("2026-01-01T00:00:00+02:00"), None);
    }

    #[test]
    fn headers_read_as_map_or_list() {
        let map: Headers = serde_json::from_str(r#"{"b": "2", "a": "1"}"#).unwrap();
        assert_eq!(
            map.0,
            vec![("a".into(), "1".into()), ("b".into(), "2".into())]
        );
        let list: Headers = serde_json::from_str(r#"[["x", "1"], ["x", "2"]]"#).unwrap();
        assert_eq!(list.0.len(), 2);
    }

    #[test]
    fn unknown_request_fields_are_refused() {
        let error = serde_json::from_str::<Request>(r#"{"paht": "/"}"#).unwrap_err();
        assert!(
            error.to_string().starts_with("unknown field `paht`"),
            "{error}"
        );
    }
}
