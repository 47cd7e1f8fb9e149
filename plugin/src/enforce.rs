//! The proxy-wasm layer: carries out decisions inside the proxy.
//!
//! On every request, before anything else, inbound headers under Warden's
//! prefix are removed, so a client can never pose as an identity. Then the
//! engine decides, the decision record is logged, and the request either
//! continues upstream with the identity attached and the credential
//! removed, or is answered locally with a stable reason code.
//!
//! This is the only module that talks to the host; it holds no policy
//! logic of its own.

use crate::config::Config;
use crate::decide::{Decision, Request, Verdict, decide};
use crate::extract::CredentialKind;
use crate::record::{self, Context as RecordContext};
use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{Action, ContextType, LogLevel};
use std::rc::Rc;
use std::time::{SystemTime, UNIX_EPOCH};

proxy_wasm::main! {{
    proxy_wasm::set_log_level(LogLevel::Info);
    proxy_wasm::set_root_context(|_| -> Box<dyn RootContext> { Box::new(Root::default()) });
}}

/// The plugin's root context: owns the compiled configuration.
#[derive(Default)]
struct Root {
    config: Option<Rc<Config>>,
}

impl Context for Root {}

impl RootContext for Root {
    fn on_configure(&mut self, _size: usize) -> bool {
        let bytes = self.get_plugin_configuration().unwrap_or_default();
        match Config::from_json(&bytes) {
            Ok(config) => {
                log(
                    LogLevel::Info,
                    &format!("policy `{}` loaded", config.policy().revision()),
                );
                self.config = Some(Rc::new(config));
                true
            }
            Err(e) => {
                log(LogLevel::Error, &format!("configuration refused: {e}"));
                false
            }
        }
    }

    fn create_http_context(&self, _context_id: u32) -> Option<Box<dyn HttpContext>> {
        Some(Box::new(Stream {
            config: self.config.clone(),
        }))
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}

/// One request.
struct Stream {
    /// `None` only if the host creates a stream without a configuration
    /// that compiled; every request is then denied.
    config: Option<Rc<Config>>,
}

impl Context for Stream {}

impl HttpContext for Stream {
    fn on_http_request_headers(&mut self, _headers: usize, _end_of_stream: bool) -> Action {
        let Some(config) = self.config.clone() else {
            self.answer(503, None, "not_configured", None);
            return Action::Pause;
        };
        let headers = self.strip_inbound(&config);
        let header = |name: &str| {
            headers
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, v)| v.as_str())
                .unwrap_or_default()
        };
        let request = Request {
            method: header(":method"),
            authority: header(":authority"),
            path: header(":path"),
            headers: &headers,
        };
        let now = self.get_current_time();
        let decision = decide(&config, &request, unix_secs(now));
        self.log_record(&config, &decision, &request, now, &headers);
        self.carry_out(&config, &decision)
    }
}

impl Stream {
    /// Removes every inbound header under Warden's prefix and returns the
    /// rest. Values that are not UTF-8 are read lossily: they can never
    /// form a valid credential.
    fn strip_inbound(&self, config: &Config) -> Vec<(String, String)> {
        let mut kept = Vec::new();
        for (name, value) in self.get_http_request_headers_bytes() {
            if name.starts_with(config.header_prefix()) {
                self.remove_http_request_header(&name);
            } else {
                kept.push((name, String::from_utf8_lossy(&value).into_owned()));
            }
        }
        kept
    }

    fn carry_out(&self, config: &Config, decision: &Decision) -> Action {
        match decision.verdict {
            Verdict::Allow => {
                self.forward(config, decision);
                Action::Continue
            }
            Verdict::Deny { status, challenge } => {
                let request_id = self.get_http_request_header("x-request-id");
                self.answer(status, challenge, decision.reason, request_id.as_deref());
                Action::Pause
            }
        }
    }

    /// Removes the credential and attaches the identity for the upstream.
    fn forward(&self, config: &Config, decision: &Decision) {
        match decision.credential {
            Some(CredentialKind::Jwt) => self.remove_http_request_header("authorization"),
            Some(CredentialKind::ApiKey) => {
                self.remove_http_request_header(config.api_key_header())
            }
            None => {}
        }
        let identity = decision.identity.as_deref().unwrap_or_default();
        let credential = decision
            .credential
            .map(CredentialKind::as_str)
            .unwrap_or_default();
        self.set_http_request_header(&config.upstream_header("identity"), Some(identity));
        self.set_http_request_header(
            &config.upstream_header("groups"),
            Some(&decision.groups.join(",")),
        );
        self.set_http_request_header(&config.upstream_header("credential"), Some(credential));
    }

    /// Answers locally with a JSON body that holds only the status, the
    /// reason code and the request id.
    fn answer(&self, status: u16, challenge: Option<&str>, reason: &str, request_id: Option<&str>) {
        let body =
            serde_json::json!({ "status": status, "reason": reason, "request_id": request_id });
        let mut headers = vec![
            ("content-type", "application/json"),
            ("cache-control", "no-store"),
        ];
        if let Some(challenge) = challenge {
            headers.push(("www-authenticate", challenge));
        }
        self.send_http_response(
            u32::from(status),
            headers,
            Some(body.to_string().as_bytes()),
        );
    }

    fn log_record(
        &self,
        config: &Config,
        decision: &Decision,
        request: &Request<'_>,
        now: SystemTime,
        headers: &[(String, String)],
    ) {
        let source = self
            .get_property(vec!["source", "address"])
            .map(|b| String::from_utf8_lossy(&b).into_owned());
        let request_id = headers
            .iter()
            .find(|(n, _)| n == "x-request-id")
            .map(|(_, v)| v.as_str());
        let host = crate::authorize::host_of(request.authority);
        let context = RecordContext {
            time_ms: unix_millis(now),
            request_id,
            method: request.method,
            host: &host,
            path: request.path,
            source: source.as_deref(),
            policy_revision: config.policy().revision(),
        };
        log(LogLevel::Info, &record::render(decision, &context));
    }
}

fn log(level: LogLevel, message: &str) {
    // A log that the host refuses has nowhere else to go.
    let _ = proxy_wasm::hostcalls::log(level, message);
}

fn unix_secs(time: SystemTime) -> u64 {
    time.duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn unix_millis(time: SystemTime) -> u64 {
    time.duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}
