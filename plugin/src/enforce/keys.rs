//! Fetching issuers' JWKS through the proxy, on the root context's timer,
//! and finishing the requests that waited for them.
//!
//! When to fetch is decided by [`KeyFetcher`](crate::verify::fetch); this
//! module only dispatches, installs and resumes, and shares fetched sets
//! between the proxy's VMs through shared data:
//!
//! - `<key>/lease` holds, as 8 little-endian bytes, the millisecond until
//!   which one VM may fetch; a VM takes it with compare-and-swap before it
//!   dispatches, so one fetch per source is in flight in the whole proxy;
//! - `<key>/version` holds the millisecond a set was fetched, and `<key>`
//!   the set itself; a VM whose installed set is older adopts it, after
//!   validating it as if it had fetched it.

use super::request::{self, Handled};
use super::{Shared, Waiter, log, now_millis, now_secs};
use crate::verify::fetch::{KeyFetcher, MAX_JWKS_BYTES};
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
    let mut adopted = Vec::new();
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
        if adopt_shared(shared, fetcher) {
            adopted.push(fetcher.issuer.clone());
        }
        if fetcher.due(now) {
            if take_lease(fetcher) {
                dispatch(fetcher);
            } else {
                fetcher.deferred(now);
            }
        }
        timeouts.push((fetcher.issuer.clone(), fetcher.spec.timeout() + 1000));
    }
    drop(fetchers);

    let now_ms = now_millis();
    let ready = take_waiters(shared, |w| adopted.contains(&w.issuer));
    finish(shared, root_id, &ready);
    let expired = take_waiters(shared, |w| {
        let limit = timeouts
            .iter()
            .find(|(i, _)| *i == w.issuer)
            .map_or(0, |(_, ms)| *ms);
        now_ms.saturating_sub(w.since_ms) > limit
    });
    finish(shared, root_id, &expired);
}

fn dispatch(fetcher: &mut KeyFetcher) {
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
    let key = fetcher.shared_key();
    match install(shared, &issuer, body_size) {
        Ok((count, body)) => {
            let version = now_millis();
            fetcher.succeeded(now);
            fetcher.saw_version(version);
            publish(&key, &body, version);
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
    release_lease(&key);
    let waiting = take_waiters(shared, |w| w.issuer == issuer);
    finish(shared, root_id, &waiting);
}

fn install(shared: &Shared, issuer: &str, body_size: usize) -> Result<(usize, Vec<u8>), String> {
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
    let count = config
        .policy_mut()
        .issuers_mut()
        .install_jwks(issuer, &body)
        .map_err(|e| e.to_string())?;
    Ok((count, body))
}

/// Takes the fetch lease for the fetcher's source, unless another VM holds
/// an unexpired one. A host without shared data lets every VM fetch.
fn take_lease(fetcher: &KeyFetcher) -> bool {
    let key = format!("{}/lease", fetcher.shared_key());
    let now = now_millis();
    let (value, cas) = match hostcalls::get_shared_data(&key) {
        Ok(found) => found,
        Err(_) => return true,
    };
    if value
        .as_deref()
        .and_then(read_u64)
        .is_some_and(|until| until > now)
    {
        return false;
    }
    let until = now + fetcher.spec.timeout() + 500;
    hostcalls::set_shared_data(&key, Some(&until.to_le_bytes()), cas).is_ok()
}

fn release_lease(key: &str) {
    let _ = hostcalls::set_shared_data(&format!("{key}/lease"), Some(&0u64.to_le_bytes()), None);
}

/// Publishes a set this VM fetched and installed, for the other VMs.
fn publish(key: &str, body: &[u8], fetched_at_ms: u64) {
    let stored = hostcalls::set_shared_data(key, Some(body), None).is_ok()
        && hostcalls::set_shared_data(
            &format!("{key}/version"),
            Some(&fetched_at_ms.to_le_bytes()),
            None,
        )
        .is_ok();
    if !stored {
        log(
            LogLevel::Warn,
            &format!("cannot share fetched keys under `{key}`"),
        );
    }
}

/// Installs the set another VM published, if it is newer than this VM's.
/// Returns whether it did.
fn adopt_shared(shared: &Shared, fetcher: &mut KeyFetcher) -> bool {
    let key = fetcher.shared_key();
    let version = hostcalls::get_shared_data(&format!("{key}/version"))
        .ok()
        .and_then(|(value, _)| value)
        .as_deref()
        .and_then(read_u64);
    let Some(version) = version else {
        return false;
    };
    if fetcher.installed_version() >= version {
        return false;
    }
    let body = hostcalls::get_shared_data(&key)
        .ok()
        .and_then(|(value, _)| value);
    let Some(body) = body.filter(|b| b.len() <= MAX_JWKS_BYTES) else {
        return false;
    };
    let Ok(mut config) = shared.config.try_borrow_mut() else {
        return false;
    };
    match config
        .policy_mut()
        .issuers_mut()
        .install_jwks(&fetcher.issuer, &body)
    {
        Ok(count) => {
            fetcher.adopted(version / 1000, version);
            let issuer = &fetcher.issuer;
            log(
                LogLevel::Info,
                &format!("issuer `{issuer}`: adopted {count} keys another VM fetched"),
            );
            true
        }
        Err(e) => {
            // Never retried: remembered as seen so a bad shared set is not
            // validated again on every tick.
            fetcher.saw_version(version);
            log(LogLevel::Warn, &format!("shared keys refused: {e}"));
            false
        }
    }
}

fn read_u64(bytes: &[u8]) -> Option<u64> {
    bytes.try_into().ok().map(u64::from_le_bytes)
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
