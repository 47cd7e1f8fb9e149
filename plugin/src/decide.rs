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
use crate::resolve::{by_spiffe_id, by_token, check_status};
use crate::verify::spiffe::SpiffeId;
use crate::verify::{TokenCache, TokenError, VerifiedToken, apikey};
use subtle::ConstantTimeEq;

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
    /// The connection's client certificate, if the proxy verified one.
    pub peer: Peer<'a>,
}

/// A client certificate as the proxy reports it after verifying its chain.
#[derive(Debug, Clone, Copy, Default)]
pub struct Peer<'a> {
    /// The certificate's URI SAN.
    pub uri_san: Option<&'a str>,
    /// The base64url SHA-256 thumbprint of the certificate, the form of
    /// `x5t#S256`.
    pub thumbprint: Option<&'a str>,
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
    /// The identity, when it was proven before the refusal.
    identity: Option<String>,
}

impl Denial {
    fn forbidden(reason: &'static str, detail: impl ToString) -> Self {
        Self {
            status: 403,
            challenge: None,
            reason,
            detail: detail.to_string(),
            identity: None,
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
            identity: None,
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
            identity: self.identity,
            groups: Vec::new(),
            permit: None,
        }
    }

    /// The same refusal, naming the identity already proven.
    fn of(mut self, identity: &Identity) -> Self {
        self.identity = Some(identity.id.clone());
        self
    }
}

impl Decision {
    /// Whether the request goes upstream.
    pub fn is_allow(&self) -> bool {
        self.verdict == Verdict::Allow
    }
}

/// Decides a request at `now` (seconds since the Unix epoch). Verified
/// tokens are looked up in, and added to, `cache`.
pub fn decide(
    config: &Config,
    request: &Request<'_>,
    now: u64,
    cache: &mut TokenCache,
) -> Decision {
    let path = match canonical_path(request.path) {
        Ok(path) => path,
        Err(e) => {
            let denial = Denial {
                status: 400,
                challenge: None,
                reason: e.reason(),
                detail: e.to_string(),
                identity: None,
            };
            return denial.into_decision();
        }
    };

    let certificate =
        !config.policy().trust_domains().is_empty() && request.peer.thumbprint.is_some();
    let credential = match extract(request.headers, config.api_key_header(), certificate) {
        Ok(credential) => credential,
        Err(e) => return Denial::unauthenticated(e.reason(), e, CHALLENGE).into_decision(),
    };

    let (identity, kind) = match prove(config, credential, request.peer, certificate, now, cache) {
        Ok(proven) => proven,
        Err(denial) => {
            let mut decision = denial.into_decision();
            decision.credential = Some(credential.kind());
            return decision;
        }
    };

    let mut decision = judge(config, identity, request, path);
    decision.credential = Some(kind);
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
    peer: Peer<'_>,
    certificate: bool,
    now: u64,
    cache: &mut TokenCache,
) -> Result<(&'c Identity, CredentialKind), Denial> {
    let policy = config.policy();
    match credential {
        Credential::Bearer(token) => {
            // A compact JWS always has two dots; base64url never has one.
            let (verified, kind) = if token.contains('.') {
                let verified = policy.issuers().verify_cached(cache, token, now);
                (verified.map_err(token_denial)?, CredentialKind::Jwt)
            } else {
                let verified = policy.issuers().verify_cwt_text_cached(cache, token, now);
                (verified.map_err(token_denial)?, CredentialKind::Cwt)
            };
            let (identity, bound) =
                by_token(policy, &verified).map_err(|e| Denial::forbidden(e.reason(), e))?;
            let kind = check_binding(&verified, kind, bound, peer, certificate)
                .map_err(|denial| denial.of(identity))?;
            Ok((identity, kind))
        }
        Credential::ApiKey(key) => apikey::verify(policy, key)
            .map(|identity| (identity, CredentialKind::ApiKey))
            .map_err(|e| Denial::unauthenticated(e.reason(), e, CHALLENGE_API_KEY)),
        Credential::ClientCertificate => {
            let identity = prove_certificate(config, peer)?;
            Ok((identity, CredentialKind::Mtls))
        }
    }
}

/// A client certificate alone: its SPIFFE ID, in a trusted domain, names
/// the identity.
fn prove_certificate<'c>(config: &'c Config, peer: Peer<'_>) -> Result<&'c Identity, Denial> {
    let uri = peer.uri_san.unwrap_or_default();
    let id = SpiffeId::parse(uri).map_err(|e| {
        Denial::unauthenticated(
            "spiffe_id_invalid",
            format!("client certificate: {e}"),
            CHALLENGE,
        )
    })?;

    let domains = config.policy().trust_domains();
    if !domains.iter().any(|d| d == id.trust_domain()) {
        let detail = format!("trust domain `{}` is not trusted", id.trust_domain());
        return Err(Denial::unauthenticated(
            "spiffe_trust_domain_unknown",
            detail,
            CHALLENGE,
        ));
    }

    by_spiffe_id(config.policy(), &id).map_err(|e| Denial::forbidden(e.reason(), e))
}

/// RFC 8705: a token bound to a certificate is accepted only with that
/// certificate; an identity that demands binding accepts only bound tokens;
/// and a client certificate that is a credential of its own may accompany
/// only a token bound to it.
fn check_binding(
    verified: &VerifiedToken,
    unbound: CredentialKind,
    bound: bool,
    peer: Peer<'_>,
    certificate: bool,
) -> Result<CredentialKind, Denial> {
    let binding = |reason: &'static str, detail: &str| {
        Denial::unauthenticated(reason, detail, CHALLENGE_INVALID_TOKEN)
    };
    match (verified.certificate_thumbprint.as_deref(), peer.thumbprint) {
        (Some(expected), Some(actual)) => {
            if bool::from(expected.as_bytes().ct_eq(actual.as_bytes())) {
                Ok(CredentialKind::BoundJwt)
            } else {
                Err(binding(
                    "certificate_binding_mismatch",
                    "token is bound to another certificate",
                ))
            }
        }
        (Some(_), None) => Err(binding(
            "certificate_binding_missing",
            "token is bound to a certificate the connection did not present",
        )),
        (None, _) if bound => Err(binding(
            "certificate_binding_missing",
            "the identity accepts only tokens bound to its client certificate",
        )),
        (None, _) if certificate => Err(Denial::unauthenticated(
            "credential_ambiguous",
            "a client certificate and a token not bound to it",
            CHALLENGE,
        )),
        (None, _) => Ok(unbound),
    }
}

/// A refused token: 401 with a challenge, except when the issuer's keys are
/// unavailable, which is the proxy's fault, not the caller's.
fn token_denial(e: TokenError) -> Denial {
    match e {
        TokenError::KeysUnavailable => Denial {
            status: 503,
            challenge: None,
            reason: e.reason(),
            detail: e.to_string(),
            identity: None,
        },
        _ => Denial::unauthenticated(e.reason(), &e, CHALLENGE_INVALID_TOKEN),
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
