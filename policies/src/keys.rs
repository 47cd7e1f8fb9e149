//! Signing keys for demos and tests, with their public JWK.

use getrandom::SysRng;
use p256::ecdsa::signature::Signer;
use rsa::signature::SignatureEncoding;
use rsa::traits::PublicKeyParts;
use serde_json::{Value, json};
use sha2::Sha256;
use std::fmt;

/// A private signing key and its `kid`.
pub struct SigningKey {
    kid: String,
    key: Kind,
}

enum Kind {
    Rs256(rsa::pkcs1v15::SigningKey<Sha256>),
    Es256(p256::ecdsa::SigningKey),
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigningKey")
            .field("kid", &self.kid)
            .field("alg", &self.alg())
            .finish()
    }
}

impl SigningKey {
    /// Generates a key for `alg` (`RS256` with 2048 bits, or `ES256`).
    ///
    /// # Errors
    ///
    /// Returns an error for other algorithms or a failed random source.
    pub fn generate(alg: &str, kid: &str) -> Result<Self, crate::Error> {
        let key = match alg {
            "RS256" => {
                let private = rsa::PrivateKey::new(&mut SysRng, 2048)
                    .map_err(|e| crate::Error(format!("generating an RSA key: {e}")))?;
                Kind::Rs256(rsa::pkcs1v15::SigningKey::new(private))
            }
            "ES256" => Kind::Es256(
                <p256::ecdsa::SigningKey as rsa::Generate>::try_generate_from_rng(&mut SysRng)
                    .map_err(|e| crate::Error(format!("generating a P-256 key: {e}")))?,
            ),
            other => return Err(crate::Error(format!("cannot generate keys for `{other}`"))),
        };
        Ok(Self {
            kid: kid.to_owned(),
            key,
        })
    }

    /// The key id.
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// The JWS algorithm this key signs with.
    pub fn alg(&self) -> &'static str {
        match self.key {
            Kind::Rs256(_) => "RS256",
            Kind::Es256(_) => "ES256",
        }
    }

    /// Signs `message`: PKCS #1 v1.5 for RS256, fixed-width `r || s` for
    /// ES256.
    pub fn sign(&self, message: &[u8]) -> Vec<u8> {
        match &self.key {
            Kind::Rs256(key) => key.sign(message).to_vec(),
            Kind::Es256(key) => {
                let signature: p256::ecdsa::Signature = key.sign(message);
                signature.to_bytes().to_vec()
            }
        }
    }

    /// The public key as a JWK with `kid`, `alg` and `use: sig`.
    pub fn public_jwk(&self) -> Value {
        match &self.key {
            Kind::Rs256(key) => {
                let public = key.as_ref().to_public_key();
                json!({
                    "kty": "RSA", "kid": self.kid, "alg": "RS256", "use": "sig",
                    "n": crate::mint::base64url(&public.n_bytes()),
                    "e": crate::mint::base64url(&public.e_bytes()),
                })
            }
            Kind::Es256(key) => {
                let point = key.verifying_key().to_sec1_point(false);
                let bytes = point.as_bytes();
                let (x, y) = bytes.get(1..).unwrap_or_default().split_at(32);
                json!({
                    "kty": "EC", "crv": "P-256", "kid": self.kid, "alg": "ES256", "use": "sig",
                    "x": crate::mint::base64url(x),
                    "y": crate::mint::base64url(y),
                })
            }
        }
    }

    /// A JWKS holding only this key's public half.
    pub fn public_jwks(&self) -> Value {
        json!({ "keys": [self.public_jwk()] })
    }
}
