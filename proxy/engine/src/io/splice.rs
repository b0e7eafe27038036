//! The Linux `splice(2)` path of [`super::pipe`]: when both ends are plain TCP sockets (bare,
//! or behind the service's byte counters or an emptied [`super::Rewind`]), bytes move
//! socket → pipe → socket inside the kernel and never enter this process.
//!
//! A pipe is held only while it carries bytes: a direction takes one from a small process-wide
//! pool when its source turns readable and gives it back once it is drained, so an idle tunnel
//! holds no pipe and no buffer (HAProxy's pipe pool works the same way). Byte counts come from
//! the return values of `splice`, so metrics and [`super::PipeStats`] stay exact.

use std::any::Any;
use std::io;
use std::net::Shutdown;
use std::os::fd::{AsFd, OwnedFd};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use nix::fcntl::{fcntl, splice, FcntlArg, OFlag, SpliceFFlags};
use tokio::io::Interest;
use tokio::net::TcpStream;

use super::{BoxStream, Counted, Io, PipeStats, Rewind};

/// Bytes a pipe is asked to hold (`F_SETPIPE_SZ`; the kernel's 64 KiB when refused, e.g. past
/// `fs.pipe-user-pages-soft`).
const PIPE_SIZE: i32 = 256 * 1024;
/// Empty pipes kept for reuse; more are closed when given back.
const POOL_MAX: usize = 32;

/// One end of a spliced pipe: the socket and the byte counters wrapped around it.
pub(super) struct Side<'a> {
    tcp: &'a TcpStream,
    on_read: Option<&'a (dyn Fn(u64) + Send + Sync)>,
    on_write: Option<&'a (dyn Fn(u64) + Send + Sync)>,
}

/// The TCP socket under `s`, if nothing between it and `s` needs to see the bytes.
pub(super) fn side(s: &dyn Any) -> Option<Side<'_>> {
    if let Some(tcp) = s.downcast_ref::<TcpStream>() {
        return Some(Side {
            tcp,
            on_read: None,
            on_write: None,
        });
    }
    if let Some(b) = s.downcast_ref::<BoxStream>() {
        let inner: &dyn Io = &**b;
        return side(inner);
    }
    if let Some(c) = s.downcast_ref::<Counted<BoxStream>>() {
        let inner: &dyn Io = &*c.inner;
        let mut sd = side(inner)?;
        if sd.on_read.is_some() || sd.on_write.is_some() {
            return None;
        }
        sd.on_read = Some(&*c.on_read);
        sd.on_write = Some(&*c.on_write);
        return Some(sd);
    }
    if let Some(r) = s.downcast_ref::<Rewind<BoxStream>>() {
        if r.pos < r.buf.len() {
            return None;
        }
        let inner: &dyn Io = &*r.inner;
        return side(inner);
    }
    None
}

struct Pipe {
    r: OwnedFd,
    w: OwnedFd,
}

static POOL: Mutex<Vec<Pipe>> = Mutex::new(Vec::new());

/// Pipes that took this path since start (tests check a pipe really was spliced).
pub(super) static SPLICED: AtomicU64 = AtomicU64::new(0);

fn take_pipe() -> io::Result<Pipe> {
    if let Some(p) = POOL.lock().unwrap_or_else(|e| e.into_inner()).pop() {
        return Ok(p);
    }
    let (r, w) = nix::unistd::pipe2(OFlag::O_NONBLOCK | OFlag::O_CLOEXEC)?;
    // Refused past the per-user pipe page limit; the default size still works, only slower.
    let _ = fcntl(&w, FcntlArg::F_SETPIPE_SZ(PIPE_SIZE));
    Ok(Pipe { r, w })
}

/// Returns an empty pipe to the pool (a pipe that may still hold bytes is closed instead).
fn give_pipe(p: Pipe) {
    let mut pool = POOL.lock().unwrap_or_else(|e| e.into_inner());
    if pool.len() < POOL_MAX {
        pool.push(p);
    }
}

fn flags() -> SpliceFFlags {
    SpliceFFlags::SPLICE_F_MOVE | SpliceFFlags::SPLICE_F_NONBLOCK
}

/// [`super::pipe`] over two TCP sockets, with the same half-close and idle rules.
pub(super) async fn pipe(a: Side<'_>, b: Side<'_>, idle: Option<Duration>) -> PipeStats {
    SPLICED.fetch_add(1, Ordering::Relaxed);
    let half_close_timeout = Duration::from_secs(10);
    let fwd = one_way(&a, &b, idle);
    let back = one_way(&b, &a, idle);
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

/// Moves `src` → `dst` until EOF, an error or `idle` without data, then shuts `dst`'s write
/// side down (a FIN, as the copy path does). Returns the bytes delivered to `dst`.
async fn one_way(src: &Side<'_>, dst: &Side<'_>, idle: Option<Duration>) -> u64 {
    let mut total = 0u64;
    loop {
        let ready = match idle {
            Some(d) => match tokio::time::timeout(d, src.tcp.readable()).await {
                Ok(r) => r,
                Err(_) => break,
            },
            None => src.tcp.readable().await,
        };
        if ready.is_err() {
            break;
        }
        let p = match take_pipe() {
            Ok(p) => p,
            Err(e) => {
                tracing::debug!(error = %e, "splice: no pipe");
                break;
            }
        };
        let filled = src.tcp.try_io(Interest::READABLE, || {
            splice(
                src.tcp.as_fd(),
                None,
                &p.w,
                None,
                PIPE_SIZE as usize,
                flags(),
            )
            .map_err(io::Error::from)
        });
        let mut left = match filled {
            Ok(0) => {
                give_pipe(p);
                break;
            }
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                give_pipe(p);
                continue;
            }
            Err(_) => {
                give_pipe(p);
                break;
            }
        };
        if let Some(f) = src.on_read {
            f(left as u64);
        }
        while left > 0 {
            if dst.tcp.writable().await.is_err() {
                break;
            }
            let sent = dst.tcp.try_io(Interest::WRITABLE, || {
                splice(&p.r, None, dst.tcp.as_fd(), None, left, flags()).map_err(io::Error::from)
            });
            match sent {
                Ok(0) => break,
                Ok(n) => {
                    left -= n;
                    total += n as u64;
                    if let Some(f) = dst.on_write {
                        f(n as u64);
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(_) => break,
            }
        }
        if left > 0 {
            // The peer went away with bytes still in the pipe: close it rather than reuse it.
            break;
        }
        give_pipe(p);
    }
    let _ = socket2::SockRef::from(dst.tcp).shutdown(Shutdown::Write);
    total
}
