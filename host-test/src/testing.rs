//! Building the test filters that live under `host-test/tests/filters/`.
//!
//! Each is a small crate of its own workspace, built for `wasm32-wasip1`
//! in release mode into `target/filters/`. Cargo's own freshness check
//! makes a repeated build cost a fraction of a second, and its lock on the
//! target directory keeps parallel test binaries from building twice.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::error::{Error, Result};

/// The workspace root, found from this crate's manifest directory.
pub fn workspace_root() -> PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest
        .parent()
        .map_or_else(|| manifest.to_path_buf(), Path::to_path_buf)
}

/// The target directory: `$CARGO_TARGET_DIR`, else `target/` in the
/// workspace.
pub fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map_or_else(|| workspace_root().join("target"), PathBuf::from)
}

/// Builds the test filter `name` (a folder under `host-test/tests/filters/`)
/// and returns the path of its `.wasm` (cargo names it after the library,
/// with `-` as `_`).
///
/// # Errors
///
/// Cargo cannot be run or the build fails; the error carries cargo's
/// output.
pub fn build_filter(name: &str) -> Result<PathBuf> {
    let manifest = workspace_root()
        .join("host-test/tests/filters")
        .join(name)
        .join("Cargo.toml");
    let target = target_dir().join("filters");
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let output = Command::new(cargo)
        .args([
            "build",
            "--quiet",
            "--release",
            "--target",
            "wasm32-wasip1",
            "--manifest-path",
        ])
        .arg(&manifest)
        .arg("--target-dir")
        .arg(&target)
        .output()
        .map_err(|e| Error::io(&manifest, e))?;
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        return Err(Error::invalid(format!(
            "building test filter `{name}` failed:\n{stderr}"
        )));
    }
    Ok(target
        .join("wasm32-wasip1/release")
        .join(format!("{}.wasm", name.replace('-', "_"))))
}

/// The path of `warden.wasm` as `cargo build --target wasm32-wasip1 -p
/// warden --release` leaves it.
pub fn warden_wasm() -> PathBuf {
    target_dir().join("wasm32-wasip1/release/warden.wasm")
}
