//! Stream and datagram abstractions shared by every component, and the bidirectional pipe.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use async_trait::async_trait;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};

#[cfg(target_os = "linux")]
mod splice;

/// A bidirectional byte stream. `Any` lets [`pipe`] find the TCP socket under a boxed stream
/// for its `splice(2)` path.
pub trait Io: AsyncRead + AsyncWrite + Send + Unpin + std::any::Any {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin + 'static> Io for T {}

/// A boxed byte stream: what listeners accept, dialers open and connectors return.
pub type BoxStream = Box<dyn Io>;

/// A datagram channel with per-datagram addresses (`host:port` strings).
#[async_trait]
pub trait PacketConn: Send + Sync {
    /// Receives one datagram and its source address.
    async fn recv_from(&self, buf: &mut [u8]) -> io::Result<(usize, String)>;
    /// Sends one datagram to `addr`.
    async fn send_to(&self, buf: &[u8], addr: &str) -> io::Result<usize>;
}

/// What a router/connector returns: a stream (TCP) or a datagram channel (UDP).
pub enum Outbound {
    /// A byte stream.
    Stream(BoxStream),
    /// A datagram channel.
    Packet(Arc<dyn PacketConn>),
}

impl std::fmt::Debug for Outbound {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Outbound::Stream(_) => f.write_str("Outbound::Stream"),
            Outbound::Packet(_) => f.write_str("Outbound::Packet"),
        }
    }
}

impl Outbound {
    /// The stream, or an error if this is a datagram channel.
    pub fn into_stream(self) -> io::Result<BoxStream> {
        match self {
            Outbound::Stream(s) => Ok(s),
            Outbound::Packet(_) => Err(io::Error::other("expected a stream, got datagrams")),
        }
    }
}

/// A direct UDP socket as a [`PacketConn`] (resolves domain destinations per datagram).
pub struct UdpPacket(pub tokio::net::UdpSocket);

#[async_trait]
impl PacketConn for UdpPacket {
    async fn recv_from(&self, buf: &mut [u8]) -> io::Result<(usize, String)> {
        let (n, from) = self.0.recv_from(buf).await?;
        let from = match from {
            std::net::SocketAddr::V6(v6) => match v6.ip().to_ipv4_mapped() {
                Some(v4) => std::net::SocketAddr::new(v4.into(), v6.port()),
                None => from,
            },
            v4 => v4,
        };
        Ok((n, from.to_string()))
    }
    async fn send_to(&self, buf: &[u8], addr: &str) -> io::Result<usize> {
        let mut sa = crate::addr::resolve_system(addr).await?;
        if self.0.local_addr()?.is_ipv6() {
            if let std::net::SocketAddr::V4(v4) = sa {
                sa = std::net::SocketAddr::new(v4.ip().to_ipv6_mapped().into(), v4.port());
            }
        }
        self.0.send_to(buf, sa).await
    }
}

/// Opens a TCP connection to `addr` within `timeout` (expiry: a `TimedOut` error naming the
/// address), TCP_NODELAY on: the one plain TCP dial of the engine (the `tcp` dialer, direct
/// routes and the raw connection under a multiplexed session).
pub async fn connect_tcp(
    addr: &str,
    timeout: Option<Duration>,
) -> io::Result<tokio::net::TcpStream> {
    let fut = tokio::net::TcpStream::connect(addr);
    let s = match timeout {
        Some(t) => tokio::time::timeout(t, fut).await.map_err(|_| {
            io::Error::new(io::ErrorKind::TimedOut, format!("dial {addr}: timed out"))
        })??,
        None => fut.await?,
    };
    let _ = s.set_nodelay(true);
    Ok(s)
}

/// A UDP socket on an ephemeral port of every address: dual-stack `[::]`, or `0.0.0.0` where
/// IPv6 is not available (tried only then).
pub async fn bind_udp_any() -> io::Result<tokio::net::UdpSocket> {
    match tokio::net::UdpSocket::bind("[::]:0").await {
        Ok(s) => Ok(s),
        Err(_) => tokio::net::UdpSocket::bind("0.0.0.0:0").await,
    }
}

/// A stream that sends `prefix` in front of the first bytes written, in the same write (so a
/// deferred request or response shares a packet with the first data), or at the latest on
/// flush, shutdown or [`PrefixWrite::poll_send_prefix`].
pub struct PrefixWrite<S> {
    inner: S,
    prefix: Vec<u8>,
    pos: usize,
}

impl<S> PrefixWrite<S> {
    /// `inner` with `prefix` pending.
    pub fn new(inner: S, prefix: Vec<u8>) -> PrefixWrite<S> {
        PrefixWrite {
            inner,
            prefix,
            pos: 0,
        }
    }

    /// The wrapped stream.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }
}

impl<S: AsyncWrite + Unpin> PrefixWrite<S> {
    /// Writes what is left of the prefix.
    pub fn poll_send_prefix(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while self.pos < self.prefix.len() {
            let n = std::task::ready!(
                Pin::new(&mut self.inner).poll_write(cx, &self.prefix[self.pos..])
            )?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.pos += n;
        }
        if !self.prefix.is_empty() {
            self.prefix = Vec::new();
            self.pos = 0;
        }
        Poll::Ready(Ok(()))
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for PrefixWrite<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        out: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, out)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for PrefixWrite<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        if self.pos < self.prefix.len() {
            let mut both = self.prefix[self.pos..].to_vec();
            both.extend_from_slice(buf);
            let n = std::task::ready!(Pin::new(&mut self.inner).poll_write(cx, &both))?;
            let pending = self.prefix.len() - self.pos;
            if n > pending {
                self.pos = self.prefix.len();
                std::task::ready!(self.poll_send_prefix(cx))?;
                return Poll::Ready(Ok(n - pending));
            }
            self.pos += n;
            std::task::ready!(self.poll_send_prefix(cx))?;
        }
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        std::task::ready!(self.poll_send_prefix(cx))?;
        Pin::new(&mut self.inner).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        std::task::ready!(self.poll_send_prefix(cx))?;
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// A stream that replays already-read bytes before reading from the inner stream
/// (protocol sniffing, buffered request heads).
pub struct Rewind<S> {
    buf: Vec<u8>,
    pos: usize,
    inner: S,
}

impl<S> Rewind<S> {
    /// Replays `buf`, then reads `inner`.
    pub fn new(buf: Vec<u8>, inner: S) -> Self {
        Rewind { buf, pos: 0, inner }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Rewind<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        out: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if self.pos < self.buf.len() {
            let n = (self.buf.len() - self.pos).min(out.remaining());
            let start = self.pos;
            out.put_slice(&self.buf[start..start + n]);
            self.pos += n;
            if self.pos == self.buf.len() {
                self.buf = Vec::new();
                self.pos = 0;
            }
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut self.inner).poll_read(cx, out)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Rewind<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }
    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

/// Byte counts of a finished pipe.
#[derive(Debug, Default, Clone, Copy)]
pub struct PipeStats {
    /// Bytes copied from `a` to `b`.
    pub a_to_b: u64,
    /// Bytes copied from `b` to `a`.
    pub b_to_a: u64,
}

/// Copies both ways until both directions end. When one side reaches EOF the other gets a
/// write shutdown (TCP FIN), and the remaining direction is given `half_close_timeout` to
/// finish (GOST uses 10 s). `idle` bounds each read when set.
///
/// On Linux, when both ends are plain TCP sockets (bare, behind the service's byte counters,
/// or behind a [`Rewind`] with nothing left to replay), the bytes move with `splice(2)` and
/// never enter the process; every other pair is copied through a 32 KiB buffer per direction.
pub async fn pipe<A, B>(a: A, b: B, idle: Option<Duration>) -> PipeStats
where
    A: AsyncRead + AsyncWrite + Unpin + 'static,
    B: AsyncRead + AsyncWrite + Unpin + 'static,
{
    #[cfg(target_os = "linux")]
    if let (Some(sa), Some(sb)) = (splice::side(&a), splice::side(&b)) {
        return splice::pipe(sa, sb, idle).await;
    }
    let (mut ar, mut aw) = tokio::io::split(a);
    let (mut br, mut bw) = tokio::io::split(b);
    let half_close_timeout = Duration::from_secs(10);
    let fwd = copy_half(&mut ar, &mut bw, idle);
    let back = copy_half(&mut br, &mut aw, idle);
    tokio::pin!(fwd);
    tokio::pin!(back);
    let mut stats = PipeStats::default();
    tokio::select! {
        n = &mut fwd => {
            stats.a_to_b = n;
            stats.b_to_a = tokio::time::timeout(half_close_timeout, &mut back).await.unwrap_or(0);
        }
        n = &mut back => {
            stats.b_to_a = n;
            stats.a_to_b = tokio::time::timeout(half_close_timeout, &mut fwd).await.unwrap_or(0);
        }
    }
    stats
}

async fn copy_half<R, W>(r: &mut R, w: &mut W, idle: Option<Duration>) -> u64
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let mut buf = vec![0u8; 32 * 1024];
    let mut total = 0u64;
    loop {
        let read = match idle {
            Some(d) => match tokio::time::timeout(d, r.read(&mut buf)).await {
                Ok(r) => r,
                Err(_) => break,
            },
            None => r.read(&mut buf).await,
        };
        let n = match read {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        if w.write_all(&buf[..n]).await.is_err() {
            break;
        }
        if w.flush().await.is_err() {
            break;
        }
        total += n as u64;
    }
    let _ = w.shutdown().await;
    total
}

/// Counts bytes read from and written to the wrapped stream into two sinks (metrics and
/// service stats) — GOST's listener-side transfer counters.
pub struct Counted<S> {
    inner: S,
    on_read: Box<dyn Fn(u64) + Send + Sync>,
    on_write: Box<dyn Fn(u64) + Send + Sync>,
}

impl<S> Counted<S> {
    /// Wraps `inner`; `on_read(n)` after each read, `on_write(n)` after each write.
    pub fn new(
        inner: S,
        on_read: Box<dyn Fn(u64) + Send + Sync>,
        on_write: Box<dyn Fn(u64) + Send + Sync>,
    ) -> Self {
        Counted {
            inner,
            on_read,
            on_write,
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Counted<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let r = Pin::new(&mut self.inner).poll_read(cx, buf);
        let n = buf.filled().len() - before;
        if n > 0 {
            (self.on_read)(n as u64);
        }
        r
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Counted<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write(cx, buf);
        if let Poll::Ready(Ok(n)) = &r {
            (self.on_write)(*n as u64);
        }
        r
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU64, Ordering};

    #[tokio::test]
    async fn rewind_replays_then_reads() {
        let (a, mut b) = tokio::io::duplex(64);
        let mut r = Rewind::new(b"hello ".to_vec(), a);
        b.write_all(b"world").await.unwrap();
        drop(b);
        let mut s = String::new();
        r.read_to_string(&mut s).await.unwrap();
        assert_eq!(s, "hello world");
    }

    #[tokio::test]
    async fn pipe_copies_both_ways_and_half_closes() {
        let (client, proxy_a) = tokio::io::duplex(1024);
        let (proxy_b, server) = tokio::io::duplex(1024);
        let p = tokio::spawn(pipe(proxy_a, proxy_b, None));
        let (mut cr, mut cw) = tokio::io::split(client);
        let (mut sr, mut sw) = tokio::io::split(server);
        cw.write_all(b"ping").await.unwrap();
        cw.shutdown().await.unwrap();
        let mut got = Vec::new();
        sr.read_to_end(&mut got).await.unwrap();
        assert_eq!(got, b"ping");
        sw.write_all(b"pong").await.unwrap();
        sw.shutdown().await.unwrap();
        let mut back = Vec::new();
        cr.read_to_end(&mut back).await.unwrap();
        assert_eq!(back, b"pong");
        let stats = p.await.unwrap();
        assert_eq!((stats.a_to_b, stats.b_to_a), (4, 4));
    }

    /// A connected pair of real TCP sockets on loopback: (the accepted end, the dialing end).
    async fn tcp_pair() -> (tokio::net::TcpStream, tokio::net::TcpStream) {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        let (dialed, accepted) = tokio::join!(tokio::net::TcpStream::connect(addr), l.accept());
        (accepted.unwrap().0, dialed.unwrap())
    }

    fn counted(s: tokio::net::TcpStream, read: Arc<AtomicU64>, wrote: Arc<AtomicU64>) -> BoxStream {
        let inner: BoxStream = Box::new(s);
        Box::new(Counted::new(
            inner,
            Box::new(move |n| {
                read.fetch_add(n, Ordering::Relaxed);
            }),
            Box::new(move |n| {
                wrote.fetch_add(n, Ordering::Relaxed);
            }),
        ))
    }

    #[cfg(target_os = "linux")]
    #[tokio::test]
    async fn splice_takes_tcp_under_counters_and_an_emptied_rewind_only() {
        let (a, _a) = tcp_pair().await;
        let (b, _b) = tcp_pair().await;
        let (c, _c) = tcp_pair().await;
        let bare: BoxStream = Box::new(a);
        assert!(splice::side(&bare).is_some(), "a boxed TcpStream");
        let n = Arc::new(AtomicU64::new(0));
        let with_counters = counted(b, Arc::clone(&n), Arc::clone(&n));
        assert!(splice::side(&with_counters).is_some(), "counters over TCP");
        let pending: BoxStream = Box::new(Rewind::new(b"x".to_vec(), with_counters));
        assert!(
            splice::side(&pending).is_none(),
            "bytes left to replay must be copied"
        );
        let inner: BoxStream = Box::new(c);
        let empty: BoxStream = Box::new(Rewind::new(Vec::new(), inner));
        assert!(splice::side(&empty).is_some(), "an emptied Rewind");
        let (d, _) = tokio::io::duplex(64);
        let not_tcp: BoxStream = Box::new(d);
        assert!(splice::side(&not_tcp).is_none(), "an in-memory stream");
        let twice = counted(tcp_pair().await.0, Arc::clone(&n), Arc::clone(&n));
        let twice: BoxStream = Box::new(Counted::new(twice, Box::new(|_| {}), Box::new(|_| {})));
        assert!(
            splice::side(&twice).is_none(),
            "two counter layers are copied"
        );
    }

    /// 16 MiB one way and 3 MiB the other through real sockets, both half-closes, exact bytes,
    /// and the service counters see every byte (they come from splice's return values).
    #[tokio::test]
    async fn pipe_over_tcp_is_byte_exact_and_counted() {
        let (proxy_a, mut client) = tcp_pair().await;
        let (mut server, proxy_b) = tcp_pair().await;
        let (read, wrote) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
        let a = counted(proxy_a, Arc::clone(&read), Arc::clone(&wrote));
        let b: BoxStream = Box::new(proxy_b);
        #[cfg(target_os = "linux")]
        let spliced = splice::SPLICED.load(Ordering::Relaxed);
        let p = tokio::spawn(pipe(a, b, Some(Duration::from_secs(20))));
        let up: Vec<u8> = (0..16u32 << 20).map(|i| (i % 251) as u8).collect();
        let down: Vec<u8> = (0..3u32 << 20).map(|i| (i % 241) as u8).collect();
        let (up2, down2) = (up.clone(), down.clone());
        let srv = tokio::spawn(async move {
            let (mut r, mut w) = server.split();
            let (got, sent) = tokio::join!(
                async {
                    let mut got = Vec::new();
                    r.read_to_end(&mut got).await.unwrap();
                    got
                },
                async {
                    w.write_all(&down2).await.unwrap();
                    w.shutdown().await.unwrap();
                }
            );
            let () = sent;
            got
        });
        let (mut cr, mut cw) = client.split();
        let (back, ()) = tokio::join!(
            async {
                let mut back = Vec::new();
                cr.read_to_end(&mut back).await.unwrap();
                back
            },
            async {
                cw.write_all(&up2).await.unwrap();
                cw.shutdown().await.unwrap();
            }
        );
        let got = tokio::time::timeout(Duration::from_secs(30), srv)
            .await
            .unwrap()
            .unwrap();
        assert!(
            got == up,
            "client → server bytes differ ({} of {})",
            got.len(),
            up.len()
        );
        assert!(
            back == down,
            "server → client bytes differ ({} of {})",
            back.len(),
            down.len()
        );
        let stats = tokio::time::timeout(Duration::from_secs(30), p)
            .await
            .unwrap()
            .unwrap();
        assert_eq!((stats.a_to_b, stats.b_to_a), (16 << 20, 3 << 20));
        assert_eq!(read.load(Ordering::Relaxed), 16 << 20);
        assert_eq!(wrote.load(Ordering::Relaxed), 3 << 20);
        #[cfg(target_os = "linux")]
        assert!(
            splice::SPLICED.load(Ordering::Relaxed) > spliced,
            "two TCP ends must take the splice path"
        );
    }
}
