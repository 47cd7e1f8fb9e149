//! One request through Warden, acting on the host's current context.
//!
//! The functions here call the host directly rather than through a stream
//! object, so that the root context can finish a request it resumed after
//! keys arrived, exactly as the stream would have.

use super::{Shared, log, now_millis, now_secs};
use crate::authorize::host_of;
use crate::config::Config;
use crate::decide::{Decision, Peer, Request, Verdict, decide};
use crate::extract::{Credential, CredentialKind, extract};
use crate::record::{self, Context as RecordContext};
use crate::verify::spiffe::thumbprint_from_hex;
use proxy_wasm::hostcalls;
use proxy_wasm::types::{LogLevel, MapType};

/// What became of a request.
#[derive(Debug)]
pub(super) enum Handled {
    /// Allowed: it goes on upstream.
    Forwarded,
    /// Answered locally.
    Answered,
    /// Paused until this issuer's keys have been fetched.
    Wait(String),
}

/// Decides the current request and carries the decision out. With
/// `may_wait`, a token whose issuer has no usable key yet, but a fetch
/// coming, makes the request wait instead of being refused.
pub(super) fn handle(shared: &Shared, may_wait: bool) -> Handled {
    let (Ok(config), Ok(mut cache)) = (shared.config.try_borrow(), shared.cache.try_borrow_mut())
    else {
        log(LogLevel::Error, "configuration busy: request refused");
        answer(503, None, "not_configured", None);
        return Handled::Answered;
    };
    let headers = strip_inbound(&config);
    let header = |name: &str| {
        headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
            .unwrap_or_default()
    };
    let (uri_san, thumbprint) = client_certificate();
    let request = Request {
        method: header(":method"),
        authority: header(":authority"),
        path: header(":path"),
        headers: &headers,
        peer: Peer {
            uri_san: uri_san.as_deref(),
            thumbprint: thumbprint.as_deref(),
        },
    };
    let decision = decide(&config, &request, now_secs(), &mut cache);
    drop(cache);

    if may_wait && let Some(issuer) = worth_waiting(shared, &config, &decision, &headers) {
        return Handled::Wait(issuer);
    }
    log(LogLevel::Info, &render_record(&config, &decision, &request));
    carry_out(&config, &decision, header("x-request-id"))
}

/// The connection's verified client certificate: its URI SAN and its
/// thumbprint. Read only from connection properties, never from a header.
fn client_certificate() -> (Option<String>, Option<String>) {
    let property = |name: &str| {
        hostcalls::get_property(vec!["connection", name])
            .ok()
            .flatten()
            .filter(|b| !b.is_empty())
            .map(|b| String::from_utf8_lossy(&b).into_owned())
    };
    let digest = property("sha256_peer_certificate_digest");
    let thumbprint = digest.as_deref().and_then(thumbprint_from_hex);
    (property("uri_san_peer_certificate"), thumbprint)
}

/// Answers 503 for a stream created without a usable configuration.
pub(super) fn answer_unconfigured() {
    answer(503, None, "not_configured", None);
}

/// The issuer to wait for, when the token was refused only for want of a
/// key and a fetch of that issuer's keys is pending or allowed now.
fn worth_waiting(
    shared: &Shared,
    config: &Config,
    decision: &Decision,
    headers: &[(String, String)],
) -> Option<String> {
    if !matches!(decision.reason, "keys_unavailable" | "key_unknown") {
        return None;
    }
    let Ok(Credential::Bearer(token)) = extract(headers, config.api_key_header(), false) else {
        return None;
    };
    let issuer = config.policy().issuers().claimed_issuer(token)?;
    let mut fetchers = shared.fetchers.try_borrow_mut().ok()?;
    let fetcher = fetchers.iter_mut().find(|f| f.issuer == issuer)?;
    fetcher.want(now_secs()).then(|| issuer.to_owned())
}

/// Removes every inbound header under Warden's prefix and returns the
/// rest. Values that are not UTF-8 are read lossily: they can never form a
/// valid credential.
fn strip_inbound(config: &Config) -> Vec<(String, String)> {
    let all = hostcalls::get_map_bytes(MapType::HttpRequestHeaders).unwrap_or_default();
    let mut kept = Vec::with_capacity(all.len());
    for (name, value) in all {
        if name.starts_with(config.header_prefix()) {
            remove_header(&name);
        } else {
            kept.push((name, String::from_utf8_lossy(&value).into_owned()));
        }
    }
    kept
}

fn carry_out(config: &Config, decision: &Decision, request_id: &str) -> Handled {
    match decision.verdict {
        Verdict::Allow => {
            forward(config, decision);
            Handled::Forwarded
        }
        Verdict::Deny { status, challenge } => {
            let request_id = Some(request_id).filter(|id| !id.is_empty());
            answer(status, challenge, decision.reason, request_id);
            Handled::Answered
        }
    }
}

/// Removes the credential and attaches the identity for the upstream.
fn forward(config: &Config, decision: &Decision) {
    match decision.credential {
        Some(CredentialKind::Jwt | CredentialKind::BoundJwt | CredentialKind::Cwt) => {
            remove_header("authorization")
        }
        Some(CredentialKind::ApiKey) => remove_header(config.api_key_header()),
        Some(CredentialKind::Mtls) | None => {}
    }
    let identity = decision.identity.as_deref().unwrap_or_default();
    let credential = decision
        .credential
        .map(CredentialKind::as_str)
        .unwrap_or_default();
    set_header(&config.upstream_header("identity"), identity);
    set_header(
        &config.upstream_header("groups"),
        &decision.groups.join(","),
    );
    set_header(&config.upstream_header("credential"), credential);
}

fn remove_header(name: &str) {
    if hostcalls::remove_map_value(MapType::HttpRequestHeaders, name).is_err() {
        log(
            LogLevel::Error,
            &format!("host refused to remove header `{name}`"),
        );
    }
}

fn set_header(name: &str, value: &str) {
    if hostcalls::set_map_value(MapType::HttpRequestHeaders, name, Some(value)).is_err() {
        log(
            LogLevel::Error,
            &format!("host refused to set header `{name}`"),
        );
    }
}

/// Answers locally with a JSON body that holds only the status, the reason
/// code and the request id.
fn answer(status: u16, challenge: Option<&str>, reason: &str, request_id: Option<&str>) {
    let body = serde_json::json!({ "status": status, "reason": reason, "request_id": request_id });
    let mut headers = vec![
        ("content-type", "application/json"),
        ("cache-control", "no-store"),
    ];
    if let Some(challenge) = challenge {
        headers.push(("www-authenticate", challenge));
    }
    let body = body.to_string();
    if hostcalls::send_http_response(u32::from(status), headers, Some(body.as_bytes())).is_err() {
        log(
            LogLevel::Error,
            "host refused a local reply; resetting the request",
        );
        let _ = hostcalls::reset_http_request();
    }
}

fn render_record(config: &Config, decision: &Decision, request: &Request<'_>) -> String {
    let source = hostcalls::get_property(vec!["source", "address"])
        .ok()
        .flatten()
        .map(|b| String::from_utf8_lossy(&b).into_owned());
    let request_id = request
        .headers
        .iter()
        .find(|(n, _)| n == "x-request-id")
        .map(|(_, v)| v.as_str());
    let host = host_of(request.authority);
    let context = RecordContext {
        time_ms: now_millis(),
        request_id,
        method: request.method,
        host: &host,
        path: request.path,
        source: source.as_deref(),
        policy_revision: config.policy().revision(),
    };
    record::render(decision, &context)
}
