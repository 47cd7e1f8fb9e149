//! JWT verification through `Issuers::verify`: each guard step refuses with
//! its own error, and valid tokens of every algorithm pass.

mod token_support;

use serde_json::json;
use token_support::*;
use warden::verify::{Algorithm, IssuerSpec, Issuers, Segment, TokenError, VerifiedToken};

fn verify(issuers: &Issuers, token: &str) -> Result<VerifiedToken, TokenError> {
    issuers.verify(token, NOW)
}

#[test]
fn rs256_and_es256_tokens_verify() {
    let rsa = TestKey::rsa();
    let ec = TestKey::p256();
    let issuers = issuers(&["RS256", "ES256"], &[&rsa, &ec]);

    for (key, alg) in [(&rsa, "RS256"), (&ec, "ES256")] {
        let token = token(key, &header(key, alg), &claims());
        let verified = verify(&issuers, &token).unwrap();
        assert_eq!(
            verified,
            VerifiedToken {
                issuer: "corp-idp".into(),
                subject: "svc-billing".into(),
                expires_at: Some(NOW + 3600),
                audience: AUD.into(),
                algorithm: Algorithm::from_name(alg).unwrap(),
                key_id: Some(key.kid().into()),
                certificate_thumbprint: None,
            }
        );
    }
}

#[test]
fn every_algorithm_verifies_with_its_key() {
    let cases = [
        (
            TestKey::rsa(),
            ["RS256", "RS384", "RS512", "PS256", "PS384", "PS512"].as_slice(),
        ),
        (TestKey::p256(), ["ES256"].as_slice()),
        (TestKey::p384(), ["ES384"].as_slice()),
        (TestKey::ed25519(), ["EdDSA"].as_slice()),
        (TestKey::hmac(), ["HS256", "HS384", "HS512"].as_slice()),
    ];
    for (key, algorithms) in &cases {
        let issuers = issuers(algorithms, &[key]);
        for alg in *algorithms {
            let token = token(key, &header(key, alg), &claims());
            let verified = verify(&issuers, &token).unwrap_or_else(|e| panic!("{alg}: {e}"));
            assert_eq!(verified.algorithm.name(), *alg);
        }
    }
}

#[test]
fn expired_token_is_refused_after_the_skew() {
    let key = TestKey::rsa();
    let issuers = issuers(&["RS256"], &[&key]);
    let mut claims = claims();
    claims["exp"] = json!(NOW - 61);
    let expired = token(&key, &header(&key, "RS256"), &claims);
    assert_eq!(verify(&issuers, &expired), Err(TokenError::Expired));
    assert_eq!(TokenError::Expired.reason(), "token_expired");

    // Within the default 60 seconds of skew, the token still passes.
    claims["exp"] = json!(NOW - 59);
    let recent = token(&key, &header(&key, "RS256"), &claims);
    assert_eq!(
        verify(&issuers, &recent).unwrap().expires_at,
        Some(NOW - 59)
    );
}

#[test]
fn tampered_payload_fails_the_signature() {
    for key in [TestKey::rsa(), TestKey::p256()] {
        let alg = if matches!(key, TestKey::Rsa(..)) {
            "RS256"
        } else {
            "ES256"
        };
        let issuers = issuers(&[alg], &[&key]);
        let token = token(&key, &header(&key, alg), &claims());

        let mut forged = claims();
        forged["sub"] = json!("admin");
        let forged_payload = warden::verify::base64url::encode(forged.to_string().as_bytes());
        let parts: Vec<&str> = token.split('.').collect();
        let tampered = format!("{}.{}.{}", parts[0], forged_payload, parts[2]);

        let err = verify(&issuers, &tampered).unwrap_err();
        assert_eq!(err, TokenError::SignatureInvalid);
        assert_eq!(err.reason(), "signature_invalid");
    }
}

#[test]
fn unknown_issuer_is_refused_before_any_crypto() {
    let key = TestKey::rsa();
    let issuers = issuers(&["RS256"], &[&key]);
    let mut claims = claims();
    claims["iss"] = json!("https://evil.example.com");
    let token = token(&key, &header(&key, "RS256"), &claims);
    assert_eq!(verify(&issuers, &token), Err(TokenError::IssuerUnknown));
    assert_eq!(TokenError::IssuerUnknown.reason(), "issuer_unknown");
}

#[test]
fn missing_issuer_claim_is_its_own_reason() {
    let key = TestKey::rsa();
    let issuers = issuers(&["RS256"], &[&key]);
    let mut claims = claims();
    claims.as_object_mut().unwrap().remove("iss");
    let token = token(&key, &header(&key, "RS256"), &claims);
    assert_eq!(verify(&issuers, &token), Err(TokenError::IssuerMissing));
}

#[test]
fn algorithm_outside_the_allow_list_is_refused() {
    let key = TestKey::rsa();
    let issuers = issuers(&["RS256"], &[&key]);
    let token = token(&key, &header(&key, "PS256"), &claims());
    assert_eq!(
        verify(&issuers, &token),
        Err(TokenError::AlgorithmNotAllowed)
    );
}

#[test]
fn audience_rules() {
    let key = TestKey::p256();
    let issuers = issuers(&["ES256"], &[&key]);
    let cases = [
        (
            json!("https://other.example.com"),
            TokenError::AudienceMismatch,
        ),
        (json!([]), TokenError::AudienceMissing),
        (
            json!(["https://other.example.com", AUD]),
            TokenError::SignatureInvalid,
        ),
        (json!(7), TokenError::ClaimTypeInvalid("aud")),
    ];
    for (aud, expected) in cases {
        let mut claims = claims();
        claims["aud"] = aud.clone();
        let token = token(&key, &header(&key, "ES256"), &claims);
        let outcome = verify(&issuers, &token);
        if expected == TokenError::SignatureInvalid {
            // A list that contains an accepted audience passes.
            assert_eq!(&*outcome.unwrap().audience, AUD, "aud {aud}");
        } else {
            assert_eq!(outcome, Err(expected), "aud {aud}");
        }
    }

    let mut claims = claims();
    claims.as_object_mut().unwrap().remove("aud");
    let token = token(&key, &header(&key, "ES256"), &claims);
    assert_eq!(verify(&issuers, &token), Err(TokenError::AudienceMissing));
}

#[test]
fn time_claims_follow_the_skew() {
    let key = TestKey::p256();
    let issuers = issuers(&["ES256"], &[&key]);
    let cases = [
        ("nbf", json!(NOW + 61), Err(TokenError::NotYetValid)),
        ("nbf", json!(NOW + 59), Ok(())),
        ("iat", json!(NOW + 61), Err(TokenError::IssuedInFuture)),
        ("iat", json!(NOW + 59), Ok(())),
        ("exp", json!(NOW - 60), Err(TokenError::Expired)),
        (
            "exp",
            json!(format!("{}", NOW + 100)),
            Err(TokenError::ClaimTypeInvalid("exp")),
        ),
        ("nbf", json!(true), Err(TokenError::ClaimTypeInvalid("nbf"))),
        ("iat", json!(-5), Err(TokenError::ClaimTypeInvalid("iat"))),
        ("exp", json!((NOW + 100) as f64 + 0.5), Ok(())),
    ];
    for (claim, value, expected) in cases {
        let mut claims = claims();
        claims[claim] = value.clone();
        let token = token(&key, &header(&key, "ES256"), &claims);
        let outcome = verify(&issuers, &token).map(|_| ());
        assert_eq!(outcome, expected, "{claim} = {value}");
    }
}

#[test]
fn expiry_is_required_by_default() {
    let key = TestKey::p256();
    let mut claims = claims();
    claims.as_object_mut().unwrap().remove("exp");
    let token = token(&key, &header(&key, "ES256"), &claims);

    let strict = issuers(&["ES256"], &[&key]);
    assert_eq!(verify(&strict, &token), Err(TokenError::ExpiryMissing));

    let mut spec = spec(&["ES256"], &[&key]);
    spec.require_expiry = Some(false);
    let lenient = Issuers::compile(&[spec]).unwrap();
    assert_eq!(lenient.verify(&token, NOW).unwrap().expires_at, None);
}

#[test]
fn lifetime_and_subject_rules() {
    let key = TestKey::p256();
    let mut spec: IssuerSpec = spec(&["ES256"], &[&key]);
    spec.max_lifetime_secs = Some(7200);
    spec.subject_pattern = Some("svc-*".into());
    spec.clock_skew_secs = Some(0);
    let issuers = Issuers::compile(&[spec]).unwrap();

    let valid = token(&key, &header(&key, "ES256"), &claims());
    assert_eq!(&*verify(&issuers, &valid).unwrap().subject, "svc-billing");

    let cases = [
        (
            json!({"iat": NOW - 10, "exp": NOW + 7200}),
            TokenError::LifetimeExceeded,
        ),
        (json!({"iat": null}), TokenError::ClaimTypeInvalid("iat")),
        (json!({"sub": "user-1"}), TokenError::SubjectMismatch),
        (json!({"sub": ""}), TokenError::SubjectMissing),
        (json!({"sub": 42}), TokenError::ClaimTypeInvalid("sub")),
    ];
    for (changes, expected) in cases {
        let mut claims = claims();
        for (name, value) in changes.as_object().unwrap() {
            claims[name] = value.clone();
        }
        let token = token(&key, &header(&key, "ES256"), &claims);
        assert_eq!(verify(&issuers, &token), Err(expected), "{changes}");
    }

    let mut claims = claims();
    claims.as_object_mut().unwrap().remove("iat");
    let token = token(&key, &header(&key, "ES256"), &claims);
    assert_eq!(verify(&issuers, &token), Err(TokenError::IssuedAtMissing));
}

#[test]
fn typ_profile_is_enforced_when_declared() {
    let key = TestKey::p256();
    let mut spec = spec(&["ES256"], &[&key]);
    spec.typ = Some("at+jwt".into());
    let issuers = Issuers::compile(&[spec]).unwrap();

    for (typ, accepted) in [
        (Some("at+jwt"), true),
        (Some("application/AT+JWT"), true),
        (Some("JWT"), false),
        (None, false),
    ] {
        let mut header = header(&key, "ES256");
        if let Some(typ) = typ {
            header["typ"] = json!(typ);
        }
        let token = token(&key, &header, &claims());
        let outcome = verify(&issuers, &token).map(|_| ());
        let expected = if accepted {
            Ok(())
        } else {
            Err(TokenError::TypeMismatch)
        };
        assert_eq!(outcome, expected, "typ {typ:?}");
    }
}

#[test]
fn shape_and_encoding_errors() {
    let key = TestKey::rsa();
    let issuers = issuers(&["RS256"], &[&key]);
    let token = token(&key, &header(&key, "RS256"), &claims());
    let parts: Vec<&str> = token.split('.').collect();

    let cases = [
        (
            String::new(),
            TokenError::Malformed("not three dot-separated segments"),
        ),
        (
            format!("{}.{}", parts[0], parts[1]),
            TokenError::Malformed("not three dot-separated segments"),
        ),
        (
            format!("{token}.x"),
            TokenError::Malformed("not three dot-separated segments"),
        ),
        (
            format!(".{}.{}", parts[1], parts[2]),
            TokenError::Malformed("empty header segment"),
        ),
        (
            format!("{}.{}.", parts[0], parts[1]),
            TokenError::Malformed("empty signature segment"),
        ),
        (
            format!("{}=.{}.{}", parts[0], parts[1], parts[2]),
            TokenError::Encoding(Segment::Header),
        ),
        (
            format!("{}.{} .{}", parts[0], parts[1], parts[2]),
            TokenError::Encoding(Segment::Payload),
        ),
        (
            format!("{}.{}.{}+", parts[0], parts[1], parts[2]),
            TokenError::Encoding(Segment::Signature),
        ),
    ];
    for (token, expected) in cases {
        assert_eq!(
            verify(&issuers, &token),
            Err(expected.clone()),
            "{expected}"
        );
    }
}

#[test]
fn reasons_are_stable_snake_case() {
    let all = [
        TokenError::TooLarge("token"),
        TokenError::Malformed("x"),
        TokenError::Encoding(Segment::Header),
        TokenError::HeaderMalformed("x"),
        TokenError::HeaderDuplicateMember,
        TokenError::CritUnsupported,
        TokenError::KidTooLong,
        TokenError::AlgorithmNone,
        TokenError::AlgorithmNotAllowed,
        TokenError::TypeMismatch,
        TokenError::ClaimsMalformed("x"),
        TokenError::ClaimsDuplicateMember,
        TokenError::IssuerMissing,
        TokenError::IssuerUnknown,
        TokenError::KeyUnknown,
        TokenError::KeyTypeMismatch,
        TokenError::KeyAlgorithmMismatch,
        TokenError::KeyNotForSigning,
        TokenError::SignatureMalformed,
        TokenError::SignatureInvalid,
        TokenError::ClaimTypeInvalid("exp"),
        TokenError::AudienceMissing,
        TokenError::AudienceMismatch,
        TokenError::ExpiryMissing,
        TokenError::Expired,
        TokenError::NotYetValid,
        TokenError::IssuedInFuture,
        TokenError::IssuedAtMissing,
        TokenError::LifetimeExceeded,
        TokenError::SubjectMissing,
        TokenError::SubjectMismatch,
    ];
    let reasons: Vec<&str> = all.iter().map(TokenError::reason).collect();
    assert_eq!(
        reasons,
        [
            "token_too_large",
            "token_malformed",
            "token_encoding_invalid",
            "header_malformed",
            "header_duplicate_member",
            "crit_unsupported",
            "kid_too_long",
            "algorithm_none",
            "algorithm_not_allowed",
            "type_mismatch",
            "claims_malformed",
            "claims_duplicate_member",
            "issuer_missing",
            "issuer_unknown",
            "key_unknown",
            "key_type_mismatch",
            "key_algorithm_mismatch",
            "key_not_for_signing",
            "signature_malformed",
            "signature_invalid",
            "claim_type_invalid",
            "audience_missing",
            "audience_mismatch",
            "expiry_missing",
            "token_expired",
            "token_not_yet_valid",
            "issued_in_future",
            "issued_at_missing",
            "lifetime_exceeded",
            "subject_missing",
            "subject_mismatch",
        ]
    );
    for error in &all {
        let text = error.to_string();
        assert_eq!(text, text.to_lowercase(), "{text}");
    }
}
