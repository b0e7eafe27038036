//! `udp` listener: one UDP socket, datagrams demultiplexed by client address into sessions,
//! each handed once to the handler.
//!
//! ```yaml
//! services:
//! - name: dns
//!   addr: :5353
//!   handler: {type: udp}
//!   listener: {type: udp, metadata: {keepalive: true, ttl: 30s}}
//!   forwarder: {nodes: [{name: ns, addr: 127.0.0.1:53}]}
//! ```
//!
//! | key | type | default | meaning |
//! |---|---|---|---|
//! | `keepalive` | bool | false | keep a session after the first reply (otherwise one request, one response) |
//! | `ttl` / `keepalive.ttl` | duration | 5s | idle sessions die after between ttl and 2×ttl |
//! | `readBufferSize` / `udp.bufferSize` | int | 4096 | largest datagram (longer ones are truncated) |
//! | `readQueueSize` / `recvQueueSize` | int | 128 | datagrams queued per session (overflow is dropped) |
//! | `backlog` | int | 128 | sessions waiting for the handler (overflow is dropped) |

use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use parking_lot::Mutex;
use tokio::net::UdpSocket;
use tokio::sync::mpsc;

use crate::addr::parse_listen_addr;
use crate::component::{Inbound, Listener, ListenerOpts};
use crate::error::BuildError;

struct SessionState {
    tx: mpsc::Sender<Bytes>,
    active: Arc<AtomicBool>,
    closed: Arc<AtomicBool>,
}

type Sessions = Arc<Mutex<HashMap<SocketAddr, SessionState>>>;

/// One client's UDP session.
pub struct UdpSession {
    peer: SocketAddr,
    sock: Arc<UdpSocket>,
    rx: tokio::sync::Mutex<mpsc::Receiver<Bytes>>,
    active: Arc<AtomicBool>,
    closed: Arc<AtomicBool>,
    keepalive: bool,
    sessions: Sessions,
}

impl UdpSession {
    /// The client address.
    pub fn peer(&self) -> SocketAddr {
        self.peer
    }

    /// Next datagram from the client; `None` when the session has ended.
    pub async fn recv(&self) -> Option<Bytes> {
        if self.closed.load(Ordering::Relaxed) {
            return None;
        }
        let b = self.rx.lock().await.recv().await?;
        self.active.store(true, Ordering::Relaxed);
        Some(b)
    }

    /// Sends a datagram to the client. Without `keepalive` the session ends after this.
    pub async fn send(&self, data: &[u8]) -> io::Result<usize> {
        let n = self.sock.send_to(data, self.peer).await?;
        self.active.store(true, Ordering::Relaxed);
        if !self.keepalive {
            self.close();
        }
        Ok(n)
    }

    /// Ends the session.
    pub fn close(&self) {
        self.closed.store(true, Ordering::Relaxed);
        self.sessions.lock().remove(&self.peer);
    }

    /// Whether the session has ended.
    pub fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Relaxed)
    }
}

impl Drop for UdpSession {
    fn drop(&mut self) {
        self.close();
    }
}

/// A bound UDP listener.
pub struct UdpListener {
    local: SocketAddr,
    accept_rx: tokio::sync::Mutex<mpsc::Receiver<(UdpSession, SocketAddr)>>,
    tasks: Vec<tokio::task::AbortHandle>,
}

impl Drop for UdpListener {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

struct UdpOpts {
    keepalive: bool,
    ttl: Duration,
    buf_size: usize,
    queue: usize,
    backlog: usize,
}

fn opts(o: &ListenerOpts) -> Result<UdpOpts, BuildError> {
    let keepalive = o.md.bool_or(&["keepalive"], false)?;
    let ttl =
        o.md.duration(&["ttl", "keepalive.ttl"])?
            .filter(|d| !d.is_zero())
            .unwrap_or(Duration::from_secs(5));
    let buf_size =
        o.md.int(&["readBufferSize", "udp.bufferSize", "udpBufferSize"])?
            .unwrap_or(4096)
            .clamp(512, 65535) as usize;
    let queue =
        o.md.int(&["readQueueSize", "recvQueueSize"])?
            .unwrap_or(128)
            .clamp(1, 65536) as usize;
    let backlog = o.md.int(&["backlog"])?.unwrap_or(128).clamp(1, 65536) as usize;
    o.md.mark_known(&["stateless"]);
    Ok(UdpOpts {
        keepalive,
        ttl,
        buf_size,
        queue,
        backlog,
    })
}

/// Validates `udp` listener options without binding.
pub fn check(o: &ListenerOpts) -> Result<(), BuildError> {
    opts(o).map(|_| ())
}

/// Factory for `udp`.
pub fn new(o: &ListenerOpts) -> Result<Arc<dyn Listener>, BuildError> {
    let UdpOpts {
        keepalive,
        ttl,
        buf_size,
        queue,
        backlog,
    } = opts(o)?;
    let sa = parse_listen_addr(&o.addr).ok_or_else(|| {
        BuildError::new(
            format!("{}.addr", o.path),
            format!("invalid listen address {:?} (expected host:port)", o.addr),
        )
    })?;
    let bind = || -> io::Result<UdpSocket> {
        let sock = socket2::Socket::new(
            socket2::Domain::for_address(sa),
            socket2::Type::DGRAM,
            Some(socket2::Protocol::UDP),
        )?;
        if sa.is_ipv6() {
            let _ = sock.set_only_v6(false);
        }
        sock.set_reuse_address(true)?;
        sock.set_nonblocking(true)?;
        sock.bind(&sa.into())?;
        UdpSocket::from_std(sock.into())
    };
    let sock = Arc::new(bind().map_err(|e| {
        BuildError::new(
            format!("{}.addr", o.path),
            format!("cannot listen on {}: {e}", o.addr),
        )
    })?);
    let local = sock
        .local_addr()
        .map_err(|e| BuildError::new(format!("{}.addr", o.path), e.to_string()))?;
    let sessions: Sessions = Arc::new(Mutex::new(HashMap::new()));
    let (accept_tx, accept_rx) = mpsc::channel(backlog);

    let reader = {
        let sock = Arc::clone(&sock);
        let sessions = Arc::clone(&sessions);
        tokio::spawn(async move {
            let mut buf = vec![0u8; buf_size];
            loop {
                let (n, peer) = match sock.recv_from(&mut buf).await {
                    Ok(x) => x,
                    Err(e) => {
                        tracing::debug!(error = %e, "udp listener read");
                        continue;
                    }
                };
                let data = Bytes::copy_from_slice(&buf[..n]);
                let mut map = sessions.lock();
                if let Some(s) = map.get(&peer) {
                    s.active.store(true, Ordering::Relaxed);
                    if s.tx.try_send(data).is_err() {
                        tracing::warn!(%peer, "udp session queue full: datagram dropped");
                    }
                    continue;
                }
                let (tx, rx) = mpsc::channel(queue);
                let active = Arc::new(AtomicBool::new(true));
                let closed = Arc::new(AtomicBool::new(false));
                let _ = tx.try_send(data);
                let session = UdpSession {
                    peer,
                    sock: Arc::clone(&sock),
                    rx: tokio::sync::Mutex::new(rx),
                    active: Arc::clone(&active),
                    closed: Arc::clone(&closed),
                    keepalive,
                    sessions: Arc::clone(&sessions),
                };
                match accept_tx.try_send((session, peer)) {
                    Ok(()) => {
                        map.insert(peer, SessionState { tx, active, closed });
                    }
                    Err(mpsc::error::TrySendError::Full(_)) => {
                        tracing::warn!(%peer, "udp accept backlog full: datagram dropped");
                    }
                    Err(mpsc::error::TrySendError::Closed(_)) => return,
                }
            }
        })
    };
    let janitor = {
        let sessions = Arc::clone(&sessions);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(ttl);
            tick.tick().await;
            loop {
                tick.tick().await;
                sessions.lock().retain(|_, s| {
                    if s.active.swap(false, Ordering::Relaxed) {
                        true
                    } else {
                        s.closed.store(true, Ordering::Relaxed);
                        false
                    }
                });
            }
        })
    };
    Ok(Arc::new(UdpListener {
        local,
        accept_rx: tokio::sync::Mutex::new(accept_rx),
        tasks: vec![reader.abort_handle(), janitor.abort_handle()],
    }))
}

#[async_trait]
impl Listener for UdpListener {
    async fn accept(&self) -> io::Result<(Inbound, SocketAddr)> {
        let mut rx = self.accept_rx.lock().await;
        match rx.recv().await {
            Some((s, peer)) => Ok((Inbound::Datagram(s), peer)),
            None => Err(io::Error::new(
                io::ErrorKind::NotConnected,
                "udp listener closed",
            )),
        }
    }
    fn local_addr(&self) -> SocketAddr {
        self.local
    }
}
