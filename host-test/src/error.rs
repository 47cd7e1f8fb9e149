//! The harness's own errors: loading modules, starting VMs, reading files.
//!
//! A guest that misbehaves is not an error of the harness: it gets the ABI
//! status Envoy would give it, or its VM fails the way Envoy's does, and
//! the outcome says so.

use std::fmt;
use std::path::PathBuf;

/// Everything that can go wrong before a filter gets to run.
#[derive(Debug)]
pub struct Error {
    kind: Box<ErrorKind>,
}

/// The distinct failures, one per cause.
#[derive(Debug)]
pub enum ErrorKind {
    /// A file could not be read or written.
    Io {
        /// The file concerned.
        path: PathBuf,
        /// The operating system's error.
        source: std::io::Error,
    },
    /// wasmtime refused the module or failed to instantiate it.
    Wasm {
        /// What the harness was doing.
        context: String,
        /// wasmtime's message.
        message: String,
    },
    /// The module lacks an export every proxy-wasm filter has.
    MissingExport(String),
    /// The module declares no proxy-wasm ABI version the harness speaks.
    UnsupportedAbi,
    /// `proxy_on_vm_start` returned false.
    VmStartRejected,
    /// `proxy_on_configure` returned false.
    ConfigureRejected,
    /// A request, a test case or a configuration is malformed.
    Invalid(String),
    /// The stream or worker named does not exist.
    UnknownStream(u32),
}

impl Error {
    /// The cause, for callers that branch on it.
    pub fn kind(&self) -> &ErrorKind {
        &self.kind
    }

    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Error {
        ErrorKind::Io {
            path: path.into(),
            source,
        }
        .into()
    }

    pub(crate) fn wasm(context: impl Into<String>, error: &wasmtime::Error) -> Error {
        ErrorKind::Wasm {
            context: context.into(),
            message: format!("{error:#}"),
        }
        .into()
    }

    pub(crate) fn invalid(message: impl Into<String>) -> Error {
        ErrorKind::Invalid(message.into()).into()
    }
}

impl From<ErrorKind> for Error {
    fn from(kind: ErrorKind) -> Error {
        Error {
            kind: Box::new(kind),
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &*self.kind {
            ErrorKind::Io { path, source } => write!(f, "`{}`: {source}", path.display()),
            ErrorKind::Wasm { context, message } => write!(f, "{context}: {message}"),
            ErrorKind::MissingExport(name) => {
                write!(f, "module does not export `{name}`")
            }
            ErrorKind::UnsupportedAbi => write!(
                f,
                "module exports neither `proxy_abi_version_0_2_1` nor \
                 `proxy_abi_version_0_2_0`"
            ),
            ErrorKind::VmStartRejected => write!(f, "`proxy_on_vm_start` returned false"),
            ErrorKind::ConfigureRejected => write!(f, "`proxy_on_configure` returned false"),
            ErrorKind::Invalid(message) => f.write_str(message),
            ErrorKind::UnknownStream(id) => write!(f, "no open stream with context `{id}`"),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match &*self.kind {
            ErrorKind::Io { source, .. } => Some(source),
            _ => None,
        }
    }
}

/// The harness's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
