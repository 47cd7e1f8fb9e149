//! Compiling filters once and reusing them.
//!
//! An [`Engine`] holds wasmtime's engine and the [`Linker`] with every host
//! function. [`Engine::load`] compiles a module, or finds it compiled: in
//! the engine's memory, then in the on-disk cache, keyed by the SHA-256 of
//! the module and wasmtime's compatibility hash. Each VM then gets a fresh
//! `Store` from the same compiled [`Filter`]. Nothing is global: tests
//! that build their own engines share only the disk cache, whose entries
//! are written atomically.

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use sha2::{Digest, Sha256};
use wasmtime::{Config, Linker, Module};

use crate::error::{Error, ErrorKind, Result};
use crate::host::HostState;
use crate::imports;

/// Compiles filters and links them to the host functions. Clones share
/// the compiled modules.
#[derive(Clone)]
pub struct Engine {
    inner: Arc<Inner>,
}

struct Inner {
    engine: wasmtime::Engine,
    linker: Linker<HostState>,
    cache_dir: Option<PathBuf>,
    modules: Mutex<HashMap<[u8; 32], Module>>,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("cache_dir", &self.inner.cache_dir)
            .finish_non_exhaustive()
    }
}

/// A compiled filter, ready to start VMs from.
#[derive(Clone, Debug)]
pub struct Filter {
    pub(crate) engine: Engine,
    pub(crate) module: Module,
    digest: [u8; 32],
}

impl Filter {
    /// The SHA-256 of the module's bytes.
    pub fn digest(&self) -> [u8; 32] {
        self.digest
    }

    pub(crate) fn linker(&self) -> &Linker<HostState> {
        &self.engine.inner.linker
    }

    pub(crate) fn wasmtime_engine(&self) -> &wasmtime::Engine {
        &self.engine.inner.engine
    }
}

/// Where compiled modules are cached unless told otherwise:
/// `$WARDEN_HOST_CACHE`, else `$XDG_CACHE_HOME/warden-host`, else
/// `$HOME/.cache/warden-host`; none if all three are unset.
pub fn default_cache_dir() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("WARDEN_HOST_CACHE") {
        return Some(PathBuf::from(dir));
    }
    if let Some(dir) = std::env::var_os("XDG_CACHE_HOME") {
        return Some(PathBuf::from(dir).join("warden-host"));
    }
    std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".cache").join("warden-host"))
}

impl Engine {
    /// An engine caching compiled modules in [`default_cache_dir`].
    ///
    /// # Errors
    ///
    /// wasmtime cannot be configured for this machine.
    pub fn new() -> Result<Engine> {
        Engine::with_cache_dir(default_cache_dir())
    }

    /// An engine caching compiled modules in `cache_dir`, or only in memory
    /// when `None`.
    ///
    /// # Errors
    ///
    /// wasmtime cannot be configured for this machine.
    pub fn with_cache_dir(cache_dir: Option<PathBuf>) -> Result<Engine> {
        let config = Config::new();
        let engine =
            wasmtime::Engine::new(&config).map_err(|e| Error::wasm("configuring wasmtime", &e))?;
        let mut linker = Linker::new(&engine);
        imports::add_to_linker(&mut linker)
            .map_err(|e| Error::wasm("registering host functions", &e))?;
        let inner = Inner {
            engine,
            linker,
            cache_dir,
            modules: Mutex::new(HashMap::new()),
        };
        Ok(Engine {
            inner: Arc::new(inner),
        })
    }

    /// Loads a filter from a `.wasm` file.
    ///
    /// # Errors
    ///
    /// The file cannot be read, or see [`Engine::load`].
    pub fn load_file(&self, path: impl AsRef<Path>) -> Result<Filter> {
        let path = path.as_ref();
        let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
        self.load(&bytes)
            .map_err(|e| Error::invalid(format!("`{}`: {e}", path.display())))
    }

    /// Compiles a module, or reuses its earlier compilation.
    ///
    /// # Errors
    ///
    /// The bytes are not a valid module, or it lacks what every proxy-wasm
    /// filter exports: `memory`, an allocator and an ABI version marker.
    pub fn load(&self, wasm: &[u8]) -> Result<Filter> {
        let digest: [u8; 32] = Sha256::digest(wasm).into();
        let cached = self.lock_modules().get(&digest).cloned();
        let module = match cached {
            Some(module) => module,
            None => {
                let module = self.compile_or_fetch(wasm, &digest)?;
                self.lock_modules().insert(digest, module.clone());
                module
            }
        };
        check_exports(&module)?;
        Ok(Filter {
            engine: self.clone(),
            module,
            digest,
        })
    }

    fn lock_modules(&self) -> std::sync::MutexGuard<'_, HashMap<[u8; 32], Module>> {
        self.inner
            .modules
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn cache_path(&self, digest: &[u8; 32]) -> Option<PathBuf> {
        let dir = self.inner.cache_dir.as_ref()?;
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        self.inner
            .engine
            .precompile_compatibility_hash()
            .hash(&mut hasher);
        let hex: String = digest.iter().map(|byte| format!("{byte:02x}")).collect();
        Some(dir.join(format!("{hex}-{:016x}.cwasm", hasher.finish())))
    }

    fn compile_or_fetch(&self, wasm: &[u8], digest: &[u8; 32]) -> Result<Module> {
        let Some(path) = self.cache_path(digest) else {
            return self.compile(wasm);
        };
        if let Some(module) = self.fetch(&path) {
            return Ok(module);
        }
        // Parallel tests (threads or processes) load the same filter at
        // once: one compiles, the others wait for its cache entry.
        let lock = path.with_extension("lock");
        let _ = std::fs::create_dir_all(path.parent().unwrap_or(Path::new(".")));
        let owner = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&lock)
            .is_ok();
        if !owner && let Some(module) = self.wait_for(&path, &lock) {
            return Ok(module);
        }
        let module = self.compile(wasm);
        if let Ok(module) = &module {
            store(module, &path);
        }
        if owner {
            let _ = std::fs::remove_file(&lock);
        }
        module
    }

    fn compile(&self, wasm: &[u8]) -> Result<Module> {
        Module::new(&self.inner.engine, wasm).map_err(|e| Error::wasm("compiling module", &e))
    }

    /// Waits, at most two minutes, for another compiler to publish the
    /// entry. A lock left by a process that died is removed after that.
    fn wait_for(&self, path: &Path, lock: &Path) -> Option<Module> {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
        while std::time::Instant::now() < deadline {
            if let Some(module) = self.fetch(path) {
                return Some(module);
            }
            if !lock.exists() {
                return self.fetch(path);
            }
            std::thread::sleep(std::time::Duration::from_millis(25));
        }
        let _ = std::fs::remove_file(lock);
        None
    }

    /// Reads a cached compilation. A missing or unusable entry is a cache
    /// miss, not an error: the module is compiled again.
    #[expect(
        unsafe_code,
        reason = "deserializing wasmtime's own output, written by `store` under a name carrying the module digest and engine compatibility hash"
    )]
    fn fetch(&self, path: &Path) -> Option<Module> {
        if !path.is_file() {
            return None;
        }
        // SAFETY: the file was produced by `Module::serialize` of this
        // engine configuration (the name carries its compatibility hash),
        // and wasmtime validates the header before using it.
        unsafe { Module::deserialize_file(&self.inner.engine, path) }.ok()
    }
}

/// Writes a compilation to the cache through a temporary file and a
/// rename, so a concurrent reader never sees half a file. Failing to cache
/// only costs a later compilation.
fn store(module: &Module, path: &Path) {
    let Ok(bytes) = module.serialize() else {
        return;
    };
    let Some(dir) = path.parent() else { return };
    if std::fs::create_dir_all(dir).is_err() {
        return;
    }
    let temp = dir.join(format!(
        ".{}.{}",
        std::process::id(),
        path.file_name()
            .map_or_else(String::new, |n| n.to_string_lossy().into_owned())
    ));
    if std::fs::write(&temp, bytes).is_ok() && std::fs::rename(&temp, path).is_err() {
        let _ = std::fs::remove_file(&temp);
    }
}

fn check_exports(module: &Module) -> Result<()> {
    let has = |name: &str| module.get_export(name).is_some();
    if !has("memory") {
        return Err(ErrorKind::MissingExport("memory".into()).into());
    }
    if !has("proxy_on_memory_allocate") && !has("malloc") {
        return Err(ErrorKind::MissingExport("proxy_on_memory_allocate".into()).into());
    }
    if !has("proxy_abi_version_0_2_1") && !has("proxy_abi_version_0_2_0") {
        return Err(ErrorKind::UnsupportedAbi.into());
    }
    Ok(())
}
