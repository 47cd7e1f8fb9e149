//! The JWT parser and verifier on arbitrary input: every input must end in a
//! verdict, never a panic, and the cache must agree with a direct check.

#![no_main]

#[path = "../src/issuers.rs"]
mod issuers;

use libfuzzer_sys::fuzz_target;
use warden::verify::TokenCache;

fuzz_target!(|data: &[u8]| {
    let Ok(token) = std::str::from_utf8(data) else {
        return;
    };
    let issuers = issuers::issuers();
    let direct = issuers.verify(token, 1_767_225_600);

    let mut cache = TokenCache::new(4096);
    let cached = issuers.verify_cached(&mut cache, token, 1_767_225_600);
    assert_eq!(direct, cached);
    if let Err(error) = &direct {
        assert!(!error.reason().is_empty());
    }
});
