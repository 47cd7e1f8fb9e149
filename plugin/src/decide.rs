//! Step 5 of the data path: steps 1 to 4 run in order, and a [`Decision`]
//! that carries its evidence.
//!
//! The first step that fails decides the outcome, and its stable reason code
//! travels to the response, the decision record and the tests. Nothing in
//! here logs or touches the proxy: the caller decides what to do with a
//! decision.

use crate::authorize::{Permit, authorize, host_of};
use crate::config::Config;
use crate::extract::{Credential, CredentialKind, extract};
use crate::policy::{Identity, canonical_path};
use crate::resolve::{by_token, check_status};
use crate::verify::apikey;

/// The parts of a request a decision reads.
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    /// `:method`.
    pub method: &'a str,
    /// `:authority`.
    pub authority: &'a str,
    /// `:path`, with its query.
    pub path: &'a str,
    /// All request headers, names in lower case.
    pub headers: &'a [(String, String)],
}

/// What to do with a request, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    /// Allow, or deny with which answer.
    pub verdict: Verdict,
    /// Stable reason code: `granted` for an allow.
    pub reason: &'static str,
    /// A precise explanation for the operator's log. Never a secret.
    pub detail: Option<String>,
    /// The kind of credential presented, if one was found.
    pub credential: Option<CredentialKind>,
    /// The identity proven, if any.
    pub identity: Option<String>,
    /// The identity's groups, in policy order.
    pub groups: Vec<String>,
    /// The group and grant that allowed the call.
    pub permit: Option<Permit>,
}

/// Allow, or the local answer for a deny.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Forward the request upstream.
    Allow,
    /// Answer locally with this status.
    Deny {
        /// 400, 401, 403 or 503.
        status: u16,
        /// The `WWW-Authenticate` challenge of a 401.
        challenge: Option<&'static str>,
    },
}

/// The challenge for a request without a usable credential.
pub const CHALLENGE: &str = "Bearer realm=\"warden\"";
/// The challenge for an invalid bearer token (RFC 6750).
pub const CHALLENGE_INVALID_TOKEN: &str = "Bearer realm=\"warden\", error=\"invalid_token\"";
/// The challenge for an invalid API key.
pub const CHALLENGE_API_KEY: &str = "ApiKey realm=\"warden\"";

/// A refusal on its way to becoming a [`Decision`].
#[derive(Debug)]
struct Denial {
    status: u16,
    challenge: Option<&'static str>,
    reason: &'static str,
    detail: String,
}

impl Denial {
    fn forbidden(reason: &'static str, detail: impl ToString) -> Self {
        Self {
            status: 403,
            challenge: None,
            reason,
            detail: detail.to_string(),
        }
    }

    fn unauthenticated(
        reason: &'static str,
        detail: impl ToString,
        challenge: &'static str,
    ) -> Self {
        Self {
            status: 401,
            challenge: Some(challenge),
            reason,
            detail: detail.to_string(),
        }
    }

    fn into_decision(self) -> Decision {
        Decision {
            verdict: Verdict::Deny {
                status: self.status,
                challenge: self.challenge,
            },
            reason: self.reason,
            detail: Some(self.detail),
            credential: None,
            identity: None,
            groups: Vec::new(),
            permit: None,
        }
    }
}

impl Decision {
    /// Whether the request goes upstream.
    pub fn is_allow(&self) -> bool {
        self.verdict == Verdict::Allow
    }
}

/// Decides a request at `now` (seconds since the Unix epoch).
pub fn decide(config: &Config, request: &Request<'_>, now: u64) -> Decision {
    let path = match canonical_path(request.path) {
        Ok(path) => path,
        Err(e) => {
            let denial = Denial {
                status: 400,
                challenge: None,
                reason: e.reason(),
                detail: e.to_string(),
            };
            return denial.into_decision();
        }
    };

    let credential = match extract(request.headers, config.api_key_header()) {
        Ok(credential) => credential,
        Err(e) => return Denial::unauthenticated(e.reason(), e, CHALLENGE).into_decision(),
    };

    let identity = match prove(config, credential, now) {
        Ok(identity) => identity,
        Err(denial) => {
            let mut decision = denial.into_decision();
            decision.credential = Some(credential.kind());
            return decision;
        }
    };

    let mut decision = judge(config, identity, request, path);
    decision.credential = Some(credential.kind());
    decision.identity = Some(identity.id.clone());
    decision.groups = config
        .policy()
        .groups_of(identity)
        .map(|g| g.name.clone())
        .collect();
    decision
}

/// Steps 2 and 3: verify the credential and find its identity.
fn prove<'c>(
    config: &'c Config,
    credential: Credential<'_>,
    now: u64,
) -> Result<&'c Identity, Denial> {
    let policy = config.policy();
    match credential {
        Credential::Bearer(token) => {
            let verified = policy
                .issuers()
                .verify(token, now)
                .map_err(|e| Denial::unauthenticated(e.reason(), &e, CHALLENGE_INVALID_TOKEN))?;
            by_token(policy, &verified).map_err(|e| Denial::forbidden(e.reason(), e))
        }
        Credential::ApiKey(key) => apikey::verify(policy, key)
            .map_err(|e| Denial::unauthenticated(e.reason(), e, CHALLENGE_API_KEY)),
    }
}

/// Steps 3 and 4 for a proven identity: status, then grants.
fn judge(config: &Config, identity: &Identity, request: &Request<'_>, path: &str) -> Decision {
    if let Err(e) = check_status(identity) {
        return Denial::forbidden(e.reason(), e).into_decision();
    }

    let host = host_of(request.authority);
    match authorize(config.policy(), identity, request.method, &host, path) {
        Some(permit) => Decision {
            verdict: Verdict::Allow,
            reason: "granted",
            detail: None,
            credential: None,
            identity: None,
            groups: Vec::new(),
            permit: Some(permit),
        },
        None => Denial::forbidden(
            "not_granted",
            format!(
                "no grant of the identity's groups covers `{} {host}{path}`",
                request.method
            ),
        )
        .into_decision(),
    }
}
