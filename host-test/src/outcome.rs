//! What came of a request: what the client got, what the upstream got,
//! and what the filter logged on the way.

use serde::{Deserialize, Serialize};

use crate::request::Headers;

/// How the stream ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Disposition {
    /// The request reached the upstream and its response reached the client.
    Forwarded,
    /// The filter answered the client itself with a local response.
    LocalReply,
    /// The filter's VM failed (a trap or panic) and the failure policy
    /// answered for it: Envoy's `503` with details `wasm_fail_stream`
    /// when failing closed.
    VmFailed,
    /// The filter paused the stream and nothing resumed it: no callout or
    /// timer was left that could.
    Stalled,
    /// The filter reset the stream (`proxy_close_stream`): the client got
    /// no response.
    Reset,
    /// The upstream failed (see
    /// [`UpstreamFailure`](crate::request::UpstreamFailure)): Envoy's router
    /// answered for it, or, when the response had started, the client got
    /// what the upstream sent before the stream was reset.
    UpstreamFailed,
}

/// One line the filter logged.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogLine {
    /// `trace` to `critical`.
    pub level: String,
    /// The message, as the filter wrote it.
    pub message: String,
}

/// The request as the upstream received it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Forwarded {
    /// Headers, pseudo-headers included, after the filter changed them.
    pub headers: Headers,
    /// The body after the filter changed it.
    pub body: String,
    /// Trailers after the filter changed them.
    pub trailers: Headers,
}

/// The outcome of one request.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Outcome {
    /// How the stream ended.
    pub disposition: Disposition,
    /// The status the client received; absent when the stream stalled.
    pub status: Option<u16>,
    /// Envoy's response code details: `via_upstream` for a forwarded
    /// request, the filter's details for a local response, the router's
    /// (such as `response_timeout`) when the upstream failed.
    pub details: String,
    /// Response headers the client received, `:status` excluded.
    pub headers: Headers,
    /// The response body the client received.
    pub body: String,
    /// Response trailers the client received.
    pub trailers: Headers,
    /// The request as the upstream received it; absent when it never got
    /// there.
    pub upstream: Option<Forwarded>,
    /// Lines the filter logged while handling this request, at or above
    /// the host's log level, in order.
    pub logs: Vec<LogLine>,
}

impl Outcome {
    /// The response header `name`, compared case-insensitively.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name)
    }

    /// The header `name` as the upstream received it.
    pub fn upstream_header(&self, name: &str) -> Option<&str> {
        self.upstream
            .as_ref()
            .and_then(|upstream| upstream.headers.get(name))
    }

    /// The messages of the filter's log lines, in order, without their
    /// levels.
    pub fn messages(&self) -> Vec<String> {
        self.logs.iter().map(|line| line.message.clone()).collect()
    }

    /// Whether some log line at `level` contains `text`.
    pub fn logged(&self, level: &str, text: &str) -> bool {
        self.logs
            .iter()
            .any(|line| line.level == level && line.message.contains(text))
    }
}
