//! The verified-token cache: hits, expiry, byte bound, eviction order and
//! policy reloads.

mod token_support;

use serde_json::json;
use token_support::*;
use warden::verify::cache::{ENTRY_OVERHEAD, MAX_ENTRY_SECS};
use warden::verify::{Issuers, TokenCache, TokenError};

fn es256_token(key: &TestKey, changes: serde_json::Value) -> String {
    let mut claims = claims();
    for (name, value) in changes.as_object().unwrap() {
        claims[name] = value.clone();
    }
    token(key, &header(key, "ES256"), &claims)
}

#[test]
fn a_repeated_token_is_answered_from_the_cache() {
    let key = TestKey::p256();
    let issuers = issuers(&["ES256"], &[&key]);
    let mut cache = TokenCache::new(64 * 1024);
    let token = es256_token(&key, json!({}));

    let first = issuers.verify_cached(&mut cache, &token, NOW).unwrap();
    let second = issuers.verify_cached(&mut cache, &token, NOW + 1).unwrap();
    assert_eq!(first, second);
    assert_eq!(cache.hits_and_misses(), (1, 1));
    assert_eq!(cache.len(), 1);
}

#[test]
fn an_entry_is_served_only_until_exp_plus_skew() {
    let key = TestKey::p256();
    let issuers = issuers(&["ES256"], &[&key]);
    let mut cache = TokenCache::new(64 * 1024);
    let token = es256_token(&key, json!({"exp": NOW + 100}));

    issuers.verify_cached(&mut cache, &token, NOW).unwrap();
    issuers
        .verify_cached(&mut cache, &token, NOW + 159)
        .unwrap();
    assert_eq!(cache.hits_and_misses(), (1, 1));

    assert_eq!(
        issuers.verify_cached(&mut cache, &token, NOW + 160),
        Err(TokenError::Expired)
    );
    assert_eq!(cache.hits_and_misses(), (1, 2));
    assert!(cache.is_empty());
}

#[test]
fn a_token_without_exp_is_reverified_after_the_entry_limit() {
    let key = TestKey::p256();
    let mut spec = spec(&["ES256"], &[&key]);
    spec.require_expiry = Some(false);
    let issuers = Issuers::compile(&[spec]).unwrap();
    let mut claims = claims();
    claims.as_object_mut().unwrap().remove("exp");
    let token = token(&key, &header(&key, "ES256"), &claims);
    let mut cache = TokenCache::new(64 * 1024);

    issuers.verify_cached(&mut cache, &token, NOW).unwrap();
    issuers
        .verify_cached(&mut cache, &token, NOW + MAX_ENTRY_SECS - 1)
        .unwrap();
    issuers
        .verify_cached(&mut cache, &token, NOW + MAX_ENTRY_SECS)
        .unwrap();
    assert_eq!(cache.hits_and_misses(), (1, 2));
}

#[test]
fn failures_are_not_cached() {
    let key = TestKey::p256();
    let issuers = issuers(&["ES256"], &[&key]);
    let mut cache = TokenCache::new(64 * 1024);
    let token = es256_token(&key, json!({"aud": "https://other.example.com"}));
    for _ in 0..3 {
        let outcome = issuers.verify_cached(&mut cache, &token, NOW);
        assert_eq!(outcome, Err(TokenError::AudienceMismatch));
    }
    assert!(cache.is_empty());
    assert_eq!(cache.hits_and_misses(), (0, 3));

    let huge = "a".repeat(10_000);
    assert_eq!(
        issuers.verify_cached(&mut cache, &huge, NOW),
        Err(TokenError::TooLarge("token"))
    );
}

#[test]
fn the_byte_bound_holds_and_the_oldest_entries_go_first() {
    let key = TestKey::p256();
    let issuers = issuers(&["ES256"], &[&key]);
    let tokens: Vec<String> = (0..20)
        .map(|i| es256_token(&key, json!({"jti": format!("token-{i:02}")})))
        .collect();
    let per_entry = ENTRY_OVERHEAD
        + tokens[0].len()
        + "corp-idp".len()
        + "svc-billing".len()
        + AUD.len()
        + "kid-ec-sign".len();
    let capacity = per_entry * 5 + per_entry / 2;
    let mut cache = TokenCache::new(capacity);

    for token in &tokens {
        issuers.verify_cached(&mut cache, token, NOW).unwrap();
        assert!(cache.used_bytes() <= capacity);
    }
    assert_eq!(cache.len(), 5);
    assert_eq!(cache.used_bytes(), per_entry * 5);

    // The five most recent are hits; the first is gone.
    for token in &tokens[15..] {
        issuers.verify_cached(&mut cache, token, NOW).unwrap();
    }
    assert_eq!(cache.hits_and_misses(), (5, 20));
    issuers.verify_cached(&mut cache, &tokens[0], NOW).unwrap();
    assert_eq!(cache.hits_and_misses(), (5, 21));
}

#[test]
fn an_entry_larger_than_the_cache_is_not_stored() {
    let key = TestKey::p256();
    let issuers = issuers(&["ES256"], &[&key]);
    let mut cache = TokenCache::new(100);
    let token = es256_token(&key, json!({}));
    issuers.verify_cached(&mut cache, &token, NOW).unwrap();
    assert!(cache.is_empty());
    assert_eq!(cache.used_bytes(), 0);
}

#[test]
fn a_policy_reload_empties_the_cache() {
    let key = TestKey::p256();
    let old = issuers(&["ES256"], &[&key]);
    let mut cache = TokenCache::new(64 * 1024);
    let token = es256_token(&key, json!({}));
    old.verify_cached(&mut cache, &token, NOW).unwrap();
    assert_eq!(cache.len(), 1);

    // The new policy no longer trusts this key.
    let other = TestKey::p384();
    let new = issuers(&["ES384"], &[&other]);
    assert_eq!(
        new.verify_cached(&mut cache, &token, NOW),
        Err(TokenError::AlgorithmNotAllowed)
    );
    assert!(cache.is_empty());
}

#[test]
fn debug_output_shows_no_token() {
    let key = TestKey::p256();
    let issuers = issuers(&["ES256"], &[&key]);
    let mut cache = TokenCache::default();
    let token = es256_token(&key, json!({}));
    issuers.verify_cached(&mut cache, &token, NOW).unwrap();
    let debug = format!("{cache:?}");
    assert!(!debug.contains(&token[..20]), "{debug}");
    assert!(
        debug.starts_with("TokenCache { capacity: 1048576, used: "),
        "{debug}"
    );
}
