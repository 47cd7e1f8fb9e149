//! Fetching issuers' JWKS through the proxy, on the root context's timer,
//! and finishing the requests that waited for them.
//!
//! When to fetch is decided by [`KeyFetcher`](crate::verify::fetch); this
//! module only dispatches, installs and resumes.

use super::request::{self, Handled};
use super::{Shared, Waiter, log, now_millis, now_secs};
use crate::verify::fetch::MAX_JWKS_BYTES;
use proxy_wasm::hostcalls;
use proxy_wasm::types::{BufferType, LogLevel, MapType};
use std::time::Duration;

/// Starts due fetches, drops keys stale beyond use, and finishes requests
/// that waited longer than their issuer's fetch timeout.
pub(super) fn on_tick(shared: &Shared, root_id: u32) {
    let now = now_secs();
    let Ok(mut fetchers) = shared.fetchers.try_borrow_mut() else {
        return;
    };
    let mut timeouts = Vec::new();
    for fetcher in fetchers.iter_mut() {
        if fetcher.expired(now) {
            if let Ok(mut config) = shared.config.try_borrow_mut() {
                config
                    .policy_mut()
                    .issuers_mut()
                    .drop_fetched_keys(&fetcher.issuer);
            }
            fetcher.dropped();
            log(
                LogLevel::Warn,
                &format!(
                    "issuer `{}`: keys stale beyond use, dropped",
                    fetcher.issuer
                ),
            );
        }
        if fetcher.due(now) {
            dispatch(fetcher);
        }
        timeouts.push((fetcher.issuer.clone(), fetcher.spec.timeout() + 1000));
    }
    drop(fetchers);

    let now_ms = now_millis();
    let expired = take_waiters(shared, |w| {
        let limit = timeouts
            .iter()
            .find(|(i, _)| *i == w.issuer)
            .map_or(0, |(_, ms)| *ms);
        now_ms.saturating_sub(w.since_ms) > limit
    });
    finish(shared, root_id, &expired);
}

fn dispatch(fetcher: &mut crate::verify::fetch::KeyFetcher) {
    let spec = fetcher.spec.clone();
    let headers = vec![
        (":method", "GET"),
        (":path", spec.path.as_str()),
        (":authority", spec.authority.as_str()),
        ("accept", "application/jwk-set+json, application/json"),
    ];
    let timeout = Duration::from_millis(spec.timeout());
    match hostcalls::dispatch_http_call(&spec.cluster, headers, None, vec![], timeout) {
        Ok(token) => fetcher.started(token),
        Err(status) => {
            fetcher.failed(now_secs());
            log(
                LogLevel::Warn,
                &format!(
                    "issuer `{}`: cannot fetch keys through cluster `{}`: host said {status:?}",
                    fetcher.issuer, spec.cluster
                ),
            );
        }
    }
}

/// A fetch answered (or failed): install what came if it is sound, then
/// finish the requests waiting for this issuer.
pub(super) fn on_response(shared: &Shared, root_id: u32, token: u32, body_size: usize) {
    let now = now_secs();
    let Ok(mut fetchers) = shared.fetchers.try_borrow_mut() else {
        return;
    };
    let Some(fetcher) = fetchers.iter_mut().find(|f| f.owns(token)) else {
        return;
    };
    let issuer = fetcher.issuer.clone();
    match install(shared, &issuer, body_size) {
        Ok(count) => {
            fetcher.succeeded(now);
            log(
                LogLevel::Info,
                &format!("issuer `{issuer}`: installed {count} fetched keys"),
            );
        }
        Err(problem) => {
            fetcher.failed(now);
            log(
                LogLevel::Warn,
                &format!("issuer `{issuer}`: key fetch failed, keeping current keys: {problem}"),
            );
        }
    }
    drop(fetchers);
    let waiting = take_waiters(shared, |w| w.issuer == issuer);
    finish(shared, root_id, &waiting);
}

fn install(shared: &Shared, issuer: &str, body_size: usize) -> Result<usize, String> {
    let status = hostcalls::get_map_value(MapType::HttpCallResponseHeaders, ":status")
        .ok()
        .flatten()
        .unwrap_or_default();
    if status != "200" {
        let status = if status.is_empty() {
            "no response"
        } else {
            status.as_str()
        };
        return Err(format!("status `{status}`"));
    }
    if body_size > MAX_JWKS_BYTES {
        return Err(format!(
            "body of {body_size} bytes is over the {MAX_JWKS_BYTES}-byte cap"
        ));
    }
    let body = hostcalls::get_buffer(BufferType::HttpCallResponseBody, 0, body_size)
        .ok()
        .flatten()
        .unwrap_or_default();
    let mut config = shared
        .config
        .try_borrow_mut()
        .map_err(|_| "configuration busy".to_owned())?;
    config
        .policy_mut()
        .issuers_mut()
        .install_jwks(issuer, &body)
        .map_err(|e| e.to_string())
}

fn take_waiters(shared: &Shared, pick: impl Fn(&Waiter) -> bool) -> Vec<Waiter> {
    let Ok(mut waiters) = shared.waiters.try_borrow_mut() else {
        return Vec::new();
    };
    let (picked, kept) = waiters.drain(..).partition(|w| pick(w));
    *waiters = kept;
    picked
}

/// Decides each waiting request again, now without waiting, and lets it
/// go on or answers it.
fn finish(shared: &Shared, root_id: u32, waiters: &[Waiter]) {
    for waiter in waiters {
        if hostcalls::set_effective_context(waiter.context_id).is_err() {
            continue;
        }
        if let Handled::Forwarded = request::handle(shared, false) {
            let _ = hostcalls::resume_http_request();
        }
    }
    if !waiters.is_empty() {
        let _ = hostcalls::set_effective_context(root_id);
    }
}
