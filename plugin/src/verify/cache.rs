//! A per-VM cache of verified tokens, bounded in bytes and honouring expiry.
//!
//! Signature checks dominate the cost of a request: an RSA or ECDSA
//! verification takes tens to hundreds of microseconds in Wasm, while a
//! client typically presents the same token many times until it expires. The
//! cache maps a token to its [`VerifiedToken`] so that a repeated token costs
//! one hash and one comparison.
//!
//! - Entries are keyed by a fast non-cryptographic hash (foldhash) of the
//!   token; a hit compares the full stored token with the presented one, so a
//!   hash collision is only ever a miss, never a wrong identity.
//! - Only tokens that passed every guard step enter; failures are not cached,
//!   so an attacker cannot fill the cache without valid tokens, and the work
//!   an invalid token costs is bounded by the size caps of [`super::jwt`].
//! - An entry is served only until the token's `exp` plus the issuer's clock
//!   skew (the instant [`Issuers::verify`] would start refusing it), and at
//!   most [`MAX_ENTRY_SECS`] after it was stored, so a token without `exp`
//!   is re-verified regularly.
//! - Total size (tokens, claims kept, and a fixed per-entry overhead) stays
//!   under the capacity given at construction; the oldest entries are evicted
//!   first.
//! - CWTs share the cache through [`Issuers::verify_cwt_cached`] (raw CBOR)
//!   and [`Issuers::verify_cwt_text_cached`] (base64url, as a bearer token
//!   carries it); an entry records which format it was verified as and
//!   answers only for it.
//! - The cache remembers which compiled [`Issuers`] filled it and empties
//!   itself when used with another one, so a policy reload can never serve a
//!   token verified under the old keys.

use super::cwt::MAX_CWT_LEN;
use super::error::TokenError;
use super::issuer::Issuers;
use super::jwt::{MAX_TOKEN_LEN, VerifiedToken};
use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::hash::{BuildHasher, BuildHasherDefault, Hasher};

/// The longest an entry is served after it was stored, in seconds.
pub const MAX_ENTRY_SECS: u64 = 300;

/// The bytes charged per entry on top of its strings: the map slot, the
/// eviction queue slot and the entry's own fields.
pub const ENTRY_OVERHEAD: usize = 160;

/// The default capacity, in bytes.
pub const DEFAULT_CAPACITY: usize = 1 << 20;

/// The seed used when none is given.
const DEFAULT_SEED: u64 = 0x5745_5244_454e_0001;

/// A bounded cache of verified tokens; see the [module docs](self).
pub struct TokenCache {
    capacity: usize,
    used: usize,
    hasher: foldhash::fast::FixedState,
    entries: HashMap<u64, Entry, BuildHasherDefault<PassThrough>>,
    /// Hashes in insertion order, for eviction; may name entries that were
    /// since replaced or removed, which eviction skips.
    order: VecDeque<(u64, u64)>,
    next_serial: u64,
    generation: u64,
    hits: u64,
    misses: u64,
}

struct Entry {
    format: Format,
    token: Box<[u8]>,
    verified: VerifiedToken,
    valid_until: u64,
    serial: u64,
    cost: usize,
}

impl fmt::Debug for TokenCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Tokens are bearer credentials: only sizes and counts are shown.
        f.debug_struct("TokenCache")
            .field("capacity", &self.capacity)
            .field("used", &self.used)
            .field("entries", &self.entries.len())
            .field("hits", &self.hits)
            .field("misses", &self.misses)
            .finish_non_exhaustive()
    }
}

impl Default for TokenCache {
    fn default() -> Self {
        Self::new(DEFAULT_CAPACITY)
    }
}

impl TokenCache {
    /// An empty cache holding at most `capacity` bytes.
    pub fn new(capacity: usize) -> Self {
        Self::with_seed(capacity, DEFAULT_SEED)
    }

    /// An empty cache whose hash is seeded with `seed` (for example from the
    /// VM's start time), so that hash values differ between VMs.
    pub fn with_seed(capacity: usize, seed: u64) -> Self {
        Self {
            capacity,
            used: 0,
            hasher: foldhash::fast::FixedState::with_seed(seed),
            entries: HashMap::default(),
            order: VecDeque::new(),
            next_serial: 0,
            generation: 0,
            hits: 0,
            misses: 0,
        }
    }

    /// The number of cached tokens.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether no token is cached.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The bytes currently charged against the capacity.
    pub fn used_bytes(&self) -> usize {
        self.used
    }

    /// Lookups answered from the cache, and lookups that were not.
    pub fn hits_and_misses(&self) -> (u64, u64) {
        (self.hits, self.misses)
    }

    /// Drops every entry.
    pub fn clear(&mut self) {
        self.entries.clear();
        self.order.clear();
        self.used = 0;
    }

    /// The cached verification of `token`, if it is still valid at `now`.
    fn get(&mut self, format: Format, token: &[u8], now: u64) -> Option<VerifiedToken> {
        let key = self.hasher.hash_one((format, token));
        let entry = self.entries.get(&key)?;
        // Constant time, so a colliding token learns nothing about the stored
        // one from how long the comparison took.
        if entry.format != format || !same_bytes(&entry.token, token) {
            return None;
        }
        if now >= entry.valid_until {
            self.remove(key);
            return None;
        }
        Some(entry.verified.clone())
    }

    /// Stores a verification valid until `valid_until` (exclusive).
    fn insert(&mut self, format: Format, token: &[u8], verified: &VerifiedToken, valid_until: u64) {
        let cost = ENTRY_OVERHEAD
            + token.len()
            + verified.issuer.len()
            + verified.subject.len()
            + verified.audience.len()
            + verified.key_id.as_ref().map_or(0, |s| s.len())
            + verified
                .certificate_thumbprint
                .as_ref()
                .map_or(0, |s| s.len());
        if cost > self.capacity {
            return;
        }

        let key = self.hasher.hash_one((format, token));
        self.remove(key);
        while self.used + cost > self.capacity && self.evict_oldest() {}

        let serial = self.next_serial;
        self.next_serial += 1;
        self.order.push_back((key, serial));
        self.used += cost;
        let entry = Entry {
            format,
            token: token.into(),
            verified: verified.clone(),
            valid_until,
            serial,
            cost,
        };
        self.entries.insert(key, entry);
    }

    fn remove(&mut self, key: u64) {
        if let Some(entry) = self.entries.remove(&key) {
            self.used -= entry.cost;
        }
    }

    /// Evicts the oldest live entry; returns `false` when there is none.
    fn evict_oldest(&mut self) -> bool {
        while let Some((key, serial)) = self.order.pop_front() {
            if self
                .entries
                .get(&key)
                .is_some_and(|entry| entry.serial == serial)
            {
                self.remove(key);
                return true;
            }
        }
        false
    }

    /// Empties the cache if it was filled under other issuers.
    fn bind(&mut self, generation: u64) {
        if self.generation != generation {
            self.clear();
            self.generation = generation;
        }
    }
}

impl Issuers {
    /// [`Issuers::verify`], answered from `cache` when the same token was
    /// verified before and is still valid at `now`.
    ///
    /// # Errors
    ///
    /// The first guard step the token fails; failures are never cached.
    pub fn verify_cached(
        &self,
        cache: &mut TokenCache,
        token: &str,
        now: u64,
    ) -> Result<VerifiedToken, TokenError> {
        if token.len() > MAX_TOKEN_LEN {
            return Err(TokenError::TooLarge("token"));
        }
        self.through_cache(cache, Format::Jwt, token.as_bytes(), now, || {
            self.verify(token, now)
        })
    }

    /// [`Issuers::verify_cwt`], answered from `cache` when the same CWT was
    /// verified before and is still valid at `now`. JWTs and CWTs share the
    /// cache and its byte bound, and never answer for each other.
    ///
    /// # Errors
    ///
    /// The first guard step the token fails; failures are never cached.
    pub fn verify_cwt_cached(
        &self,
        cache: &mut TokenCache,
        cwt: &[u8],
        now: u64,
    ) -> Result<VerifiedToken, TokenError> {
        if cwt.len() > MAX_CWT_LEN {
            return Err(TokenError::TooLarge("token"));
        }
        self.through_cache(cache, Format::Cwt, cwt, now, || self.verify_cwt(cwt, now))
    }

    /// [`Issuers::verify_cwt_text`] (a base64url CWT, as a bearer token
    /// carries it), answered from `cache` when the same text was verified
    /// before and is still valid at `now`.
    ///
    /// # Errors
    ///
    /// The first guard step the token fails; failures are never cached.
    pub fn verify_cwt_text_cached(
        &self,
        cache: &mut TokenCache,
        text: &str,
        now: u64,
    ) -> Result<VerifiedToken, TokenError> {
        if text.len() > MAX_CWT_LEN.div_ceil(3) * 4 {
            return Err(TokenError::TooLarge("token"));
        }
        self.through_cache(cache, Format::CwtText, text.as_bytes(), now, || {
            self.verify_cwt_text(text, now)
        })
    }

    fn through_cache(
        &self,
        cache: &mut TokenCache,
        format: Format,
        token: &[u8],
        now: u64,
        verify: impl FnOnce() -> Result<VerifiedToken, TokenError>,
    ) -> Result<VerifiedToken, TokenError> {
        cache.bind(self.generation);
        if let Some(verified) = cache.get(format, token, now) {
            cache.hits += 1;
            return Ok(verified);
        }
        cache.misses += 1;

        let verified = verify()?;
        let skew = self.clock_skew_of(&verified.issuer);
        let until_exp = verified
            .expires_at
            .map_or(u64::MAX, |exp| exp.saturating_add(skew));
        let valid_until = until_exp.min(now.saturating_add(MAX_ENTRY_SECS));
        cache.insert(format, token, &verified, valid_until);
        Ok(verified)
    }

    fn clock_skew_of(&self, name: &str) -> u64 {
        self.issuers
            .iter()
            .find(|i| i.name == name)
            .map_or(0, |i| i.rules.clock_skew)
    }
}

/// Which encoding a cached token was verified as.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Format {
    Jwt,
    Cwt,
    CwtText,
}

/// Whether two byte strings are equal, in time that depends only on their
/// length: eight bytes at a time, differences OR-ed together, with no early
/// exit. A byte-at-a-time constant-time compare would cost more than the
/// rest of a cache hit together.
fn same_bytes(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let (a_words, b_words) = (a.chunks_exact(8), b.chunks_exact(8));
    let tail = a_words
        .remainder()
        .iter()
        .zip(b_words.remainder())
        .fold(0u64, |acc, (x, y)| acc | u64::from(x ^ y));
    let word = |chunk: &[u8]| <[u8; 8]>::try_from(chunk).map_or(0, u64::from_ne_bytes);
    let difference = a_words
        .zip(b_words)
        .fold(tail, |acc, (x, y)| acc | (word(x) ^ word(y)));
    std::hint::black_box(difference) == 0
}

/// A hasher for keys that already are hashes.
#[derive(Default)]
struct PassThrough(u64);

impl Hasher for PassThrough {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &byte in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(byte);
        }
    }

    fn write_u64(&mut self, value: u64) {
        self.0 = value;
    }
}

#[cfg(test)]
mod tests {
    use super::same_bytes;

    #[test]
    fn equal_only_when_every_byte_is() {
        let token = b"eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJhIn0.c2ln";
        assert!(same_bytes(token, token));
        for i in 0..token.len() {
            let mut other = *token;
            other[i] ^= 1;
            assert!(!same_bytes(token, &other), "byte {i}");
        }
        assert!(!same_bytes(token, &token[..token.len() - 1]));
        assert!(same_bytes(b"", b""));
    }
}
