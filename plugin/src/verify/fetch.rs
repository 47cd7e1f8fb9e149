//! Fetched key sets: when to fetch an issuer's JWKS, and how long its keys
//! stay usable.
//!
//! An issuer declared with `jwks_fetch` starts without keys. The proxy layer
//! fetches its JWKS through a proxy cluster and installs it with
//! [`Issuers::install_jwks`](super::Issuers::install_jwks), which validates
//! the whole set first: a bad JWKS never replaces a good one. A
//! [`KeyFetcher`] per issuer decides when:
//!
//! - at once when there are no keys;
//! - in the background when three quarters of `refresh_secs` have passed
//!   since the last install, so keys are renewed before they go stale;
//! - early, when a token names a `kid` the set lacks (a key was rotated
//!   in), but at most once per `min_refetch_secs`;
//! - after a failure, again after a backoff that doubles from 1 second up
//!   to 60 seconds.
//!
//! Only one fetch per issuer is ever in flight, and the VMs of one proxy
//! (Envoy runs one per worker) share it: the VM that fetches takes a lease
//! in the proxy's shared data first and publishes what it installed there;
//! the others adopt it on their next tick. When fetches keep failing,
//! the last good keys stay in use until `max_stale_secs` past
//! `refresh_secs`; after that they are dropped and tokens from the issuer
//! get 503 `keys_unavailable`, never a silent allow.

use serde::Deserialize;

/// Where and how often to fetch an issuer's JWKS.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JwksFetchSpec {
    /// The proxy cluster that reaches the key server (in Envoy, a cluster
    /// name from the bootstrap). Required.
    pub cluster: String,
    /// The `:authority` of the fetch. Required.
    pub authority: String,
    /// The `:path` of the fetch, for example `/.well-known/jwks.json`.
    /// Required.
    pub path: String,
    /// How long fetched keys are fresh, in seconds, at least 10.
    /// Defaults to 300 seconds.
    #[serde(default)]
    pub refresh_secs: Option<u64>,
    /// How long stale keys stay in use while fetches fail, in seconds.
    /// Defaults to 3600 seconds.
    #[serde(default)]
    pub max_stale_secs: Option<u64>,
    /// The shortest interval between fetches caused by an unknown `kid`, in
    /// seconds. Defaults to 30 seconds.
    #[serde(default)]
    pub min_refetch_secs: Option<u64>,
    /// How long one fetch may take, in milliseconds, 100 to 30000.
    /// Defaults to 2000 milliseconds.
    #[serde(default)]
    pub timeout_ms: Option<u64>,
}

/// The defaults of [`JwksFetchSpec`].
pub const DEFAULT_REFRESH_SECS: u64 = 300;
/// See [`JwksFetchSpec::max_stale_secs`].
pub const DEFAULT_MAX_STALE_SECS: u64 = 3600;
/// See [`JwksFetchSpec::min_refetch_secs`].
pub const DEFAULT_MIN_REFETCH_SECS: u64 = 30;
/// See [`JwksFetchSpec::timeout_ms`].
pub const DEFAULT_TIMEOUT_MS: u64 = 2000;
/// The longest backoff after failed fetches, in seconds.
pub const MAX_BACKOFF_SECS: u64 = 60;
/// The largest JWKS document accepted, in bytes.
pub const MAX_JWKS_BYTES: usize = 64 * 1024;

impl JwksFetchSpec {
    /// Checks the fields.
    ///
    /// # Errors
    ///
    /// Returns the field and the problem.
    pub fn check(&self) -> Result<(), String> {
        let fields = [("cluster", &self.cluster), ("authority", &self.authority)];
        if let Some((name, _)) = fields.iter().find(|(_, value)| value.is_empty()) {
            return Err(format!("`jwks_fetch.{name}` is empty"));
        }
        if !self.path.starts_with('/') {
            return Err(format!(
                "`jwks_fetch.path` `{}` must start with `/`",
                self.path
            ));
        }
        if self.refresh() < 10 {
            return Err("`jwks_fetch.refresh_secs` must be at least 10".into());
        }
        if !(100..=30_000).contains(&self.timeout()) {
            return Err("`jwks_fetch.timeout_ms` must be 100 to 30000".into());
        }
        Ok(())
    }

    /// Seconds fetched keys are fresh.
    pub fn refresh(&self) -> u64 {
        self.refresh_secs.unwrap_or(DEFAULT_REFRESH_SECS)
    }

    /// Milliseconds one fetch may take.
    pub fn timeout(&self) -> u64 {
        self.timeout_ms.unwrap_or(DEFAULT_TIMEOUT_MS)
    }
}

/// The fetch schedule of one issuer. Times are seconds since the Unix
/// epoch.
#[derive(Debug, Clone)]
pub struct KeyFetcher {
    /// The issuer's policy name.
    pub issuer: String,
    /// Where to fetch.
    pub spec: JwksFetchSpec,
    installed_at: Option<u64>,
    next_attempt: u64,
    failures: u32,
    in_flight: Option<u32>,
    last_forced: Option<u64>,
    wanted: bool,
    version: u64,
}

impl KeyFetcher {
    /// A fetcher for an issuer that has no keys yet.
    pub fn new(issuer: &str, spec: &JwksFetchSpec) -> Self {
        Self {
            issuer: issuer.to_owned(),
            spec: spec.clone(),
            installed_at: None,
            next_attempt: 0,
            failures: 0,
            in_flight: None,
            last_forced: None,
            wanted: false,
            version: 0,
        }
    }

    /// Whether a fetch should start now.
    pub fn due(&self, now: u64) -> bool {
        if self.in_flight.is_some() {
            return false;
        }
        if self.wanted {
            return true;
        }
        let renew_at = self
            .installed_at
            .map_or(0, |at| at + self.spec.refresh() * 3 / 4);
        now >= self.next_attempt.max(renew_at)
    }

    /// A token named a `kid` the set lacks, or the set is empty: fetch at
    /// the next chance unless a forced fetch happened within
    /// `min_refetch_secs`. Returns whether a fetch is now pending or under
    /// way, that is, whether waiting for it makes sense.
    pub fn want(&mut self, now: u64) -> bool {
        if self.in_flight.is_some() || self.wanted {
            return true;
        }
        let min = self
            .spec
            .min_refetch_secs
            .unwrap_or(DEFAULT_MIN_REFETCH_SECS);
        let allowed = match (self.installed_at, self.last_forced) {
            (None, _) => self.failures == 0 || now >= self.next_attempt,
            (Some(_), Some(last)) => now >= last + min,
            (Some(_), None) => true,
        };
        if allowed {
            self.wanted = true;
            self.last_forced = Some(now);
        }
        allowed
    }

    /// A fetch with this token was dispatched.
    pub fn started(&mut self, token: u32) {
        self.in_flight = Some(token);
        self.wanted = false;
    }

    /// Whether this fetcher's fetch has this token.
    pub fn owns(&self, token: u32) -> bool {
        self.in_flight == Some(token)
    }

    /// A fetched set was installed; `now` in seconds.
    pub fn succeeded(&mut self, now: u64) {
        self.in_flight = None;
        self.installed_at = Some(now);
        self.failures = 0;
        self.next_attempt = now + self.spec.refresh() * 3 / 4;
    }

    /// A fetch failed (transport, status or an invalid set).
    pub fn failed(&mut self, now: u64) {
        self.in_flight = None;
        self.failures = self.failures.saturating_add(1);
        let backoff = 1u64 << self.failures.saturating_sub(1).min(6);
        self.next_attempt = now + backoff.min(MAX_BACKOFF_SECS);
    }

    /// Whether the installed keys are past all use and must be dropped.
    pub fn expired(&self, now: u64) -> bool {
        let stale = self.spec.max_stale_secs.unwrap_or(DEFAULT_MAX_STALE_SECS);
        self.installed_at
            .is_some_and(|at| now >= at + self.spec.refresh() + stale)
    }

    /// Keys fetched by another VM at `fetched_at` (seconds; `version` is
    /// the same instant in milliseconds) were installed here.
    pub fn adopted(&mut self, fetched_at: u64, version: u64) {
        self.version = version;
        self.installed_at = Some(fetched_at);
        self.failures = 0;
        self.wanted = false;
        self.next_attempt = fetched_at + self.spec.refresh() * 3 / 4;
    }

    /// The set of this version (milliseconds) is installed here, or was
    /// seen and refused: either way, not to be adopted again.
    pub fn saw_version(&mut self, version: u64) {
        self.version = version;
    }

    /// The millisecond at which the installed set was fetched, here or by
    /// another VM; 0 before any.
    pub fn installed_version(&self) -> u64 {
        self.version
    }

    /// A due fetch was left to another VM that holds the fetch lease: look
    /// again in a second.
    pub fn deferred(&mut self, now: u64) {
        self.wanted = false;
        self.next_attempt = now + 1;
    }

    /// The name under which VMs of one proxy share this source's key set:
    /// two issuers fetching from the same place share it, and a changed
    /// source never inherits another's keys.
    pub fn shared_key(&self) -> String {
        format!(
            "warden/jwks/{}/{}{}",
            self.spec.cluster, self.spec.authority, self.spec.path
        )
    }

    /// Forgets the installed keys (after [`KeyFetcher::expired`]).
    pub fn dropped(&mut self) {
        self.installed_at = None;
    }

    /// Whether a fetch is under way.
    pub fn in_flight(&self) -> bool {
        self.in_flight.is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> JwksFetchSpec {
        JwksFetchSpec {
            cluster: "idp".into(),
            authority: "idp.test".into(),
            path: "/jwks.json".into(),
            refresh_secs: Some(100),
            max_stale_secs: Some(1000),
            min_refetch_secs: Some(30),
            timeout_ms: None,
        }
    }

    #[test]
    fn fetches_at_once_then_renews_before_keys_go_stale() {
        let mut f = KeyFetcher::new("corp", &spec());
        assert!(f.due(1000));
        f.started(7);
        assert!(!f.due(1000), "one fetch in flight");
        assert!(f.owns(7));
        f.succeeded(1000);
        assert!(!f.due(1074));
        assert!(f.due(1075), "renewal at three quarters of refresh_secs");
    }

    #[test]
    fn failures_back_off_and_stale_keys_expire() {
        let mut f = KeyFetcher::new("corp", &spec());
        f.started(1);
        f.succeeded(1000);
        f.started(2);
        f.failed(1075);
        assert!(!f.due(1075));
        assert!(f.due(1076), "first retry after 1 s");
        f.started(3);
        f.failed(1076);
        assert!(!f.due(1077));
        assert!(f.due(1078), "second retry after 2 s");
        assert!(!f.expired(2099));
        assert!(
            f.expired(2100),
            "refresh_secs + max_stale_secs after install"
        );
    }

    #[test]
    fn unknown_kid_refetches_at_most_once_per_interval() {
        let mut f = KeyFetcher::new("corp", &spec());
        f.started(1);
        f.succeeded(1000);
        assert!(f.want(1010));
        assert!(f.due(1010));
        f.started(2);
        assert!(f.want(1010), "a fetch under way is worth waiting for");
        f.succeeded(1011);
        assert!(
            !f.want(1020),
            "within min_refetch_secs of the last forced fetch"
        );
        assert!(f.want(1040));
    }

    #[test]
    fn bad_specs_are_refused() {
        let mut s = spec();
        s.path = "jwks".into();
        assert_eq!(
            s.check().unwrap_err(),
            "`jwks_fetch.path` `jwks` must start with `/`"
        );
        let mut s = spec();
        s.refresh_secs = Some(5);
        assert_eq!(
            s.check().unwrap_err(),
            "`jwks_fetch.refresh_secs` must be at least 10"
        );
        let mut s = spec();
        s.cluster = String::new();
        assert_eq!(s.check().unwrap_err(), "`jwks_fetch.cluster` is empty");
    }
}
