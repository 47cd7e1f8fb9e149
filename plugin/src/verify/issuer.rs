//! The policy's token issuers: their declarations, and the compiled form the
//! verifier checks tokens against.

use super::algorithm::{Algorithm, KeyFamily};
use super::claims::ClaimRules;
use super::error::IssuerError;
use super::fetch::{JwksFetchSpec, MAX_JWKS_BYTES};
use super::jwk::KeySet;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};

/// The clock skew allowed when a declaration names none, in seconds.
pub const DEFAULT_CLOCK_SKEW_SECS: u64 = 60;

/// The largest clock skew a declaration may allow, in seconds.
pub const MAX_CLOCK_SKEW_SECS: u64 = 600;

/// A token issuer as a policy declares it.
///
/// `Debug` leaves out the key set, which may hold shared secrets.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IssuerSpec {
    /// The name identities use to refer to this issuer.
    pub name: String,
    /// The exact `iss` claim value.
    pub issuer: String,
    /// Accepted `aud` values; a token must carry at least one of them.
    pub audiences: Vec<String>,
    /// Allowed `alg` values, from `RS256`, `RS384`, `RS512`, `PS256`,
    /// `PS384`, `PS512`, `ES256`, `ES384`, `EdDSA`, `HS256`, `HS384`,
    /// `HS512`, and for CWTs only `HMAC 256/64`; a CWT's COSE algorithm is
    /// allowed under the same names (`HMAC 256/256` is `HS256`). `none` is
    /// never allowed, and the shared-secret algorithms cannot be mixed with
    /// the others.
    pub algorithms: Vec<String>,
    /// The issuer's public keys (or, for `HS*`, shared secrets), as an inline
    /// JWKS: `{"keys": [...]}`. Required unless `jwks_fetch` is given, and
    /// refused with it.
    #[serde(default)]
    pub jwks: serde_json::Value,
    /// Where to fetch the issuer's JWKS instead (see
    /// [`super::fetch::JwksFetchSpec`]). Defaults to none: keys are inline.
    #[serde(default)]
    pub jwks_fetch: Option<JwksFetchSpec>,
    /// Seconds of clock difference tolerated on `exp`, `nbf` and `iat`, at
    /// most 600. Defaults to 60 seconds.
    #[serde(default)]
    pub clock_skew_secs: Option<u64>,
    /// The longest lifetime (`exp - iat`) accepted, in seconds; when set,
    /// tokens must carry `iat`. Defaults to no limit.
    #[serde(default)]
    pub max_lifetime_secs: Option<u64>,
    /// Whether tokens must carry `exp`. Defaults to `true`.
    #[serde(default)]
    pub require_expiry: Option<bool>,
    /// The `typ` header tokens must carry (for example `at+jwt`), compared
    /// case-insensitively and with an optional `application/` prefix, as RFC
    /// 7515 section 4.1.9 says. Defaults to not checking `typ`.
    #[serde(default)]
    pub typ: Option<String>,
    /// A pattern the `sub` claim must match, where `*` stands for any run of
    /// characters (for example `svc-*`). Defaults to any non-empty subject.
    #[serde(default)]
    pub subject_pattern: Option<String>,
}

impl fmt::Debug for IssuerSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let keys = self
            .jwks
            .get("keys")
            .and_then(serde_json::Value::as_array)
            .map(Vec::len);
        f.debug_struct("IssuerSpec")
            .field("name", &self.name)
            .field("issuer", &self.issuer)
            .field("audiences", &self.audiences)
            .field("algorithms", &self.algorithms)
            .field("jwks_keys", &keys)
            .field("jwks_fetch", &self.jwks_fetch)
            .field("clock_skew_secs", &self.clock_skew_secs)
            .field("max_lifetime_secs", &self.max_lifetime_secs)
            .field("require_expiry", &self.require_expiry)
            .field("typ", &self.typ)
            .field("subject_pattern", &self.subject_pattern)
            .finish()
    }
}

/// Hands out [`Issuers::generation`] values; starts at 1 so that the empty
/// default set (generation 0) never matches a compiled one.
static GENERATIONS: AtomicU64 = AtomicU64::new(1);

/// One issuer, compiled.
#[derive(Debug)]
pub(crate) struct Issuer {
    pub(crate) name: String,
    pub(crate) algorithms: Vec<Algorithm>,
    pub(crate) keys: KeySet,
    pub(crate) fetch: Option<JwksFetchSpec>,
    pub(crate) typ: Option<String>,
    pub(crate) rules: ClaimRules,
}

/// The policy's issuers, compiled for verification.
#[derive(Debug, Default)]
pub struct Issuers {
    pub(crate) issuers: Vec<Issuer>,
    by_iss: BTreeMap<String, usize>,
    /// Tells apart compilations, so a cache filled under one set of issuers
    /// is never read under another.
    pub(crate) generation: u64,
}

impl Issuers {
    /// Compiles the policy's issuer declarations, validating every key.
    ///
    /// # Errors
    ///
    /// Returns an error naming the issuer (and the key, where there is one)
    /// and the problem, for example
    /// ``issuer `corp-idp`: key `k1`: RSA modulus of 1024 bits is under the
    /// 2048-bit minimum``.
    pub fn compile(specs: &[IssuerSpec]) -> Result<Self, IssuerError> {
        let mut compiled = Self {
            generation: GENERATIONS.fetch_add(1, Ordering::Relaxed),
            ..Self::default()
        };
        for spec in specs {
            if compiled.contains(&spec.name) {
                return Err(IssuerError::new(&spec.name, "is declared twice"));
            }
            if let Some(&other) = compiled.by_iss.get(&spec.issuer) {
                let other = compiled.issuers.get(other).map_or("", |i| i.name.as_str());
                return Err(IssuerError::new(
                    &spec.name,
                    format!(
                        "`iss` `{}` is already declared by issuer `{other}`",
                        spec.issuer
                    ),
                ));
            }

            let issuer = Issuer::compile(spec)?;
            compiled
                .by_iss
                .insert(spec.issuer.clone(), compiled.issuers.len());
            compiled.issuers.push(issuer);
        }
        Ok(compiled)
    }

    /// Whether an issuer of this policy name exists.
    pub fn contains(&self, name: &str) -> bool {
        self.issuers.iter().any(|issuer| issuer.name == name)
    }

    /// The issuer declaring this exact `iss` value.
    pub(crate) fn by_iss(&self, iss: &str) -> Option<&Issuer> {
        self.by_iss
            .get(iss)
            .and_then(|&index| self.issuers.get(index))
    }
}

impl Issuer {
    fn compile(spec: &IssuerSpec) -> Result<Self, IssuerError> {
        let fail = |problem: String| IssuerError::new(&spec.name, problem);

        if spec.name.is_empty() {
            return Err(IssuerError::new("", "has an empty name"));
        }
        if spec.issuer.is_empty() {
            return Err(fail("`issuer` is empty".into()));
        }

        if spec.audiences.is_empty() || spec.audiences.iter().any(String::is_empty) {
            return Err(fail(
                "`audiences` must list at least one non-empty audience".into(),
            ));
        }

        let algorithms = compile_algorithms(&spec.algorithms).map_err(fail)?;

        let keys = match (&spec.jwks_fetch, spec.jwks.is_null()) {
            (Some(fetch), true) => {
                fetch.check().map_err(fail)?;
                KeySet::default()
            }
            (Some(_), false) => return Err(fail("give `jwks` or `jwks_fetch`, not both".into())),
            (None, true) => return Err(fail("needs `jwks` or `jwks_fetch`".into())),
            (None, false) => {
                let keys = compile_keys(&spec.jwks, &algorithms).map_err(fail)?;
                if let Some(alg) = algorithms.iter().find(|alg| !keys.can_verify(**alg)) {
                    return Err(fail(format!("no key in `jwks` can verify `{alg}`")));
                }
                keys
            }
        };

        let clock_skew = spec.clock_skew_secs.unwrap_or(DEFAULT_CLOCK_SKEW_SECS);
        if clock_skew > MAX_CLOCK_SKEW_SECS {
            return Err(fail(format!(
                "`clock_skew_secs` of {clock_skew} is over the maximum of {MAX_CLOCK_SKEW_SECS}"
            )));
        }

        if spec.typ.as_deref() == Some("") {
            return Err(fail("`typ` is empty".into()));
        }
        if spec.subject_pattern.as_deref() == Some("") {
            return Err(fail("`subject_pattern` is empty".into()));
        }

        Ok(Self {
            name: spec.name.clone(),
            algorithms,
            keys,
            fetch: spec.jwks_fetch.clone(),
            typ: spec.typ.as_deref().map(normalize_typ),
            rules: ClaimRules {
                audiences: spec.audiences.clone(),
                clock_skew,
                require_expiry: spec.require_expiry.unwrap_or(true),
                max_lifetime: spec.max_lifetime_secs,
                subject_pattern: spec.subject_pattern.clone(),
            },
        })
    }

    /// Whether a token's `typ` header satisfies this issuer's profile.
    pub(crate) fn accepts_typ(&self, typ: Option<&str>) -> bool {
        match (&self.typ, typ) {
            (None, _) => true,
            (Some(expected), Some(typ)) => *expected == normalize_typ(typ),
            (Some(_), None) => false,
        }
    }
}

/// Validates a JWKS for an issuer allowing `algorithms`.
fn compile_keys(jwks: &serde_json::Value, algorithms: &[Algorithm]) -> Result<KeySet, String> {
    let secret_algorithms: Vec<Algorithm> = algorithms
        .iter()
        .copied()
        .filter(|a| a.family() == KeyFamily::Secret)
        .collect();
    KeySet::from_jwks(jwks, &secret_algorithms).map_err(|e| e.to_string())
}

impl Issuers {
    /// The issuers whose keys are fetched, with where from.
    pub fn fetched(&self) -> impl Iterator<Item = (&str, &JwksFetchSpec)> {
        self.issuers
            .iter()
            .filter_map(|i| Some((i.name.as_str(), i.fetch.as_ref()?)))
    }

    /// Validates a fetched JWKS document and, only if all of it is sound,
    /// makes it the issuer's key set. Returns the number of keys. Tokens
    /// verified under the old keys are no longer served from a cache.
    ///
    /// # Errors
    ///
    /// Returns an error naming the issuer and the problem; the issuer keeps
    /// the keys it had.
    pub fn install_jwks(&mut self, name: &str, document: &[u8]) -> Result<usize, IssuerError> {
        let fail = |problem: String| IssuerError::new(name, problem);
        if document.len() > MAX_JWKS_BYTES {
            return Err(fail(format!(
                "fetched JWKS of {} bytes is over the {MAX_JWKS_BYTES}-byte cap",
                document.len()
            )));
        }
        let jwks: serde_json::Value = serde_json::from_slice(document)
            .map_err(|e| fail(format!("fetched JWKS is not JSON: {e}")))?;
        let issuer = self
            .issuers
            .iter_mut()
            .find(|i| i.name == name && i.fetch.is_some())
            .ok_or_else(|| fail("has no `jwks_fetch`".into()))?;
        let keys = compile_keys(&jwks, &issuer.algorithms)
            .map_err(|e| fail(format!("fetched JWKS: {e}")))?;
        if !issuer.algorithms.iter().any(|alg| keys.can_verify(*alg)) {
            return Err(fail(
                "fetched JWKS: no key can verify an allowed algorithm".into(),
            ));
        }
        let count = keys.len();
        issuer.keys = keys;
        self.generation = GENERATIONS.fetch_add(1, Ordering::Relaxed);
        Ok(count)
    }

    /// Drops an issuer's fetched keys, after they went stale beyond use.
    pub fn drop_fetched_keys(&mut self, name: &str) {
        if let Some(issuer) = self
            .issuers
            .iter_mut()
            .find(|i| i.name == name && i.fetch.is_some())
        {
            issuer.keys = KeySet::default();
            self.generation = GENERATIONS.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// Lowercases a media type and drops an `application/` prefix.
fn normalize_typ(typ: &str) -> String {
    let lower = typ.to_ascii_lowercase();
    match lower.strip_prefix("application/") {
        Some(rest) if !rest.contains('/') => rest.to_owned(),
        _ => lower,
    }
}

fn compile_algorithms(names: &[String]) -> Result<Vec<Algorithm>, String> {
    if names.is_empty() {
        return Err("`algorithms` is empty".into());
    }

    let mut algorithms = Vec::with_capacity(names.len());
    for name in names {
        if name.eq_ignore_ascii_case("none") {
            return Err(format!("algorithm `{name}` is never allowed"));
        }
        let alg = Algorithm::from_name(name).ok_or(format!("unsupported algorithm `{name}`"))?;
        if algorithms.contains(&alg) {
            return Err(format!("algorithm `{name}` is listed twice"));
        }
        algorithms.push(alg);
    }

    let secrets = algorithms
        .iter()
        .filter(|a| a.family() == KeyFamily::Secret)
        .count();
    if secrets != 0 && secrets != algorithms.len() {
        return Err("shared-secret algorithms (`HS*`) cannot be mixed with public-key ones".into());
    }
    Ok(algorithms)
}
