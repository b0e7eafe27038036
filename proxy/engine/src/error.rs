//! Error types: configuration build errors carry the config path; connection errors carry
//! the side that failed, which drives protocol reply codes, retries and metric labels.

use std::fmt;
use std::io;

/// A configuration error: where (`services[web].handler.type`), what value, what is accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct BuildError {
    /// Config path of the offending field.
    pub path: String,
    /// What is wrong, naming the value and what is accepted.
    pub msg: String,
}

impl fmt::Display for BuildError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path, self.msg)
    }
}

impl BuildError {
    /// A new error at `path`.
    pub fn new(path: impl Into<String>, msg: impl Into<String>) -> Self {
        BuildError {
            path: path.into(),
            msg: msg.into(),
        }
    }
}

/// Several build errors, reported together.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct BuildErrors(pub Vec<BuildError>);

impl fmt::Display for BuildErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl From<BuildError> for BuildErrors {
    fn from(e: BuildError) -> Self {
        BuildErrors(vec![e])
    }
}

/// Why an outbound dial failed; mapped to SOCKS/HTTP/relay reply codes by handlers.
#[derive(Debug, thiserror::Error)]
pub enum DialError {
    /// The target is refused by a bypass.
    #[error("{0}: refused by bypass")]
    Bypassed(String),
    /// A chain or hop the service references does not exist (fail closed).
    #[error("{0}")]
    Config(String),
    /// The target or a chain node could not be reached.
    #[error("dial {addr}: {source}")]
    Io {
        /// Target or node address.
        addr: String,
        /// Underlying error.
        #[source]
        source: io::Error,
    },
    /// A proxy in the chain refused the request.
    #[error("{0}")]
    Upstream(String),
    /// The attempt ran out of time.
    #[error("dial {0}: timed out")]
    Timeout(String),
    /// No forwarder target is available.
    #[error("node not available")]
    NoNode,
}

impl DialError {
    /// An I/O error for `addr`.
    pub fn io(addr: impl Into<String>, source: io::Error) -> Self {
        DialError::Io {
            addr: addr.into(),
            source,
        }
    }
}

/// The kind of the underlying error (timed out for timeouts); the message keeps the address
/// and the source chain stays reachable.
impl From<DialError> for io::Error {
    fn from(e: DialError) -> Self {
        let kind = match &e {
            DialError::Io { source, .. } => source.kind(),
            DialError::Timeout(_) => io::ErrorKind::TimedOut,
            _ => io::ErrorKind::Other,
        };
        io::Error::new(kind, e)
    }
}
