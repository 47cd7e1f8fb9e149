//! Per-algorithm token verification cost, and what the cache saves.
//!
//! Run natively with
//! `cargo run --release -p warden --example verify_bench`; it prints one line
//! per measurement, in microseconds per operation, with baselines measured in
//! the same run: a token refused at the algorithm allow-list (every guard
//! step before the cryptography), SHA-256 of the token, and the foldhash the
//! cache keys on.
//!
//! The same example builds for `wasm32-wasip1`, to see the cost inside a
//! proxy's Wasm VM:
//!
//! ```sh
//! cargo build --release -p warden --example verify_bench --target wasm32-wasip1
//! python3 plugin/examples/run_wasi.py \
//!     target/wasm32-wasip1/release/examples/verify_bench.wasm
//! ```
//!
//! An optional first argument sets the time budget per line in
//! milliseconds (default 300).

#[path = "../tests/token_support/mod.rs"]
mod token_support;

use sha2::{Digest, Sha256};
use std::hash::BuildHasher;
use std::hint::black_box;
use std::time::Instant;
use token_support::*;
use warden::verify::{Issuers, TokenCache};

/// Runs `op` for about `budget_ms` and returns microseconds per call.
fn measure(budget_ms: u128, mut op: impl FnMut()) -> f64 {
    // Warm up, then size the batch to the budget.
    for _ in 0..3 {
        op();
    }
    let start = Instant::now();
    let mut calls: u64 = 0;
    while start.elapsed().as_millis() < budget_ms {
        for _ in 0..16 {
            op();
        }
        calls += 16;
    }
    start.elapsed().as_secs_f64() * 1e6 / calls as f64
}

fn report(name: &str, micros: f64) {
    println!("{name:<44} {micros:>10.3} us/op");
}

fn main() {
    let budget = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(300);
    let cases = [
        (
            TestKey::rsa(),
            vec!["RS256", "RS384", "RS512", "PS256", "PS384", "PS512"],
        ),
        (TestKey::p256(), vec!["ES256"]),
        (TestKey::p384(), vec!["ES384"]),
        (TestKey::ed25519(), vec!["EdDSA"]),
        (TestKey::hmac(), vec!["HS256", "HS384", "HS512"]),
    ];

    let rs256_issuers = issuers(&["RS256"], &[&cases[0].0]);
    let rs256 = token(&cases[0].0, &header(&cases[0].0, "RS256"), &claims());
    println!("token of {} bytes (RS256, 2048-bit key)", rs256.len());

    let refused = token(&cases[0].0, &header(&cases[0].0, "PS256"), &claims());
    report(
        "baseline: guard steps, refused before crypto",
        measure(budget, || {
            let _ = black_box(rs256_issuers.verify(black_box(&refused), NOW));
        }),
    );
    report(
        "baseline: SHA-256 of the token",
        measure(budget, || {
            black_box(Sha256::digest(black_box(rs256.as_bytes())));
        }),
    );
    let hasher = foldhash::fast::FixedState::with_seed(7);
    report(
        "baseline: foldhash of the token",
        measure(budget, || {
            black_box(hasher.hash_one(black_box(rs256.as_bytes())));
        }),
    );

    for (key, algorithms) in &cases {
        let issuers: Issuers = issuers(algorithms, &[key]);
        for alg in algorithms {
            let token = token(key, &header(key, alg), &claims());
            issuers
                .verify(&token, NOW)
                .expect("the benchmark token verifies");
            report(
                &format!("verify {alg}"),
                measure(budget, || {
                    black_box(issuers.verify(black_box(&token), NOW)).ok();
                }),
            );
        }
    }

    let p256 = &cases[1].0;
    let cwt_issuers = issuers(&["ES256"], &[p256]);
    let cwt = cose(
        p256,
        "ES256",
        18,
        vec![(int(1), int(-7))],
        vec![],
        &claims_cbor(),
    );
    cwt_issuers
        .verify_cwt(&cwt, NOW)
        .expect("the benchmark CWT verifies");
    report(
        "verify_cwt ES256 (COSE_Sign1)",
        measure(budget, || {
            black_box(cwt_issuers.verify_cwt(black_box(&cwt), NOW)).ok();
        }),
    );

    let mut cache = TokenCache::default();
    rs256_issuers
        .verify_cached(&mut cache, &rs256, NOW)
        .expect("the benchmark token verifies");
    report(
        "verify_cached RS256, hit",
        measure(budget, || {
            black_box(rs256_issuers.verify_cached(&mut cache, black_box(&rs256), NOW)).ok();
        }),
    );
    let (hits, misses) = cache.hits_and_misses();
    println!(
        "cache: {hits} hits, {misses} misses, {} bytes used",
        cache.used_bytes()
    );
}
