//! Why a token was refused, and why an issuer declaration was.

use std::fmt;

/// Which base64url part of a token failed to decode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Segment {
    /// The protected header.
    Header,
    /// The payload (the claims).
    Payload,
    /// The signature or MAC.
    Signature,
}

impl Segment {
    fn name(self) -> &'static str {
        match self {
            Self::Header => "header",
            Self::Payload => "payload",
            Self::Signature => "signature",
        }
    }
}

/// Why a token was refused: one variant per guard step, each with a stable
/// reason code ([`TokenError::reason`]).
///
/// Messages never quote the token, a key or a secret; where a value from the
/// token would help an operator, only its kind or size is given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenError {
    /// The token, or one of its parts, is over a size cap; nothing was decoded.
    TooLarge(&'static str),
    /// The token does not have the shape of its format (three segments for a
    /// JWS, a tagged COSE structure for a CWT).
    Malformed(&'static str),
    /// A segment is not strict unpadded base64url.
    Encoding(Segment),
    /// The protected header is not a JSON object of the expected member types.
    HeaderMalformed(&'static str),
    /// The protected header names one member twice.
    HeaderDuplicateMember,
    /// The header lists critical extensions (`crit`); none is understood.
    CritUnsupported,
    /// The `kid` header is longer than the lookup key bound.
    KidTooLong,
    /// The token asks for `alg: none`.
    AlgorithmNone,
    /// The algorithm is not in the issuer's allow-list (or is unknown).
    AlgorithmNotAllowed,
    /// The `typ` header does not match the issuer's profile.
    TypeMismatch,
    /// The claims are not a JSON object (or a CBOR map for a CWT).
    ClaimsMalformed(&'static str),
    /// The claims name one member twice.
    ClaimsDuplicateMember,
    /// The token carries no `iss` claim, so no issuer can be chosen.
    IssuerMissing,
    /// No issuer of the policy declares the token's `iss`.
    IssuerUnknown,
    /// The issuer's keys are fetched and none are available: not fetched
    /// yet, or stale beyond use after failed fetches.
    KeysUnavailable,
    /// No key of the issuer has the token's `kid`, or no key fits the
    /// algorithm.
    KeyUnknown,
    /// The selected key is of another type than the algorithm needs.
    KeyTypeMismatch,
    /// The selected key is pinned to another algorithm by its `alg`.
    KeyAlgorithmMismatch,
    /// The selected key is not for verifying signatures (`use` or `key_ops`).
    KeyNotForSigning,
    /// The signature does not have the fixed form the algorithm requires
    /// (for example a DER-encoded ECDSA signature).
    SignatureMalformed,
    /// The signature or MAC does not verify.
    SignatureInvalid,
    /// A registered claim has the wrong JSON (or CBOR) type.
    ClaimTypeInvalid(&'static str),
    /// The token has no `aud` claim.
    AudienceMissing,
    /// None of the token's audiences is accepted by the issuer.
    AudienceMismatch,
    /// The token has no `exp` claim and the issuer requires one.
    ExpiryMissing,
    /// The token's `exp` is past, beyond the clock skew.
    Expired,
    /// The token's `nbf` is in the future, beyond the clock skew.
    NotYetValid,
    /// The token's `iat` is in the future, beyond the clock skew.
    IssuedInFuture,
    /// The issuer bounds token lifetime, and the token has no `iat`.
    IssuedAtMissing,
    /// `exp - iat` is longer than the issuer's maximum lifetime.
    LifetimeExceeded,
    /// The token has no `sub` claim (or an empty one).
    SubjectMissing,
    /// The `sub` claim does not match the issuer's subject pattern.
    SubjectMismatch,
}

impl TokenError {
    /// The stable reason code for decisions and responses.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::TooLarge(_) => "token_too_large",
            Self::Malformed(_) => "token_malformed",
            Self::Encoding(_) => "token_encoding_invalid",
            Self::HeaderMalformed(_) => "header_malformed",
            Self::HeaderDuplicateMember => "header_duplicate_member",
            Self::CritUnsupported => "crit_unsupported",
            Self::KidTooLong => "kid_too_long",
            Self::AlgorithmNone => "algorithm_none",
            Self::AlgorithmNotAllowed => "algorithm_not_allowed",
            Self::TypeMismatch => "type_mismatch",
            Self::ClaimsMalformed(_) => "claims_malformed",
            Self::ClaimsDuplicateMember => "claims_duplicate_member",
            Self::IssuerMissing => "issuer_missing",
            Self::IssuerUnknown => "issuer_unknown",
            Self::KeysUnavailable => "keys_unavailable",
            Self::KeyUnknown => "key_unknown",
            Self::KeyTypeMismatch => "key_type_mismatch",
            Self::KeyAlgorithmMismatch => "key_algorithm_mismatch",
            Self::KeyNotForSigning => "key_not_for_signing",
            Self::SignatureMalformed => "signature_malformed",
            Self::SignatureInvalid => "signature_invalid",
            Self::ClaimTypeInvalid(_) => "claim_type_invalid",
            Self::AudienceMissing => "audience_missing",
            Self::AudienceMismatch => "audience_mismatch",
            Self::ExpiryMissing => "expiry_missing",
            Self::Expired => "token_expired",
            Self::NotYetValid => "token_not_yet_valid",
            Self::IssuedInFuture => "issued_in_future",
            Self::IssuedAtMissing => "issued_at_missing",
            Self::LifetimeExceeded => "lifetime_exceeded",
            Self::SubjectMissing => "subject_missing",
            Self::SubjectMismatch => "subject_mismatch",
        }
    }
}

impl fmt::Display for TokenError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::TooLarge(what) => write!(f, "{what} is over its size cap"),
            Self::Malformed(what) => write!(f, "token is malformed: {what}"),
            Self::Encoding(segment) => {
                write!(f, "token {} is not strict base64url", segment.name())
            }
            Self::HeaderMalformed(what) => write!(f, "token header is malformed: {what}"),
            Self::HeaderDuplicateMember => f.write_str("token header names a member twice"),
            Self::CritUnsupported => f.write_str("token header lists critical extensions"),
            Self::KidTooLong => f.write_str("token `kid` is over the length bound"),
            Self::AlgorithmNone => f.write_str("algorithm `none` is never accepted"),
            Self::AlgorithmNotAllowed => {
                f.write_str("token algorithm is not in the issuer's allow-list")
            }
            Self::TypeMismatch => f.write_str("token `typ` does not match the issuer's profile"),
            Self::ClaimsMalformed(what) => write!(f, "token claims are malformed: {what}"),
            Self::ClaimsDuplicateMember => f.write_str("token claims name a member twice"),
            Self::IssuerMissing => f.write_str("token has no `iss` claim"),
            Self::IssuerUnknown => f.write_str("token `iss` is not a declared issuer"),
            Self::KeysUnavailable => f.write_str("no keys of the token's issuer are available"),
            Self::KeyUnknown => f.write_str("no key of the issuer matches the token"),
            Self::KeyTypeMismatch => {
                f.write_str("the selected key's type does not fit the token algorithm")
            }
            Self::KeyAlgorithmMismatch => {
                f.write_str("the selected key is pinned to another algorithm")
            }
            Self::KeyNotForSigning => {
                f.write_str("the selected key is not for verifying signatures")
            }
            Self::SignatureMalformed => {
                f.write_str("token signature does not have the algorithm's fixed form")
            }
            Self::SignatureInvalid => f.write_str("token signature does not verify"),
            Self::ClaimTypeInvalid(claim) => write!(f, "claim `{claim}` has the wrong type"),
            Self::AudienceMissing => f.write_str("token has no `aud` claim"),
            Self::AudienceMismatch => {
                f.write_str("token `aud` names none of the issuer's audiences")
            }
            Self::ExpiryMissing => f.write_str("token has no `exp` claim"),
            Self::Expired => f.write_str("token has expired"),
            Self::NotYetValid => f.write_str("token is not valid yet (`nbf`)"),
            Self::IssuedInFuture => f.write_str("token `iat` is in the future"),
            Self::IssuedAtMissing => {
                f.write_str("token has no `iat` claim and the issuer bounds lifetime")
            }
            Self::LifetimeExceeded => f.write_str("token lifetime is over the issuer's maximum"),
            Self::SubjectMissing => f.write_str("token has no `sub` claim"),
            Self::SubjectMismatch => {
                f.write_str("token `sub` does not match the issuer's subject pattern")
            }
        }
    }
}

impl std::error::Error for TokenError {}

/// An issuer declaration that cannot be used; the message names the issuer,
/// the key where there is one, and the exact problem.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IssuerError(String);

impl IssuerError {
    /// An error about issuer `name`: `problem` follows the issuer context.
    pub(crate) fn new(name: &str, problem: impl fmt::Display) -> Self {
        Self(format!("issuer `{name}`: {problem}"))
    }
}

impl fmt::Display for IssuerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for IssuerError {}
