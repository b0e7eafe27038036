//! `limiters`: bytes per second. A line is `<scope> <in> [<out> [<burst>]]`: `in` is what the
//! service reads from its client, `out` what it writes back; the burst (default: the rate)
//! is the most one read or write moves at once. `$` is shared by the whole service, `$$` is
//! each connection's own, an IP or CIDR line is shared by each client's connections.
//!
//! The accepted client stream is wrapped, so every protocol behind the listener is limited
//! alike. A read or write first waits for tokens, then moves at most what every bucket holds
//! (so N bytes never pass faster than (N − burst) / rate). It waits for a batch of about
//! 10 ms of the rate rather than for every single token, so a slow rate is not dribbled out
//! a byte per wake-up.

use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::{Arc, Weak};
use std::task::{ready, Context, Poll};
use std::time::Duration;

use gost_config::LimiterConfig;
use parking_lot::Mutex;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::Sleep;

use super::{parse_bytes, Bucket, Scoped};
use crate::error::BuildError;
use crate::io::BoxStream;

/// One line's rates (bytes per second; `None` = unlimited) and burst.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rates {
    /// Client → service.
    pub input: Option<u64>,
    /// Service → client.
    pub output: Option<u64>,
    /// Largest single move (default: the rate).
    pub burst: Option<u64>,
}

type Pair = (Option<Arc<Bucket>>, Option<Arc<Bucket>>);
/// A client's shared (in, out) buckets, held only by its open connections.
type WeakPair = (Weak<Bucket>, Weak<Bucket>);

/// A built `limiters[]` entry.
#[derive(Debug)]
pub struct TrafficLimiter {
    /// The lines it was built from (an unchanged limiter keeps its buckets across applies).
    pub source: LimiterConfig,
    limits: Scoped<Rates>,
    service: Pair,
    clients: Mutex<HashMap<IpAddr, WeakPair>>,
}

fn bucket(rate: Option<u64>, burst: Option<u64>) -> Option<Arc<Bucket>> {
    let r = rate? as f64;
    Some(Arc::new(Bucket::new(r, burst.map_or(r, |b| b as f64))))
}

fn pair(r: &Rates) -> Pair {
    (bucket(r.input, r.burst), bucket(r.output, r.burst))
}

fn live(w: &Weak<Bucket>, rate: Option<u64>, burst: Option<u64>) -> Option<Arc<Bucket>> {
    w.upgrade().or_else(|| bucket(rate, burst))
}

impl TrafficLimiter {
    /// Builds from config (`path` names it in errors).
    pub fn build(path: &str, c: &LimiterConfig) -> Result<TrafficLimiter, BuildError> {
        let limits = super::parse(path, c, "<in> [<out> [<burst>]]", |f| {
            if f.len() > 3 {
                return Err(format!("{} values, at most 3 are accepted", f.len()));
            }
            let get = |i: usize| f.get(i).map_or(Ok(None), |v| parse_bytes(v));
            let r = Rates {
                input: get(0)?,
                output: get(1)?,
                burst: get(2)?,
            };
            Ok((r.input.is_some() || r.output.is_some()).then_some(r))
        })?;
        Ok(TrafficLimiter {
            source: c.clone(),
            service: limits.service.as_ref().map(pair).unwrap_or((None, None)),
            limits,
            clients: Mutex::default(),
        })
    }

    /// The buckets one new connection from `ip` is charged to: (reads, writes).
    fn buckets(&self, ip: IpAddr) -> (Vec<Arc<Bucket>>, Vec<Arc<Bucket>>) {
        let ip = ip.to_canonical();
        let (mut rd, mut wr) = (Vec::new(), Vec::new());
        let mut push = |(i, o): Pair| {
            rd.extend(i);
            wr.extend(o);
        };
        push(self.service.clone());
        match self.limits.client(ip).copied() {
            Some(r) => {
                let mut clients = self.clients.lock();
                clients.retain(|_, (a, b)| a.strong_count() + b.strong_count() > 0);
                let e = clients.entry(ip).or_insert((Weak::new(), Weak::new()));
                let i = live(&e.0, r.input, r.burst);
                let o = live(&e.1, r.output, r.burst);
                *e = (
                    i.as_ref().map_or(Weak::new(), Arc::downgrade),
                    o.as_ref().map_or(Weak::new(), Arc::downgrade),
                );
                push((i, o));
            }
            None => {
                if let Some(r) = &self.limits.each {
                    push(pair(r));
                }
            }
        }
        (rd, wr)
    }

    /// Wraps one accepted client stream (returned as is when nothing limits it).
    pub fn wrap(&self, s: BoxStream, ip: IpAddr) -> BoxStream {
        let (rd, wr) = self.buckets(ip);
        if rd.is_empty() && wr.is_empty() {
            return s;
        }
        Box::new(Limited::new(s, rd, wr))
    }
}

/// One direction's gate.
struct Gate {
    buckets: Vec<Arc<Bucket>>,
    cap: usize,
    sleep: Option<Pin<Box<Sleep>>>,
}

impl Gate {
    fn new(buckets: Vec<Arc<Bucket>>) -> Gate {
        let cap = buckets
            .iter()
            .map(|b| b.burst() as usize)
            .min()
            .unwrap_or(usize::MAX)
            .max(1);
        Gate {
            buckets,
            cap,
            sleep: None,
        }
    }

    /// How many of `want` bytes may move now (at least 1), once every bucket holds a batch.
    fn poll_open(&mut self, cx: &mut Context<'_>, want: usize) -> Poll<usize> {
        let want = want.clamp(1, self.cap) as f64;
        loop {
            if let Some(s) = self.sleep.as_mut() {
                ready!(s.as_mut().poll(cx));
                self.sleep = None;
            }
            let wait = self
                .buckets
                .iter()
                .map(|b| b.wait_for(want.min((b.rate() / 100.0).max(1.0))))
                .max()
                .unwrap_or(Duration::ZERO);
            if wait.is_zero() {
                let held = self
                    .buckets
                    .iter()
                    .map(|b| b.available())
                    .fold(want, f64::min);
                return Poll::Ready(held.max(1.0) as usize);
            }
            self.sleep = Some(Box::pin(tokio::time::sleep(wait)));
        }
    }

    fn charge(&self, n: usize) {
        for b in &self.buckets {
            b.take(n as f64);
        }
    }
}

/// A stream whose reads and writes are paced by token buckets.
pub struct Limited<S> {
    inner: S,
    rd: Gate,
    wr: Gate,
}

impl<S> Limited<S> {
    /// Wraps `inner`: reads charged to `rd`, writes to `wr`.
    pub fn new(inner: S, rd: Vec<Arc<Bucket>>, wr: Vec<Arc<Bucket>>) -> Limited<S> {
        Limited {
            inner,
            rd: Gate::new(rd),
            wr: Gate::new(wr),
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Limited<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        if this.rd.buckets.is_empty() {
            return Pin::new(&mut this.inner).poll_read(cx, buf);
        }
        let max = ready!(this.rd.poll_open(cx, buf.remaining()));
        let mut sub = ReadBuf::new(buf.initialize_unfilled_to(max));
        ready!(Pin::new(&mut this.inner).poll_read(cx, &mut sub))?;
        let n = sub.filled().len();
        buf.advance(n);
        this.rd.charge(n);
        Poll::Ready(Ok(()))
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Limited<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        if this.wr.buckets.is_empty() {
            return Pin::new(&mut this.inner).poll_write(cx, buf);
        }
        let max = ready!(this.wr.poll_open(cx, buf.len()));
        let n = ready!(Pin::new(&mut this.inner).poll_write(cx, &buf[..max]))?;
        this.wr.charge(n);
        Poll::Ready(Ok(n))
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

    fn lim(lines: &[&str]) -> TrafficLimiter {
        let c = LimiterConfig {
            name: "t".into(),
            limits: lines.iter().map(|s| s.to_string()).collect(),
            ..Default::default()
        };
        TrafficLimiter::build("limiters[t]", &c).unwrap()
    }

    #[test]
    fn scopes_pick_the_buckets() {
        let l = lim(&["$ 10MB 20MB", "$$ 1MB", "10.0.0.0/8 2MB 3MB 64KB"]);
        let (rd, wr) = l.buckets("192.168.1.1".parse().unwrap());
        assert_eq!((rd.len(), wr.len()), (2, 1), "service in+out, conn in only");
        let (rd1, wr1) = l.buckets("10.1.1.1".parse().unwrap());
        let (rd2, wr2) = l.buckets("10.1.1.1".parse().unwrap());
        assert!(
            Arc::ptr_eq(&rd1[1], &rd2[1]),
            "one client's connections share its bucket"
        );
        assert_eq!(rd1[1].burst(), 65536.0);
        let (rd3, _) = l.buckets("10.1.1.2".parse().unwrap());
        assert!(
            !Arc::ptr_eq(&rd1[1], &rd3[1]),
            "each client of a CIDR has its own"
        );
        drop((rd1, rd2, rd3, wr1, wr2));
        let _ = l.buckets("10.9.9.9".parse().unwrap());
        assert_eq!(l.clients.lock().len(), 1, "dead client entries are dropped");
    }

    #[test]
    fn bad_lines_are_errors() {
        let c = LimiterConfig {
            name: "t".into(),
            limits: vec!["$ 1MB 2MB 3MB 4MB".into()],
            ..Default::default()
        };
        let e = TrafficLimiter::build("limiters[t]", &c).unwrap_err();
        assert_eq!(e.path, "limiters[t].limits[0]");
        let c = LimiterConfig {
            name: "t".into(),
            limits: vec!["$$ fast".into()],
            ..Default::default()
        };
        let e = TrafficLimiter::build("limiters[t]", &c).unwrap_err();
        assert!(e.msg.contains("\"fast\""), "{}", e.msg);
    }

    /// With paused time, moving 64 KiB at 16 KiB/s with a 4 KiB burst takes (64-4)/16 = 3.75
    /// virtual seconds: the pacing, not the machine, decides.
    #[tokio::test(start_paused = true)]
    async fn reads_are_paced_at_the_rate() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let (a, mut b) = tokio::io::duplex(1 << 20);
        let rd = vec![Arc::new(Bucket::new(16384.0, 4096.0))];
        let mut s = Limited::new(a, rd, vec![]);
        b.write_all(&vec![7u8; 65536]).await.unwrap();
        drop(b);
        let t0 = tokio::time::Instant::now();
        let mut got = Vec::new();
        s.read_to_end(&mut got).await.unwrap();
        assert_eq!(got.len(), 65536);
        let took = t0.elapsed().as_secs_f64();
        assert!((3.5..4.1).contains(&took), "virtual {took}s");
    }
}
