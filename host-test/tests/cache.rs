//! Compiled modules are cached on disk and reused by other engines.

use warden_host_test::{Engine, Request, testing};

#[test]
fn a_second_engine_loads_the_compiled_module_from_disk() {
    let wasm = testing::build_filter("probe").unwrap();
    let dir = testing::target_dir().join(format!("cache-test-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let first = Engine::with_cache_dir(Some(dir.clone()))
        .unwrap()
        .load_file(&wasm)
        .unwrap();
    let entries: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(entries.len(), 1, "{entries:?}");
    let hex: String = first.digest().iter().map(|b| format!("{b:02x}")).collect();
    let name = entries[0]
        .file_name()
        .unwrap()
        .to_string_lossy()
        .into_owned();
    assert!(name.starts_with(&hex) && name.ends_with(".cwasm"), "{name}");

    let second = Engine::with_cache_dir(Some(dir.clone()))
        .unwrap()
        .load_file(&wasm)
        .unwrap();
    let mut plugin = second.plugin().start().unwrap();
    plugin.send(Request::get("/")).unwrap().assert_status(200);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_corrupt_cache_entry_is_compiled_again() {
    let wasm = testing::build_filter("probe").unwrap();
    let dir = testing::target_dir().join(format!("cache-corrupt-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    Engine::with_cache_dir(Some(dir.clone()))
        .unwrap()
        .load_file(&wasm)
        .unwrap();
    let entry = std::fs::read_dir(&dir)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    std::fs::write(&entry, b"not a module").unwrap();
    let filter = Engine::with_cache_dir(Some(dir.clone()))
        .unwrap()
        .load_file(&wasm)
        .unwrap();
    filter
        .plugin()
        .start()
        .unwrap()
        .send(Request::get("/"))
        .unwrap()
        .assert_status(200);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_module_that_is_not_a_filter_is_refused() {
    let engine = Engine::with_cache_dir(None).unwrap();
    let error = engine.load(b"\0asm\x01\0\0\0").unwrap_err();
    assert_eq!(error.to_string(), "module does not export `memory`");
    let error = engine.load(b"not wasm").unwrap_err();
    assert!(
        error.to_string().starts_with("compiling module: "),
        "{error}"
    );
}
