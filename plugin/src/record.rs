//! Step 6 of the data path: the decision record, one JSON line per request.
//!
//! A record answers, for audit: when, which request, who (identity and
//! credential kind), what (method, host, path without query), from where,
//! the outcome with its reason, the group and grant that allowed it, and
//! the policy revision that decided. It never holds a token, a key, a
//! query string or any other header value.

use crate::decide::{Decision, Verdict};
use serde::Serialize;

/// Longest path kept in a record, in bytes; longer paths are cut.
pub const MAX_PATH_LEN: usize = 1024;

/// What the filter knows about a request beyond the decision.
#[derive(Debug, Clone, Copy)]
pub struct Context<'a> {
    /// Milliseconds since the Unix epoch.
    pub time_ms: u64,
    /// The request's `x-request-id`, if any.
    pub request_id: Option<&'a str>,
    /// `:method`.
    pub method: &'a str,
    /// Host without port, lower case.
    pub host: &'a str,
    /// `:path`; the query is dropped here.
    pub path: &'a str,
    /// The downstream peer address, as the proxy reports it.
    pub source: Option<&'a str>,
    /// The policy revision that decided.
    pub policy_revision: &'a str,
}

#[derive(Serialize)]
struct Record<'a> {
    ts: String,
    request_id: Option<&'a str>,
    identity: Option<&'a str>,
    credential: Option<&'static str>,
    method: &'a str,
    host: &'a str,
    path: &'a str,
    source: Option<&'a str>,
    decision: &'static str,
    status: u16,
    reason: &'static str,
    detail: Option<&'a str>,
    group: Option<&'a str>,
    grant: Option<&'a str>,
    policy_revision: &'a str,
}

/// Renders the decision record as one line of JSON.
pub fn render(decision: &Decision, context: &Context<'_>) -> String {
    let (outcome, status) = match decision.verdict {
        Verdict::Allow => ("allow", 200),
        Verdict::Deny { status, .. } => ("deny", status),
    };
    let record = Record {
        ts: rfc3339_millis(context.time_ms),
        request_id: context.request_id,
        identity: decision.identity.as_deref(),
        credential: decision.credential.map(|c| c.as_str()),
        method: context.method,
        host: context.host,
        path: path_for_record(context.path),
        source: context.source,
        decision: outcome,
        status,
        reason: decision.reason,
        detail: decision.detail.as_deref(),
        group: decision.permit.as_ref().map(|p| p.group.as_str()),
        grant: decision.permit.as_ref().map(|p| p.grant.as_str()),
        policy_revision: context.policy_revision,
    };
    serde_json::to_string(&record).unwrap_or_else(|_| String::from("{\"error\":\"record\"}"))
}

/// The path without query or fragment, cut at a character boundary.
fn path_for_record(path: &str) -> &str {
    let path = path.split(['?', '#']).next().unwrap_or_default();
    let mut end = path.len().min(MAX_PATH_LEN);
    while !path.is_char_boundary(end) {
        end -= 1;
    }
    path.get(..end).unwrap_or_default()
}

/// `2026-12-03T08:13:05.123Z` for milliseconds since the Unix epoch.
pub fn rfc3339_millis(ms: u64) -> String {
    let secs = ms / 1000;
    let (year, month, day) = civil_from_days(secs / 86_400);
    let rem = secs % 86_400;
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        ms % 1000
    )
}

/// Year, month and day of a count of days since 1970-01-01, in the
/// proleptic Gregorian calendar.
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z % 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_are_rfc3339_utc() {
        assert_eq!(rfc3339_millis(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(rfc3339_millis(951_782_400_000), "2000-02-29T00:00:00.000Z");
        assert_eq!(
            rfc3339_millis(1_796_285_585_123),
            "2026-12-03T08:13:05.123Z"
        );
    }

    #[test]
    fn record_paths_lose_their_query() {
        assert_eq!(path_for_record("/a?api_key=secret"), "/a");
        assert_eq!(path_for_record(&"é".repeat(600)).len(), 1024);
    }
}
