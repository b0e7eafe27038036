//! `udp` listener: one UDP socket, datagrams demultiplexed by client address into sessions,
//! each handed once to the handler.
//!
//! The session machinery ([`Demux`], [`Session`]) is shared with the `rudp` listener, whose
//! datagrams arrive through a tunnel instead of a local socket: a [`Wire`] is where datagrams
//! come from and where the replies go. Every session is owned by the handler it was given to
//! and has a deadline: the janitor closes it after between `ttl` and 2×`ttl` without traffic,
//! and every session of a listener ends when the listener (or its tunnel) does.
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
//! | `maxSessions` | int | 8192 | live sessions (client addresses); a new client's datagrams are dropped while the table is full (GOST: unbounded) |

use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use parking_lot::Mutex;
use tokio::net::UdpSocket;
use tokio::sync::mpsc;

use crate::addr::parse_listen_addr;
use crate::component::{Inbound, Listener, ListenerOpts, UdpSession};
use crate::error::BuildError;
use crate::io::PacketConn;

/// Where a listener's datagrams come from and where its sessions' replies go.
#[async_trait]
pub trait Wire: Send + Sync {
    /// The next datagram and its peer. An error ends the listener and all its sessions
    /// (transient socket errors are retried inside).
    async fn recv_from(&self, buf: &mut [u8]) -> io::Result<(usize, SocketAddr)>;
    /// Sends a reply to `peer`.
    async fn send_to(&self, data: &[u8], peer: SocketAddr) -> io::Result<usize>;
}

/// A local UDP socket as a [`Wire`].
pub struct SocketWire(pub Arc<UdpSocket>);

/// A tunnel to a remote node (relay/SOCKS5 UDP bind) as a [`Wire`]: peers are the addresses
/// the node reports.
pub struct TunnelWire(pub Arc<dyn PacketConn>);

/// Session settings.
#[derive(Debug, Clone)]
pub struct SessionOpts {
    /// Keep a session after its first reply.
    pub keepalive: bool,
    /// Janitor period.
    pub ttl: Duration,
    /// Largest datagram.
    pub buf_size: usize,
    /// Datagrams queued per session.
    pub queue: usize,
    /// Sessions waiting for the handler.
    pub backlog: usize,
    /// Live sessions at most.
    pub max_sessions: usize,
}

/// Default `maxSessions`.
pub const MAX_SESSIONS: usize = 8192;

/// One client's UDP session (the core [`UdpSession`] of the `udp` and `rudp` listeners).
pub struct Session {
    id: u64,
    peer: SocketAddr,
    wire: Arc<dyn Wire>,
    rx: tokio::sync::Mutex<mpsc::Receiver<Bytes>>,
    active: Arc<AtomicBool>,
    closed: Arc<AtomicBool>,
    keepalive: bool,
    sessions: Sessions,
    /// Sessions not yet dropped (shared with the reader): a session leaves the table when it
    /// expires but holds its upstream socket until its handler lets go of it, so admission
    /// counts these, not table entries.
    live: Arc<AtomicUsize>,
}

/// Sessions of one listener, demultiplexed by peer, fed by a reader task and swept by a
/// janitor task. Dropping it stops both and ends every session.
pub struct Demux {
    accept_rx: tokio::sync::Mutex<mpsc::Receiver<Session>>,
    sessions: Sessions,
    tasks: [tokio::task::AbortHandle; 2],
}

/// A bound UDP listener.
pub struct UdpListener {
    local: SocketAddr,
    demux: Demux,
}

struct SessionState {
    id: u64,
    tx: mpsc::Sender<Bytes>,
    active: Arc<AtomicBool>,
    closed: Arc<AtomicBool>,
}

type Sessions = Arc<Mutex<HashMap<SocketAddr, SessionState>>>;

// === impl Wire ===

#[async_trait]
impl Wire for SocketWire {
    async fn recv_from(&self, buf: &mut [u8]) -> io::Result<(usize, SocketAddr)> {
        loop {
            match self.0.recv_from(buf).await {
                Ok(x) => return Ok(x),
                Err(e) => {
                    tracing::debug!(error = %e, "udp listener read");
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            }
        }
    }
    async fn send_to(&self, data: &[u8], peer: SocketAddr) -> io::Result<usize> {
        self.0.send_to(data, peer).await
    }
}

#[async_trait]
impl Wire for TunnelWire {
    async fn recv_from(&self, buf: &mut [u8]) -> io::Result<(usize, SocketAddr)> {
        loop {
            let (n, from) = self.0.recv_from(buf).await?;
            match from.parse() {
                Ok(peer) => return Ok((n, peer)),
                Err(_) => {
                    tracing::debug!(from = %from, "tunnel datagram from a non-IP peer dropped")
                }
            }
        }
    }
    async fn send_to(&self, data: &[u8], peer: SocketAddr) -> io::Result<usize> {
        self.0.send_to(data, &peer.to_string()).await
    }
}

// === impl Session ===

#[async_trait]
impl UdpSession for Session {
    fn peer(&self) -> SocketAddr {
        self.peer
    }

    async fn recv(&self) -> Option<Bytes> {
        if self.closed.load(Ordering::Relaxed) {
            return None;
        }
        let b = self.rx.lock().await.recv().await?;
        self.active.store(true, Ordering::Relaxed);
        Some(b)
    }

    async fn send(&self, data: &[u8]) -> io::Result<usize> {
        if self.is_closed() {
            return Err(io::Error::new(
                io::ErrorKind::NotConnected,
                "udp session closed",
            ));
        }
        if !self.keepalive {
            // Ended before the reply leaves: the client's next datagram (sent once it has the
            // reply) must start a new session, not land in this one's queue.
            self.close();
        }
        let n = self.wire.send_to(data, self.peer).await?;
        self.active.store(true, Ordering::Relaxed);
        Ok(n)
    }

    fn close(&self) {
        self.closed.store(true, Ordering::Relaxed);
        let mut map = self.sessions.lock();
        if map.get(&self.peer).is_some_and(|s| s.id == self.id) {
            map.remove(&self.peer);
        }
    }

    fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Relaxed)
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        self.close();
        self.live.fetch_sub(1, Ordering::Relaxed);
    }
}

// === impl Demux ===

impl Demux {
    /// Starts the reader and the janitor over `wire`. When the wire fails (a tunnel ends) the
    /// reader stops, every session ends and [`Demux::accept`] returns `None`.
    pub fn start(wire: Arc<dyn Wire>, o: &SessionOpts) -> Demux {
        let sessions: Sessions = Arc::new(Mutex::new(HashMap::new()));
        let (accept_tx, accept_rx) = mpsc::channel(o.backlog.max(1));
        let reader = tokio::spawn(read_loop(
            Arc::clone(&wire),
            Arc::clone(&sessions),
            accept_tx,
            o.clone(),
        ));
        let janitor = {
            let sessions = Arc::clone(&sessions);
            let ttl = o.ttl;
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
        Demux {
            accept_rx: tokio::sync::Mutex::new(accept_rx),
            sessions,
            tasks: [reader.abort_handle(), janitor.abort_handle()],
        }
    }

    /// The next new session; `None` once the wire has failed.
    pub async fn accept(&self) -> Option<Session> {
        self.accept_rx.lock().await.recv().await
    }

    /// Sessions currently alive.
    pub fn len(&self) -> usize {
        self.sessions.lock().len()
    }

    /// Whether no session is alive.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

fn end_all(sessions: &Sessions) {
    let mut map = sessions.lock();
    for s in map.values() {
        s.closed.store(true, Ordering::Relaxed);
    }
    map.clear();
}

impl Drop for Demux {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
        end_all(&self.sessions);
    }
}

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

async fn read_loop(
    wire: Arc<dyn Wire>,
    sessions: Sessions,
    accept_tx: mpsc::Sender<Session>,
    o: SessionOpts,
) {
    let mut buf = vec![0u8; o.buf_size];
    let live = Arc::new(AtomicUsize::new(0));
    loop {
        let (n, peer) = match wire.recv_from(&mut buf).await {
            Ok(x) => x,
            Err(e) => {
                tracing::debug!(error = %e, "udp sessions: source ended");
                end_all(&sessions);
                return;
            }
        };
        let data = Bytes::copy_from_slice(&buf[..n]);
        {
            let map = sessions.lock();
            if let Some(s) = map.get(&peer) {
                s.active.store(true, Ordering::Relaxed);
                if s.tx.try_send(data).is_err() {
                    tracing::warn!(%peer, "udp session queue full: datagram dropped");
                }
                continue;
            }
            if map.len().max(live.load(Ordering::Relaxed)) >= o.max_sessions {
                tracing::debug!(%peer, max = o.max_sessions, "udp session table full: datagram of a new client dropped");
                continue;
            }
        }
        let (tx, rx) = mpsc::channel(o.queue.max(1));
        let active = Arc::new(AtomicBool::new(true));
        let closed = Arc::new(AtomicBool::new(false));
        let _ = tx.try_send(data);
        let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
        sessions.lock().insert(
            peer,
            SessionState {
                id,
                tx,
                active: Arc::clone(&active),
                closed: Arc::clone(&closed),
            },
        );
        let session = Session {
            id,
            peer,
            wire: Arc::clone(&wire),
            rx: tokio::sync::Mutex::new(rx),
            active,
            closed,
            keepalive: o.keepalive,
            sessions: Arc::clone(&sessions),
            live: Arc::clone(&live),
        };
        live.fetch_add(1, Ordering::Relaxed);
        // No lock is held here: a refused session's drop removes its own entry.
        match accept_tx.try_send(session) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(s)) => {
                tracing::warn!(%peer, "udp accept backlog full: datagram dropped");
                drop(s);
            }
            Err(mpsc::error::TrySendError::Closed(s)) => {
                drop(s);
                end_all(&sessions);
                return;
            }
        }
    }
}

// === impl UdpListener ===

/// Parses session settings; `defaults` gives the type's defaults (`udp` and `rudp` differ).
pub fn session_opts(o: &ListenerOpts, defaults: &SessionOpts) -> Result<SessionOpts, BuildError> {
    let ttl =
        o.md.duration(&["ttl", "keepalive.ttl"])?
            .filter(|d| !d.is_zero())
            .unwrap_or(defaults.ttl);
    let buf_size =
        o.md.int(&["readBufferSize", "udp.bufferSize", "udpBufferSize"])?
            .map_or(defaults.buf_size, |v| v.clamp(512, 65535) as usize);
    let queue =
        o.md.int(&["readQueueSize", "recvQueueSize"])?
            .map_or(defaults.queue, |v| v.clamp(1, 65536) as usize);
    let backlog =
        o.md.int(&["backlog"])?
            .map_or(defaults.backlog, |v| v.clamp(1, 65536) as usize);
    let max_sessions = match o.md.int(&["maxSessions"])? {
        None => defaults.max_sessions,
        Some(v) if (1..=1_000_000).contains(&v) => v as usize,
        Some(v) => {
            return Err(BuildError::new(
                format!("{}.metadata.maxSessions", o.path),
                format!("{v} is out of range (accepted: 1 to 1000000)"),
            ))
        }
    };
    Ok(SessionOpts {
        keepalive: defaults.keepalive,
        ttl,
        buf_size,
        queue,
        backlog,
        max_sessions,
    })
}

fn opts(o: &ListenerOpts) -> Result<SessionOpts, BuildError> {
    let defaults = SessionOpts {
        keepalive: o.md.bool_or(&["keepalive"], false)?,
        ttl: Duration::from_secs(5),
        buf_size: 4096,
        queue: 128,
        backlog: 128,
        max_sessions: MAX_SESSIONS,
    };
    o.md.mark_known(&["stateless"]);
    session_opts(o, &defaults)
}

/// Validates `udp` listener options without binding.
pub fn check(o: &ListenerOpts) -> Result<(), BuildError> {
    opts(o).map(|_| ())
}

/// Factory for `udp`.
pub fn new(o: &ListenerOpts) -> Result<Arc<dyn Listener>, BuildError> {
    let so = opts(o)?;
    Ok(Arc::new(bind(o, &so)?))
}

/// Binds a local UDP socket on the service address and starts its sessions.
pub fn bind(o: &ListenerOpts, so: &SessionOpts) -> Result<UdpListener, BuildError> {
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
    Ok(UdpListener {
        local,
        demux: Demux::start(Arc::new(SocketWire(sock)), so),
    })
}

#[async_trait]
impl Listener for UdpListener {
    async fn accept(&self) -> io::Result<(Inbound, SocketAddr)> {
        match self.demux.accept().await {
            Some(s) => {
                let peer = s.peer();
                Ok((Inbound::Datagram(Box::new(s)), peer))
            }
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
