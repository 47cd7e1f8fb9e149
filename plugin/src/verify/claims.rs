//! Registered claims (RFC 7519 section 4.1) and the issuer's rules for them.
//!
//! Claims arrive as JSON for a JWT and as CBOR for a CWT; both are read into
//! [`Claims`] and checked by the same [`ClaimRules`], so the two formats can
//! never disagree on what a valid token is.

use super::error::TokenError;
use serde_json::{Map, Value};

/// The registered claims a decision needs, with their types checked.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Claims {
    pub(crate) iss: Option<String>,
    pub(crate) sub: Option<String>,
    /// `None` when the token has no `aud`; an empty list is kept as such.
    pub(crate) aud: Option<Vec<String>>,
    pub(crate) exp: Option<u64>,
    pub(crate) nbf: Option<u64>,
    pub(crate) iat: Option<u64>,
}

/// How a fractional NumericDate is rounded: always towards the stricter
/// reading, so `exp` earlier and `nbf` and `iat` later.
#[derive(Clone, Copy)]
pub(crate) enum Rounding {
    Down,
    Up,
}

impl Claims {
    /// Reads the registered claims of a JWT payload.
    pub(crate) fn from_json(map: &Map<String, Value>) -> Result<Self, TokenError> {
        Ok(Self {
            iss: json_string(map, "iss")?,
            sub: json_string(map, "sub")?,
            aud: json_audience(map)?,
            exp: json_date(map, "exp", Rounding::Down)?,
            nbf: json_date(map, "nbf", Rounding::Up)?,
            iat: json_date(map, "iat", Rounding::Up)?,
        })
    }
}

/// The `iss` claim of a JWT payload, read before anything else so the issuer
/// can be chosen.
pub(crate) fn json_issuer(map: &Map<String, Value>) -> Result<&str, TokenError> {
    match map.get("iss") {
        None => Err(TokenError::IssuerMissing),
        Some(Value::String(iss)) => Ok(iss),
        Some(_) => Err(TokenError::ClaimTypeInvalid("iss")),
    }
}

fn json_string(
    map: &Map<String, Value>,
    claim: &'static str,
) -> Result<Option<String>, TokenError> {
    match map.get(claim) {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(TokenError::ClaimTypeInvalid(claim)),
    }
}

fn json_audience(map: &Map<String, Value>) -> Result<Option<Vec<String>>, TokenError> {
    let invalid = TokenError::ClaimTypeInvalid("aud");
    match map.get("aud") {
        None => Ok(None),
        Some(Value::String(aud)) => Ok(Some(vec![aud.clone()])),
        Some(Value::Array(list)) => list
            .iter()
            .map(|aud| aud.as_str().map(str::to_owned).ok_or(invalid.clone()))
            .collect::<Result<Vec<_>, _>>()
            .map(Some),
        Some(_) => Err(invalid),
    }
}

fn json_date(
    map: &Map<String, Value>,
    claim: &'static str,
    rounding: Rounding,
) -> Result<Option<u64>, TokenError> {
    let Some(value) = map.get(claim) else {
        return Ok(None);
    };
    let Value::Number(number) = value else {
        return Err(TokenError::ClaimTypeInvalid(claim));
    };

    if let Some(seconds) = number.as_u64() {
        return Ok(Some(seconds));
    }
    match number.as_f64() {
        Some(seconds) => numeric_date(seconds, rounding)
            .map(Some)
            .ok_or(TokenError::ClaimTypeInvalid(claim)),
        None => Err(TokenError::ClaimTypeInvalid(claim)),
    }
}

/// A non-negative finite number of seconds, rounded as asked; `None` for a
/// negative or non-finite value.
pub(crate) fn numeric_date(seconds: f64, rounding: Rounding) -> Option<u64> {
    if !seconds.is_finite() || seconds < 0.0 {
        return None;
    }
    let rounded = match rounding {
        Rounding::Down => seconds.floor(),
        Rounding::Up => seconds.ceil(),
    };
    // `as` saturates: a date past `u64::MAX` seconds reads as `u64::MAX`.
    Some(rounded as u64)
}

/// An issuer's rules for claims, compiled from its declaration.
#[derive(Debug, Clone)]
pub(crate) struct ClaimRules {
    pub(crate) audiences: Vec<String>,
    pub(crate) clock_skew: u64,
    pub(crate) require_expiry: bool,
    pub(crate) max_lifetime: Option<u64>,
    pub(crate) subject_pattern: Option<String>,
}

impl ClaimRules {
    /// Checks the claims at `now`, in guard order: the time claims first
    /// (`exp`, `nbf`, `iat`, lifetime), then `aud`, then `sub`. Returns the
    /// audience that matched.
    pub(crate) fn check(&self, claims: &Claims, now: u64) -> Result<String, TokenError> {
        self.check_expiry(claims, now)?;

        if let Some(nbf) = claims.nbf
            && now.saturating_add(self.clock_skew) < nbf
        {
            return Err(TokenError::NotYetValid);
        }

        if let Some(iat) = claims.iat
            && now.saturating_add(self.clock_skew) < iat
        {
            return Err(TokenError::IssuedInFuture);
        }

        self.check_lifetime(claims)?;

        let audience = self.check_audience(claims)?;

        self.check_subject(claims)?;
        Ok(audience)
    }

    fn check_audience(&self, claims: &Claims) -> Result<String, TokenError> {
        let presented = match &claims.aud {
            None => return Err(TokenError::AudienceMissing),
            Some(list) if list.is_empty() => return Err(TokenError::AudienceMissing),
            Some(list) => list,
        };
        presented
            .iter()
            .find(|aud| self.audiences.contains(aud))
            .cloned()
            .ok_or(TokenError::AudienceMismatch)
    }

    fn check_expiry(&self, claims: &Claims, now: u64) -> Result<(), TokenError> {
        match claims.exp {
            None if self.require_expiry => Err(TokenError::ExpiryMissing),
            None => Ok(()),
            Some(exp) if now >= exp.saturating_add(self.clock_skew) => Err(TokenError::Expired),
            Some(_) => Ok(()),
        }
    }

    fn check_lifetime(&self, claims: &Claims) -> Result<(), TokenError> {
        let Some(max) = self.max_lifetime else {
            return Ok(());
        };
        let exp = claims.exp.ok_or(TokenError::ExpiryMissing)?;
        let iat = claims.iat.ok_or(TokenError::IssuedAtMissing)?;
        if exp.saturating_sub(iat) > max {
            return Err(TokenError::LifetimeExceeded);
        }
        Ok(())
    }

    fn check_subject(&self, claims: &Claims) -> Result<(), TokenError> {
        let subject = match claims.sub.as_deref() {
            None | Some("") => return Err(TokenError::SubjectMissing),
            Some(subject) => subject,
        };
        match &self.subject_pattern {
            Some(pattern) if !glob_match(pattern.as_bytes(), subject.as_bytes()) => {
                Err(TokenError::SubjectMismatch)
            }
            _ => Ok(()),
        }
    }
}

/// Matches `text` against `pattern`, where `*` stands for any run of bytes
/// (the empty run included) and every other byte stands for itself.
///
/// Backtracks only to the most recent `*`, so the work is bounded by
/// `pattern.len() * text.len()`.
pub(crate) fn glob_match(pattern: &[u8], text: &[u8]) -> bool {
    let (mut p, mut t) = (0, 0);
    let mut resume: Option<(usize, usize)> = None;
    while t < text.len() {
        match (pattern.get(p), text.get(t)) {
            (Some(b'*'), _) => {
                resume = Some((p, t));
                p += 1;
            }
            (Some(pc), Some(tc)) if pc == tc => {
                p += 1;
                t += 1;
            }
            _ => match resume {
                Some((star, from)) => {
                    p = star + 1;
                    t = from + 1;
                    resume = Some((star, from + 1));
                }
                None => return false,
            },
        }
    }
    pattern.iter().skip(p).all(|&c| c == b'*')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn glob_matches_stars_and_literals() {
        assert!(glob_match(b"svc-*", b"svc-billing"));
        assert!(glob_match(b"*", b""));
        assert!(glob_match(b"a*b*c", b"aXXbYYc"));
        assert!(glob_match(b"exact", b"exact"));
        assert!(!glob_match(b"svc-*", b"user-1"));
        assert!(!glob_match(b"a*b", b"aXXc"));
        assert!(!glob_match(b"exact", b"exactly"));
    }

    #[test]
    fn fractional_dates_round_towards_the_stricter_reading() {
        assert_eq!(numeric_date(10.5, Rounding::Down), Some(10));
        assert_eq!(numeric_date(10.5, Rounding::Up), Some(11));
        assert_eq!(numeric_date(-1.0, Rounding::Down), None);
        assert_eq!(numeric_date(f64::NAN, Rounding::Up), None);
    }
}
