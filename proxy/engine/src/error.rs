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

/// Why the program (`gost-proxy` start-up, hook runs, supervision) stopped: a message, or
/// what it was doing with the error that stopped it (the whole source chain is displayed,
/// `doing: error: cause: …`).
#[derive(Debug, thiserror::Error)]
pub enum ProgramError {
    /// A plain message (bad flags, unsupported sources, timeouts).
    #[error("{0}")]
    Msg(String),
    /// An error with what the program was doing.
    #[error("{context}: {}", chain(&**.source))]
    Context {
        /// What the program was doing (`-C gost.yaml`, `api.addr :18080`, …).
        context: String,
        /// The error.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// An I/O error without context.
    #[error("{}", chain(.0))]
    Io(#[from] io::Error),
}

impl ProgramError {
    /// A plain message.
    pub fn msg(m: impl Into<String>) -> Self {
        ProgramError::Msg(m.into())
    }
}

impl From<gost_config::ConfigError> for ProgramError {
    fn from(e: gost_config::ConfigError) -> Self {
        ProgramError::Msg(chain(&e))
    }
}

/// An error and its sources, `a: b: c`.
fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}

/// Adds what the program was doing to an error (`.context("-C -")`).
pub trait Context<T> {
    /// With a fixed context.
    fn context(self, c: impl fmt::Display) -> Result<T, ProgramError>;
    /// With a context computed on error only.
    fn with_context<C: fmt::Display>(self, f: impl FnOnce() -> C) -> Result<T, ProgramError>;
}

impl<T, E: std::error::Error + Send + Sync + 'static> Context<T> for Result<T, E> {
    fn context(self, c: impl fmt::Display) -> Result<T, ProgramError> {
        self.map_err(|e| ProgramError::Context {
            context: c.to_string(),
            source: Box::new(e),
        })
    }
    fn with_context<C: fmt::Display>(self, f: impl FnOnce() -> C) -> Result<T, ProgramError> {
        self.map_err(|e| ProgramError::Context {
            context: f().to_string(),
            source: Box::new(e),
        })
    }
}
