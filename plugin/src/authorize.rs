//! Step 4 of the data path: may this identity make this call?
//!
//! An identity may call `method host path` when one grant of one of its
//! groups lists the method, a matching host and a matching path pattern.
//! The first such grant, in policy order, is the evidence the decision
//! carries. Nothing else is allowed.

use crate::policy::{Identity, PathPattern, Policy};
use std::fmt;

/// Methods on hosts under path patterns.
#[derive(Debug, Clone)]
pub struct Grant {
    /// The grant's name within its group.
    pub name: String,
    methods: Vec<String>,
    hosts: Vec<HostPattern>,
    paths: Vec<PathPattern>,
}

impl Grant {
    /// A grant from its compiled parts. `methods` holds upper-case method
    /// names or `*`.
    pub fn new(
        name: String,
        methods: Vec<String>,
        hosts: Vec<HostPattern>,
        paths: Vec<PathPattern>,
    ) -> Self {
        Self {
            name,
            methods,
            hosts,
            paths,
        }
    }

    /// Whether this grant covers the call. `host` is lower-case without a
    /// port; `path` is canonical, without query.
    pub fn covers(&self, method: &str, host: &str, path: &str) -> bool {
        self.methods.iter().any(|m| m == "*" || m == method)
            && self.hosts.iter().any(|h| h.matches(host))
            && self.paths.iter().any(|p| p.matches(path))
    }
}

/// A host in a grant: exact, `*.` plus a domain (exactly one more label),
/// or `*` for any host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostPattern {
    /// Any host.
    Any,
    /// Exactly this host.
    Exact(String),
    /// One label, then this suffix (which starts with `.`).
    Subdomain(String),
}

/// Why a host pattern was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostPatternError;

impl fmt::Display for HostPatternError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("must be `*`, a lower-case host name, or `*.` and a host name")
    }
}

impl HostPattern {
    /// Parses a host pattern.
    ///
    /// # Errors
    ///
    /// Returns an error for upper case, a port, or characters outside host
    /// names.
    pub fn parse(text: &str) -> Result<Self, HostPatternError> {
        if text == "*" {
            return Ok(Self::Any);
        }
        let (name, wildcard) = match text.strip_prefix("*.") {
            Some(rest) => (rest, true),
            None => (text, false),
        };
        let valid = !name.is_empty()
            && name.split('.').all(|label| !label.is_empty())
            && name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.');
        match (valid, wildcard) {
            (false, _) => Err(HostPatternError),
            (true, true) => Ok(Self::Subdomain(format!(".{name}"))),
            (true, false) => Ok(Self::Exact(name.to_owned())),
        }
    }

    /// Whether a lower-case host without port matches.
    pub fn matches(&self, host: &str) -> bool {
        match self {
            Self::Any => true,
            Self::Exact(name) => host == name,
            Self::Subdomain(suffix) => host
                .strip_suffix(suffix.as_str())
                .is_some_and(|label| !label.is_empty() && !label.contains('.')),
        }
    }
}

/// The grant that allowed a call, as evidence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Permit {
    /// The group holding the grant.
    pub group: String,
    /// The grant.
    pub grant: String,
}

/// Finds the first grant, across the identity's groups in policy order,
/// that covers the call.
pub fn authorize(
    policy: &Policy,
    identity: &Identity,
    method: &str,
    host: &str,
    path: &str,
) -> Option<Permit> {
    policy.groups_of(identity).find_map(|group| {
        let grant = group.grants.iter().find(|g| g.covers(method, host, path))?;
        Some(Permit {
            group: group.name.clone(),
            grant: grant.name.clone(),
        })
    })
}

/// The authority without its port, in lower case: `Books.Example:8443`
/// becomes `books.example`, `[::1]:80` becomes `[::1]`.
pub fn host_of(authority: &str) -> String {
    let host = match authority.rfind(':') {
        Some(colon) if !authority.get(colon..).unwrap_or_default().contains(']') => {
            authority.get(..colon).unwrap_or(authority)
        }
        _ => authority,
    };
    host.to_ascii_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_patterns_match_as_documented() {
        let exact = HostPattern::parse("books.example").unwrap();
        assert!(exact.matches("books.example"));
        assert!(!exact.matches("x.books.example"));
        let sub = HostPattern::parse("*.example").unwrap();
        assert!(sub.matches("books.example"));
        assert!(!sub.matches("example"));
        assert!(!sub.matches("a.b.example"));
        assert!(!sub.matches("booksexample"));
        assert!(HostPattern::parse("*").unwrap().matches("anything"));
    }

    #[test]
    fn bad_host_patterns_are_refused() {
        for text in [
            "",
            "Books.example",
            "books.example:443",
            "*.",
            "a..b",
            "*x.example",
        ] {
            assert_eq!(HostPattern::parse(text), Err(HostPatternError), "{text}");
        }
    }

    #[test]
    fn host_of_strips_port_and_case() {
        assert_eq!(host_of("Books.Example:8443"), "books.example");
        assert_eq!(host_of("books.example"), "books.example");
        assert_eq!(host_of("[::1]:80"), "[::1]");
        assert_eq!(host_of("[::1]"), "[::1]");
    }
}
