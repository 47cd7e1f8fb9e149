//! Path patterns in grants, and the canonical form a request path must have
//! before it is matched.
//!
//! A pattern is a `/`-separated list of segments:
//!
//! - a literal segment matches itself exactly (`/ledger`);
//! - `{name}` matches any one non-empty segment (`/employees/{id}`);
//! - a final `**` matches zero or more further segments, so
//!   `/ledger/**` grants `/ledger`, `/ledger/` and everything below.
//!
//! Matching is byte-exact and case-sensitive. Request paths are matched only
//! in canonical form (see [`canonical_path`]); anything that could be read
//! two ways by Warden and the upstream is refused rather than guessed at.

use std::fmt;

/// A compiled path pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathPattern {
    segments: Vec<Segment>,
    rest: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    Literal(String),
    Param,
}

/// Why a path pattern was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PatternError(&'static str);

impl fmt::Display for PatternError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0)
    }
}

impl PathPattern {
    /// Parses a pattern.
    ///
    /// # Errors
    ///
    /// Returns an error for a pattern that does not start with `/`, holds
    /// an empty, `.` or `..` segment, a `**` that is not last, a malformed
    /// `{param}`, or characters a canonical path cannot contain.
    pub fn parse(text: &str) -> Result<Self, PatternError> {
        let body = text
            .strip_prefix('/')
            .ok_or(PatternError("must start with `/`"))?;
        if text == "/" {
            return Ok(Self {
                segments: vec![Segment::Literal(String::new())],
                rest: false,
            });
        }
        let parts: Vec<&str> = body.split('/').collect();
        let mut segments = Vec::with_capacity(parts.len());
        let mut rest = false;
        for (i, part) in parts.iter().enumerate() {
            if *part == "**" {
                if i + 1 != parts.len() {
                    return Err(PatternError("`**` is allowed only as the last segment"));
                }
                rest = true;
            } else {
                segments.push(parse_segment(part, i + 1 == parts.len())?);
            }
        }
        Ok(Self { segments, rest })
    }

    /// Whether a canonical request path (without query) matches.
    pub fn matches(&self, path: &str) -> bool {
        let Some(body) = path.strip_prefix('/') else {
            return false;
        };
        let mut parts = body.split('/');
        for segment in &self.segments {
            match (segment, parts.next()) {
                (Segment::Literal(lit), Some(part)) if lit == part => {}
                (Segment::Param, Some(part)) if !part.is_empty() => {}
                _ => return false,
            }
        }
        self.rest || parts.next().is_none()
    }
}

fn parse_segment(part: &str, last: bool) -> Result<Segment, PatternError> {
    if let Some(name) = part.strip_prefix('{') {
        let name = name
            .strip_suffix('}')
            .ok_or(PatternError("`{` without a closing `}`"))?;
        if name.is_empty() || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
            return Err(PatternError("a `{param}` name must be `[A-Za-z0-9_]+`"));
        }
        return Ok(Segment::Param);
    }
    if part.is_empty() && !last {
        return Err(PatternError("empty segment (`//`)"));
    }
    if part == "." || part == ".." {
        return Err(PatternError(
            "`.` and `..` segments never match a canonical path",
        ));
    }
    if part.contains(['{', '}', '*']) {
        return Err(PatternError(
            "`{`, `}` and `*` are allowed only as whole segments",
        ));
    }
    if !part.bytes().all(is_path_byte) {
        return Err(PatternError("character not allowed in a canonical path"));
    }
    Ok(Segment::Literal(part.to_owned()))
}

/// Why a request path is not canonical.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PathError {
    /// It does not start with `/` (asterisk or absolute form).
    NotOriginForm,
    /// It holds `//`, a `.` or `..` segment.
    DotOrEmptySegment,
    /// It holds a percent-encoded `/`, `\`, `.` or `%`, which upstreams
    /// decode differently.
    AmbiguousEscape,
    /// It holds a byte outside the RFC 3986 path characters.
    BadCharacter,
}

impl PathError {
    /// The stable reason code.
    pub fn reason(self) -> &'static str {
        "path_not_canonical"
    }
}

impl fmt::Display for PathError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::NotOriginForm => "path does not start with `/`",
            Self::DotOrEmptySegment => "path holds an empty, `.` or `..` segment",
            Self::AmbiguousEscape => "path holds an encoded `/`, `\\`, `.` or `%`",
            Self::BadCharacter => "path holds a character outside RFC 3986",
        })
    }
}

/// Returns the path part of a request target (before `?` or `#`) after
/// checking that it is canonical.
///
/// # Errors
///
/// Returns which rule the path breaks.
pub fn canonical_path(target: &str) -> Result<&str, PathError> {
    let path = target.split(['?', '#']).next().unwrap_or_default();
    if !path.starts_with('/') {
        return Err(PathError::NotOriginForm);
    }
    if !path.bytes().all(is_path_byte) {
        return Err(PathError::BadCharacter);
    }
    let segments: Vec<&str> = path.split('/').skip(1).collect();
    let last = segments.len().saturating_sub(1);
    for (i, segment) in segments.iter().enumerate() {
        let empty_inside = segment.is_empty() && i != last;
        if empty_inside || *segment == "." || *segment == ".." {
            return Err(PathError::DotOrEmptySegment);
        }
    }
    if has_ambiguous_escape(path) {
        return Err(PathError::AmbiguousEscape);
    }
    Ok(path)
}

fn has_ambiguous_escape(path: &str) -> bool {
    let lower = path.to_ascii_lowercase();
    ["%2f", "%5c", "%2e", "%25"]
        .iter()
        .any(|e| lower.contains(e))
}

/// RFC 3986 `pchar` plus `/`, and `%` for escapes.
fn is_path_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"-._~!$&'()*+,;=:@/%".contains(&b)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pattern(text: &str) -> PathPattern {
        PathPattern::parse(text).unwrap()
    }

    #[test]
    fn literal_matches_only_itself() {
        let p = pattern("/ledger/entries");
        assert!(p.matches("/ledger/entries"));
        assert!(!p.matches("/ledger/entries/"));
        assert!(!p.matches("/ledger/entries/1"));
        assert!(!p.matches("/ledger"));
        assert!(!p.matches("/Ledger/entries"));
    }

    #[test]
    fn param_matches_one_non_empty_segment() {
        let p = pattern("/employees/{id}/payslips");
        assert!(p.matches("/employees/e-17/payslips"));
        assert!(!p.matches("/employees//payslips"));
        assert!(!p.matches("/employees/a/b/payslips"));
        assert!(!p.matches("/employees/e-17"));
    }

    #[test]
    fn rest_matches_the_prefix_and_below() {
        let p = pattern("/ledger/**");
        assert!(p.matches("/ledger"));
        assert!(p.matches("/ledger/"));
        assert!(p.matches("/ledger/2026/12"));
        assert!(!p.matches("/ledgers"));
        assert!(!p.matches("/"));
    }

    #[test]
    fn root_pattern_matches_only_root() {
        let p = pattern("/");
        assert!(p.matches("/"));
        assert!(!p.matches("/a"));
        assert!(pattern("/**").matches("/anything/at/all"));
    }

    #[test]
    fn bad_patterns_are_refused_with_their_reason() {
        let cases = [
            ("ledger", "must start with `/`"),
            ("/a/**/b", "`**` is allowed only as the last segment"),
            ("/a//b", "empty segment (`//`)"),
            (
                "/a/../b",
                "`.` and `..` segments never match a canonical path",
            ),
            ("/a/{id", "`{` without a closing `}`"),
            ("/a/{}", "a `{param}` name must be `[A-Za-z0-9_]+`"),
            (
                "/a/x*",
                "`{`, `}` and `*` are allowed only as whole segments",
            ),
            ("/a/b c", "character not allowed in a canonical path"),
        ];
        for (text, message) in cases {
            assert_eq!(
                PathPattern::parse(text).unwrap_err().to_string(),
                message,
                "{text}"
            );
        }
    }

    #[test]
    fn canonical_path_strips_query_and_fragment() {
        assert_eq!(canonical_path("/a/b?x=1#f"), Ok("/a/b"));
        assert_eq!(canonical_path("/"), Ok("/"));
        assert_eq!(canonical_path("/a/"), Ok("/a/"));
    }

    #[test]
    fn non_canonical_paths_are_refused() {
        let cases = [
            ("*", PathError::NotOriginForm),
            ("http://h/a", PathError::NotOriginForm),
            ("/a//b", PathError::DotOrEmptySegment),
            ("/a/../b", PathError::DotOrEmptySegment),
            ("/a/./b", PathError::DotOrEmptySegment),
            ("/a/..", PathError::DotOrEmptySegment),
            ("/a%2Fb", PathError::AmbiguousEscape),
            ("/a/%2e%2e/b", PathError::AmbiguousEscape),
            ("/a%5cb", PathError::AmbiguousEscape),
            ("/a%252fb", PathError::AmbiguousEscape),
            ("/a\\b", PathError::BadCharacter),
            ("/a b", PathError::BadCharacter),
        ];
        for (path, error) in cases {
            assert_eq!(canonical_path(path), Err(error), "{path}");
        }
    }
}
