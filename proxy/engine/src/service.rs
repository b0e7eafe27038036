//! A running service: the accept loop, per-connection tasks, hooks, status and draining.
//!
//! Lifecycle (GOST's order): bind → `preUp` → serve: `postUp`, state `ready`, accept loop.
//! Close: `preDown` → listener closed (no new connections) → in-flight connections drain
//! until the deadline (then they are cut) → `postDown`.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use serde::Serialize;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::component::{ConnCtx, Handler, Listener};
use crate::hooks::{Hooks, Phase};
use crate::listener::{accept_error, AcceptError, Backoff};
use crate::metrics::Metrics;
use crate::store::{Gates, Store};

/// Service state as the Web API reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum State {
    /// Constructed.
    Running,
    /// Accepting.
    Ready,
    /// Accept errors, backing off.
    Failed,
    /// Closed.
    Closed,
}

/// Live status (GOST `status` object).
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Status {
    /// Unix seconds.
    pub create_time: u64,
    /// State.
    pub state: State,
    /// Last events.
    pub events: Vec<Event>,
    /// Counters.
    pub stats: Stats,
}

/// One status event.
#[derive(Debug, Clone, Serialize)]
pub struct Event {
    /// Unix seconds.
    pub time: u64,
    /// Message.
    pub msg: String,
}

/// Service counters.
#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Stats {
    /// Connections accepted.
    pub total_conns: u64,
    /// Connections being handled.
    pub current_conns: u64,
    /// Handler errors.
    pub total_errs: u64,
    /// Bytes from clients.
    pub input_bytes: u64,
    /// Bytes to clients.
    pub output_bytes: u64,
}

fn now_unix() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// A bound service.
pub struct Service {
    /// Name.
    pub name: String,
    listener: Mutex<Option<Arc<dyn Listener>>>,
    local: SocketAddr,
    handler: Arc<dyn Handler>,
    gates: Gates,
    store: Arc<Store>,
    hooks: Hooks,
    metrics: Arc<Metrics>,
    stop_accept: CancellationToken,
    cut: CancellationToken,
    conns: TaskTracker,
    status: Mutex<Status>,
    served: tokio::sync::watch::Sender<bool>,
    total: AtomicU64,
    errors: AtomicU64,
    input: Arc<AtomicU64>,
    output: Arc<AtomicU64>,
    fail_closed: Option<String>,
}

impl Service {
    /// Wraps a bound listener and its handler. Runs nothing yet.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        name: String,
        listener: Arc<dyn Listener>,
        handler: Arc<dyn Handler>,
        gates: Gates,
        store: Arc<Store>,
        hooks: Hooks,
        metrics: Arc<Metrics>,
        fail_closed: Option<String>,
    ) -> Arc<Service> {
        let local = listener.local_addr();
        let (served, _) = tokio::sync::watch::channel(false);
        Arc::new(Service {
            name,
            local,
            listener: Mutex::new(Some(listener)),
            handler,
            gates,
            store,
            hooks,
            metrics,
            stop_accept: CancellationToken::new(),
            cut: CancellationToken::new(),
            conns: TaskTracker::new(),
            status: Mutex::new(Status {
                create_time: now_unix(),
                state: State::Running,
                events: Vec::new(),
                stats: Stats::default(),
            }),
            served,
            total: AtomicU64::new(0),
            errors: AtomicU64::new(0),
            input: Arc::new(AtomicU64::new(0)),
            output: Arc::new(AtomicU64::new(0)),
            fail_closed,
        })
    }

    /// The bound address.
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// Whether the accept loop runs (after `postUp`).
    pub fn is_ready(&self) -> bool {
        *self.served.borrow()
    }

    /// Waits until ready or closed.
    pub async fn wait_ready(&self) {
        let mut rx = self.served.subscribe();
        let _ = rx.wait_for(|v| *v).await;
    }

    /// Why this service refuses every connection (config metadata `failClosed`), if it does.
    pub fn fail_closed(&self) -> Option<&str> {
        self.fail_closed.as_deref()
    }

    /// The hooks of this service.
    pub fn hooks(&self) -> &Hooks {
        &self.hooks
    }

    fn event(&self, msg: String) {
        let mut s = self.status.lock();
        s.events.push(Event {
            time: now_unix(),
            msg,
        });
        let extra = s.events.len().saturating_sub(20);
        s.events.drain(..extra);
    }

    fn set_state(&self, st: State) {
        self.status.lock().state = st;
    }

    /// A snapshot of the live status.
    pub fn status(&self) -> Status {
        let mut s = self.status.lock().clone();
        s.stats.total_conns = self.total.load(Ordering::Relaxed);
        s.stats.current_conns = self.conns.len() as u64;
        s.stats.total_errs = self.errors.load(Ordering::Relaxed);
        s.stats.input_bytes = self.input.load(Ordering::Relaxed);
        s.stats.output_bytes = self.output.load(Ordering::Relaxed);
        s
    }

    /// Runs `preUp` (call right after bind).
    pub async fn pre_up(&self) {
        self.run_hooks(Phase::PreUp).await;
    }

    /// Runs `postUp`, then accepts until [`Service::close`].
    pub async fn serve(self: Arc<Self>) {
        self.run_hooks(Phase::PostUp).await;
        let Some(listener) = self.listener.lock().clone() else {
            return;
        };
        self.set_state(State::Ready);
        self.event(format!(
            "service {} is listening on {}",
            self.name, self.local
        ));
        tracing::info!(service = %self.name, addr = %self.local, "listening");
        self.served.send_replace(true);
        self.metrics.service_up(true);
        let mut backoff = Backoff::new(Duration::from_secs(1), Duration::from_secs(5));
        let mut exhausted = Backoff::exhausted();
        loop {
            let accepted = tokio::select! {
                _ = self.stop_accept.cancelled() => break,
                r = listener.accept() => r,
            };
            let (conn, peer) = match accepted {
                Ok(x) => {
                    backoff.reset();
                    exhausted.reset();
                    x
                }
                Err(e) => match accept_error(&e) {
                    // the connection died in the backlog: nothing to wait for
                    AcceptError::Connection => continue,
                    // out of descriptors or memory: the listener is fine and the pending
                    // connections stay queued; retry soon without spinning
                    AcceptError::Exhausted => {
                        if exhausted.is_first() {
                            tracing::warn!(service = %self.name, error = %e, "accept: out of resources; backing off until descriptors are free");
                        }
                        self.metrics.handler_error(&self.name, "");
                        tokio::select! {
                            _ = self.stop_accept.cancelled() => break,
                            _ = tokio::time::sleep(exhausted.pause()) => {}
                        }
                        continue;
                    }
                    AcceptError::Listener => {
                        self.set_state(State::Failed);
                        let pause = backoff.pause();
                        tracing::warn!(service = %self.name, error = %e, "accept: retrying in {pause:?}");
                        tokio::select! {
                            _ = self.stop_accept.cancelled() => break,
                            _ = tokio::time::sleep(pause) => {}
                        }
                        self.set_state(State::Ready);
                        continue;
                    }
                },
            };
            let ip = peer.ip().to_string();
            let ip = ip.strip_prefix("::ffff:").unwrap_or(&ip).to_string();
            if !self.gates.admission.admit(&self.store, &ip) {
                tracing::debug!(service = %self.name, client = %ip, "admission denied");
                continue;
            }
            let client = peer.ip().to_canonical();
            let permit = match self.gates.climiter(&self.store) {
                None => None,
                Some(c) => match c.acquire(client) {
                    Some(p) => Some(p),
                    None => {
                        tracing::debug!(service = %self.name, client = %ip, "concurrent connection limit reached: closed");
                        continue;
                    }
                },
            };
            self.total.fetch_add(1, Ordering::Relaxed);
            if let Some(r) = self.gates.rlimiter(&self.store) {
                if !r.allow(client) {
                    self.errors.fetch_add(1, Ordering::Relaxed);
                    self.metrics.handler_error(&self.name, &ip);
                    tracing::debug!(service = %self.name, client = %ip, "connection rate limit reached: closed");
                    continue;
                }
            }
            let conn = match conn {
                crate::component::Inbound::Stream(s) => {
                    let s = match self.gates.limiter(&self.store) {
                        Some(t) => t.wrap(s, client),
                        None => s,
                    };
                    let (ci, co) = self.metrics.transfer_counters(&self.name, &ip);
                    let (si, so) = (Arc::clone(&self.input), Arc::clone(&self.output));
                    crate::component::Inbound::Stream(Box::new(crate::io::Counted::new(
                        s,
                        Box::new(move |n| {
                            ci.inc_by(n);
                            si.fetch_add(n, Ordering::Relaxed);
                        }),
                        Box::new(move |n| {
                            co.inc_by(n);
                            so.fetch_add(n, Ordering::Relaxed);
                        }),
                    )))
                }
                other => other,
            };
            let ctx = ConnCtx {
                sid: new_sid(),
                service: Arc::from(self.name.as_str()),
                src: peer,
                local: self.local,
            };
            let handler = Arc::clone(&self.handler);
            let cut = self.cut.clone();
            let this = Arc::clone(&self);
            self.metrics.conn_start(&self.name, &ip);
            // One span per connection; the router records the target and route it dials.
            let span = tracing::info_span!(
                "conn",
                sid = %ctx.sid,
                service = %self.name,
                client = %peer,
                dst = tracing::field::Empty,
                route = tracing::field::Empty,
            );
            let conn_task = async move {
                let _permit = permit;
                let start = tokio::time::Instant::now();
                let sid = ctx.sid.clone();
                let res = tokio::select! {
                    r = handler.handle(conn, ctx) => Some(r),
                    _ = cut.cancelled() => None,
                };
                match res {
                    Some(Err(e)) => {
                        this.errors.fetch_add(1, Ordering::Relaxed);
                        this.metrics.handler_error(&this.name, &ip);
                        tracing::debug!(service = %this.name, sid = %sid, client = %ip, error = %e, "connection ended with error");
                    }
                    None => {
                        tracing::debug!(service = %this.name, sid = %sid, "connection cut at drain deadline")
                    }
                    Some(Ok(())) => {}
                }
                this.metrics.conn_end(&this.name, &ip, start.elapsed());
            };
            self.conns
                .spawn(tracing::Instrument::instrument(conn_task, span));
        }
        self.metrics.service_up(false);
    }

    /// Stops accepting and hands the bound listener over (to the service replacing this one,
    /// so the socket is never closed and no connection is refused during a change).
    pub fn take_listener(&self) -> Option<Arc<dyn Listener>> {
        self.stop_accept.cancel();
        self.served.send_replace(false);
        self.listener.lock().take()
    }

    /// Runs one phase's hooks for this service.
    pub async fn run_hooks(&self, phase: Phase) {
        self.hooks
            .run(phase, &self.name, &self.local.to_string())
            .await;
    }

    /// Drains, marks the service closed and runs `postDown` (after the listener was released).
    pub async fn finish(&self, deadline: Duration) {
        self.drain(deadline).await;
        self.set_state(State::Closed);
        self.event(format!("service {} is closed", self.name));
        self.run_hooks(Phase::PostDown).await;
    }

    /// Stops accepting and releases the listening socket (no hooks).
    pub fn stop_listening(&self) {
        let _ = self.take_listener();
    }

    /// Waits for in-flight connections up to `deadline`, then cuts the rest.
    pub async fn drain(&self, deadline: Duration) {
        self.conns.close();
        if tokio::time::timeout(deadline, self.conns.wait())
            .await
            .is_err()
        {
            tracing::warn!(service = %self.name, remaining = self.conns.len(), "drain deadline passed: closing connections");
            self.cut.cancel();
            self.conns.wait().await;
        }
    }

    /// GOST's close: `preDown` → stop listening → drain → `postDown`.
    pub async fn close(&self, deadline: Duration) {
        self.run_hooks(Phase::PreDown).await;
        self.stop_listening();
        self.finish(deadline).await;
    }
}

fn new_sid() -> String {
    const ALPHA: &[u8] = b"0123456789abcdefghijklmnopqrstuv";
    let r: u128 = rand::random();
    (0..20)
        .map(|i| ALPHA[((r >> (i * 5)) & 31) as usize] as char)
        .collect()
}
