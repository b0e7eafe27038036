//! Raw config → validated runtime objects. Every error carries the config path, the bad value
//! and what is accepted. Named objects are built without side effects; a service is built into
//! a [`ServicePlan`] (everything validated, nothing bound) and bound by [`ServicePlan::start`].

use std::collections::{BTreeSet, HashSet};
use std::sync::Arc;
use std::time::Duration;

use gost_config::{
    ChainConfig, Config, ForwarderConfig, HopConfig, NodeConfig, SelectorConfig, ServiceConfig,
};

use crate::chain::{
    Chain, Forwarder, ForwarderTargets, Hop, HopRef, Marker, Node, Selector, Strategy,
};
use crate::component::{
    list_names, Connector, Dialer, HandlerOpts, Kinds, Listener, ListenerFactory, ListenerOpts,
    NodeOpts, Targets,
};
use crate::error::{BuildError, BuildErrors};
use crate::hooks::Hooks;
use crate::md::Md;
use crate::metrics::Metrics;
use crate::policy::Auther;
use crate::router::{Direct, Router, DEFAULT_DIAL_TIMEOUT};
use crate::service::Service;
use crate::store::{names, AdmissionRef, AuthRef, BypassRef, Store, StoreAuth, StoreBypass};

/// Build-time settings.
#[derive(Debug, Clone, Default)]
pub struct BuildOpts {
    /// Unknown metadata keys are errors instead of warnings.
    pub strict: bool,
    /// `preUp`, `postUp` and `preDown` run as container lifecycle steps, not in the engine.
    pub external_hooks: bool,
}

/// Collects unknown-key reports for a set of metadata maps.
pub fn check_unknown(
    mds: &[&Md],
    extra_known: &BTreeSet<String>,
    strict: bool,
) -> Result<(), BuildError> {
    for md in mds {
        for k in md.unknown_keys() {
            if extra_known.contains(&k) {
                continue;
            }
            let path = format!("{}.{}", md.path(), k);
            if strict {
                return Err(BuildError::new(
                    path,
                    format!("unknown metadata key {k:?} (--strict)"),
                ));
            }
            tracing::warn!(path = %path, "unknown metadata key {k:?} ignored");
        }
    }
    Ok(())
}

/// Builds a selector.
pub fn selector(path: &str, c: Option<&SelectorConfig>) -> Result<Selector, BuildError> {
    let Some(c) = c else {
        return Ok(Selector::default());
    };
    let strategy = Strategy::parse(&c.strategy)
        .map_err(|e| BuildError::new(format!("{path}.selector.strategy"), e))?;
    Ok(Selector::new(
        strategy,
        c.max_fails,
        c.fail_timeout.map(|d| d.get()),
    ))
}

fn node_common(md: &Md) -> Result<(u32, bool, Option<u32>, Option<Duration>), BuildError> {
    let weight = md.int(&["weight"])?.unwrap_or(1).clamp(1, u32::MAX as i64) as u32;
    let backup = md.bool_or(&["backup"], false)?;
    let max_fails = md
        .int(&["maxFails", "max_fails"])?
        .filter(|m| *m > 0)
        .map(|m| m.min(u32::MAX as i64) as u32);
    let fail_timeout = md
        .duration(&["failTimeout", "fail_timeout"])?
        .filter(|d| !d.is_zero());
    md.mark_known(&["interface", "so_mark", "netns", "proxyProtocol"]);
    Ok((weight, backup, max_fails, fail_timeout))
}

/// Builds connector `ctype` from the registry (its options name the config path).
pub fn connector(
    kinds: &Kinds,
    ctype: &str,
    o: &NodeOpts,
) -> Result<Arc<dyn Connector>, BuildError> {
    let f = kinds.connectors.get(ctype).ok_or_else(|| {
        BuildError::new(
            format!("{}.type", o.path),
            format!(
                "unknown connector {ctype:?} (supported: {})",
                list_names(&kinds.connectors)
            ),
        )
    })?;
    f(o)
}

/// Builds dialer `dtype` from the registry (its options name the config path).
pub fn dialer(kinds: &Kinds, dtype: &str, o: &NodeOpts) -> Result<Arc<dyn Dialer>, BuildError> {
    let f = kinds.dialers.get(dtype).ok_or_else(|| {
        BuildError::new(
            format!("{}.type", o.path),
            format!(
                "unknown dialer {dtype:?} (supported: {})",
                list_names(&kinds.dialers)
            ),
        )
    })?;
    f(o)
}

/// The direct transport of a router (and of forwarder targets): the registry's `tcp` dialer
/// and `forward` connector, with no metadata.
pub fn direct(kinds: &Kinds, path: &str) -> Result<Direct, BuildError> {
    let o = NodeOpts {
        path: path.to_string(),
        md: Arc::new(Md::empty(path)),
        auth: None,
        tls: None,
        node_addr: String::new(),
    };
    Ok(Direct {
        dialer: dialer(kinds, "tcp", &o)?,
        connector: connector(kinds, "forward", &o)?,
    })
}

/// Builds a chain node.
pub fn node(
    kinds: &Kinds,
    path: &str,
    c: &NodeConfig,
    hop: &HopConfig,
    opts: &BuildOpts,
) -> Result<Arc<Node>, BuildError> {
    if c.addr.is_empty() {
        return Err(BuildError::new(
            format!("{path}.addr"),
            "node address is required (host:port)",
        ));
    }
    if crate::addr::split_host_port(&c.addr).is_none() {
        return Err(BuildError::new(
            format!("{path}.addr"),
            format!("invalid node address {:?} (expected host:port)", c.addr),
        ));
    }
    for (what, v) in [
        ("matcher", &c.matcher),
        ("http", &c.http),
        ("probe", &c.probe),
    ] {
        if v.is_some() {
            return Err(BuildError::new(
                format!("{path}.{what}"),
                format!("node `{what}` is not supported by gost-proxy yet"),
            ));
        }
    }
    let cc = c.connector.clone().unwrap_or_default();
    let dc = c.dialer.clone().unwrap_or_default();
    let ctype = if cc.kind.is_empty() {
        "http"
    } else {
        cc.kind.as_str()
    };
    let dtype = if dc.kind.is_empty() {
        "tcp"
    } else {
        dc.kind.as_str()
    };
    let cmd = Arc::new(Md::new(format!("{path}.connector.metadata"), &cc.metadata));
    let dmd = Arc::new(Md::new(format!("{path}.dialer.metadata"), &dc.metadata));
    let connector = connector(
        kinds,
        ctype,
        &NodeOpts {
            path: format!("{path}.connector"),
            md: Arc::clone(&cmd),
            auth: cc.auth.clone(),
            tls: cc.tls.clone(),
            node_addr: c.addr.clone(),
        },
    )?;
    let dialer = dialer(
        kinds,
        dtype,
        &NodeOpts {
            path: format!("{path}.dialer"),
            md: Arc::clone(&dmd),
            auth: dc.auth.clone(),
            tls: dc.tls.clone(),
            node_addr: c.addr.clone(),
        },
    )?;
    let nmd = Md::new(format!("{path}.metadata"), &c.metadata);
    let (weight, backup, max_fails, fail_timeout) = node_common(&nmd)?;
    check_unknown(&[&cmd, &dmd, &nmd], &BTreeSet::new(), opts.strict)?;
    Ok(Arc::new(Node {
        name: c.name.clone(),
        addr: c.addr.clone(),
        network: c.network.clone(),
        dialer,
        connector,
        bypass: BypassRef(names(&c.bypass, &c.bypasses)),
        hosts: c.hosts.clone().or_else(|| hop.hosts.clone()),
        resolver: c.resolver.clone().or_else(|| hop.resolver.clone()),
        marker: Marker::default(),
        weight,
        backup,
        max_fails,
        fail_timeout,
    }))
}

/// Builds a hop with its nodes.
pub fn hop(kinds: &Kinds, path: &str, c: &HopConfig, opts: &BuildOpts) -> Result<Hop, BuildError> {
    for (what, v) in [
        ("file", &c.file),
        ("redis", &c.redis),
        ("http", &c.http),
        ("plugin", &c.plugin),
    ] {
        if v.is_some() {
            return Err(BuildError::new(
                format!("{path}.{what}"),
                format!("hop `{what}` node sources are not supported by gost-proxy yet"),
            ));
        }
    }
    let mut nodes = Vec::new();
    let mut seen = HashSet::new();
    for (i, n) in c.nodes.iter().flatten().enumerate() {
        let label = if n.name.is_empty() {
            i.to_string()
        } else {
            n.name.clone()
        };
        let np = format!("{path}.nodes[{label}]");
        if !n.name.is_empty() && !seen.insert(n.name.clone()) {
            return Err(BuildError::new(
                np,
                format!("duplicate node name {:?}", n.name),
            ));
        }
        nodes.push(node(kinds, &np, n, c, opts)?);
    }
    let hmd = Md::new(format!("{path}.metadata"), &c.metadata);
    hmd.mark_known(&["interface", "so_mark", "netns", "proxyProtocol"]);
    check_unknown(&[&hmd], &BTreeSet::new(), opts.strict)?;
    Ok(Hop {
        name: c.name.clone(),
        selector: selector(path, c.selector.as_ref())?,
        bypass: BypassRef(names(&c.bypass, &c.bypasses)),
        nodes,
    })
}

/// Builds a chain; hops without `nodes` are references to top-level hops.
pub fn chain(kinds: &Kinds, c: &ChainConfig, opts: &BuildOpts) -> Result<Chain, BuildError> {
    let path = format!("chains[{}]", c.name);
    if c.selector.is_some() {
        tracing::warn!(path = %path, "chains[].selector is ignored (as in GOST); set the selector on each hop");
    }
    let mut hops = Vec::new();
    for (i, h) in c.hops.iter().enumerate() {
        let label = if h.name.is_empty() {
            i.to_string()
        } else {
            h.name.clone()
        };
        let hp = format!("{path}.hops[{label}]");
        if h.nodes.is_some() || h.plugin.is_some() {
            hops.push(HopRef::Inline(Arc::new(hop(kinds, &hp, h, opts)?)));
        } else if h.name.is_empty() {
            return Err(BuildError::new(
                hp,
                "a hop needs either `nodes` (inline) or a `name` referencing hops[]",
            ));
        } else {
            hops.push(HopRef::Named(h.name.clone()));
        }
    }
    Ok(Chain {
        name: c.name.clone(),
        hops,
    })
}

/// Builds a forwarder's private hop (or resolves nothing for a named `hop`).
pub fn forwarder(
    kinds: &Kinds,
    path: &str,
    f: &ForwarderConfig,
    store: &Store,
    opts: &BuildOpts,
) -> Result<Option<Forwarder>, BuildError> {
    if let Some(name) = f.hop.as_ref().or(f.name.as_ref()).filter(|n| !n.is_empty()) {
        if store.hops.get(name).is_none() {
            return Err(BuildError::new(
                format!("{path}.hop"),
                format!("hop {name:?} not found in hops[]"),
            ));
        }
        return Ok(Some(Forwarder::Named(name.clone())));
    }
    let mut nodes = Vec::new();
    for (i, n) in f.nodes.iter().enumerate() {
        let label = if n.name.is_empty() {
            i.to_string()
        } else {
            n.name.clone()
        };
        let np = format!("{path}.nodes[{label}]");
        if n.addr.is_empty() {
            return Err(BuildError::new(
                format!("{np}.addr"),
                "target address is required (host:port)",
            ));
        }
        let addr = if crate::addr::split_host_port(&n.addr).is_some() {
            n.addr.clone()
        } else {
            format!("{}:0", n.addr)
        };
        if crate::addr::split_host_port(&addr).is_none() {
            return Err(BuildError::new(
                format!("{np}.addr"),
                format!("invalid target address {:?} (expected host:port)", n.addr),
            ));
        }
        if let Some(net) = &n.network {
            if !matches!(
                net.as_str(),
                "tcp" | "udp" | "tcp4" | "tcp6" | "udp4" | "udp6"
            ) {
                return Err(BuildError::new(
                    format!("{np}.network"),
                    format!("unknown network {net:?} (accepted: tcp, udp)"),
                ));
            }
        }
        for (what, v) in [("matcher", &n.matcher), ("http", &n.http)] {
            if v.is_some() {
                return Err(BuildError::new(
                    format!("{np}.{what}"),
                    format!("forwarder node `{what}` is not supported by gost-proxy yet"),
                ));
            }
        }
        let md = Md::new(format!("{np}.metadata"), &n.metadata);
        let (weight, backup, max_fails, fail_timeout) = node_common(&md)?;
        check_unknown(&[&md], &BTreeSet::new(), opts.strict)?;
        let direct = direct(kinds, &np)?;
        nodes.push(Arc::new(Node {
            name: n.name.clone(),
            addr,
            network: n.network.clone(),
            dialer: direct.dialer,
            connector: direct.connector,
            bypass: BypassRef(names(&n.bypass, &n.bypasses)),
            hosts: None,
            resolver: None,
            marker: Marker::default(),
            weight,
            backup,
            max_fails,
            fail_timeout,
        }));
    }
    Ok(Some(Forwarder::Inline(Arc::new(Hop {
        name: String::new(),
        selector: selector(path, f.selector.as_ref())?,
        bypass: BypassRef::default(),
        nodes,
    }))))
}

/// A validated service, not yet bound.
pub struct ServicePlan {
    /// Service name.
    pub name: String,
    /// The raw config it came from (for diffs).
    pub raw: ServiceConfig,
    listen: ListenerFactory,
    listener_opts: ListenerOpts,
    handler: Arc<dyn crate::component::Handler>,
    admission: AdmissionRef,
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
    for (what, v) in [
        ("limiter", &c.limiter),
        ("climiter", &c.climiter),
        ("rlimiter", &c.rlimiter),
        ("observer", &c.observer),
        ("logger", &c.logger),
    ] {
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
    let hc = c.handler.clone().unwrap_or_default();
    let lc = c.listener.clone().unwrap_or_default();
    let htype = if hc.kind.is_empty() {
        "auto".to_string()
    } else {
        hc.kind.clone()
    };
    let ltype = if lc.kind.is_empty() {
        "tcp".to_string()
    } else {
        lc.kind.clone()
    };
    let hf = kinds.handlers.get(htype.as_str()).ok_or_else(|| {
        BuildError::new(
            format!("{path}.handler.type"),
            format!(
                "unknown handler {htype:?} (supported: {})",
                list_names(&kinds.handlers)
            ),
        )
    })?;
    let lf = kinds.listeners.get(ltype.as_str()).ok_or_else(|| {
        BuildError::new(
            format!("{path}.listener.type"),
            format!(
                "unknown listener {ltype:?} (supported: {})",
                list_names(&kinds.listeners)
            ),
        )
    })?;
    if crate::addr::parse_listen_addr(&c.addr).is_none() {
        return Err(BuildError::new(
            format!("{path}.addr"),
            format!(
                "invalid listen address {:?} (expected host:port, e.g. 127.0.0.1:8080 or :8080)",
                c.addr
            ),
        ));
    }
    for (what, v) in [
        ("handler.limiter", &hc.limiter),
        ("handler.observer", &hc.observer),
    ] {
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
    let smd = Md::new(format!("{path}.metadata"), &c.metadata);
    let hmd = Arc::new(Md::new(format!("{path}.handler.metadata"), &hc.metadata));
    let lmd = Arc::new(Md::new(format!("{path}.listener.metadata"), &lc.metadata));
    smd.mark_known(SERVICE_KEYS);
    let ignore_chain = smd.bool_or(&["ignoreChain"], false)?;
    let dial_timeout = smd
        .duration(&["dialTimeout"])?
        .filter(|d| !d.is_zero())
        .unwrap_or(DEFAULT_DIAL_TIMEOUT);
    let hooks = Hooks::from_metadata(&smd)?;
    let hooks = if opts.external_hooks {
        hooks.post_down_only()
    } else {
        hooks
    };
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
    let auth_names = names(&hc.auther, &hc.authers);
    let auth = if !auth_names.is_empty() {
        AuthRef::Named(auth_names)
    } else {
        match &hc.auth {
            Some(a) if !a.username.is_empty() => AuthRef::Inline(Arc::new(Auther::single(a))),
            _ => AuthRef::None,
        }
    };
    let forwarder = match &c.forwarder {
        Some(f) => forwarder(kinds, &format!("{path}.forwarder"), f, store, opts)?,
        None => None,
    };
    let forwarder = forwarder.map(|forwarder| {
        Arc::new(ForwarderTargets {
            forwarder,
            names: Arc::clone(store) as Arc<dyn crate::chain::Lookup>,
        }) as Arc<dyn Targets>
    });
    let global_tls = store.tls.read().clone();
    let hopts = HandlerOpts {
        path: format!("{path}.handler"),
        md: Arc::clone(&hmd),
        router: Arc::clone(&router) as Arc<dyn crate::component::Route>,
        auth: Arc::new(StoreAuth {
            auth,
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
        admission: AdmissionRef(names(&c.admission, &c.admissions)),
        hooks,
        store: Arc::clone(store),
        fail_closed: None,
    })
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
    if crate::addr::parse_listen_addr(&c.addr).is_none() {
        return Err(BuildError::new(
            format!("{path}.addr"),
            format!(
                "invalid listen address {:?} (expected host:port, e.g. 127.0.0.1:8080 or :8080)",
                c.addr
            ),
        ));
    }
    let smd = Md::new(format!("{path}.metadata"), &c.metadata);
    smd.mark_known(SERVICE_KEYS);
    let hooks = Hooks::from_metadata(&smd)?;
    let hooks = if opts.external_hooks {
        hooks.post_down_only()
    } else {
        hooks
    };
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
        admission: AdmissionRef(Vec::new()),
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
        handed_over: Option<Arc<dyn crate::component::Listener>>,
    ) -> Result<Arc<Service>, BuildError> {
        let l = match handed_over {
            Some(l) => l,
            None => (self.listen)(&self.listener_opts)?,
        };
        Ok(Service::new(
            self.name,
            l,
            self.handler,
            self.admission,
            self.store,
            self.hooks,
            Arc::clone(metrics),
            self.fail_closed,
        ))
    }
}

/// Every named object of a config, built.
#[derive(Clone)]
pub struct Built {
    /// `chains`.
    pub chains: Vec<(String, Arc<Chain>)>,
    /// `hops`.
    pub hops: Vec<(String, Arc<Hop>)>,
    /// `authers`.
    pub authers: Vec<(String, Arc<Auther>)>,
    /// `admissions`.
    pub admissions: Vec<(String, Arc<crate::policy::MatcherList>)>,
    /// `bypasses`.
    pub bypasses: Vec<(String, Arc<crate::policy::MatcherList>)>,
    /// `hosts`.
    pub hosts: Vec<(String, Arc<crate::policy::Hosts>)>,
    /// `resolvers`.
    pub resolvers: Vec<(String, Arc<crate::resolver::Resolver>)>,
    /// The global default server certificate (`tls:`); installed into `Store::tls`.
    pub tls: Arc<crate::tls::GlobalTls>,
}

fn unique<'a>(kind: &str, items: impl Iterator<Item = &'a str>, errs: &mut Vec<BuildError>) {
    let mut seen = HashSet::new();
    for n in items {
        if n.trim().is_empty() {
            errs.push(BuildError::new(
                format!("{kind}[]"),
                format!("every {kind} entry needs a non-empty name (name is required)"),
            ));
        } else if !seen.insert(n) {
            errs.push(BuildError::new(
                format!("{kind}[{n}]"),
                format!("duplicate {kind} name {n:?}"),
            ));
        }
    }
}

/// Builds every named object; reports all errors found.
pub fn named(kinds: &Kinds, cfg: &Config, opts: &BuildOpts) -> Result<Built, BuildErrors> {
    let mut errs = Vec::new();
    let unsupported = cfg.unsupported_sections();
    for s in unsupported {
        errs.push(BuildError::new(
            s,
            format!(
                "section `{s}` is not supported by gost-proxy (supported: {})",
                gost_config::SUPPORTED_SECTIONS.join(", ")
            ),
        ));
    }
    unique(
        "services",
        cfg.services.iter().map(|s| s.name.as_str()),
        &mut errs,
    );
    unique(
        "chains",
        cfg.chains.iter().map(|s| s.name.as_str()),
        &mut errs,
    );
    unique("hops", cfg.hops.iter().map(|s| s.name.as_str()), &mut errs);
    unique(
        "authers",
        cfg.authers.iter().map(|s| s.name.as_str()),
        &mut errs,
    );
    unique(
        "admissions",
        cfg.admissions.iter().map(|s| s.name.as_str()),
        &mut errs,
    );
    unique(
        "bypasses",
        cfg.bypasses.iter().map(|s| s.name.as_str()),
        &mut errs,
    );
    unique(
        "hosts",
        cfg.hosts.iter().map(|s| s.name.as_str()),
        &mut errs,
    );
    unique(
        "resolvers",
        cfg.resolvers.iter().map(|s| s.name.as_str()),
        &mut errs,
    );
    let mut b = Built {
        chains: vec![],
        hops: vec![],
        authers: vec![],
        admissions: vec![],
        bypasses: vec![],
        hosts: vec![],
        resolvers: vec![],
        tls: Arc::default(),
    };
    match crate::tls::GlobalTls::build(cfg.tls.as_ref()) {
        Ok(t) => b.tls = Arc::new(t),
        Err(e) => errs.push(e),
    }
    for a in &cfg.authers {
        match Auther::build(&format!("authers[{}]", a.name), a) {
            Ok(x) => b.authers.push((a.name.clone(), Arc::new(x))),
            Err(e) => errs.push(e),
        }
    }
    for a in &cfg.admissions {
        match crate::policy::MatcherList::build(&format!("admissions[{}]", a.name), a, true) {
            Ok(x) => b.admissions.push((a.name.clone(), Arc::new(x))),
            Err(e) => errs.push(e),
        }
    }
    for a in &cfg.bypasses {
        match crate::policy::MatcherList::build(&format!("bypasses[{}]", a.name), a, false) {
            Ok(x) => b.bypasses.push((a.name.clone(), Arc::new(x))),
            Err(e) => errs.push(e),
        }
    }
    for h in &cfg.hosts {
        match crate::policy::Hosts::build(&format!("hosts[{}]", h.name), h) {
            Ok(x) => b.hosts.push((h.name.clone(), Arc::new(x))),
            Err(e) => errs.push(e),
        }
    }
    for r in &cfg.resolvers {
        match crate::resolver::Resolver::build(&format!("resolvers[{}]", r.name), r) {
            Ok(x) => b.resolvers.push((r.name.clone(), Arc::new(x))),
            Err(e) => errs.push(e),
        }
    }
    for h in &cfg.hops {
        if h.nodes.is_none() {
            errs.push(BuildError::new(
                format!("hops[{}].nodes", h.name),
                "a top-level hop needs `nodes`",
            ));
            continue;
        }
        match hop(kinds, &format!("hops[{}]", h.name), h, opts) {
            Ok(x) => b.hops.push((h.name.clone(), Arc::new(x))),
            Err(e) => errs.push(e),
        }
    }
    for c in &cfg.chains {
        match chain(kinds, c, opts) {
            Ok(x) => b.chains.push((c.name.clone(), Arc::new(x))),
            Err(e) => errs.push(e),
        }
    }
    // Dangling references: GOST resolves them lazily (and fails open for chains and authers);
    // we report them at load as errors, so a typo never silently sends traffic direct.
    let has = |list: &[(String, _)], n: &str| list.iter().any(|(k, _)| k == n);
    let chain_names: Vec<&str> = cfg.chains.iter().map(|c| c.name.as_str()).collect();
    for s in &cfg.services {
        let p = format!("services[{}]", s.name);
        let md = Md::new("", &s.metadata);
        if md.contains(&[crate::fail_closed::KEY]) {
            // nothing of a fail-closed service is built: what it names may not exist
            continue;
        }
        let ignore = md.bool_or(&["ignoreChain"], false).unwrap_or(false);
        if let Some(h) = &s.handler {
            if let Some(c) = h.chain.as_ref().filter(|c| !c.is_empty()) {
                if !ignore && !chain_names.contains(&c.as_str()) {
                    errs.push(BuildError::new(
                        format!("{p}.handler.chain"),
                        format!("chain {c:?} not found in chains[]"),
                    ));
                }
            }
            for a in names(&h.auther, &h.authers) {
                if !has(&b.authers, &a) && !cfg.authers.iter().any(|x| x.name == a) {
                    errs.push(BuildError::new(
                        format!("{p}.handler.auther"),
                        format!("auther {a:?} not found in authers[]"),
                    ));
                }
            }
        }
        for a in names(&s.admission, &s.admissions) {
            if !cfg.admissions.iter().any(|x| x.name == a) {
                errs.push(BuildError::new(
                    format!("{p}.admission"),
                    format!("admission {a:?} not found in admissions[]"),
                ));
            }
        }
        for a in names(&s.bypass, &s.bypasses) {
            if !cfg.bypasses.iter().any(|x| x.name == a) {
                errs.push(BuildError::new(
                    format!("{p}.bypass"),
                    format!("bypass {a:?} not found in bypasses[]"),
                ));
            }
        }
        if let Some(h) = s.hosts.as_ref().filter(|h| !h.is_empty()) {
            if !cfg.hosts.iter().any(|x| &x.name == h) {
                errs.push(BuildError::new(
                    format!("{p}.hosts"),
                    format!("hosts {h:?} not found in hosts[]"),
                ));
            }
        }
        if let Some(r) = s.resolver.as_ref().filter(|r| !r.is_empty()) {
            if !cfg.resolvers.iter().any(|x| &x.name == r) {
                errs.push(BuildError::new(
                    format!("{p}.resolver"),
                    format!("resolver {r:?} not found in resolvers[]"),
                ));
            }
        }
        if let Some(f) = &s.forwarder {
            if let Some(h) = f.hop.as_ref().or(f.name.as_ref()).filter(|n| !n.is_empty()) {
                if !cfg.hops.iter().any(|x| &x.name == h) {
                    errs.push(BuildError::new(
                        format!("{p}.forwarder.hop"),
                        format!("hop {h:?} not found in hops[]"),
                    ));
                }
            }
        }
    }
    for c in &cfg.chains {
        for h in &c.hops {
            if h.nodes.is_none()
                && h.plugin.is_none()
                && !h.name.is_empty()
                && !cfg.hops.iter().any(|x| x.name == h.name)
            {
                errs.push(BuildError::new(
                    format!("chains[{}].hops[{}]", c.name, h.name),
                    format!(
                        "hop {:?} not found in hops[] (inline hops need `nodes`)",
                        h.name
                    ),
                ));
            }
        }
    }
    if errs.is_empty() {
        Ok(b)
    } else {
        Err(BuildErrors(errs))
    }
}
