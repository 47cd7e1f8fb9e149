//! The signature and MAC algorithms this verifier knows (JWS: RFC 7518
//! section 3 and RFC 8037; COSE: RFC 9053 and RFC 8812), and the key family
//! each one needs.

use std::fmt;

/// A JWS `alg` value this verifier can check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Algorithm {
    /// RSASSA-PKCS1-v1_5 with SHA-256.
    Rs256,
    /// RSASSA-PKCS1-v1_5 with SHA-384.
    Rs384,
    /// RSASSA-PKCS1-v1_5 with SHA-512.
    Rs512,
    /// RSASSA-PSS with SHA-256 and MGF1, salt as long as the hash.
    Ps256,
    /// RSASSA-PSS with SHA-384 and MGF1, salt as long as the hash.
    Ps384,
    /// RSASSA-PSS with SHA-512 and MGF1, salt as long as the hash.
    Ps512,
    /// ECDSA on P-256 with SHA-256.
    Es256,
    /// ECDSA on P-384 with SHA-384.
    Es384,
    /// EdDSA; only the Ed25519 curve is accepted.
    EdDsa,
    /// HMAC with SHA-256.
    Hs256,
    /// HMAC with SHA-384.
    Hs384,
    /// HMAC with SHA-512.
    Hs512,
    /// HMAC with SHA-256, tag truncated to 64 bits: COSE only (`HMAC 256/64`,
    /// RFC 9053 section 3.1), never accepted in a JWS.
    Hs256Trunc64,
}

/// The kind of key an algorithm verifies with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyFamily {
    /// `kty: RSA`.
    Rsa,
    /// `kty: EC` with `crv: P-256`.
    P256,
    /// `kty: EC` with `crv: P-384`.
    P384,
    /// `kty: OKP` with `crv: Ed25519`.
    Ed25519,
    /// `kty: oct`, a shared secret.
    Secret,
}

impl Algorithm {
    /// Every algorithm, in the order the docs list them.
    pub const ALL: [Self; 13] = [
        Self::Rs256,
        Self::Rs384,
        Self::Rs512,
        Self::Ps256,
        Self::Ps384,
        Self::Ps512,
        Self::Es256,
        Self::Es384,
        Self::EdDsa,
        Self::Hs256,
        Self::Hs384,
        Self::Hs512,
        Self::Hs256Trunc64,
    ];

    /// Looks up an `alg` value; names are case-sensitive.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|alg| alg.name() == name)
    }

    /// The registered `alg` value.
    pub fn name(self) -> &'static str {
        match self {
            Self::Rs256 => "RS256",
            Self::Rs384 => "RS384",
            Self::Rs512 => "RS512",
            Self::Ps256 => "PS256",
            Self::Ps384 => "PS384",
            Self::Ps512 => "PS512",
            Self::Es256 => "ES256",
            Self::Es384 => "ES384",
            Self::EdDsa => "EdDSA",
            Self::Hs256 => "HS256",
            Self::Hs384 => "HS384",
            Self::Hs512 => "HS512",
            Self::Hs256Trunc64 => "HMAC 256/64",
        }
    }

    /// The key family the algorithm verifies with.
    pub fn family(self) -> KeyFamily {
        match self {
            Self::Rs256 | Self::Rs384 | Self::Rs512 => KeyFamily::Rsa,
            Self::Ps256 | Self::Ps384 | Self::Ps512 => KeyFamily::Rsa,
            Self::Es256 => KeyFamily::P256,
            Self::Es384 => KeyFamily::P384,
            Self::EdDsa => KeyFamily::Ed25519,
            Self::Hs256 | Self::Hs384 | Self::Hs512 | Self::Hs256Trunc64 => KeyFamily::Secret,
        }
    }

    /// The exact signature length in bytes, where the algorithm fixes it.
    ///
    /// RSA signatures are as long as the modulus, so they return `None`.
    pub fn signature_len(self) -> Option<usize> {
        match self {
            Self::Es256 | Self::EdDsa | Self::Hs512 => Some(64),
            Self::Es384 => Some(96),
            Self::Hs256 => Some(32),
            Self::Hs384 => Some(48),
            Self::Hs256Trunc64 => Some(8),
            _ => None,
        }
    }

    /// Whether JWS (RFC 7518) defines the algorithm.
    pub fn is_jws(self) -> bool {
        self != Self::Hs256Trunc64
    }

    /// The COSE algorithm identifier (RFC 9053, RFC 8812).
    pub fn cose_id(self) -> i64 {
        match self {
            Self::Rs256 => -257,
            Self::Rs384 => -258,
            Self::Rs512 => -259,
            Self::Ps256 => -37,
            Self::Ps384 => -38,
            Self::Ps512 => -39,
            Self::Es256 => -7,
            Self::Es384 => -35,
            Self::EdDsa => -8,
            Self::Hs256 => 5,
            Self::Hs384 => 6,
            Self::Hs512 => 7,
            Self::Hs256Trunc64 => 4,
        }
    }

    /// Looks up a COSE algorithm identifier.
    pub fn from_cose_id(id: i64) -> Option<Self> {
        Self::ALL.into_iter().find(|alg| alg.cose_id() == id)
    }

    /// The smallest HMAC key an `HS*` algorithm accepts: the hash output size
    /// (RFC 7518 section 3.2). `None` for the other algorithms.
    pub fn min_secret_len(self) -> Option<usize> {
        match self {
            Self::Hs256 | Self::Hs256Trunc64 => Some(32),
            Self::Hs384 => Some(48),
            Self::Hs512 => Some(64),
            _ => None,
        }
    }
}

impl fmt::Display for Algorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_are_case_sensitive() {
        for alg in Algorithm::ALL {
            assert_eq!(Algorithm::from_name(alg.name()), Some(alg));
        }
        assert_eq!(Algorithm::from_name("rs256"), None);
        assert_eq!(Algorithm::from_name("none"), None);
        assert_eq!(Algorithm::from_name("ES512"), None);
        for alg in Algorithm::ALL {
            assert_eq!(Algorithm::from_cose_id(alg.cose_id()), Some(alg));
        }
    }
}
