//! The proxy-wasm layer: carries out decisions inside the proxy.
//!
//! This is the only module that talks to the host, and it holds no policy
//! logic. Per VM there is one root context, which owns the compiled
//! configuration, the verified-token cache and the key fetchers, and one
//! stream context per request:
//!
//! - [`request`] runs on every request: it strips Warden's headers from
//!   the inbound request, asks [`crate::decide`] for a decision, logs the
//!   decision record, and forwards or answers locally.
//! - [`keys`] fetches issuers' JWKS through a proxy cluster on the root
//!   context's timer, and resumes the requests that waited for keys.
//!
//! Every host call's result is checked: a host that refuses a call gets a
//! logged error and a closed request, never a panic.

mod keys;
mod request;

use crate::config::Config;
use crate::verify::TokenCache;
use crate::verify::fetch::KeyFetcher;
use proxy_wasm::hostcalls;
use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{Action, ContextType, LogLevel};
use std::cell::RefCell;
use std::rc::Rc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

proxy_wasm::main! {{
    proxy_wasm::set_log_level(LogLevel::Info);
    proxy_wasm::set_root_context(|id| -> Box<dyn RootContext> { Box::new(Root::new(id)) });
}}

/// The most requests one VM holds paused while keys are fetched; further
/// ones are decided at once (503 `keys_unavailable`, or 401 `key_unknown`)
/// so a flood cannot pile up paused streams.
const MAX_WAITERS: usize = 1024;

/// How often the root context looks at key fetches and waiting requests.
const TICK: Duration = Duration::from_millis(200);

/// State shared by the root context and its streams within one VM.
struct Shared {
    config: RefCell<Config>,
    cache: RefCell<TokenCache>,
    fetchers: RefCell<Vec<KeyFetcher>>,
    waiters: RefCell<Vec<Waiter>>,
}

/// A request paused until its issuer's keys arrive.
#[derive(Debug, Clone)]
struct Waiter {
    context_id: u32,
    issuer: String,
    since_ms: u64,
}

/// The plugin's root context.
struct Root {
    context_id: u32,
    shared: Option<Rc<Shared>>,
}

impl Root {
    fn new(context_id: u32) -> Self {
        Self {
            context_id,
            shared: None,
        }
    }
}

impl Context for Root {
    fn on_http_call_response(
        &mut self,
        token: u32,
        _headers: usize,
        body: usize,
        _trailers: usize,
    ) {
        if let Some(shared) = &self.shared {
            keys::on_response(shared, self.context_id, token, body);
        }
    }
}

impl RootContext for Root {
    fn on_configure(&mut self, _size: usize) -> bool {
        let bytes = hostcalls::get_buffer(
            proxy_wasm::types::BufferType::PluginConfiguration,
            0,
            usize::MAX,
        )
        .ok()
        .flatten()
        .unwrap_or_default();
        let config = match Config::from_json(&bytes) {
            Ok(config) => config,
            Err(e) => {
                log(LogLevel::Error, &format!("configuration refused: {e}"));
                return false;
            }
        };
        let fetchers: Vec<KeyFetcher> = config
            .policy()
            .issuers()
            .fetched()
            .map(|(name, spec)| KeyFetcher::new(name, spec))
            .collect();
        log(
            LogLevel::Info,
            &format!("policy `{}` loaded", config.policy().revision()),
        );
        if !fetchers.is_empty() && hostcalls::set_tick_period(TICK).is_err() {
            log(
                LogLevel::Error,
                "configuration refused: the host refused a timer for key fetches",
            );
            return false;
        }
        self.shared = Some(Rc::new(Shared {
            config: RefCell::new(config),
            cache: RefCell::new(TokenCache::default()),
            fetchers: RefCell::new(fetchers),
            waiters: RefCell::new(Vec::new()),
        }));
        true
    }

    fn on_tick(&mut self) {
        if let Some(shared) = &self.shared {
            keys::on_tick(shared, self.context_id);
        }
    }

    fn create_http_context(&self, context_id: u32) -> Option<Box<dyn HttpContext>> {
        Some(Box::new(Stream {
            context_id,
            shared: self.shared.clone(),
        }))
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}

/// One request.
struct Stream {
    context_id: u32,
    /// `None` only if the host creates a stream without a configuration
    /// that compiled; every request is then answered 503.
    shared: Option<Rc<Shared>>,
}

impl Context for Stream {}

impl HttpContext for Stream {
    fn on_http_request_headers(&mut self, _headers: usize, _end_of_stream: bool) -> Action {
        let Some(shared) = &self.shared else {
            request::answer_unconfigured();
            return Action::Pause;
        };
        let room = shared
            .waiters
            .try_borrow()
            .is_ok_and(|w| w.len() < MAX_WAITERS);
        match request::handle(shared, room) {
            request::Handled::Forwarded => Action::Continue,
            request::Handled::Answered => Action::Pause,
            request::Handled::Wait(issuer) => {
                let waiter = Waiter {
                    context_id: self.context_id,
                    issuer,
                    since_ms: now_millis(),
                };
                if let Ok(mut waiters) = shared.waiters.try_borrow_mut() {
                    waiters.push(waiter);
                }
                Action::Pause
            }
        }
    }
}

impl Drop for Stream {
    fn drop(&mut self) {
        let Some(shared) = &self.shared else { return };
        if let Ok(mut waiters) = shared.waiters.try_borrow_mut() {
            waiters.retain(|w| w.context_id != self.context_id);
        }
    }
}

fn log(level: LogLevel, message: &str) {
    // A log line the host refuses has nowhere else to go.
    let _ = hostcalls::log(level, message);
}

fn now() -> SystemTime {
    hostcalls::get_current_time().unwrap_or(UNIX_EPOCH)
}

fn now_secs() -> u64 {
    now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn now_millis() -> u64 {
    now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}
