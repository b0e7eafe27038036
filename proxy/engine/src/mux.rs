//! Stream multiplexing compatible with xtaci/smux **protocol version 1**, the default of GOST's
//! `mtls`, `mws`/`mwss` transports and of relay/SOCKS5 reverse binds (engine spec §6.13).
//!
//! Frame: `VER(1) | CMD(1) | LEN(2, little endian) | SID(4, little endian) | DATA(LEN)` with
//! `CMD` SYN=0 (open), FIN=1 (close), PSH=2 (data), NOP=3 (keepalive, SID 0). Version 1 has no
//! flow-control frames, so the only backpressure is to stop reading the underlying connection:
//! each stream buffers at most `maxStreamBuffer` bytes (at least one frame); when a frame
//! arrives for a full stream the session reader waits until that stream is read (as smux v1
//! does with its session-wide bucket). Outgoing frames go through one bounded queue to a
//! writer task. Nothing is unbounded.
//!
//! Keepalive: a NOP every `keepaliveInterval` (10 s); a session that received nothing for
//! `keepaliveTimeout` (30 s) is closed. Streams opened by the dialing side (smux "client") have
//! odd ids starting at 1, the accepting side's are even starting at 2.
//!
//! | key | type | default | meaning |
//! |---|---|---|---|
//! | `mux.version` | int | 1 | protocol version (only 1 is supported) |
//! | `mux.keepaliveInterval` | duration | 10s | NOP interval |
//! | `mux.keepaliveTimeout` | duration | 30s | close after this long without any frame |
//! | `mux.keepaliveDisabled` | bool | false | no NOPs, no timeout |
//! | `mux.maxFrameSize` | int | 32768 | largest PSH payload sent |
//! | `mux.maxReceiveBuffer` | int | 4194304 | accepted for compatibility (v1 bucket; per-stream buffers are used instead) |
//! | `mux.maxStreamBuffer` | int | 65536 | bytes buffered per stream before the session stops reading |

use std::collections::{HashMap, VecDeque};
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use bytes::Bytes;
use parking_lot::Mutex;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::sync::{mpsc, Notify};
use tokio_util::sync::{CancellationToken, PollSender};

use crate::error::BuildError;
use crate::io::BoxStream;
use crate::md::Md;

/// Open a stream.
pub const CMD_SYN: u8 = 0;
/// Close a stream.
pub const CMD_FIN: u8 = 1;
/// Stream data.
pub const CMD_PSH: u8 = 2;
/// Keepalive.
pub const CMD_NOP: u8 = 3;
/// Internal: drain the queue, then close the session (never sent).
const CMD_CLOSE: u8 = 0xFF;
/// Frame header length.
pub const HEADER_LEN: usize = 8;

/// Session settings (`mux.*` metadata).
#[derive(Debug, Clone)]
pub struct Config {
    /// Keepalive NOP interval; `None` disables keepalive.
    pub keepalive: Option<(Duration, Duration)>,
    /// Largest PSH payload sent.
    pub max_frame_size: usize,
    /// Bytes buffered per stream before the reader waits.
    pub max_stream_buffer: usize,
    /// Streams opened by the peer waiting for `accept`.
    pub backlog: usize,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            keepalive: Some((Duration::from_secs(10), Duration::from_secs(30))),
            max_frame_size: 32768,
            max_stream_buffer: 65536,
            backlog: 128,
        }
    }
}

impl Config {
    /// Reads `mux.*` keys.
    pub fn from_md(md: &Md) -> Result<Config, BuildError> {
        let mut c = Config::default();
        if let Some(v) = md.int(&["mux.version"])? {
            if v != 1 {
                return Err(BuildError::new(
                    format!("{}.mux.version", md.path()),
                    format!("smux version {v} is not supported (accepted: 1)"),
                ));
            }
        }
        let interval = md
            .duration(&["mux.keepaliveInterval"])?
            .filter(|d| !d.is_zero())
            .unwrap_or(Duration::from_secs(10));
        let timeout = md
            .duration(&["mux.keepaliveTimeout"])?
            .filter(|d| !d.is_zero())
            .unwrap_or(Duration::from_secs(30));
        c.keepalive = if md.bool_or(&["mux.keepaliveDisabled"], false)? {
            None
        } else {
            Some((interval, timeout.max(interval)))
        };
        if let Some(v) = md.int(&["mux.maxFrameSize"])? {
            c.max_frame_size = v.clamp(1, 65535) as usize;
        }
        if let Some(v) = md.int(&["mux.maxStreamBuffer"])? {
            c.max_stream_buffer = v.clamp(1024, 64 << 20) as usize;
        }
        md.mark_known(&["mux.maxReceiveBuffer"]);
        Ok(c)
    }
}

/// Encodes a frame header.
pub fn header(cmd: u8, len: u16, sid: u32) -> [u8; HEADER_LEN] {
    let l = len.to_le_bytes();
    let s = sid.to_le_bytes();
    [1, cmd, l[0], l[1], s[0], s[1], s[2], s[3]]
}

struct Frame {
    cmd: u8,
    sid: u32,
    data: Bytes,
}

#[derive(Default)]
struct RecvBuf {
    chunks: VecDeque<Bytes>,
    len: usize,
    fin: bool,
    reset: bool,
    waker: Option<Waker>,
}

#[derive(Default)]
struct StreamState {
    buf: Mutex<RecvBuf>,
    space: Notify,
}

impl StreamState {
    fn wake(&self) {
        if let Some(w) = self.buf.lock().waker.take() {
            w.wake();
        }
    }
}

struct Shared {
    streams: Mutex<HashMap<u32, Arc<StreamState>>>,
    tx: mpsc::Sender<Frame>,
    cancel: CancellationToken,
    next_id: AtomicU32,
    refs: AtomicUsize,
    last_recv: AtomicU64,
    cfg: Config,
}

impl Shared {
    fn release(&self) {
        if self.refs.fetch_sub(1, Ordering::AcqRel) == 1 {
            // Last handle gone: let the writer drain what is queued, then close.
            if self
                .tx
                .try_send(Frame {
                    cmd: CMD_CLOSE,
                    sid: 0,
                    data: Bytes::new(),
                })
                .is_err()
            {
                self.cancel.cancel();
            }
        }
    }
    fn shutdown(&self) {
        self.cancel.cancel();
        let streams: Vec<_> = self.streams.lock().drain().map(|(_, s)| s).collect();
        for s in streams {
            s.buf.lock().reset = true;
            s.wake();
            s.space.notify_one();
        }
    }
}

/// An smux session over one connection.
pub struct Session {
    shared: Arc<Shared>,
    accept: tokio::sync::Mutex<mpsc::Receiver<Stream>>,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("closed", &self.is_closed())
            .finish()
    }
}

fn now_ms(start: tokio::time::Instant) -> u64 {
    start.elapsed().as_millis() as u64
}

impl Session {
    /// Starts a session; `client` selects odd (dialing side) or even stream ids.
    pub fn new(conn: BoxStream, cfg: Config, client: bool) -> Session {
        let (tx, rx) = mpsc::channel(256);
        let (accept_tx, accept_rx) = mpsc::channel(cfg.backlog.max(1));
        let shared = Arc::new(Shared {
            streams: Mutex::new(HashMap::new()),
            tx,
            cancel: CancellationToken::new(),
            next_id: AtomicU32::new(if client { 1 } else { 2 }),
            refs: AtomicUsize::new(1),
            last_recv: AtomicU64::new(0),
            cfg,
        });
        let (r, w) = tokio::io::split(conn);
        let start = tokio::time::Instant::now();
        tokio::spawn(writer(Arc::clone(&shared), w, rx));
        tokio::spawn(reader(Arc::clone(&shared), r, accept_tx, start));
        if let Some((interval, timeout)) = shared.cfg.keepalive {
            tokio::spawn(keepalive(Arc::clone(&shared), interval, timeout, start));
        }
        Session {
            shared,
            accept: tokio::sync::Mutex::new(accept_rx),
        }
    }

    /// Whether the session has ended (connection closed, keepalive timeout, …).
    pub fn is_closed(&self) -> bool {
        self.shared.cancel.is_cancelled()
    }

    /// Number of open streams.
    pub fn num_streams(&self) -> usize {
        self.shared.streams.lock().len()
    }

    /// Closes the session and every stream.
    pub fn close(&self) {
        self.shared.shutdown();
    }

    /// Waits until the session has ended.
    pub async fn closed(&self) {
        self.shared.cancel.cancelled().await
    }

    fn stream(&self, id: u32, state: Arc<StreamState>) -> Stream {
        new_stream(&self.shared, id, state)
    }

    /// Opens a stream (sends SYN).
    pub async fn open(&self) -> io::Result<Stream> {
        if self.is_closed() {
            return Err(io::Error::new(
                io::ErrorKind::BrokenPipe,
                "smux session closed",
            ));
        }
        let id = self.shared.next_id.fetch_add(2, Ordering::Relaxed);
        let state = Arc::new(StreamState::default());
        self.shared.streams.lock().insert(id, Arc::clone(&state));
        let s = self.stream(id, state);
        self.shared
            .tx
            .send(Frame {
                cmd: CMD_SYN,
                sid: id,
                data: Bytes::new(),
            })
            .await
            .map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, "smux session closed"))?;
        Ok(s)
    }

    /// Accepts the next stream opened by the peer.
    pub async fn accept(&self) -> io::Result<Stream> {
        let mut rx = self.accept.lock().await;
        tokio::select! {
            s = rx.recv() => s.ok_or_else(|| io::Error::new(io::ErrorKind::ConnectionAborted, "smux session closed")),
            _ = self.shared.cancel.cancelled() => Err(io::Error::new(io::ErrorKind::ConnectionAborted, "smux session closed")),
        }
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        self.shared.release();
    }
}

fn new_stream(shared: &Arc<Shared>, id: u32, state: Arc<StreamState>) -> Stream {
    shared.refs.fetch_add(1, Ordering::AcqRel);
    Stream {
        id,
        shared: Arc::clone(shared),
        state,
        tx: PollSender::new(shared.tx.clone()),
        fin_sent: false,
    }
}

async fn writer(
    shared: Arc<Shared>,
    mut w: tokio::io::WriteHalf<BoxStream>,
    mut rx: mpsc::Receiver<Frame>,
) {
    let mut out = Vec::with_capacity(64 * 1024);
    'outer: loop {
        let first = tokio::select! {
            f = rx.recv() => f,
            _ = shared.cancel.cancelled() => None,
        };
        let Some(mut f) = first else { break };
        loop {
            if f.cmd == CMD_CLOSE {
                let _ = w.write_all(&out).await;
                let _ = w.flush().await;
                break 'outer;
            }
            out.extend_from_slice(&header(f.cmd, f.data.len() as u16, f.sid));
            out.extend_from_slice(&f.data);
            if out.len() >= 64 * 1024 {
                break;
            }
            match rx.try_recv() {
                Ok(next) => f = next,
                Err(_) => break,
            }
        }
        let res = tokio::select! {
            r = async { w.write_all(&out).await?; w.flush().await } => r,
            _ = shared.cancel.cancelled() => break,
        };
        out.clear();
        if res.is_err() {
            break;
        }
    }
    let _ = w.shutdown().await;
    shared.shutdown();
}

async fn reader(
    shared: Arc<Shared>,
    mut r: tokio::io::ReadHalf<BoxStream>,
    accept: mpsc::Sender<Stream>,
    start: tokio::time::Instant,
) {
    let res: io::Result<()> = async {
        let mut h = [0u8; HEADER_LEN];
        loop {
            tokio::select! {
                r = r.read_exact(&mut h) => { r?; }
                _ = shared.cancel.cancelled() => return Ok(()),
            }
            shared.last_recv.store(now_ms(start), Ordering::Relaxed);
            if h[0] != 1 {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("smux: unsupported version {}", h[0]),
                ));
            }
            let len = u16::from_le_bytes([h[2], h[3]]) as usize;
            let sid = u32::from_le_bytes([h[4], h[5], h[6], h[7]]);
            let mut data = vec![0u8; len];
            if len > 0 {
                tokio::select! {
                    r = r.read_exact(&mut data) => { r?; }
                    _ = shared.cancel.cancelled() => return Ok(()),
                }
            }
            match h[1] {
                CMD_SYN => {
                    let state = {
                        let mut m = shared.streams.lock();
                        if m.contains_key(&sid) {
                            continue;
                        }
                        let st = Arc::new(StreamState::default());
                        m.insert(sid, Arc::clone(&st));
                        st
                    };
                    let s = new_stream(&shared, sid, state);
                    if let Err(e) = accept.try_send(s) {
                        tracing::debug!(sid, "smux accept queue full or closed: stream refused");
                        drop(e); // dropping the stream sends FIN
                    }
                }
                CMD_FIN => {
                    let st = shared.streams.lock().get(&sid).cloned();
                    if let Some(st) = st {
                        st.buf.lock().fin = true;
                        st.wake();
                    }
                }
                CMD_PSH => {
                    if len == 0 {
                        continue;
                    }
                    let data = Bytes::from(data);
                    loop {
                        let Some(st) = shared.streams.lock().get(&sid).cloned() else {
                            break; // closed locally: discard
                        };
                        let waiter = st.space.notified();
                        {
                            let mut b = st.buf.lock();
                            if b.len == 0 || b.len + len <= shared.cfg.max_stream_buffer {
                                b.len += len;
                                b.chunks.push_back(data);
                                if let Some(w) = b.waker.take() {
                                    w.wake();
                                }
                                break;
                            }
                        }
                        tokio::select! {
                            _ = waiter => {}
                            _ = shared.cancel.cancelled() => return Ok(()),
                        }
                    }
                }
                CMD_NOP => {}
                other => {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        format!("smux: unknown command {other}"),
                    ))
                }
            }
        }
    }
    .await;
    if let Err(e) = res {
        tracing::debug!(error = %e, "smux session ended");
    }
    shared.shutdown();
}

async fn keepalive(
    shared: Arc<Shared>,
    interval: Duration,
    timeout: Duration,
    start: tokio::time::Instant,
) {
    let mut tick = tokio::time::interval(interval);
    tick.tick().await;
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = shared.cancel.cancelled() => return,
        }
        let idle = now_ms(start).saturating_sub(shared.last_recv.load(Ordering::Relaxed));
        if idle >= timeout.as_millis() as u64 {
            tracing::debug!("smux keepalive timeout");
            shared.shutdown();
            return;
        }
        let _ = shared.tx.try_send(Frame {
            cmd: CMD_NOP,
            sid: 0,
            data: Bytes::new(),
        });
    }
}

/// One multiplexed stream.
pub struct Stream {
    id: u32,
    shared: Arc<Shared>,
    state: Arc<StreamState>,
    tx: PollSender<Frame>,
    fin_sent: bool,
}

impl Stream {
    /// The stream id.
    pub fn id(&self) -> u32 {
        self.id
    }
}

fn closed() -> io::Error {
    io::Error::new(io::ErrorKind::BrokenPipe, "smux stream closed")
}

impl AsyncRead for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        out: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let mut b = self.state.buf.lock();
        if let Some(front) = b.chunks.front_mut() {
            let n = front.len().min(out.remaining());
            out.put_slice(&front.split_to(n));
            if front.is_empty() {
                b.chunks.pop_front();
            }
            b.len -= n;
            drop(b);
            self.state.space.notify_one();
            return Poll::Ready(Ok(()));
        }
        if b.fin {
            return Poll::Ready(Ok(()));
        }
        if b.reset {
            return Poll::Ready(Err(io::Error::new(
                io::ErrorKind::ConnectionReset,
                "smux session closed",
            )));
        }
        b.waker = Some(cx.waker().clone());
        Poll::Pending
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        if self.fin_sent || self.state.buf.lock().reset {
            return Poll::Ready(Err(closed()));
        }
        if buf.is_empty() {
            return Poll::Ready(Ok(0));
        }
        if std::task::ready!(self.tx.poll_reserve(cx)).is_err() {
            return Poll::Ready(Err(closed()));
        }
        let n = buf.len().min(self.shared.cfg.max_frame_size);
        let f = Frame {
            cmd: CMD_PSH,
            sid: self.id,
            data: Bytes::copy_from_slice(&buf[..n]),
        };
        if self.tx.send_item(f).is_err() {
            return Poll::Ready(Err(closed()));
        }
        Poll::Ready(Ok(n))
    }
    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if self.fin_sent {
            return Poll::Ready(Ok(()));
        }
        if std::task::ready!(self.tx.poll_reserve(cx)).is_err() {
            self.fin_sent = true;
            return Poll::Ready(Ok(()));
        }
        let f = Frame {
            cmd: CMD_FIN,
            sid: self.id,
            data: Bytes::new(),
        };
        let _ = self.tx.send_item(f);
        self.fin_sent = true;
        Poll::Ready(Ok(()))
    }
}

impl Drop for Stream {
    fn drop(&mut self) {
        self.shared.streams.lock().remove(&self.id);
        if !self.fin_sent && !self.shared.cancel.is_cancelled() {
            let f = Frame {
                cmd: CMD_FIN,
                sid: self.id,
                data: Bytes::new(),
            };
            if let Err(mpsc::error::TrySendError::Full(f)) = self.shared.tx.try_send(f) {
                let tx = self.shared.tx.clone();
                let cancel = self.shared.cancel.clone();
                if let Ok(rt) = tokio::runtime::Handle::try_current() {
                    rt.spawn(async move {
                        tokio::select! {
                            _ = tx.send(f) => {}
                            _ = cancel.cancelled() => {}
                        }
                    });
                }
            }
        }
        self.shared.release();
    }
}

/// Client sessions of a multiplexing dialer, one per node address; a closed session is
/// replaced on the next use (GOST's session cache).
#[derive(Default)]
pub struct Pool {
    sessions: tokio::sync::Mutex<HashMap<String, Arc<Session>>>,
}

impl Pool {
    /// A stream of the live session for `addr`, or of a new session over `connect`'s result.
    pub async fn stream<F>(&self, addr: &str, cfg: &Config, connect: F) -> io::Result<Stream>
    where
        F: std::future::Future<Output = io::Result<BoxStream>> + Send,
    {
        let mut m = self.sessions.lock().await;
        if let Some(s) = m.get(addr) {
            if !s.is_closed() {
                if let Ok(st) = s.open().await {
                    return Ok(st);
                }
            }
            m.remove(addr);
        }
        let conn = connect.await?;
        let s = Arc::new(Session::new(conn, cfg.clone(), true));
        let st = s.open().await?;
        m.insert(addr.to_string(), s);
        Ok(st)
    }
}

#[cfg(test)]
mod tests;
