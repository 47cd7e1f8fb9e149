//! One request's result with its transcript, and assertions that show the
//! transcript when they fail.
//!
//! ```no_run
//! # fn main() -> Result<(), warden_host_test::Error> {
//! use warden_host_test::{Engine, Request};
//!
//! let filter = Engine::new()?.load_file("filter.wasm")?;
//! let mut plugin = filter.plugin().configuration(r#"{"deny": true}"#).start()?;
//! plugin
//!     .send(Request::get("/admin").header("authorization", "Bearer x"))?
//!     .assert_status(403)
//!     .assert_logged("info", "denied");
//! # Ok(())
//! # }
//! ```

use std::fmt;

use crate::outcome::Outcome;
use crate::transcript::Transcript;

/// A request's outcome and the calls that led to it.
#[derive(Clone, Debug)]
pub struct Exchange {
    /// What came of the request.
    pub outcome: Outcome,
    /// Every call across the boundary while the stream ran.
    pub transcript: Transcript,
}

impl fmt::Display for Exchange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let outcome = serde_json::to_string_pretty(&self.outcome).map_err(|_| fmt::Error)?;
        write!(f, "outcome:\n{outcome}\ntranscript:\n{}", self.transcript)
    }
}

impl Exchange {
    #[track_caller]
    fn check(&self, ok: bool, what: impl FnOnce() -> String) -> &Exchange {
        assert!(ok, "{}\n\n{self}", what());
        self
    }

    /// Asserts the status the client received.
    #[track_caller]
    pub fn assert_status(&self, status: u16) -> &Exchange {
        let got = self.outcome.status;
        self.check(got == Some(status), || {
            format!("expected status {status}, got {got:?}")
        })
    }

    /// Asserts the response code details (`via_upstream`, or a local
    /// response's details).
    #[track_caller]
    pub fn assert_details(&self, details: &str) -> &Exchange {
        let got = &self.outcome.details;
        self.check(got == details, || {
            format!("expected details `{details}`, got `{got}`")
        })
    }

    /// Asserts a response header the client received; `None` asserts it
    /// is absent.
    #[track_caller]
    pub fn assert_header(&self, name: &str, value: Option<&str>) -> &Exchange {
        let got = self.outcome.header(name);
        self.check(got == value, || {
            format!("expected response header `{name}` {value:?}, got {got:?}")
        })
    }

    /// Asserts a header as the upstream received it; `None` asserts it is
    /// absent (or that the request never reached the upstream).
    #[track_caller]
    pub fn assert_upstream_header(&self, name: &str, value: Option<&str>) -> &Exchange {
        let got = self.outcome.upstream_header(name);
        self.check(got == value, || {
            format!("expected upstream header `{name}` {value:?}, got {got:?}")
        })
    }

    /// Asserts that the request reached the upstream, or did not.
    #[track_caller]
    pub fn assert_forwarded(&self, forwarded: bool) -> &Exchange {
        let got = self.outcome.upstream.is_some();
        self.check(got == forwarded, || {
            format!("expected forwarded {forwarded}, got {got}")
        })
    }

    /// Asserts the response body the client received.
    #[track_caller]
    pub fn assert_body(&self, body: &str) -> &Exchange {
        let got = &self.outcome.body;
        self.check(got == body, || {
            format!("expected body {body:?}, got {got:?}")
        })
    }

    /// Asserts that some line logged at `level` contains `text`.
    #[track_caller]
    pub fn assert_logged(&self, level: &str, text: &str) -> &Exchange {
        let ok = self.outcome.logged(level, text);
        self.check(ok, || {
            format!("expected a `{level}` log line containing {text:?}")
        })
    }

    /// Asserts the exact log lines, as `(level, message)`.
    #[track_caller]
    pub fn assert_logs(&self, lines: &[(&str, &str)]) -> &Exchange {
        let got: Vec<(&str, &str)> = self
            .outcome
            .logs
            .iter()
            .map(|l| (l.level.as_str(), l.message.as_str()))
            .collect();
        self.check(got == lines, || {
            format!("expected logs {lines:?}, got {got:?}")
        })
    }
}
