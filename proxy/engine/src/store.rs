//! Named-instance registries (chains, hops, authers, …) and the lazy, fail-closed references
//! services hold to them. Lookups happen at use time, so a replaced object (API PUT, reload)
//! is seen by every referrer at once, as in GOST.

use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;
use parking_lot::RwLock;

use crate::addr::{join_host_port, split_host_port};
pub use crate::chain::BypassRef;
use crate::chain::{Chain, Hop, Lookup};
use crate::component::{Auth, Bypass};
use crate::error::DialError;
use crate::limiter::{conn::ConnLimiter, rate::RateLimiter, traffic::TrafficLimiter};
use crate::policy::{Auther, Hosts, MatcherList};
use crate::resolver::Resolver;

/// One kind's registry: name → object.
#[derive(Debug)]
pub struct Named<T>(RwLock<HashMap<String, Arc<T>>>);

impl<T> Default for Named<T> {
    fn default() -> Self {
        Named(RwLock::new(HashMap::new()))
    }
}

impl<T> Named<T> {
    /// The object registered under `name`.
    pub fn get(&self, name: &str) -> Option<Arc<T>> {
        self.0.read().get(name).cloned()
    }
    /// Registers or replaces.
    pub fn set(&self, name: &str, v: Arc<T>) {
        self.0.write().insert(name.to_string(), v);
    }
    /// Removes.
    pub fn remove(&self, name: &str) -> Option<Arc<T>> {
        self.0.write().remove(name)
    }
    /// Registered names.
    pub fn names(&self) -> Vec<String> {
        self.0.read().keys().cloned().collect()
    }
}

/// All named instances of one engine.
#[derive(Debug, Default)]
pub struct Store {
    /// `chains`.
    pub chains: Named<Chain>,
    /// `hops`.
    pub hops: Named<Hop>,
    /// `authers`.
    pub authers: Named<Auther>,
    /// `admissions`.
    pub admissions: Named<MatcherList>,
    /// `bypasses`.
    pub bypasses: Named<MatcherList>,
    /// `hosts`.
    pub hosts: Named<Hosts>,
    /// `resolvers`.
    pub resolvers: Named<Resolver>,
    /// `limiters`.
    pub limiters: Named<TrafficLimiter>,
    /// `climiters`.
    pub climiters: Named<ConnLimiter>,
    /// `rlimiters`.
    pub rlimiters: Named<RateLimiter>,
    /// The global default server certificate (top-level `tls:`).
    pub tls: RwLock<Arc<crate::tls::GlobalTls>>,
}

// === impl Store ===

#[async_trait]
impl Lookup for Store {
    fn hop(&self, name: &str) -> Option<Arc<Hop>> {
        self.hops.get(name)
    }

    /// GOST's group rule: if whitelist members exist and all say bypass → bypass; else bypass
    /// if any blacklist member says so. A missing name bypasses (fail closed, logged).
    fn bypassed(&self, names: &[String], network: &str, addr: &str) -> bool {
        let mut white_total = 0;
        let mut white_bypass = 0;
        let mut black = false;
        for n in names {
            let Some(b) = self.bypasses.get(n) else {
                tracing::error!(bypass = %n, target = %addr, "bypass not found: refusing (fail closed)");
                return true;
            };
            let r = b.bypass(network, addr);
            if b.whitelist {
                white_total += 1;
                if r {
                    white_bypass += 1;
                }
            } else if r {
                black = true;
            }
        }
        (white_total > 0 && white_total == white_bypass) || black
    }

    /// A hosts mapper then a resolver; an IP address or a host without port is unchanged.
    async fn resolve(
        &self,
        hosts: Option<&str>,
        resolver: Option<&str>,
        addr: &str,
    ) -> Result<String, DialError> {
        if hosts.is_none() && resolver.is_none() {
            return Ok(addr.to_string());
        }
        let Some((host, port)) = split_host_port(addr) else {
            return Ok(addr.to_string());
        };
        if host.is_empty() || host.parse::<std::net::IpAddr>().is_ok() {
            return Ok(addr.to_string());
        }
        if let Some(h) = hosts {
            let m = self
                .hosts
                .get(h)
                .ok_or_else(|| DialError::Config(format!("hosts {h} not found")))?;
            if let Some(ip) = m.lookup(host) {
                return Ok(join_host_port(&ip.to_string(), port));
            }
        }
        if let Some(r) = resolver {
            let res = self
                .resolvers
                .get(r)
                .ok_or_else(|| DialError::Config(format!("resolver {r} not found")))?;
            let ip = res
                .resolve(host)
                .await
                .map_err(|e| DialError::io(addr, e))?;
            return Ok(join_host_port(&ip.to_string(), port));
        }
        Ok(addr.to_string())
    }
}

/// Authentication of a handler: none, an inline user, or named authers (any success wins).
#[derive(Debug, Clone, Default)]
pub enum AuthRef {
    /// No authentication.
    #[default]
    None,
    /// Inline `auth: {username, password}`.
    Inline(Arc<Auther>),
    /// Named authers; a missing name rejects (fail closed, logged).
    Named(Vec<String>),
}

impl AuthRef {
    /// Whether credentials are required at all.
    pub fn enabled(&self) -> bool {
        !matches!(self, AuthRef::None)
    }

    /// Checks credentials; `Some(client id)` on success. Without authentication everyone
    /// passes with an empty id.
    pub fn authenticate(&self, store: &Store, user: &str, pass: &str) -> Option<String> {
        match self {
            AuthRef::None => Some(String::new()),
            AuthRef::Inline(a) => a.authenticate(user, pass),
            AuthRef::Named(names) => {
                for n in names {
                    match store.authers.get(n) {
                        Some(a) => {
                            if let Some(id) = a.authenticate(user, pass) {
                                return Some(id);
                            }
                        }
                        None => {
                            tracing::error!(auther = %n, "auther not found: rejecting (fail closed)")
                        }
                    }
                }
                None
            }
        }
    }
}

/// A handler's [`Auth`]: an [`AuthRef`] with the store its names are looked up in.
pub struct StoreAuth {
    /// What authenticates.
    pub auth: AuthRef,
    /// Where named authers are looked up.
    pub store: Arc<Store>,
}

impl Auth for StoreAuth {
    fn enabled(&self) -> bool {
        self.auth.enabled()
    }
    fn authenticate(&self, user: &str, pass: &str) -> Option<String> {
        self.auth.authenticate(&self.store, user, pass)
    }
}

/// A service's [`Bypass`]: a [`BypassRef`] with the store its names are looked up in.
pub struct StoreBypass {
    /// The bypass names.
    pub bypass: BypassRef,
    /// Where they are looked up.
    pub store: Arc<Store>,
}

impl Bypass for StoreBypass {
    fn bypass(&self, network: &str, addr: &str) -> bool {
        self.bypass.bypass(&*self.store, network, addr)
    }
}

/// A set of admission names; all must admit. A missing name denies (fail closed).
#[derive(Debug, Clone, Default)]
pub struct AdmissionRef(pub Vec<String>);

impl AdmissionRef {
    /// Whether the client IP is admitted.
    pub fn admit(&self, store: &Store, ip: &str) -> bool {
        self.0.iter().all(|n| match store.admissions.get(n) {
            Some(a) => a.admit(ip),
            None => {
                tracing::error!(admission = %n, client = %ip, "admission not found: denying (fail closed)");
                false
            }
        })
    }
}

/// What a service checks and wraps on each accepted connection, by name (looked up per
/// connection, so a limiter replaced through the API applies to the next connection).
#[derive(Debug, Clone, Default)]
pub struct Gates {
    /// Client-IP admission.
    pub admission: AdmissionRef,
    /// `limiter`: traffic rate.
    pub limiter: Option<String>,
    /// `climiter`: concurrent connections.
    pub climiter: Option<String>,
    /// `rlimiter`: new connections per second.
    pub rlimiter: Option<String>,
}

fn lookup<T>(named: &Named<T>, kind: &str, name: &Option<String>) -> Option<Arc<T>> {
    let n = name.as_deref().filter(|n| !n.is_empty())?;
    let v = named.get(n);
    if v.is_none() {
        tracing::warn!(limiter = %n, kind, "limiter not found: not limiting");
    }
    v
}

impl Gates {
    /// The service's traffic limiter.
    pub fn limiter(&self, store: &Store) -> Option<Arc<TrafficLimiter>> {
        lookup(&store.limiters, "limiter", &self.limiter)
    }
    /// The service's concurrent-connection limiter.
    pub fn climiter(&self, store: &Store) -> Option<Arc<ConnLimiter>> {
        lookup(&store.climiters, "climiter", &self.climiter)
    }
    /// The service's connection-rate limiter.
    pub fn rlimiter(&self, store: &Store) -> Option<Arc<RateLimiter>> {
        lookup(&store.rlimiters, "rlimiter", &self.rlimiter)
    }
}

/// Collects a single name and a name list into one list (GOST's `x`/`xs` field pairs).
pub fn names(one: &Option<String>, many: &[String]) -> Vec<String> {
    let mut v: Vec<String> = one.iter().filter(|s| !s.is_empty()).cloned().collect();
    v.extend(many.iter().filter(|s| !s.is_empty()).cloned());
    v
}
