//! JSON Web Key Sets (RFC 7517), validated completely before a filter uses
//! them, and the signature checks made with their keys.
//!
//! A set is refused whole when any key in it is malformed or weak: RSA
//! moduli under 2048 bits (or over 4096, which would make every request pay
//! for a slow verification), moduli with the ROCA fingerprint, public
//! exponents the RSA crate refuses, points off their curve, small-order
//! Ed25519 keys, HMAC secrets shorter than their hash, private key material
//! in a public set, members of another key type, `use` and `key_ops` that
//! disagree, repeated `kid`s, and shared secrets beside public keys. Keys meant for encryption (`use: enc`, `key_ops`
//! without `verify`, or an encryption `alg`) are kept, so that a provider's
//! full set loads, but never verify anything.

use super::algorithm::{Algorithm, KeyFamily};
use super::base64url;
use super::error::TokenError;
use super::roca;
use hmac::{KeyInit, Mac};
use rsa::traits::PublicKeyParts;
use rsa::{BoxedUint, Pkcs1v15Sign, Pss};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256, Sha384, Sha512};
use std::fmt;

/// The most keys one set may hold; it bounds the keys a `kid`-less token can
/// be tried against.
pub const MAX_KEYS: usize = 32;

/// The most keys a token without a `kid` is tried against: two covers a key
/// rotation, and the bound keeps a forged token from costing one signature
/// check per key of a large set. Beyond it, a token must name its key.
pub const MAX_KIDLESS_CANDIDATES: usize = 2;

/// The longest `kid`, in bytes, in a key set or a token header.
pub const MAX_KID_LEN: usize = 256;

/// The RSA modulus sizes accepted, in bits.
const RSA_MIN_BITS: usize = 2048;
const RSA_MAX_BITS: usize = 4096;

/// Members that only a private key carries.
const PRIVATE_MEMBERS: [&str; 7] = ["d", "p", "q", "dp", "dq", "qi", "oth"];

/// Key material members, by the key types they belong to.
const MATERIAL_MEMBERS: [(&str, &[&str]); 6] = [
    ("n", &["RSA"]),
    ("e", &["RSA"]),
    ("crv", &["EC", "OKP"]),
    ("x", &["EC", "OKP"]),
    ("y", &["EC"]),
    ("k", &["oct"]),
];

/// `alg` values of JWE key management and content encryption: a key that
/// names one is kept but never verifies.
const ENCRYPTION_ALGORITHMS: [&str; 23] = [
    "RSA1_5",
    "RSA-OAEP",
    "RSA-OAEP-256",
    "RSA-OAEP-384",
    "RSA-OAEP-512",
    "A128KW",
    "A192KW",
    "A256KW",
    "dir",
    "ECDH-ES",
    "ECDH-ES+A128KW",
    "ECDH-ES+A192KW",
    "ECDH-ES+A256KW",
    "A128GCMKW",
    "A192GCMKW",
    "A256GCMKW",
    "PBES2-HS256+A128KW",
    "PBES2-HS384+A192KW",
    "PBES2-HS512+A256KW",
    "A128CBC-HS256",
    "A192CBC-HS384",
    "A256CBC-HS512",
    "A256GCM",
];

/// A validated key set.
#[derive(Debug, Default)]
pub struct KeySet {
    keys: Vec<Jwk>,
}

/// One validated key.
#[derive(Debug)]
pub struct Jwk {
    kid: Option<String>,
    alg: KeyAlgorithm,
    for_signing: bool,
    material: Material,
}

/// What a key's `alg` member pins it to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum KeyAlgorithm {
    /// No `alg`: any algorithm of the key's family.
    Any,
    /// One signature algorithm.
    Signature(Algorithm),
    /// An encryption algorithm: the key never verifies.
    Encryption,
}

/// The public half of a key, or an HMAC secret.
enum Material {
    Rsa(Box<rsa::PublicKey>),
    P256(p256::ecdsa::VerifyingKey),
    P384(p384::ecdsa::VerifyingKey),
    Ed25519(ed25519_dalek::VerifyingKey),
    Secret(Secret),
}

/// HMAC key bytes; never printed.
pub(crate) struct Secret(Vec<u8>);

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Secret({} bytes, redacted)", self.0.len())
    }
}

impl Secret {
    pub(crate) fn bytes(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Debug for Material {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Rsa(key) => write!(f, "Rsa({} bits)", key.size() * 8),
            Self::P256(_) => f.write_str("P256"),
            Self::P384(_) => f.write_str("P384"),
            Self::Ed25519(_) => f.write_str("Ed25519"),
            Self::Secret(secret) => secret.fmt(f),
        }
    }
}

impl Material {
    fn family(&self) -> KeyFamily {
        match self {
            Self::Rsa(_) => KeyFamily::Rsa,
            Self::P256(_) => KeyFamily::P256,
            Self::P384(_) => KeyFamily::P384,
            Self::Ed25519(_) => KeyFamily::Ed25519,
            Self::Secret(_) => KeyFamily::Secret,
        }
    }
}

/// Why a key set cannot be used; the message names the key (by `kid`, or by
/// position when it has none) and the problem.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeySetError(String);

impl fmt::Display for KeySetError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for KeySetError {}

impl KeySetError {
    fn set(problem: impl fmt::Display) -> Self {
        Self(problem.to_string())
    }

    fn key(label: &str, problem: impl fmt::Display) -> Self {
        Self(format!("key {label}: {problem}"))
    }
}

impl KeySet {
    /// Validates an inline JWKS (`{"keys": [...]}`).
    ///
    /// `secret_algorithms` are the `HS*` algorithms the keys may serve: an
    /// HMAC key without an `alg` member must be long enough for each of them.
    ///
    /// # Errors
    ///
    /// Returns the first problem found, naming the key.
    pub fn from_jwks(jwks: &Value, secret_algorithms: &[Algorithm]) -> Result<Self, KeySetError> {
        let entries = jwks
            .as_object()
            .and_then(|set| set.get("keys"))
            .and_then(Value::as_array)
            .ok_or_else(|| KeySetError::set("key set is not an object with a `keys` array"))?;

        if entries.is_empty() {
            return Err(KeySetError::set("key set has no keys"));
        }
        if entries.len() > MAX_KEYS {
            return Err(KeySetError::set(format!(
                "key set has {} keys, over the maximum of {MAX_KEYS}",
                entries.len()
            )));
        }

        let mut keys: Vec<Jwk> = Vec::with_capacity(entries.len());
        for (index, entry) in entries.iter().enumerate() {
            let key = Jwk::from_value(entry, index, secret_algorithms)?;
            if let Some(kid) = &key.kid
                && keys.iter().any(|other| other.kid.as_ref() == Some(kid))
            {
                return Err(KeySetError::set(format!("duplicate `kid` `{kid}`")));
            }
            keys.push(key);
        }

        let secrets = keys
            .iter()
            .filter(|k| k.material.family() == KeyFamily::Secret)
            .count();
        if secrets != 0 && secrets != keys.len() {
            return Err(KeySetError::set(
                "key set mixes shared secrets with public keys",
            ));
        }
        Ok(Self { keys })
    }

    /// How many keys the set holds.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Whether the set holds no key (a fetched set not yet installed).
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// Whether some key of the set could verify `alg`.
    pub fn can_verify(&self, alg: Algorithm) -> bool {
        self.keys.iter().any(|key| key.check_usable(alg).is_ok())
    }

    /// The keys a token signed with `alg` and carrying `kid` may be checked
    /// against.
    ///
    /// A `kid` is an exact lookup key. Without one, a set of one key offers
    /// that key, and a larger set offers the keys that fit `alg`, when there
    /// are at most [`MAX_KIDLESS_CANDIDATES`] of them.
    ///
    /// # Errors
    ///
    /// [`TokenError::KeyUnknown`] when no key is found, or the reason the
    /// single selected key cannot serve `alg`.
    pub(crate) fn candidates(
        &self,
        kid: Option<&str>,
        alg: Algorithm,
    ) -> Result<Vec<&Jwk>, TokenError> {
        if let Some(kid) = kid {
            let key = self
                .keys
                .iter()
                .find(|key| key.kid.as_deref() == Some(kid))
                .ok_or(TokenError::KeyUnknown)?;
            key.check_usable(alg)?;
            return Ok(vec![key]);
        }

        if let [only] = self.keys.as_slice() {
            only.check_usable(alg)?;
            return Ok(vec![only]);
        }

        let fitting: Vec<&Jwk> = self
            .keys
            .iter()
            .filter(|key| key.check_usable(alg).is_ok())
            .collect();
        if fitting.is_empty() || fitting.len() > MAX_KIDLESS_CANDIDATES {
            return Err(TokenError::KeyUnknown);
        }
        Ok(fitting)
    }

    /// Verifies `signature` over `message` with the keys a token may be
    /// checked against (an exact `kid` match; without a `kid`, the only key,
    /// or the keys that fit `alg` when there are at most
    /// [`MAX_KIDLESS_CANDIDATES`]), returning the `kid` of the key that
    /// verified it.
    ///
    /// # Errors
    ///
    /// The key selection error, [`TokenError::SignatureMalformed`] or
    /// [`TokenError::SignatureInvalid`].
    pub fn verify(
        &self,
        kid: Option<&str>,
        alg: Algorithm,
        message: &[u8],
        signature: &[u8],
    ) -> Result<Option<&str>, TokenError> {
        let mut outcome = Err(TokenError::KeyUnknown);
        for key in self.candidates(kid, alg)? {
            outcome = key.verify(alg, message, signature);
            if outcome.is_ok() {
                return Ok(key.kid.as_deref());
            }
        }
        outcome.map(|()| None)
    }
}

impl Jwk {
    /// Checks that this key may verify `alg`, in the guard order: key type,
    /// intended use, then the algorithm the key is pinned to.
    fn check_usable(&self, alg: Algorithm) -> Result<(), TokenError> {
        if self.material.family() != alg.family() {
            return Err(TokenError::KeyTypeMismatch);
        }

        if !self.for_signing || self.alg == KeyAlgorithm::Encryption {
            return Err(TokenError::KeyNotForSigning);
        }

        match self.alg {
            KeyAlgorithm::Signature(pinned) if pinned != alg => {
                Err(TokenError::KeyAlgorithmMismatch)
            }
            _ => Ok(()),
        }
    }

    /// Verifies one signature with this key.
    pub(crate) fn verify(
        &self,
        alg: Algorithm,
        message: &[u8],
        signature: &[u8],
    ) -> Result<(), TokenError> {
        if let Some(len) = alg.signature_len()
            && signature.len() != len
        {
            return Err(TokenError::SignatureMalformed);
        }

        match &self.material {
            Material::Rsa(key) => verify_rsa(key, alg, message, signature),
            Material::P256(key) => verify_p256(key, message, signature),
            Material::P384(key) => verify_p384(key, message, signature),
            Material::Ed25519(key) => verify_ed25519(key, message, signature),
            Material::Secret(secret) => verify_hmac(secret.bytes(), alg, message, signature),
        }
    }

    /// Validates one JWK.
    fn from_value(
        value: &Value,
        index: usize,
        secret_algorithms: &[Algorithm],
    ) -> Result<Self, KeySetError> {
        let position = format!("at index {index}");
        let object = value
            .as_object()
            .ok_or_else(|| KeySetError::key(&position, "is not an object"))?;

        let kid = parse_kid(object).map_err(|p| KeySetError::key(&position, p))?;
        let label = kid.as_ref().map_or(position, |kid| format!("`{kid}`"));
        let fail = |problem: String| KeySetError::key(&label, problem);

        let kty = member_str(object, "kty")?.ok_or_else(|| fail("has no `kty`".into()))?;
        check_members(object, kty).map_err(fail)?;
        let for_signing = parse_purpose(object).map_err(fail)?;
        let alg = parse_key_algorithm(object).map_err(fail)?;
        let material = parse_material(object, kty).map_err(fail)?;
        check_algorithm_fits(alg, &material, secret_algorithms).map_err(fail)?;

        Ok(Self {
            kid,
            alg,
            for_signing,
            material,
        })
    }
}

/// A string member, `None` when absent.
fn member_str<'a>(
    object: &'a Map<String, Value>,
    name: &str,
) -> Result<Option<&'a str>, KeySetError> {
    match object.get(name) {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(KeySetError::set(format!("member `{name}` is not a string"))),
    }
}

fn parse_kid(object: &Map<String, Value>) -> Result<Option<String>, String> {
    match object.get("kid") {
        None => Ok(None),
        Some(Value::String(kid)) if kid.is_empty() => Err("has an empty `kid`".into()),
        Some(Value::String(kid)) if kid.len() > MAX_KID_LEN => Err(format!(
            "`kid` of {} bytes is over the {MAX_KID_LEN}-byte bound",
            kid.len()
        )),
        Some(Value::String(kid)) => Ok(Some(kid.clone())),
        Some(_) => Err("`kid` is not a string".into()),
    }
}

/// Refuses private members and members of another key type.
fn check_members(object: &Map<String, Value>, kty: &str) -> Result<(), String> {
    if !matches!(kty, "RSA" | "EC" | "OKP" | "oct") {
        return Err(format!("unsupported `kty` `{kty}`"));
    }

    if kty != "oct"
        && let Some(member) = PRIVATE_MEMBERS.iter().find(|m| object.contains_key(**m))
    {
        return Err(format!("carries private key member `{member}`"));
    }

    for (member, owners) in MATERIAL_MEMBERS {
        if object.contains_key(member) && !owners.contains(&kty) {
            return Err(format!(
                "member `{member}` does not belong to a `{kty}` key"
            ));
        }
    }
    Ok(())
}

/// Reads `use` and `key_ops`; returns whether the key may verify.
fn parse_purpose(object: &Map<String, Value>) -> Result<bool, String> {
    let usage = match object.get("use") {
        None => None,
        Some(Value::String(u)) if u == "sig" || u == "enc" => Some(u.as_str()),
        Some(Value::String(u)) => return Err(format!("unknown `use` `{u}`")),
        Some(_) => return Err("`use` is not a string".into()),
    };

    let ops = match object.get("key_ops") {
        None => None,
        Some(value) => Some(parse_key_ops(value)?),
    };

    match (usage, ops) {
        (None, None) => Ok(true),
        (Some(usage), None) => Ok(usage == "sig"),
        (None, Some(ops)) => Ok(ops.contains(&"verify")),
        (Some(usage), Some(ops)) => {
            let signing = ops.iter().all(|op| matches!(*op, "sign" | "verify"));
            let encrypting = ops.iter().all(|op| !matches!(*op, "sign" | "verify"));
            if (usage == "sig" && !signing) || (usage == "enc" && !encrypting) {
                return Err(format!("`use` `{usage}` disagrees with `key_ops`"));
            }
            Ok(usage == "sig" && ops.contains(&"verify"))
        }
    }
}

fn parse_key_ops(value: &Value) -> Result<Vec<&str>, String> {
    let list = value.as_array().ok_or("`key_ops` is not an array")?;
    let mut ops = Vec::with_capacity(list.len());
    for op in list {
        let op = op.as_str().ok_or("`key_ops` holds a non-string")?;
        if ops.contains(&op) {
            return Err(format!("`key_ops` repeats `{op}`"));
        }
        ops.push(op);
    }
    Ok(ops)
}

fn parse_key_algorithm(object: &Map<String, Value>) -> Result<KeyAlgorithm, String> {
    let name = match object.get("alg") {
        None => return Ok(KeyAlgorithm::Any),
        Some(Value::String(name)) => name.as_str(),
        Some(_) => return Err("`alg` is not a string".into()),
    };

    if let Some(alg) = Algorithm::from_name(name) {
        return Ok(KeyAlgorithm::Signature(alg));
    }
    if ENCRYPTION_ALGORITHMS.contains(&name) {
        return Ok(KeyAlgorithm::Encryption);
    }
    Err(format!("unsupported `alg` `{name}`"))
}

fn parse_material(object: &Map<String, Value>, kty: &str) -> Result<Material, String> {
    match kty {
        "RSA" => parse_rsa(object),
        "EC" => parse_ec(object),
        "OKP" => parse_okp(object),
        _ => parse_secret(object),
    }
}

/// A required base64url member, decoded.
fn member_bytes(object: &Map<String, Value>, name: &str) -> Result<Vec<u8>, String> {
    let text = match object.get(name) {
        Some(Value::String(text)) => text,
        Some(_) => return Err(format!("`{name}` is not a string")),
        None => return Err(format!("has no `{name}`")),
    };
    base64url::decode(text.as_bytes()).map_err(|e| format!("`{name}`: {e}"))
}

fn parse_rsa(object: &Map<String, Value>) -> Result<Material, String> {
    let n = member_bytes(object, "n")?;
    let e = member_bytes(object, "e")?;
    if n.first() == Some(&0) || e.first() == Some(&0) {
        return Err("RSA `n` or `e` has a leading zero byte".into());
    }

    let bits = bit_len(&n);
    if bits < RSA_MIN_BITS {
        return Err(format!(
            "RSA modulus of {bits} bits is under the {RSA_MIN_BITS}-bit minimum"
        ));
    }
    if bits > RSA_MAX_BITS {
        return Err(format!(
            "RSA modulus of {bits} bits is over the {RSA_MAX_BITS}-bit maximum"
        ));
    }
    if roca::is_vulnerable(&n) {
        return Err("RSA modulus has the ROCA fingerprint (CVE-2017-15361)".into());
    }

    let key = rsa::PublicKey::new_with_size_limits(
        BoxedUint::from_be_slice_vartime(&n),
        BoxedUint::from_be_slice_vartime(&e),
        RSA_MIN_BITS..=RSA_MAX_BITS,
    )
    .map_err(|_| "RSA public key is invalid (modulus or exponent refused)".to_string())?;
    Ok(Material::Rsa(Box::new(key)))
}

/// The bit length of a big-endian unsigned integer without leading zeros.
fn bit_len(bytes: &[u8]) -> usize {
    match bytes.first() {
        None => 0,
        Some(top) => bytes.len() * 8 - top.leading_zeros() as usize,
    }
}

fn parse_ec(object: &Map<String, Value>) -> Result<Material, String> {
    let crv = match object.get("crv") {
        Some(Value::String(crv)) => crv.as_str(),
        _ => return Err("has no string `crv`".into()),
    };
    let size = match crv {
        "P-256" => 32,
        "P-384" => 48,
        _ => return Err(format!("unsupported curve `{crv}`")),
    };

    let x = member_bytes(object, "x")?;
    let y = member_bytes(object, "y")?;
    if x.len() != size || y.len() != size {
        return Err(format!("`{crv}` coordinates must be {size} bytes each"));
    }

    let mut point = Vec::with_capacity(1 + 2 * size);
    point.push(0x04);
    point.extend_from_slice(&x);
    point.extend_from_slice(&y);
    let off_curve = || format!("point is not on `{crv}`");
    if size == 32 {
        let key = p256::ecdsa::VerifyingKey::from_sec1_bytes(&point).map_err(|_| off_curve())?;
        Ok(Material::P256(key))
    } else {
        let key = p384::ecdsa::VerifyingKey::from_sec1_bytes(&point).map_err(|_| off_curve())?;
        Ok(Material::P384(key))
    }
}

fn parse_okp(object: &Map<String, Value>) -> Result<Material, String> {
    match object.get("crv") {
        Some(Value::String(crv)) if crv == "Ed25519" => {}
        Some(Value::String(crv)) => return Err(format!("unsupported curve `{crv}`")),
        _ => return Err("has no string `crv`".into()),
    }

    let x = member_bytes(object, "x")?;
    let bytes: [u8; 32] = x.try_into().map_err(|_| "`Ed25519` key must be 32 bytes")?;
    let key = ed25519_dalek::VerifyingKey::from_bytes(&bytes)
        .map_err(|_| "`Ed25519` key is not a valid point")?;
    if key.is_weak() {
        return Err("`Ed25519` key is of small order".into());
    }
    Ok(Material::Ed25519(key))
}

fn parse_secret(object: &Map<String, Value>) -> Result<Material, String> {
    let k = member_bytes(object, "k")?;
    if k.is_empty() {
        return Err("HMAC key is empty".into());
    }
    Ok(Material::Secret(Secret(k)))
}

/// Checks a key's `alg` against its material, and an HMAC key's length
/// against every algorithm it may serve.
fn check_algorithm_fits(
    alg: KeyAlgorithm,
    material: &Material,
    secret_algorithms: &[Algorithm],
) -> Result<(), String> {
    if let KeyAlgorithm::Signature(alg) = alg
        && alg.family() != material.family()
    {
        return Err(format!(
            "`alg` `{alg}` does not fit the key's type or curve"
        ));
    }

    let Material::Secret(secret) = material else {
        return Ok(());
    };
    let served: Vec<Algorithm> = match alg {
        KeyAlgorithm::Signature(alg) => vec![alg],
        KeyAlgorithm::Any => secret_algorithms.to_vec(),
        KeyAlgorithm::Encryption => Vec::new(),
    };
    for alg in served {
        let min = alg.min_secret_len().unwrap_or(0);
        let len = secret.bytes().len();
        if len < min {
            return Err(format!(
                "HMAC key of {len} bytes is under the {min}-byte minimum for `{alg}`"
            ));
        }
    }
    Ok(())
}

fn verify_rsa(
    key: &rsa::PublicKey,
    alg: Algorithm,
    message: &[u8],
    signature: &[u8],
) -> Result<(), TokenError> {
    if signature.len() != key.size() {
        return Err(TokenError::SignatureMalformed);
    }

    let outcome = match alg {
        Algorithm::Rs256 => key.verify(
            Pkcs1v15Sign::new::<Sha256>(),
            &Sha256::digest(message),
            signature,
        ),
        Algorithm::Rs384 => key.verify(
            Pkcs1v15Sign::new::<Sha384>(),
            &Sha384::digest(message),
            signature,
        ),
        Algorithm::Rs512 => key.verify(
            Pkcs1v15Sign::new::<Sha512>(),
            &Sha512::digest(message),
            signature,
        ),
        Algorithm::Ps256 => key.verify(Pss::<Sha256>::new(), &Sha256::digest(message), signature),
        Algorithm::Ps384 => key.verify(Pss::<Sha384>::new(), &Sha384::digest(message), signature),
        Algorithm::Ps512 => key.verify(Pss::<Sha512>::new(), &Sha512::digest(message), signature),
        _ => return Err(TokenError::KeyTypeMismatch),
    };
    outcome.map_err(|_| TokenError::SignatureInvalid)
}

fn verify_p256(
    key: &p256::ecdsa::VerifyingKey,
    message: &[u8],
    signature: &[u8],
) -> Result<(), TokenError> {
    use p256::ecdsa::signature::Verifier;

    let signature =
        p256::ecdsa::Signature::from_slice(signature).map_err(|_| TokenError::SignatureInvalid)?;
    key.verify(message, &signature)
        .map_err(|_| TokenError::SignatureInvalid)
}

fn verify_p384(
    key: &p384::ecdsa::VerifyingKey,
    message: &[u8],
    signature: &[u8],
) -> Result<(), TokenError> {
    use p384::ecdsa::signature::Verifier;

    let signature =
        p384::ecdsa::Signature::from_slice(signature).map_err(|_| TokenError::SignatureInvalid)?;
    key.verify(message, &signature)
        .map_err(|_| TokenError::SignatureInvalid)
}

fn verify_ed25519(
    key: &ed25519_dalek::VerifyingKey,
    message: &[u8],
    signature: &[u8],
) -> Result<(), TokenError> {
    let bytes: &[u8; 64] = signature
        .try_into()
        .map_err(|_| TokenError::SignatureMalformed)?;
    let signature = ed25519_dalek::Signature::from_bytes(bytes);
    key.verify_strict(message, &signature)
        .map_err(|_| TokenError::SignatureInvalid)
}

/// Checks an HMAC in constant time.
pub(crate) fn verify_hmac(
    key: &[u8],
    alg: Algorithm,
    message: &[u8],
    tag: &[u8],
) -> Result<(), TokenError> {
    let outcome = match alg {
        Algorithm::Hs256 => mac::<hmac::Hmac<Sha256>>(key, message, tag),
        Algorithm::Hs384 => mac::<hmac::Hmac<Sha384>>(key, message, tag),
        Algorithm::Hs512 => mac::<hmac::Hmac<Sha512>>(key, message, tag),
        Algorithm::Hs256Trunc64 => truncated_mac::<hmac::Hmac<Sha256>>(key, message, tag),
        _ => return Err(TokenError::KeyTypeMismatch),
    };
    outcome.map_err(|_| TokenError::SignatureInvalid)
}

fn mac<M: Mac + KeyInit>(key: &[u8], message: &[u8], tag: &[u8]) -> Result<(), ()> {
    let mut mac = <M as KeyInit>::new_from_slice(key).map_err(|_| ())?;
    mac.update(message);
    mac.verify_slice(tag).map_err(|_| ())
}

/// Checks a tag that keeps only the leftmost bytes of the MAC; the caller has
/// already fixed the tag's length.
fn truncated_mac<M: Mac + KeyInit>(key: &[u8], message: &[u8], tag: &[u8]) -> Result<(), ()> {
    let mut mac = <M as KeyInit>::new_from_slice(key).map_err(|_| ())?;
    mac.update(message);
    mac.verify_truncated_left(tag).map_err(|_| ())
}
