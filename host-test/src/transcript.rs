//! A readable record of every call across the boundary, in both directions.
//!
//! Calls from the host into the filter (`proxy_on_*`) open a line with `→`;
//! the host calls the filter makes while handling them are indented under
//! it with `←`, each with its arguments, its status and what it returned.
//! A failing assertion prints the transcript, so the reader sees what the
//! filter asked for and what it was told.

use std::fmt::{self, Write as _};

/// One crossing of the boundary.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Entry {
    /// The host called an export of the guest.
    Enter {
        /// Worker (VM) index.
        worker: usize,
        /// The export and its arguments, rendered.
        call: String,
    },
    /// The guest's export returned.
    Return {
        /// The returned value, rendered.
        value: String,
    },
    /// The guest called a host function.
    HostCall {
        /// The import and its arguments, rendered.
        call: String,
        /// The status and any value returned, rendered.
        result: String,
    },
    /// Something the host did on its own: forward a request, fail a VM.
    Note(String),
}

/// The entries, in order.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Transcript {
    entries: Vec<Entry>,
    enabled: bool,
}

/// The most entries a transcript keeps; a filter in a loop must not
/// exhaust the test's memory.
const MAX_ENTRIES: usize = 20_000;

impl Transcript {
    /// A transcript that records when `enabled`; benchmarks turn it off.
    pub fn new(enabled: bool) -> Transcript {
        Transcript {
            entries: Vec::new(),
            enabled,
        }
    }

    /// The entries recorded so far.
    pub fn entries(&self) -> &[Entry] {
        &self.entries
    }

    pub(crate) fn push(&mut self, entry: Entry) {
        if self.enabled && self.entries.len() < MAX_ENTRIES {
            self.entries.push(entry);
        }
    }

    pub(crate) fn is_enabled(&self) -> bool {
        self.enabled
    }

    pub(crate) fn take(&mut self) -> Transcript {
        Transcript {
            entries: std::mem::take(&mut self.entries),
            enabled: self.enabled,
        }
    }

    pub(crate) fn append(&mut self, other: Transcript) {
        for entry in other.entries {
            self.push(entry);
        }
    }
}

impl fmt::Display for Transcript {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut depth = 0usize;
        for entry in &self.entries {
            let indent = "  ".repeat(depth);
            match entry {
                Entry::Enter { worker, call } => {
                    writeln!(f, "{indent}→ [vm {worker}] {call}")?;
                    depth += 1;
                }
                Entry::Return { value } => {
                    depth = depth.saturating_sub(1);
                    let indent = "  ".repeat(depth);
                    writeln!(f, "{indent}  = {value}")?;
                }
                Entry::HostCall { call, result } => writeln!(f, "{indent}← {call} = {result}")?,
                Entry::Note(note) => writeln!(f, "{indent}· {note}")?,
            }
        }
        Ok(())
    }
}

/// Renders bytes for a transcript: as a quoted string when they are
/// UTF-8, cut at 96 characters.
pub fn show(bytes: &[u8]) -> String {
    const LIMIT: usize = 96;
    match std::str::from_utf8(bytes) {
        Ok(text) => {
            let mut out = String::from("\"");
            for (index, ch) in text.chars().enumerate() {
                if index == LIMIT {
                    out.push('…');
                    break;
                }
                out.extend(ch.escape_debug());
            }
            out.push('"');
            out
        }
        Err(_) => {
            let mut out = String::from("0x");
            for byte in bytes.iter().take(LIMIT / 2) {
                let _ = write!(out, "{byte:02x}");
            }
            if bytes.len() > LIMIT / 2 {
                out.push('…');
            }
            out
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nests_host_calls_under_the_callback() {
        let mut transcript = Transcript::new(true);
        transcript.push(Entry::Enter {
            worker: 0,
            call: "proxy_on_log(2)".into(),
        });
        transcript.push(Entry::HostCall {
            call: "proxy_log(info, \"x\")".into(),
            result: "Ok".into(),
        });
        transcript.push(Entry::Return { value: "()".into() });
        assert_eq!(
            transcript.to_string(),
            "→ [vm 0] proxy_on_log(2)\n  ← proxy_log(info, \"x\") = Ok\n  = ()\n"
        );
    }

    #[test]
    fn shows_text_and_binary() {
        assert_eq!(show(b"a\"b"), "\"a\\\"b\"");
        assert_eq!(show(&[0xff, 0x00]), "0xff00");
    }
}
