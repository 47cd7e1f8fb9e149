//! One test per known attack on JWT verifiers, each asserting the exact
//! refusal.

mod token_support;

use serde_json::json;
use token_support::*;
use warden::verify::base64url::encode;
use warden::verify::jwk::KeySet;
use warden::verify::jwt::{MAX_HEADER_LEN, MAX_SIGNATURE_LEN, MAX_TOKEN_LEN, verify_signature};
use warden::verify::{Algorithm, Issuers, Segment, TokenError};

/// Replaces one segment of a compact token.
fn with_segment(token: &str, index: usize, segment: &str) -> String {
    let mut parts: Vec<&str> = token.split('.').collect();
    parts[index] = segment;
    parts.join(".")
}

#[test]
fn alg_none_is_never_accepted() {
    let key = TestKey::rsa();
    let issuers = issuers(&["RS256"], &[&key]);
    let input = format!(
        "{}.{}",
        encode(json!({"alg": "none"}).to_string().as_bytes()),
        encode(claims().to_string().as_bytes())
    );
    for alg in ["none", "None", "NONE", "nOnE"] {
        let header = encode(json!({"alg": alg}).to_string().as_bytes());
        let token = with_segment(&format!("{input}.AAAA"), 0, &header);
        assert_eq!(
            issuers.verify(&token, NOW),
            Err(TokenError::AlgorithmNone),
            "{alg}"
        );
    }
    assert_eq!(
        issuers.verify(&format!("{input}."), NOW),
        Err(TokenError::Malformed("empty signature segment"))
    );
}

#[test]
fn algorithm_none_cannot_be_declared() {
    let key = TestKey::rsa();
    let err = Issuers::compile(&[spec(&["RS256", "none"], &[&key])]).unwrap_err();
    assert_eq!(
        err.to_string(),
        "issuer `corp-idp`: algorithm `none` is never allowed"
    );
}

/// The classic confusion: HS256 "signed" with the issuer's RSA public key.
#[test]
fn rsa_public_key_used_as_hmac_secret_is_refused() {
    let rsa = TestKey::rsa();
    let public_key_bytes = rsa.jwk()["n"].as_str().unwrap().as_bytes().to_vec();
    let forger = TestKey::Hmac(public_key_bytes, json!({}));
    let token = token_raw(
        &forger,
        "HS256",
        json!({"alg": "HS256", "kid": "kid-rsa-sign"})
            .to_string()
            .as_bytes(),
        claims().to_string().as_bytes(),
    );

    // The issuer allows only RS256: refused before any cryptography.
    let issuers = issuers(&["RS256"], &[&rsa]);
    assert_eq!(
        issuers.verify(&token, NOW),
        Err(TokenError::AlgorithmNotAllowed)
    );

    // Even where HS256 were allowed, an RSA key never serves an HMAC.
    let keys = KeySet::from_jwks(&json!({"keys": [rsa.jwk()]}), &[]).unwrap();
    assert_eq!(
        verify_signature(&token, &keys, &Algorithm::ALL),
        Err(TokenError::KeyTypeMismatch)
    );

    // And an issuer cannot allow both families at once.
    let err = Issuers::compile(&[spec(&["RS256", "HS256"], &[&rsa])]).unwrap_err();
    assert_eq!(
        err.to_string(),
        "issuer `corp-idp`: shared-secret algorithms (`HS*`) cannot be mixed with public-key ones"
    );
}

#[test]
fn embedded_jwk_jku_x5u_x5c_never_select_a_key() {
    let trusted = TestKey::p256();
    let attacker = TestKey::ed25519();
    let issuers = issuers(&["ES256"], &[&trusted]);
    let forged_p256 = {
        let scalar = [0x33u8; 32];
        let key = p256::ecdsa::SigningKey::from_slice(&scalar).unwrap();
        TestKey::P256(key, json!({}))
    };

    let headers = [
        json!({"alg": "ES256", "jwk": attacker.jwk()}),
        json!({"alg": "ES256", "jku": "https://evil.example.com/jwks.json"}),
        json!({"alg": "ES256", "x5u": "https://evil.example.com/cert.pem"}),
        json!({"alg": "ES256", "x5c": ["MIIBszCCAVmgAwIBAgIUQ"]}),
    ];
    for header in headers {
        let token = token(&forged_p256, &header, &claims());
        // The issuer's only key is used, and the forged signature fails it.
        assert_eq!(
            issuers.verify(&token, NOW),
            Err(TokenError::SignatureInvalid),
            "{header}"
        );
    }

    // A `kid` naming the embedded key finds nothing in the issuer's set.
    let header = json!({"alg": "ES256", "kid": "attacker", "jwk": attacker.jwk()});
    let token = token(&forged_p256, &header, &claims());
    assert_eq!(issuers.verify(&token, NOW), Err(TokenError::KeyUnknown));
}

#[test]
fn crit_is_refused_even_with_a_valid_signature() {
    let key = TestKey::p256();
    let issuers = issuers(&["ES256"], &[&key]);
    for crit in [json!(["exp"]), json!([]), json!("b64")] {
        let header = json!({"alg": "ES256", "kid": key.kid(), "crit": crit, "exp": 1});
        let token = token(&key, &header, &claims());
        assert_eq!(
            issuers.verify(&token, NOW),
            Err(TokenError::CritUnsupported),
            "{crit}"
        );
    }
}

#[test]
fn duplicate_members_are_refused_in_header_and_claims() {
    let key = TestKey::p256();
    let issuers = issuers(&["ES256"], &[&key]);

    let header = br#"{"alg":"ES256","kid":"kid-ec-sign","alg":"none"}"#;
    let token = token_raw(&key, "ES256", header, claims().to_string().as_bytes());
    assert_eq!(
        issuers.verify(&token, NOW),
        Err(TokenError::HeaderDuplicateMember)
    );

    let header = json!({"alg": "ES256", "kid": key.kid()}).to_string();
    let claims = claims().to_string().replacen('{', r#"{"sub":"admin","#, 1);
    let token = token_raw(&key, "ES256", header.as_bytes(), claims.as_bytes());
    assert_eq!(
        issuers.verify(&token, NOW),
        Err(TokenError::ClaimsDuplicateMember)
    );
}

#[test]
fn non_canonical_base64_is_refused() {
    let key = TestKey::hmac();
    let issuers = issuers(&["HS256"], &[&key]);
    let token = token(&key, &header(&key, "HS256"), &claims());
    let signature = token.rsplit('.').next().unwrap().to_owned();

    // A 32-byte MAC encodes to 43 characters whose last carries 2 unused
    // bits, always zero in the canonical form: a lax decoder would read the
    // same MAC with the lowest of them set.
    let canonical_last = signature.bytes().last().unwrap();
    let mut tweaked = signature.clone();
    tweaked.pop();
    tweaked.push(char::from(canonical_last + 1));
    let cases = [
        (with_segment(&token, 2, &tweaked), Segment::Signature),
        (
            with_segment(&token, 2, &format!("{signature}=")),
            Segment::Signature,
        ),
        (
            with_segment(&token, 2, &format!("{signature}\n")),
            Segment::Signature,
        ),
        (format!(" {token}"), Segment::Header),
        (with_segment(&token, 1, "e30="), Segment::Payload),
    ];
    for (token, segment) in cases {
        assert_eq!(
            issuers.verify(&token, NOW),
            Err(TokenError::Encoding(segment)),
            "{token}"
        );
    }
}

#[test]
fn der_encoded_ecdsa_signatures_are_refused() {
    let key = TestKey::p256();
    let issuers = issuers(&["ES256"], &[&key]);
    let TestKey::P256(signing, _) = &key else {
        unreachable!()
    };
    let input = format!(
        "{}.{}",
        encode(header(&key, "ES256").to_string().as_bytes()),
        encode(claims().to_string().as_bytes())
    );
    let signature: p256::ecdsa::Signature = signature::Signer::sign(signing, input.as_bytes());
    let der = signature.to_der();
    let token = format!("{input}.{}", encode(der.as_bytes()));
    assert_eq!(
        issuers.verify(&token, NOW),
        Err(TokenError::SignatureMalformed)
    );
}

/// CVE-2022-21449: r = s = 0 must never verify.
#[test]
fn psychic_signatures_are_refused() {
    let key = TestKey::p256();
    let issuers = issuers(&["ES256"], &[&key]);
    let token = token(&key, &header(&key, "ES256"), &claims());
    let zeros = encode(&[0u8; 64]);
    assert_eq!(
        issuers.verify(&with_segment(&token, 2, &zeros), NOW),
        Err(TokenError::SignatureInvalid)
    );
}

#[test]
fn oversize_tokens_are_refused_before_decoding() {
    let key = TestKey::p256();
    let issuers = issuers(&["ES256"], &[&key]);

    // Not even valid base64: the size cap answers first.
    let huge = "!".repeat(MAX_TOKEN_LEN + 1);
    assert_eq!(
        issuers.verify(&huge, NOW),
        Err(TokenError::TooLarge("token"))
    );

    let header = "!".repeat(MAX_HEADER_LEN + 1);
    assert_eq!(
        issuers.verify(&format!("{header}.e30.AAAA"), NOW),
        Err(TokenError::TooLarge("token header"))
    );

    let signature = "!".repeat(MAX_SIGNATURE_LEN + 1);
    assert_eq!(
        issuers.verify(&format!("e30.e30.{signature}"), NOW),
        Err(TokenError::TooLarge("token signature"))
    );
}

#[test]
fn kid_is_bounded_and_exact() {
    let key = TestKey::p256();
    let issuers = issuers(&["ES256"], &[&key]);

    let long = json!({"alg": "ES256", "kid": "k".repeat(257)});
    assert_eq!(
        issuers.verify(&token(&key, &long, &claims()), NOW),
        Err(TokenError::KidTooLong)
    );

    for kid in ["KID-EC-SIGN", "kid-ec-sign ", "kid-ec", "../kid-ec-sign"] {
        let header = json!({"alg": "ES256", "kid": kid});
        let outcome = issuers.verify(&token(&key, &header, &claims()), NOW);
        assert_eq!(outcome, Err(TokenError::KeyUnknown), "{kid}");
    }

    let header = json!({"alg": "ES256", "kid": 7});
    let outcome = issuers.verify(&token(&key, &header, &claims()), NOW);
    assert_eq!(
        outcome,
        Err(TokenError::HeaderMalformed("`kid` is not a string"))
    );
}

#[test]
fn keys_for_encryption_never_verify() {
    let key = TestKey::p256();
    let mut with_use = key.jwk();
    with_use["use"] = json!("enc");
    let mut with_ops = key.jwk();
    with_ops["key_ops"] = json!(["encrypt", "wrapKey"]);
    let mut with_alg = key.jwk();
    with_alg["alg"] = json!("ECDH-ES");

    let token = token(&key, &header(&key, "ES256"), &claims());
    for jwk in [with_use, with_ops, with_alg] {
        let keys = KeySet::from_jwks(&json!({"keys": [jwk]}), &[]).unwrap();
        assert_eq!(
            verify_signature(&token, &keys, &[Algorithm::Es256]),
            Err(TokenError::KeyNotForSigning),
            "{jwk}"
        );
    }
}

#[test]
fn a_key_pinned_to_another_algorithm_is_refused() {
    let key = TestKey::rsa();
    let mut jwk = key.jwk();
    jwk["alg"] = json!("PS256");
    let keys = KeySet::from_jwks(&json!({"keys": [jwk]}), &[]).unwrap();
    let token = token(&key, &header(&key, "RS256"), &claims());
    assert_eq!(
        verify_signature(&token, &keys, &Algorithm::ALL),
        Err(TokenError::KeyAlgorithmMismatch)
    );
}

#[test]
fn wrong_key_type_for_the_algorithm_is_refused() {
    let key = TestKey::p384();
    let keys = KeySet::from_jwks(&json!({"keys": [key.jwk()]}), &[]).unwrap();
    let token = token(&key, &header(&key, "ES256"), &claims());
    assert_eq!(
        verify_signature(&token, &keys, &Algorithm::ALL),
        Err(TokenError::KeyTypeMismatch)
    );
}

#[test]
fn malformed_headers_are_refused() {
    let key = TestKey::p256();
    let issuers = issuers(&["ES256"], &[&key]);
    let claims = claims().to_string();
    let cases: [(&[u8], TokenError); 5] = [
        (b"not json", TokenError::HeaderMalformed("not JSON")),
        (
            b"[\"ES256\"]",
            TokenError::HeaderMalformed("not a JSON object"),
        ),
        (
            b"{\"kid\":\"kid-ec-sign\"}",
            TokenError::HeaderMalformed("no `alg`"),
        ),
        (
            b"{\"alg\":256}",
            TokenError::HeaderMalformed("`alg` is not a string"),
        ),
        (
            b"{\"alg\":\"ES256\",\"typ\":1}",
            TokenError::HeaderMalformed("`typ` is not a string"),
        ),
    ];
    for (header, expected) in cases {
        let token = token_raw(&key, "ES256", header, claims.as_bytes());
        assert_eq!(issuers.verify(&token, NOW), Err(expected));
    }
}

#[test]
fn payloads_that_are_not_claims_are_refused() {
    let key = TestKey::p256();
    let issuers = issuers(&["ES256"], &[&key]);
    let header = header(&key, "ES256").to_string();
    let cases: [(&[u8], TokenError); 4] = [
        (b"foo", TokenError::ClaimsMalformed("not JSON")),
        (b"", TokenError::ClaimsMalformed("not JSON")),
        (b"[1,2]", TokenError::ClaimsMalformed("not a JSON object")),
        (
            b"{\"iss\":[\"https://idp.example.com\"]}",
            TokenError::ClaimTypeInvalid("iss"),
        ),
    ];
    for (payload, expected) in cases {
        let token = token_raw(&key, "ES256", header.as_bytes(), payload);
        assert_eq!(issuers.verify(&token, NOW), Err(expected));
    }
}

#[test]
fn jwe_and_json_serializations_are_not_compact_jws() {
    let key = TestKey::p256();
    let issuers = issuers(&["ES256"], &[&key]);
    let jwe = "eyJhbGciOiJSU0EtT0FFUCIsImVuYyI6IkEyNTZHQ00ifQ.a.b.c.d";
    let json = r#"{"payload":"e30","signatures":[]}"#;
    for token in [jwe, json] {
        assert_eq!(
            issuers.verify(token, NOW),
            Err(TokenError::Malformed("not three dot-separated segments"))
        );
    }
}

#[test]
fn messages_never_quote_the_token() {
    let key = TestKey::p256();
    let issuers = issuers(&["ES256"], &[&key]);
    let secretish = "sk_live_do_not_log_me";
    let header = json!({"alg": secretish, "kid": secretish});
    let token = token(&key, &header, &json!({"iss": secretish}));
    let err = issuers.verify(&token, NOW).unwrap_err();
    assert_eq!(err, TokenError::IssuerUnknown);
    assert!(!err.to_string().contains(secretish));
    assert!(!format!("{err:?}").contains(secretish));
}

#[test]
fn debug_output_never_shows_a_shared_secret() {
    let key = TestKey::hmac();
    let spec = spec(&["HS256"], &[&key]);
    let secret = key.jwk()["k"].as_str().unwrap().to_owned();
    let issuers = Issuers::compile(std::slice::from_ref(&spec)).unwrap();
    for debug in [format!("{spec:?}"), format!("{issuers:?}")] {
        assert!(!debug.contains(&secret), "{debug}");
    }
    assert!(format!("{issuers:?}").contains("Secret(64 bytes, redacted)"));
}

#[test]
fn a_token_without_kid_is_tried_against_at_most_two_keys() {
    let signer = TestKey::p256();
    let token = token(&signer, &json!({"alg": "ES256"}), &claims());
    let other = |seed: u8, kid: &str| {
        let key = p256::ecdsa::SigningKey::from_slice(&[seed; 32]).unwrap();
        let point = key.verifying_key().to_sec1_point(false);
        let bytes = point.as_bytes();
        json!({"kty": "EC", "crv": "P-256", "kid": kid,
               "x": encode(&bytes[1..33]), "y": encode(&bytes[33..65])})
    };

    let two = KeySet::from_jwks(&json!({"keys": [other(1, "a"), signer.jwk()]}), &[]).unwrap();
    let verified = verify_signature(&token, &two, &[Algorithm::Es256]);
    assert_eq!(verified.map(|_| ()), Ok(()));

    let three = json!({"keys": [other(1, "a"), other(2, "b"), signer.jwk()]});
    let three = KeySet::from_jwks(&three, &[]).unwrap();
    assert_eq!(
        verify_signature(&token, &three, &[Algorithm::Es256]),
        Err(TokenError::KeyUnknown)
    );
}
