//! Requests per second through the harness, for a trivial filter (the
//! probe with nothing to do) and for Warden (an API-key request that is
//! allowed, with its decision record), plus how long compiling each
//! module takes cold and from the disk cache.
//!
//! ```text
//! cargo build --release --target wasm32-wasip1 -p warden
//! cargo run --release -p warden-host-test --example bench [REQUESTS]
//! ```
//!
//! Transcripts are off, as for any load test; each figure is the best of
//! three runs.

use std::path::Path;
use std::time::{Duration, Instant};

use warden_host_test::{Engine, Filter, Request, testing};

fn best_of_three(mut run: impl FnMut() -> Duration) -> Duration {
    (0..3).map(|_| run()).min().unwrap_or_default()
}

fn compile_times(wasm: &Path) -> (Duration, Duration) {
    let cache = testing::target_dir().join(format!("bench-cache-{}", std::process::id()));
    let cold = best_of_three(|| {
        let engine = Engine::with_cache_dir(None).expect("engine");
        let start = Instant::now();
        engine.load_file(wasm).expect("module compiles");
        start.elapsed()
    });
    Engine::with_cache_dir(Some(cache.clone()))
        .expect("engine")
        .load_file(wasm)
        .expect("module compiles");
    let warm = best_of_three(|| {
        let engine = Engine::with_cache_dir(Some(cache.clone())).expect("engine");
        let start = Instant::now();
        engine.load_file(wasm).expect("module loads");
        start.elapsed()
    });
    let _ = std::fs::remove_dir_all(&cache);
    (cold, warm)
}

fn requests_per_second(filter: &Filter, config: &str, request: &Request, count: u32) -> f64 {
    let mut plugin = filter
        .plugin()
        .transcript(false)
        .configuration(config)
        .start()
        .expect("plugin starts");
    let expected = plugin
        .send(request.clone())
        .expect("request runs")
        .outcome
        .status;
    let elapsed = best_of_three(|| {
        let start = Instant::now();
        for _ in 0..count {
            let outcome = plugin.send(request.clone()).expect("request runs").outcome;
            assert_eq!(outcome.status, expected, "the filter changed its answer");
        }
        start.elapsed()
    });
    f64::from(count) / elapsed.as_secs_f64()
}

fn main() {
    let count: u32 = std::env::args()
        .nth(1)
        .and_then(|n| n.parse().ok())
        .unwrap_or(20_000);
    let profile = if cfg!(debug_assertions) {
        "dev"
    } else {
        "release"
    };
    println!("harness built with the {profile} profile; {count} requests per run, best of 3");

    let probe = testing::build_filter("probe").expect("the probe builds");
    let (cold, warm) = compile_times(&probe);
    let engine = Engine::with_cache_dir(None).expect("engine");
    let filter = engine.load_file(&probe).expect("probe loads");
    let rps = requests_per_second(&filter, "{}", &Request::get("/"), count);
    println!(
        "probe (trivial)  {:>7} bytes  compile {:>7.1} ms cold, {:>5.1} ms from cache  {rps:>9.0} requests/s",
        std::fs::metadata(&probe).map_or(0, |m| m.len()),
        cold.as_secs_f64() * 1e3,
        warm.as_secs_f64() * 1e3,
    );

    let warden = testing::warden_wasm();
    if !warden.exists() {
        println!("warden.wasm not built: cargo build --release --target wasm32-wasip1 -p warden");
        return;
    }
    let (cold, warm) = compile_times(&warden);
    let filter = engine.load_file(&warden).expect("warden loads");
    let policy_path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/policy-cases/policy.json");
    let policy: serde_json::Value =
        serde_json::from_slice(&std::fs::read(policy_path).expect("policy"))
            .expect("policy is JSON");
    let config = serde_json::json!({ "policy": policy }).to_string();
    let request = Request::get("/ledger/2026")
        .authority("books.example")
        .header("x-api-key", "invbot01.s3cret-invoice-bot");
    let rps = requests_per_second(&filter, &config, &request, count);
    println!(
        "warden (allow)   {:>7} bytes  compile {:>7.1} ms cold, {:>5.1} ms from cache  {rps:>9.0} requests/s",
        std::fs::metadata(&warden).map_or(0, |m| m.len()),
        cold.as_secs_f64() * 1e3,
        warm.as_secs_f64() * 1e3,
    );
}
