//! Selectors, chain nodes, hops, chains and forwarder targets.

use std::collections::{BTreeSet, HashSet};
use std::sync::Arc;
use std::time::Duration;

use gost_config::{ChainConfig, ForwarderConfig, HopConfig, NodeConfig, SelectorConfig};

use super::{check_unknown, registered, type_or, BuildOpts};
use crate::chain::{Chain, Forwarder, Hop, HopRef, Marker, Node, Selector, Strategy};
use crate::component::{Connector, Dialer, Kinds, NodeOpts};
use crate::error::BuildError;
use crate::md::Md;
use crate::router::Direct;
use crate::store::{names, BypassRef, Store};

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
    registered(
        &kinds.connectors,
        "connector",
        ctype,
        format!("{}.type", o.path),
    )?(o)
}

/// Builds dialer `dtype` from the registry (its options name the config path).
pub fn dialer(kinds: &Kinds, dtype: &str, o: &NodeOpts) -> Result<Arc<dyn Dialer>, BuildError> {
    registered(&kinds.dialers, "dialer", dtype, format!("{}.type", o.path))?(o)
}

/// Options of a node's connector or dialer (`what`) from its config.
fn node_opts(
    path: &str,
    what: &str,
    md: &Arc<Md>,
    auth: &Option<gost_config::AuthConfig>,
    tls: &Option<gost_config::TlsConfig>,
    addr: &str,
) -> NodeOpts {
    NodeOpts {
        path: format!("{path}.{what}"),
        md: Arc::clone(md),
        auth: auth.clone(),
        tls: tls.clone(),
        node_addr: addr.to_string(),
    }
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
    let cmd = Arc::new(Md::new(format!("{path}.connector.metadata"), &cc.metadata));
    let dmd = Arc::new(Md::new(format!("{path}.dialer.metadata"), &dc.metadata));
    let connector = connector(
        kinds,
        type_or(&cc.kind, "http"),
        &node_opts(path, "connector", &cmd, &cc.auth, &cc.tls, &c.addr),
    )?;
    let dialer = dialer(
        kinds,
        type_or(&dc.kind, "tcp"),
        &node_opts(path, "dialer", &dmd, &dc.auth, &dc.tls, &c.addr),
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
        let label = super::label(i, &n.name);
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
        let label = super::label(i, &h.name);
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
        let label = super::label(i, &n.name);
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
