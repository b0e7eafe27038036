//! One service: validated into a [`ServicePlan`], bound by [`ServicePlan::start`].

use std::sync::Arc;

use gost_config::ServiceConfig;

use super::{check_unknown, direct, forwarder, registered, type_or, BuildOpts};
use crate::chain::{ForwarderTargets, Lookup};
use crate::component::{
    Handler, HandlerOpts, Kinds, Listener, ListenerFactory, ListenerOpts, Route, Targets,
};
use crate::error::BuildError;
use crate::hooks::Hooks;
use crate::md::Md;
use crate::metrics::Metrics;
use crate::policy::Auther;
use crate::router::{Router, DEFAULT_DIAL_TIMEOUT};
use crate::service::Service;
use crate::store::{names, AdmissionRef, AuthRef, BypassRef, Gates, Store, StoreAuth, StoreBypass};

/// A validated service, not yet bound.
pub struct ServicePlan {
    /// Service name.
    pub name: String,
    /// The raw config it came from (for diffs).
    pub raw: ServiceConfig,
    listen: ListenerFactory,
    listener_opts: ListenerOpts,
    handler: Arc<dyn Handler>,
    gates: Gates,
    /// Hooks.
    pub hooks: Hooks,
    store: Arc<Store>,
    /// Why the service fails closed, when it does.
    pub fail_closed: Option<String>,
}

/// Service metadata keys the engine itself reads.
const SERVICE_KEYS: &[&str] = &[
    "ignoreChain",
    crate::fail_closed::KEY,
    "preUp",
    "postUp",
    "preDown",
    "postDown",
    "hookTimeout",
    "dialTimeout",
    "interface",
    "so_mark",
    "netns",
    "netns.out",
    "proxyProtocol",
    "enableStats",
    "observer.period",
    "observePeriod",
    "observer.resetTraffic",
    "limiter.refreshInterval",
    "limiter.cleanupInterval",
    "limiter.scope",
];

/// Validates and builds a service plan.
pub fn service(
    kinds: &Kinds,
    c: &ServiceConfig,
    store: &Arc<Store>,
    opts: &BuildOpts,
) -> Result<ServicePlan, BuildError> {
    let path = format!("services[{}]", c.name);
    if c.name.trim().is_empty() {
        return Err(BuildError::new("services[]", "service name is required"));
    }
    if c.addr.is_empty() {
        return Err(BuildError::new(
            format!("{path}.addr"),
            "listen address is required (host:port, e.g. :8080)",
        ));
    }
    if let Some(reason) = fail_closed_reason(c)? {
        return fail_closed(kinds, c, &reason, store, opts);
    }
    reject_unsupported_service(&path, c)?;
    let hc = c.handler.clone().unwrap_or_default();
    let lc = c.listener.clone().unwrap_or_default();
    let htype = type_or(&hc.kind, "auto");
    let ltype = type_or(&lc.kind, "tcp");
    let hf = registered(
        &kinds.handlers,
        "handler",
        htype,
        format!("{path}.handler.type"),
    )?;
    let lf = registered(
        &kinds.listeners,
        "listener",
        ltype,
        format!("{path}.listener.type"),
    )?;
    check_listen_addr(&path, &c.addr)?;
    reject_unsupported_handler(&path, &hc, &lc)?;
    let smd = Md::new(format!("{path}.metadata"), &c.metadata);
    let hmd = Arc::new(Md::new(format!("{path}.handler.metadata"), &hc.metadata));
    let lmd = Arc::new(Md::new(format!("{path}.listener.metadata"), &lc.metadata));
    smd.mark_known(SERVICE_KEYS);
    let ignore_chain = smd.bool_or(&["ignoreChain"], false)?;
    let dial_timeout = smd
        .duration(&["dialTimeout"])?
        .filter(|d| !d.is_zero())
        .unwrap_or(DEFAULT_DIAL_TIMEOUT);
    let hooks = hooks(&smd, opts)?;
    if hc.retries < 0 {
        return Err(BuildError::new(
            format!("{path}.handler.retries"),
            format!("invalid value {} (accepted: 0 or more)", hc.retries),
        ));
    }
    let chain = if ignore_chain {
        None
    } else {
        hc.chain.clone().filter(|s| !s.is_empty())
    };
    let router = Arc::new(Router {
        store: Arc::clone(store),
        chain,
        hosts: c.hosts.clone().filter(|s| !s.is_empty()),
        resolver: c.resolver.clone().filter(|s| !s.is_empty()),
        retries: u32::try_from(hc.retries).unwrap_or(0),
        timeout: dial_timeout,
        direct: direct(kinds, &format!("{path}.handler"))?,
    });
    let forwarder = match &c.forwarder {
        Some(f) => forwarder(kinds, &format!("{path}.forwarder"), f, store, opts)?,
        None => None,
    };
    let forwarder = forwarder.map(|forwarder| {
        Arc::new(ForwarderTargets {
            forwarder,
            names: Arc::clone(store) as Arc<dyn Lookup>,
        }) as Arc<dyn Targets>
    });
    let global_tls = store.tls.read().clone();
    let hopts = HandlerOpts {
        path: format!("{path}.handler"),
        md: Arc::clone(&hmd),
        router: Arc::clone(&router) as Arc<dyn Route>,
        auth: Arc::new(StoreAuth {
            auth: auth_ref(&hc),
            store: Arc::clone(store),
        }),
        bypass: Arc::new(StoreBypass {
            bypass: BypassRef(names(&c.bypass, &c.bypasses)),
            store: Arc::clone(store),
        }),
        forwarder,
        tls: Some(crate::tls::server_config(
            &format!("{path}.handler.tls"),
            hc.tls.as_ref(),
            &global_tls,
        )?),
    };
    let handler = hf(&hopts)?;
    let listener_router = Arc::new(Router {
        chain: if ignore_chain {
            None
        } else {
            lc.chain.clone().filter(|s| !s.is_empty())
        },
        ..(*router).clone()
    });
    let listener_opts = ListenerOpts {
        path: format!("{path}.listener"),
        addr: c.addr.clone(),
        md: Arc::clone(&lmd),
        tls: Some(crate::tls::server_config(
            &format!("{path}.listener.tls"),
            lc.tls.as_ref(),
            &global_tls,
        )?),
        router: listener_router,
    };
    (lf.0)(&listener_opts)?;
    // Unknown metadata keys, once every component has read its keys: CLI parameters land in
    // service, handler and listener metadata at once, so a key any of the three understands
    // is not reported as unknown in the others.
    let mut shared = smd.used_present_keys();
    shared.extend(hmd.used_present_keys());
    shared.extend(lmd.used_present_keys());
    check_unknown(&[&smd, &hmd, &lmd], &shared, opts.strict)?;
    Ok(ServicePlan {
        name: c.name.clone(),
        raw: c.clone(),
        listen: Arc::clone(&lf.1),
        listener_opts,
        handler,
        gates: Gates {
            admission: AdmissionRef(names(&c.admission, &c.admissions)),
            limiter: c.limiter.clone(),
            climiter: c.climiter.clone(),
            rlimiter: c.rlimiter.clone(),
        },
        hooks,
        store: Arc::clone(store),
        fail_closed: None,
    })
}

/// Service-level sections gost-proxy does not implement.
fn reject_unsupported_service(path: &str, c: &ServiceConfig) -> Result<(), BuildError> {
    for (what, v) in [("observer", &c.observer), ("logger", &c.logger)] {
        if v.is_some() {
            return Err(BuildError::new(
                format!("{path}.{what}"),
                format!("service `{what}` is not supported by gost-proxy yet"),
            ));
        }
    }
    if c.recorders.is_some() || !c.loggers.is_empty() {
        return Err(BuildError::new(
            format!("{path}.recorders"),
            "service recorders/loggers are not supported by gost-proxy yet",
        ));
    }
    Ok(())
}

/// Handler and listener settings gost-proxy does not implement.
fn reject_unsupported_handler(
    path: &str,
    hc: &gost_config::HandlerConfig,
    lc: &gost_config::ListenerConfig,
) -> Result<(), BuildError> {
    if hc.limiter.as_ref().is_some_and(|l| !l.is_empty()) {
        // GOST asks a handler's limiter only at client scope, which inline limits never
        // answer (only plugins do): the reference is checked and limits nothing, as in GOST.
        tracing::warn!(path, "handler.limiter limits nothing with inline limits (GOST asks it only at client scope); use the service's `limiter`");
    }
    for (what, v) in [("handler.observer", &hc.observer)] {
        if v.is_some() {
            return Err(BuildError::new(
                format!("{path}.{what}"),
                "not supported by gost-proxy yet",
            ));
        }
    }
    if hc.chain_group.is_some() || lc.chain_group.is_some() {
        return Err(BuildError::new(
            format!("{path}.handler.chainGroup"),
            "chainGroup is not supported by gost-proxy yet",
        ));
    }
    Ok(())
}

/// A service address must parse as a listen address.
fn check_listen_addr(path: &str, addr: &str) -> Result<(), BuildError> {
    if crate::addr::parse_listen_addr(addr).is_none() {
        return Err(BuildError::new(
            format!("{path}.addr"),
            format!(
                "invalid listen address {addr:?} (expected host:port, e.g. 127.0.0.1:8080 or :8080)"
            ),
        ));
    }
    Ok(())
}

/// The service's hooks; with external hooks only `postDown` runs in the engine.
fn hooks(smd: &Md, opts: &BuildOpts) -> Result<Hooks, BuildError> {
    let hooks = Hooks::from_metadata(smd)?;
    Ok(if opts.external_hooks {
        hooks.post_down_only()
    } else {
        hooks
    })
}

/// A handler's authentication: named authers, else an inline user, else none.
fn auth_ref(hc: &gost_config::HandlerConfig) -> AuthRef {
    let auth_names = names(&hc.auther, &hc.authers);
    if !auth_names.is_empty() {
        return AuthRef::Named(auth_names);
    }
    match &hc.auth {
        Some(a) if !a.username.is_empty() => AuthRef::Inline(Arc::new(Auther::single(a))),
        _ => AuthRef::None,
    }
}

/// The `failClosed` reason of a service, when it has one.
fn fail_closed_reason(c: &ServiceConfig) -> Result<Option<String>, BuildError> {
    let smd = Md::new(format!("services[{}].metadata", c.name), &c.metadata);
    match smd.string(&[crate::fail_closed::KEY])? {
        Some(r) if r.trim().is_empty() => Err(BuildError::new(
            format!("services[{}].metadata.{}", c.name, crate::fail_closed::KEY),
            "must be a non-empty reason (or leave the key out)",
        )),
        r => Ok(r),
    }
}

/// A service that fails closed (see [`crate::fail_closed`]): binds a plain socket of its
/// network and refuses everything; handler, listener, chain and TLS settings are not built.
fn fail_closed(
    kinds: &Kinds,
    c: &ServiceConfig,
    reason: &str,
    store: &Arc<Store>,
    opts: &BuildOpts,
) -> Result<ServicePlan, BuildError> {
    use crate::fail_closed::{bind_for, Bind, Parked, Refuse};
    let path = format!("services[{}]", c.name);
    check_listen_addr(&path, &c.addr)?;
    let smd = Md::new(format!("{path}.metadata"), &c.metadata);
    smd.mark_known(SERVICE_KEYS);
    let hooks = hooks(&smd, opts)?;
    let ltype = c
        .listener
        .as_ref()
        .map(|l| l.kind.as_str())
        .unwrap_or_default();
    let listen: ListenerFactory = match bind_for(ltype) {
        Bind::Nothing => Arc::new(|_: &ListenerOpts| Ok(Arc::new(Parked) as Arc<dyn Listener>)),
        b => {
            let name = if b == Bind::Udp { "udp" } else { "tcp" };
            kinds
                .listeners
                .get(name)
                .map(|f| Arc::clone(&f.1))
                .ok_or_else(|| {
                    BuildError::new(
                        format!("{path}.listener.type"),
                        format!("no {name} listener registered"),
                    )
                })?
        }
    };
    let router = Arc::new(Router {
        store: Arc::clone(store),
        chain: None,
        hosts: None,
        resolver: None,
        retries: 0,
        timeout: DEFAULT_DIAL_TIMEOUT,
        direct: direct(kinds, &format!("{path}.handler"))?,
    });
    tracing::warn!(service = %c.name, addr = %c.addr, reason = %reason, "service fails closed: every connection is refused");
    Ok(ServicePlan {
        name: c.name.clone(),
        raw: c.clone(),
        listen,
        listener_opts: ListenerOpts {
            path: format!("{path}.listener"),
            addr: c.addr.clone(),
            md: Arc::new(Md::empty(format!("{path}.listener.metadata"))),
            tls: None,
            router,
        },
        handler: Refuse::new(reason),
        gates: Gates::default(),
        hooks,
        store: Arc::clone(store),
        fail_closed: Some(reason.to_string()),
    })
}

impl ServicePlan {
    /// Binds the listener (or takes over a handed-over one) and creates the service (runs
    /// nothing).
    pub fn start(
        self,
        metrics: &Arc<Metrics>,
        _opts: &BuildOpts,
        handed_over: Option<Arc<dyn Listener>>,
    ) -> Result<Arc<Service>, BuildError> {
        let l = match handed_over {
            Some(l) => l,
            None => (self.listen)(&self.listener_opts)?,
        };
        Ok(Service::new(
            self.name,
            l,
            self.handler,
            self.gates,
            self.store,
            self.hooks,
            Arc::clone(metrics),
            self.fail_closed,
        ))
    }
}
