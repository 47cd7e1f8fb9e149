//! The demo: the demo policy filled with freshly generated keys, and the
//! tokens and API keys that exercise it.
//!
//! `policies/demo/policy.json` leaves its secrets open: an issuer's `jwks`
//! is `null` (or the issuer fetches it with `jwks_fetch`) and every API
//! key's `sha256` is empty. [`generate`] makes a key pair per issuer and a
//! key per API key credential, fills in the public halves (or hands back
//! the key sets to serve), and mints one token per token identity, plus
//! the bad tokens the tour shows being refused. Nothing private is
//! committed.

use crate::Error;
use crate::keys::SigningKey;
use crate::mint::{base64url, mint, tamper};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;

/// The demo policy template, `policies/demo/policy.json`.
pub const TEMPLATE: &str = include_str!("../demo/policy.json");

/// The demo policy template, parsed.
///
/// # Errors
///
/// Returns an error when the template is not JSON.
pub fn template() -> Result<Value, Error> {
    serde_json::from_str(TEMPLATE).map_err(|e| Error(format!("policies/demo/policy.json: {e}")))
}

/// Seconds since the Unix epoch, by the system clock.
pub fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// How long demo tokens live, in seconds.
pub const TOKEN_LIFETIME: u64 = 3600;

/// A filled demo policy with its credentials.
#[derive(Debug)]
pub struct Demo {
    /// The policy, ready for the plugin configuration.
    pub policy: Value,
    /// Tokens by name: one per token identity (named after it), plus
    /// `expired`, `tampered` and `wrong-issuer`.
    pub tokens: BTreeMap<String, String>,
    /// API keys by identity id.
    pub api_keys: BTreeMap<String, String>,
    /// Public key sets of issuers declared with `jwks_fetch`, by issuer
    /// name: served by a key server, not inlined.
    pub fetched_jwks: BTreeMap<String, Value>,
    /// Signing keys by issuer name, for tests that mint more tokens.
    pub issuer_keys: BTreeMap<String, SigningKey>,
}

/// Fills `template` at `now` (seconds since the Unix epoch).
///
/// # Errors
///
/// Returns an error for a template whose shape is not the demo policy's, or
/// a failed key generation.
pub fn generate(template: &Value, now: u64) -> Result<Demo, Error> {
    let mut policy = template.clone();
    let mut demo = Demo {
        policy: Value::Null,
        tokens: BTreeMap::new(),
        api_keys: BTreeMap::new(),
        fetched_jwks: BTreeMap::new(),
        issuer_keys: BTreeMap::new(),
    };
    let mut issuers = BTreeMap::new();
    for issuer in array_mut(&mut policy, "issuers")? {
        let name = text(issuer, "name")?;
        let iss = text(issuer, "issuer")?;
        let aud = issuer
            .pointer("/audiences/0")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        let alg = issuer
            .pointer("/algorithms/0")
            .and_then(Value::as_str)
            .unwrap_or("RS256");
        let key = SigningKey::generate(alg, &format!("{name}-1"))?;
        if issuer.get("jwks_fetch").is_some() {
            demo.fetched_jwks.insert(name.clone(), key.public_jwks());
        } else if issuer.get("jwks").is_none_or(Value::is_null) {
            issuer["jwks"] = key.public_jwks();
        }
        issuers.insert(name.clone(), (iss, aud));
        demo.issuer_keys.insert(name, key);
    }
    for identity in array_mut(&mut policy, "identities")? {
        let id = text(identity, "id")?;
        let credentials = identity
            .get_mut("credentials")
            .and_then(Value::as_array_mut);
        for credential in credentials.into_iter().flatten() {
            match credential.get("kind").and_then(Value::as_str) {
                Some("api_key") => {
                    let key = format!("{}.{}", text(credential, "key_id")?, random_secret()?);
                    credential["sha256"] = json!(hex(&Sha256::digest(key.as_bytes())));
                    demo.api_keys.insert(id.clone(), key);
                }
                Some("jwt") => {
                    let issuer = text(credential, "issuer")?;
                    let sub = text(credential, "subject")?;
                    let (iss, aud) = issuers.get(&issuer).cloned().unwrap_or_default();
                    let key = demo
                        .issuer_keys
                        .get(&issuer)
                        .ok_or(Error(format!("no key for `{issuer}`")))?;
                    demo.tokens
                        .insert(id.clone(), mint(key, &claims(&iss, &sub, &aud, now)));
                }
                _ => {}
            }
        }
    }
    add_bad_tokens(&mut demo, &issuers, now)?;
    demo.policy = policy;
    Ok(demo)
}

/// The claims of a demo token issued at `now`.
pub fn claims(iss: &str, sub: &str, aud: &str, now: u64) -> Value {
    json!({ "iss": iss, "sub": sub, "aud": aud, "iat": now, "nbf": now, "exp": now + TOKEN_LIFETIME })
}

fn add_bad_tokens(
    demo: &mut Demo,
    issuers: &BTreeMap<String, (String, String)>,
    now: u64,
) -> Result<(), Error> {
    let (iss, aud) = issuers.get("corp-idp").cloned().unwrap_or_default();
    let key = demo
        .issuer_keys
        .get("corp-idp")
        .ok_or(Error("no issuer `corp-idp`".into()))?;
    let expired = claims(&iss, "svc-ledger-sync", &aud, now - 2 * TOKEN_LIFETIME);
    demo.tokens.insert("expired".into(), mint(key, &expired));
    let ledger = demo.tokens.get("ledger-sync").cloned().unwrap_or_default();
    demo.tokens.insert(
        "tampered".into(),
        tamper(&ledger, "sub", json!("svc-payroll-export")),
    );
    let stray = SigningKey::generate("RS256", "stray-1")?;
    let foreign = claims("https://idp.attacker.test", "svc-ledger-sync", &aud, now);
    demo.tokens
        .insert("wrong-issuer".into(), mint(&stray, &foreign));
    Ok(())
}

fn array_mut<'a>(policy: &'a mut Value, field: &str) -> Result<&'a mut Vec<Value>, Error> {
    policy
        .get_mut(field)
        .and_then(Value::as_array_mut)
        .ok_or(Error(format!("demo policy: `{field}` must be an array")))
}

fn text(object: &Value, field: &str) -> Result<String, Error> {
    object
        .get(field)
        .and_then(Value::as_str)
        .map(str::to_owned)
        .ok_or(Error(format!("demo policy: `{field}` must be a string")))
}

fn random_secret() -> Result<String, Error> {
    let mut bytes = [0u8; 24];
    getrandom::fill(&mut bytes).map_err(|e| Error(format!("random source: {e}")))?;
    Ok(base64url(&bytes))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
