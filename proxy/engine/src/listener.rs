//! Listeners: one module per GOST listener type string, plus [`Queued`], the accept queue the
//! transport listeners (TLS, WebSocket, multiplexed) share.

pub mod mtls;
pub mod mws;
pub mod rtcp;
pub mod rudp;
pub mod tcp;
pub mod tls;
pub mod udp;
pub mod ws;

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use futures::future::BoxFuture;
use tokio::sync::mpsc;

use crate::component::{Inbound, Listener, ListenerOpts};
use crate::error::BuildError;
use crate::io::BoxStream;

/// A doubling pause between accept retries, back to its first value after a success.
#[derive(Debug, Clone)]
pub struct Backoff {
    first: Duration,
    max: Duration,
    next: Duration,
}

impl Backoff {
    /// Starts at `first`, doubling up to `max`.
    pub const fn new(first: Duration, max: Duration) -> Backoff {
        Backoff {
            first,
            max,
            next: first,
        }
    }

    /// For an accept loop when the process is out of descriptors or memory (EMFILE, ENFILE,
    /// ENOBUFS, ENOMEM): 10 ms doubling to 1 s, so the loop neither spins at the limit nor
    /// waits long once descriptors are free again.
    pub const fn exhausted() -> Backoff {
        Backoff::new(Duration::from_millis(10), Duration::from_secs(1))
    }

    /// Whether no pause was taken since the last reset (the first failure of a run).
    pub fn is_first(&self) -> bool {
        self.next == self.first
    }

    /// The pause to take now; the next one is twice as long (at most `max`).
    pub fn pause(&mut self) -> Duration {
        let now = self.next;
        self.next = (self.next * 2).min(self.max);
        now
    }

    /// After a success.
    pub fn reset(&mut self) {
        self.next = self.first;
    }
}

/// What an accept error means for the loop.
#[derive(Debug, PartialEq, Eq)]
pub enum AcceptError {
    /// One pending connection failed (reset or aborted before it was accepted).
    Connection,
    /// The process or system is out of descriptors or memory.
    Exhausted,
    /// The listener itself failed.
    Listener,
}

pub fn accept_error(e: &std::io::Error) -> AcceptError {
    use std::io::ErrorKind::*;
    match e.raw_os_error() {
        Some(libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM) => {
            return AcceptError::Exhausted
        }
        Some(libc::EPROTO | libc::EPERM) => return AcceptError::Connection,
        _ => {}
    }
    match e.kind() {
        ConnectionAborted | ConnectionReset | Interrupted | WouldBlock => AcceptError::Connection,
        _ => AcceptError::Listener,
    }
}

/// Where an upgraded connection (or each stream of a multiplexed one) is delivered.
pub type Accepted = mpsc::Sender<(BoxStream, SocketAddr)>;

/// Turns one raw TCP connection into zero or more accepted streams (TLS handshake, WebSocket
/// upgrade, smux session…), sending them to the queue. Runs concurrently per connection.
pub type Upgrade =
    Arc<dyn Fn(BoxStream, SocketAddr, Accepted) -> BoxFuture<'static, ()> + Send + Sync>;

/// A listener fed by a background task: TCP accept → per-connection [`Upgrade`] → a bounded
/// queue of `backlog` streams. Dropping the listener stops the task and every upgrade in
/// progress (their `JoinSet` is owned by the task).
pub struct Queued {
    rx: tokio::sync::Mutex<mpsc::Receiver<(BoxStream, SocketAddr)>>,
    local: SocketAddr,
    task: tokio::task::AbortHandle,
}

impl Drop for Queued {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Queued {
    /// Binds a TCP socket for `o` and starts the accept task.
    pub fn bind(o: &ListenerOpts, backlog: usize, upgrade: Upgrade) -> Result<Queued, BuildError> {
        let l = tcp::bind_tcp(&o.path, &o.addr, 1024, false)?;
        let local = l
            .local_addr()
            .map_err(|e| BuildError::new(format!("{}.addr", o.path), e.to_string()))?;
        let (tx, rx) = mpsc::channel(backlog.max(1));
        let task = tokio::spawn(async move {
            let mut set = tokio::task::JoinSet::new();
            let mut exhausted = Backoff::exhausted();
            loop {
                tokio::select! {
                    r = l.accept() => match r {
                        Ok((s, peer)) => {
                            exhausted.reset();
                            let _ = s.set_nodelay(true);
                            set.spawn(upgrade(Box::new(s), peer, tx.clone()));
                        }
                        Err(e) => match accept_error(&e) {
                            AcceptError::Connection => {}
                            AcceptError::Exhausted => {
                                if exhausted.is_first() {
                                    tracing::warn!(error = %e, "accept: out of resources; backing off until descriptors are free");
                                }
                                tokio::time::sleep(exhausted.pause()).await;
                            }
                            AcceptError::Listener => {
                                tracing::warn!(error = %e, "accept failed");
                                tokio::time::sleep(Duration::from_millis(100)).await;
                            }
                        },
                    },
                    Some(_) = set.join_next(), if !set.is_empty() => {}
                    _ = tx.closed() => return,
                }
            }
        });
        Ok(Queued {
            rx: tokio::sync::Mutex::new(rx),
            local,
            task: task.abort_handle(),
        })
    }
}

#[async_trait]
impl Listener for Queued {
    async fn accept(&self) -> io::Result<(Inbound, SocketAddr)> {
        match self.rx.lock().await.recv().await {
            Some((s, peer)) => Ok((Inbound::Stream(s), peer)),
            None => Err(io::Error::new(
                io::ErrorKind::NotConnected,
                "listener closed",
            )),
        }
    }
    fn local_addr(&self) -> SocketAddr {
        self.local
    }
}

/// The server TLS config a TLS-based listener must have.
pub fn server_tls(o: &ListenerOpts) -> Result<Arc<rustls::ServerConfig>, BuildError> {
    o.tls.clone().ok_or_else(|| {
        BuildError::new(
            format!("{}.tls", o.path),
            "this listener needs a TLS configuration (none was built)",
        )
    })
}

/// `backlog` (default 128) and the TCP keys every stream listener accepts.
pub fn backlog(o: &ListenerOpts) -> Result<usize, BuildError> {
    o.md.mark_known(crate::md::TCP_KEYS);
    o.md.mark_known(&["reuseport", "reusePort"]);
    Ok(o.md.int(&["backlog"])?.unwrap_or(128).clamp(1, 65536) as usize)
}

#[cfg(test)]
mod accept_tests {
    use super::*;

    #[test]
    fn accept_errors_are_classified() {
        let os = std::io::Error::from_raw_os_error;
        assert_eq!(accept_error(&os(libc::EMFILE)), AcceptError::Exhausted);
        assert_eq!(accept_error(&os(libc::ENFILE)), AcceptError::Exhausted);
        assert_eq!(
            accept_error(&os(libc::ECONNABORTED)),
            AcceptError::Connection
        );
        assert_eq!(accept_error(&os(libc::EINVAL)), AcceptError::Listener);
        let tls = std::io::Error::new(std::io::ErrorKind::InvalidData, "bad handshake");
        assert_eq!(accept_error(&tls), AcceptError::Listener);
    }

    #[test]
    fn backoff_doubles_to_its_cap_and_resets() {
        let mut b = Backoff::new(Duration::from_secs(1), Duration::from_secs(5));
        assert!(b.is_first());
        let pauses: Vec<u64> = (0..5).map(|_| b.pause().as_secs()).collect();
        assert_eq!(pauses, [1, 2, 4, 5, 5]);
        assert!(!b.is_first());
        b.reset();
        assert_eq!(b.pause(), Duration::from_secs(1));
    }
}
