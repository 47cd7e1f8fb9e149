//! The CWT decoder and verifier on arbitrary bytes: strict CBOR, COSE
//! structure, headers and claims must end in a verdict, never a panic.

#![no_main]

#[path = "../src/issuers.rs"]
mod issuers;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let outcome = issuers::issuers().verify_cwt(data, 1_767_225_600);
    if let Err(error) = outcome {
        assert!(!error.reason().is_empty());
    }
});
