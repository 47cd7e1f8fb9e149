//! CWT-specific attacks, each asserting the exact refusal.

mod token_support;

use ciborium::value::Value;
use token_support::*;
use warden::verify::cwt::MAX_CWT_LEN;
use warden::verify::{Issuers, TokenError};

fn es256(protected: Vec<(Value, Value)>, unprotected: Vec<(Value, Value)>) -> Vec<u8> {
    cose(
        &TestKey::p256(),
        "ES256",
        18,
        protected,
        unprotected,
        &claims_cbor(),
    )
}

fn alg(id: i64) -> (Value, Value) {
    (int(1), int(id))
}

fn p256_issuers() -> Issuers {
    issuers(&["ES256"], &[&TestKey::p256()])
}

#[test]
fn a_valid_es256_and_eddsa_cwt_verify() {
    let verified = p256_issuers()
        .verify_cwt(&es256(vec![alg(-7)], vec![]), NOW)
        .unwrap();
    assert_eq!(&*verified.subject, "svc-billing");

    let key = TestKey::ed25519();
    let eddsa = issuers(&["EdDSA"], &[&key]);
    let kid = (int(4), Value::Bytes(b"ed25519".to_vec()));
    let message = cose(&key, "EdDSA", 18, vec![alg(-8)], vec![kid], &claims_cbor());
    assert_eq!(
        eddsa.verify_cwt(&message, NOW).unwrap().key_id.as_deref(),
        Some("ed25519")
    );
}

#[test]
fn hmac_256_256_cwt_verifies_and_cwt_tag_is_accepted() {
    let key = TestKey::hmac();
    let hs256 = issuers(&["HS256"], &[&key]);
    let message = cose(&key, "HS256", 17, vec![alg(5)], vec![], &claims_cbor());
    let wrapped = {
        let inner: Value = ciborium::de::from_reader(message.as_slice()).unwrap();
        cbor(&Value::Tag(61, Box::new(inner)))
    };
    for message in [message, wrapped] {
        assert_eq!(
            &*hs256.verify_cwt(&message, NOW).unwrap().issuer,
            "corp-idp"
        );
    }
}

#[test]
fn alg_is_read_only_from_the_protected_header() {
    let issuers = p256_issuers();
    let both = es256(vec![alg(-7)], vec![alg(-7)]);
    assert_eq!(
        issuers.verify_cwt(&both, NOW),
        Err(TokenError::HeaderMalformed(
            "`alg` outside the protected header"
        ))
    );
    let none = es256(vec![], vec![]);
    assert_eq!(
        issuers.verify_cwt(&none, NOW),
        Err(TokenError::HeaderMalformed(
            "no `alg` in the protected header"
        ))
    );
}

#[test]
fn a_mac_algorithm_in_a_sign1_is_refused() {
    let key = TestKey::hmac();
    let issuers = issuers(&["HS256"], &[&key]);
    let message = cose(&key, "HS256", 18, vec![alg(5)], vec![], &claims_cbor());
    assert_eq!(
        issuers.verify_cwt(&message, NOW),
        Err(TokenError::AlgorithmNotAllowed)
    );
}

#[test]
fn crit_is_refused() {
    let crit = (int(2), Value::Array(vec![int(3)]));
    let message = es256(vec![alg(-7), crit], vec![]);
    assert_eq!(
        p256_issuers().verify_cwt(&message, NOW),
        Err(TokenError::CritUnsupported)
    );
}

#[test]
fn non_preferred_cbor_is_refused() {
    let message = es256(vec![alg(-7)], vec![]);
    // Re-encode the leading array header (0x84) as a one-byte-length array
    // (0x98 0x04): the same value, a different encoding.
    let position = message.iter().position(|&b| b == 0x84).unwrap();
    let mut loose = message[..position].to_vec();
    loose.extend_from_slice(&[0x98, 0x04]);
    loose.extend_from_slice(&message[position + 1..]);
    assert_eq!(
        p256_issuers().verify_cwt(&loose, NOW),
        Err(TokenError::Malformed("not strict CBOR"))
    );

    let mut trailing = message.clone();
    trailing.push(0x00);
    assert_eq!(
        p256_issuers().verify_cwt(&trailing, NOW),
        Err(TokenError::Malformed("not strict CBOR"))
    );
}

#[test]
fn duplicate_claims_and_header_labels_are_refused() {
    let key = TestKey::p256();
    let duplicated = cbor(&Value::Map(vec![
        (int(1), Value::Text(ISS.into())),
        (int(2), Value::Text("svc-billing".into())),
        (int(2), Value::Text("admin".into())),
    ]));
    let message = cose(&key, "ES256", 18, vec![alg(-7)], vec![], &duplicated);
    // The outer message already carries the duplicate inside its payload
    // bytes only, so it decodes; the claims map is refused.
    assert_eq!(
        p256_issuers().verify_cwt(&message, NOW),
        Err(TokenError::ClaimsDuplicateMember)
    );

    let message = es256(vec![alg(-7), alg(-7)], vec![]);
    assert_eq!(
        p256_issuers().verify_cwt(&message, NOW),
        Err(TokenError::HeaderDuplicateMember)
    );
}

#[test]
fn kid_is_bounded_and_exact() {
    let long = (int(4), Value::Bytes(vec![b'k'; 257]));
    let message = es256(vec![alg(-7)], vec![long]);
    assert_eq!(
        p256_issuers().verify_cwt(&message, NOW),
        Err(TokenError::KidTooLong)
    );

    let other = (int(4), Value::Bytes(b"kid-ec".to_vec()));
    let message = es256(vec![alg(-7)], vec![other]);
    assert_eq!(
        p256_issuers().verify_cwt(&message, NOW),
        Err(TokenError::KeyUnknown)
    );
}

#[test]
fn oversize_and_untagged_messages_are_refused() {
    let huge = vec![0u8; MAX_CWT_LEN + 1];
    assert_eq!(
        p256_issuers().verify_cwt(&huge, NOW),
        Err(TokenError::TooLarge("token"))
    );

    let message = es256(vec![alg(-7)], vec![]);
    let Value::Tag(18, inner) = ciborium::de::from_reader(message.as_slice()).unwrap() else {
        panic!("not a COSE_Sign1");
    };
    let untagged = cbor(&inner);
    assert_eq!(
        p256_issuers().verify_cwt(&untagged, NOW),
        Err(TokenError::Malformed("untagged COSE message"))
    );
}

#[test]
fn claim_types_are_checked() {
    let key = TestKey::p256();
    let bad_exp = cbor(&Value::Map(vec![
        (int(1), Value::Text(ISS.into())),
        (int(2), Value::Text("svc-billing".into())),
        (int(3), Value::Text(AUD.into())),
        (int(4), Value::Text("tomorrow".into())),
    ]));
    let message = cose(&key, "ES256", 18, vec![alg(-7)], vec![], &bad_exp);
    assert_eq!(
        p256_issuers().verify_cwt(&message, NOW),
        Err(TokenError::ClaimTypeInvalid("exp"))
    );

    let no_iss = cbor(&Value::Map(vec![(
        int(2),
        Value::Text("svc-billing".into()),
    )]));
    let message = cose(&key, "ES256", 18, vec![alg(-7)], vec![], &no_iss);
    assert_eq!(
        p256_issuers().verify_cwt(&message, NOW),
        Err(TokenError::IssuerMissing)
    );
}

#[test]
fn cwts_share_the_token_cache() {
    let issuers = p256_issuers();
    let mut cache = warden::verify::TokenCache::new(64 * 1024);
    let message = es256(vec![alg(-7)], vec![]);
    let first = issuers
        .verify_cwt_cached(&mut cache, &message, NOW)
        .unwrap();
    let second = issuers
        .verify_cwt_cached(&mut cache, &message, NOW + 1)
        .unwrap();
    assert_eq!(first, second);
    assert_eq!(cache.hits_and_misses(), (1, 1));

    // The base64url form a bearer token carries is cached on its own.
    let text = warden::verify::base64url::encode(&message);
    let third = issuers
        .verify_cwt_text_cached(&mut cache, &text, NOW)
        .unwrap();
    issuers
        .verify_cwt_text_cached(&mut cache, &text, NOW)
        .unwrap();
    assert_eq!(third, first);
    assert_eq!(cache.hits_and_misses(), (2, 2));
    assert_eq!(cache.len(), 2);

    // Past `exp` plus skew the entry is gone and the CWT is refused.
    assert_eq!(
        issuers.verify_cwt_cached(&mut cache, &message, NOW + 3660),
        Err(TokenError::Expired)
    );
    assert_eq!(cache.len(), 1);
}

#[test]
fn the_typ_profile_applies_to_cwts() {
    let key = TestKey::p256();
    let mut spec = spec(&["ES256"], &[&key]);
    spec.typ = Some("application/cwt".into());
    let issuers = Issuers::compile(&[spec]).unwrap();

    let typ = |t: &str| (int(16), Cbor::Text(t.into()));
    let cases = [
        (es256(vec![alg(-7), typ("application/cwt")], vec![]), Ok(())),
        (es256(vec![alg(-7)], vec![typ("CWT")]), Ok(())),
        (es256(vec![alg(-7)], vec![]), Err(TokenError::TypeMismatch)),
        (
            es256(vec![alg(-7), typ("at+jwt")], vec![]),
            Err(TokenError::TypeMismatch),
        ),
    ];
    for (message, expected) in cases {
        assert_eq!(issuers.verify_cwt(&message, NOW).map(|_| ()), expected);
    }
}

#[test]
fn an_issuer_whose_fetched_keys_are_missing_refuses_cwts() {
    let spec: warden::verify::IssuerSpec = serde_json::from_value(serde_json::json!({
        "name": "corp-idp", "issuer": ISS, "audiences": [AUD], "algorithms": ["ES256"],
        "jwks_fetch": {"cluster": "idp", "authority": "idp.example.com", "path": "/jwks.json"},
    }))
    .unwrap();
    let issuers = Issuers::compile(&[spec]).unwrap();
    let message = es256(vec![alg(-7)], vec![]);
    assert_eq!(
        issuers.verify_cwt(&message, NOW),
        Err(TokenError::KeysUnavailable)
    );
}
