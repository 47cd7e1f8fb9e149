//! Step 3 of the data path: who is calling, and may they call at all?
//!
//! A verified credential names an account in the policy's directory. Only
//! an `active` account goes on to authorization; a suspended or retired one
//! is refused with its own reason, and its account stays in the policy so
//! its history can still be audited.

use crate::policy::{Identity, Policy, Status};
use crate::verify::VerifiedToken;
use crate::verify::spiffe::SpiffeId;
use std::fmt;

/// Why a verified credential does not lead to an active identity.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResolveError {
    /// The token is genuine but its subject is no identity in the policy.
    Unknown,
    /// The identity is suspended.
    Suspended,
    /// The identity is retired.
    Retired,
}

impl ResolveError {
    /// The stable reason code.
    pub fn reason(self) -> &'static str {
        match self {
            Self::Unknown => "identity_unknown",
            Self::Suspended => "identity_suspended",
            Self::Retired => "identity_retired",
        }
    }
}

impl fmt::Display for ResolveError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Unknown => "the proven subject is not an identity in the policy",
            Self::Suspended => "identity is suspended",
            Self::Retired => "identity is retired",
        })
    }
}

/// The identity a verified token proves, and whether its tokens must be
/// bound to the client certificate.
///
/// # Errors
///
/// Returns [`ResolveError::Unknown`] when the policy has no identity for the
/// token's issuer and subject.
pub fn by_token<'p>(
    policy: &'p Policy,
    token: &VerifiedToken,
) -> Result<(&'p Identity, bool), ResolveError> {
    policy
        .identity_by_subject(&token.issuer, &token.subject)
        .ok_or(ResolveError::Unknown)
}

/// The identity a client certificate's SPIFFE ID proves.
///
/// # Errors
///
/// Returns [`ResolveError::Unknown`] when no identity holds the ID.
pub fn by_spiffe_id<'p>(policy: &'p Policy, id: &SpiffeId) -> Result<&'p Identity, ResolveError> {
    policy
        .identity_by_spiffe(id.as_str())
        .ok_or(ResolveError::Unknown)
}

/// Checks that an identity is in service.
///
/// # Errors
///
/// Returns the status that bars it.
pub fn check_status(identity: &Identity) -> Result<(), ResolveError> {
    match identity.status {
        Status::Active => Ok(()),
        Status::Suspended { .. } => Err(ResolveError::Suspended),
        Status::Retired { .. } => Err(ResolveError::Retired),
    }
}
