//! The JWKS loader on arbitrary JSON: a key set is either installed or
//! refused with a message, never a panic.

#![no_main]

use libfuzzer_sys::fuzz_target;
use warden::verify::Algorithm;
use warden::verify::jwk::KeySet;

fuzz_target!(|data: &[u8]| {
    let Ok(jwks) = serde_json::from_slice::<serde_json::Value>(data) else {
        return;
    };
    let secret_algorithms = [Algorithm::Hs256, Algorithm::Hs512];
    match KeySet::from_jwks(&jwks, &secret_algorithms) {
        Ok(keys) => {
            for alg in Algorithm::ALL {
                let _ = keys.can_verify(alg);
            }
        }
        Err(error) => assert!(!error.to_string().is_empty()),
    }
});
