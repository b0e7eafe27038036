//! GOST's command line → config: `-L` services, `-F` hops of `chain-0`, `-api`, `-metrics`
//! (GOST `BuildConfigFromCmd`; see the engine spec §4 for every rule implemented here).

use base64::Engine as _;
use gost_config::{
    ApiConfig, AuthConfig, ChainConfig, Config, ConnectorConfig, DialerConfig, ForwardNodeConfig,
    ForwarderConfig, GoDuration, HandlerConfig, HopConfig, HostMappingConfig, HostsConfig,
    ListenerConfig, MatcherListConfig, Metadata, MetricsConfig, NameserverConfig, NodeConfig,
    ResolverConfig, SelectorConfig, ServiceConfig, TlsConfig,
};
use serde_json::Value;

use crate::error::BuildError;

/// GOST handler type strings (ours or not): a scheme word that is none of these means `auto`.
const GOST_HANDLERS: &[&str] = &[
    "auto", "http", "http2", "http3", "socks", "socks4", "socks4a", "socks5", "ss", "ssu", "relay",
    "sni", "tcp", "udp", "forward", "rtcp", "rudp", "runix", "red", "redir", "redirect", "redu",
    "tun", "tap", "tungo", "dns", "sshd", "tunnel", "router", "file", "serial", "unix", "api",
    "metrics", "masque",
];
/// GOST listener type strings: a scheme word that is none of these means `tcp`.
const GOST_LISTENERS: &[&str] = &[
    "tcp", "udp", "tls", "mtls", "ws", "wss", "mws", "mwss", "http2", "h2", "h2c", "http3", "h3",
    "wt", "quic", "kcp", "grpc", "pht", "phts", "ohttp", "otls", "ftcp", "mtcp", "dtls", "icmp",
    "icmp6", "ssh", "sshd", "tun", "tap", "tungo", "rtcp", "rudp", "runix", "red", "redir",
    "redirect", "redu", "dns", "unix", "serial", "stdio",
];
/// GOST connector type strings.
const GOST_CONNECTORS: &[&str] = &[
    "http", "http2", "socks", "socks4", "socks4a", "socks5", "ss", "ssu", "relay", "forward",
    "tcp", "direct", "virtual", "sni", "sshd", "tunnel", "router", "serial", "unix", "masque",
];
/// GOST dialer type strings.
const GOST_DIALERS: &[&str] = &[
    "tcp",
    "udp",
    "tls",
    "mtls",
    "ws",
    "wss",
    "mws",
    "mwss",
    "http2",
    "h2",
    "h2c",
    "http3",
    "h3",
    "h3-masque",
    "wt",
    "quic",
    "kcp",
    "grpc",
    "pht",
    "phts",
    "ohttp",
    "ohttps",
    "otls",
    "ftcp",
    "mtcp",
    "dtls",
    "icmp",
    "icmp6",
    "ssh",
    "sshd",
    "unix",
    "serial",
    "utls",
    "direct",
    "virtual",
    "wg",
];

/// Counters for generated object names.
#[derive(Default)]
struct Names {
    admission: usize,
    bypass: usize,
    resolver: usize,
    hosts: usize,
    limiter: usize,
}

/// A URL taken apart GOST-style (the host is cut out before parsing).
#[derive(Debug, Default)]
struct Parts {
    scheme: String,
    user: Option<(String, Option<String>)>,
    host: String,
    path: String,
    query: Vec<(String, String)>,
}

fn cli_err(flag: &str, url: &str, msg: impl Into<String>) -> BuildError {
    BuildError::new(format!("{flag} {url}"), msg)
}

fn pct_decode(s: &str) -> String {
    percent_encoding::percent_decode_str(&s.replace('+', " "))
        .decode_utf8_lossy()
        .to_string()
}

fn split_url(flag: &str, raw: &str) -> Result<Parts, BuildError> {
    let mut s = raw.trim().to_string();
    if s.starts_with(':') || !s.contains("://") {
        s = format!("auto://{s}");
    }
    let (scheme, rest) = s
        .split_once("://")
        .ok_or_else(|| cli_err(flag, raw, "missing scheme"))?;
    let (before_q, query) = match rest.split_once('?') {
        Some((a, q)) => (a, q),
        None => (rest, ""),
    };
    // The authority ends at the first '/' after the last '@'.
    let at = before_q.rfind('@');
    let search_from = at.map(|i| i + 1).unwrap_or(0);
    let slash = before_q[search_from..].find('/').map(|i| i + search_from);
    let (authority, path) = match slash {
        Some(i) => (&before_q[..i], &before_q[i..]),
        None => (before_q, ""),
    };
    let (user, host) = match authority.rfind('@') {
        Some(i) => {
            let ui = &authority[..i];
            let (u, p) = match ui.split_once(':') {
                Some((u, p)) => (pct_decode(u), Some(pct_decode(p))),
                None => (pct_decode(ui), None),
            };
            (Some((u, p)), authority[i + 1..].to_string())
        }
        None => (None, authority.to_string()),
    };
    let mut q = Vec::new();
    for kv in query.split('&').filter(|x| !x.is_empty()) {
        let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
        let k = pct_decode(k);
        if q.iter().any(|(x, _): &(String, String)| *x == k) {
            continue; // only the first value of a repeated parameter is used
        }
        q.push((k, pct_decode(v)));
    }
    let mut scheme = scheme.to_ascii_lowercase();
    if scheme == "https" {
        scheme = "http+tls".into();
    }
    Ok(Parts {
        scheme,
        user,
        host,
        path: path.to_string(),
        query: q,
    })
}

/// Expands `host:a-b` into one address per port.
fn expand_ports(flag: &str, url: &str, addr: &str) -> Result<Vec<String>, BuildError> {
    let Some(i) = addr.rfind(':') else {
        return Ok(vec![addr.to_string()]);
    };
    let (host, ports) = (&addr[..i], &addr[i + 1..]);
    if let Some((a, b)) = ports.split_once('-') {
        let a: u16 = a
            .parse()
            .map_err(|_| cli_err(flag, url, format!("invalid port range {ports:?}")))?;
        let b: u16 = b
            .parse()
            .map_err(|_| cli_err(flag, url, format!("invalid port range {ports:?}")))?;
        if a > b || b - a > 1024 {
            return Err(cli_err(
                flag,
                url,
                format!("invalid port range {ports:?} (min-max, at most 1025 ports)"),
            ));
        }
        return Ok((a..=b).map(|p| format!("{host}:{p}")).collect());
    }
    Ok(vec![addr.to_string()])
}

fn md_insert(m: &mut Metadata, k: &str, v: &str) {
    m.insert(k.to_string(), Value::String(v.to_string()));
}

fn take(q: &mut Vec<(String, String)>, keys: &[&str]) -> Option<String> {
    let pos = q
        .iter()
        .position(|(k, _)| keys.iter().any(|x| x.eq_ignore_ascii_case(k)))?;
    Some(q.remove(pos).1)
}

fn get(q: &[(String, String)], keys: &[&str]) -> Option<String> {
    q.iter()
        .find(|(k, _)| keys.iter().any(|x| x.eq_ignore_ascii_case(k)))
        .map(|(_, v)| v.clone())
}

fn auth_from(parts: &Parts) -> Option<AuthConfig> {
    if let Some((u, p)) = &parts.user {
        return Some(AuthConfig {
            username: u.clone(),
            password: p.clone().unwrap_or_default(),
            file: None,
        });
    }
    let a = get(&parts.query, &["auth"])?;
    let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(a.trim_end_matches('='))
        .or_else(|_| base64::engine::general_purpose::STANDARD.decode(&a))
        .ok()?;
    let s = String::from_utf8(raw).ok()?;
    let (u, p) = s.split_once(':').unwrap_or((s.as_str(), ""));
    Some(AuthConfig {
        username: u.to_string(),
        password: p.to_string(),
        file: None,
    })
}

fn selector_from(q: &[(String, String)]) -> Result<Option<SelectorConfig>, String> {
    let strategy = get(q, &["strategy"]);
    let max_fails = get(q, &["maxFails", "max_fails"]);
    let fail_timeout = get(q, &["failTimeout", "fail_timeout"]);
    if strategy.is_none() && max_fails.is_none() && fail_timeout.is_none() {
        return Ok(None);
    }
    let max_fails = match max_fails {
        Some(m) => m
            .parse::<i64>()
            .map_err(|_| format!("maxFails={m:?} is not an integer"))?,
        None => 1,
    };
    let fail_timeout = match fail_timeout {
        Some(f) => {
            let d = f
                .parse::<u64>()
                .map(std::time::Duration::from_secs)
                .or_else(|_| gost_config::parse_go_duration(&f));
            GoDuration(d.map_err(|e| format!("failTimeout: {e}"))?)
        }
        None => GoDuration(std::time::Duration::from_secs(30)),
    };
    Ok(Some(SelectorConfig {
        strategy: strategy.unwrap_or_else(|| "round".into()),
        max_fails,
        fail_timeout: Some(fail_timeout),
    }))
}

fn matcher_list(name: String, v: &str) -> MatcherListConfig {
    let (white, list) = match v.strip_prefix('~') {
        Some(r) => (true, r),
        None => (false, v),
    };
    MatcherListConfig {
        name,
        whitelist: white,
        matchers: list
            .split(',')
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
            .collect(),
        ..Default::default()
    }
}

/// Names of the objects extracted from query parameters.
#[derive(Default)]
struct Extracted {
    admission: Option<String>,
    bypass: Option<String>,
    resolver: Option<String>,
    hosts: Option<String>,
}

/// Objects extracted from query parameters into the top-level config.
fn extract_objects(
    flag: &str,
    url: &str,
    q: &[(String, String)],
    names: &mut Names,
    cfg: &mut Config,
) -> Result<Extracted, BuildError> {
    let mut admission = None;
    let mut bypass = None;
    let mut resolver = None;
    let mut hosts = None;
    if let Some(v) = get(q, &["admission"]) {
        let n = format!("admission-{}", names.admission);
        names.admission += 1;
        cfg.admissions.push(matcher_list(n.clone(), &v));
        admission = Some(n);
    }
    if let Some(v) = get(q, &["bypass"]) {
        let n = format!("bypass-{}", names.bypass);
        names.bypass += 1;
        cfg.bypasses.push(matcher_list(n.clone(), &v));
        bypass = Some(n);
    }
    if let Some(v) = get(q, &["resolver"]) {
        let n = format!("resolver-{}", names.resolver);
        names.resolver += 1;
        let prefer = get(q, &["prefer"]).unwrap_or_default();
        cfg.resolvers.push(ResolverConfig {
            name: n.clone(),
            nameservers: v
                .split(',')
                .filter(|s| !s.is_empty())
                .map(|a| NameserverConfig {
                    addr: a.trim().to_string(),
                    prefer: prefer.clone(),
                    ..Default::default()
                })
                .collect(),
            plugin: None,
        });
        resolver = Some(n);
    }
    if let Some(v) = get(q, &["hosts"]) {
        let n = format!("hosts-{}", names.hosts);
        names.hosts += 1;
        let mut mappings = Vec::new();
        for m in v.split(',').filter(|s| !s.is_empty()) {
            let (h, ip) = m
                .split_once(':')
                .ok_or_else(|| cli_err(flag, url, format!("hosts entry {m:?} must be name:ip")))?;
            mappings.push(HostMappingConfig {
                ip: ip.to_string(),
                hostname: h.to_string(),
                aliases: vec![],
            });
        }
        cfg.hosts.push(HostsConfig {
            name: n.clone(),
            mappings,
            ..Default::default()
        });
        hosts = Some(n);
    }
    Ok(Extracted {
        admission,
        bypass,
        resolver,
        hosts,
    })
}

/// Names of the limiters a service's query parameters make.
#[derive(Default)]
struct Limiters {
    limiter: Option<String>,
    climiter: Option<String>,
    rlimiter: Option<String>,
}

/// GOST's limiter parameters of `-L`: `limiter.in`/`limiter.out` (the `$` line) and
/// `limiter.conn.in`/`limiter.conn.out` (the `$$` line) make a `limiters` entry,
/// `climiter=N` a `climiters` entry `$ N`, `rlimiter=R` an `rlimiters` entry `$ R`.
fn extract_limiters(
    flag: &str,
    url: &str,
    q: &[(String, String)],
    names: &mut Names,
    cfg: &mut Config,
) -> Result<Limiters, BuildError> {
    let mut out = Limiters::default();
    let v = |k: &str| get(q, &[k]).unwrap_or_default();
    let (i, o, ci, co) = (
        v("limiter.in"),
        v("limiter.out"),
        v("limiter.conn.in"),
        v("limiter.conn.out"),
    );
    if [&i, &o, &ci, &co].iter().any(|s| !s.is_empty()) {
        let mut limits = Vec::new();
        for (scope, a, b) in [("$", &i, &o), ("$$", &ci, &co)] {
            if !a.is_empty() || !b.is_empty() {
                // an empty `in` keeps its place, unlimited, as GOST writes it
                let a = if a.is_empty() { "0" } else { a.as_str() };
                limits.push(format!("{scope} {a} {b}").trim_end().to_string());
            }
        }
        let n = format!("limiter-{}", names.limiter);
        names.limiter += 1;
        cfg.limiters.push(gost_config::LimiterConfig {
            name: n.clone(),
            limits,
            ..Default::default()
        });
        out.limiter = Some(n);
    }
    if let Some(c) = get(q, &["climiter"]) {
        let n: i64 = c
            .parse()
            .map_err(|_| cli_err(flag, url, format!("climiter={c:?} is not an integer")))?;
        if n > 0 {
            let name = format!("climiter-{}", cfg.climiters.len());
            cfg.climiters.push(gost_config::LimiterConfig {
                name: name.clone(),
                limits: vec![format!("$ {n}")],
                ..Default::default()
            });
            out.climiter = Some(name);
        }
    }
    if let Some(r) = get(q, &["rlimiter"]) {
        let x: f64 = r
            .parse()
            .map_err(|_| cli_err(flag, url, format!("rlimiter={r:?} is not a number")))?;
        if x > 0.0 {
            let name = format!("rlimiter-{}", cfg.rlimiters.len());
            cfg.rlimiters.push(gost_config::LimiterConfig {
                name: name.clone(),
                limits: vec![format!("$ {r}")],
                ..Default::default()
            });
            out.rlimiter = Some(name);
        }
    }
    Ok(out)
}

const SERVICE_SCOPE_KEYS: &[&str] = &[
    "interface",
    "so_mark",
    "proxyProtocol",
    "netns",
    "netns.out",
];
const LISTENER_TLS_KEYS: &[&str] = &[
    "tls.certFile",
    "certFile",
    "cert",
    "tls.keyFile",
    "keyFile",
    "key",
    "tls.caFile",
    "caFile",
    "ca",
];
const EXTRACTED_HANDLER_KEYS: &[&str] = &[
    "retries",
    "admission",
    "bypass",
    "resolver",
    "hosts",
    "prefer",
    "auth",
    "strategy",
    "maxFails",
    "max_fails",
    "failTimeout",
    "fail_timeout",
    "limiter.in",
    "limiter.out",
    "limiter.conn.in",
    "limiter.conn.out",
    "climiter",
    "rlimiter",
];

fn tls_from(q: &[(String, String)]) -> TlsConfig {
    TlsConfig {
        cert_file: get(q, &["tls.certFile", "certFile", "cert"]).unwrap_or_default(),
        key_file: get(q, &["tls.keyFile", "keyFile", "key"]).unwrap_or_default(),
        ca_file: get(q, &["tls.caFile", "caFile", "ca"]).unwrap_or_default(),
        ..Default::default()
    }
}

/// Builds one or more services from a `-L` value.
fn build_services(
    url: &str,
    names: &mut Names,
    cfg: &mut Config,
    chained: bool,
    prefix: &str,
    kinds: &crate::component::Kinds,
) -> Result<(), BuildError> {
    let flag = "-L";
    let parts = split_url(flag, url)?;
    let (handler, listener) = service_types(url, &parts, kinds)?;
    let targets = forward_targets(flag, url, &parts)?;
    let handler = if !targets.is_empty() && handler != "relay" {
        forwarding_handler(url, &listener, kinds)?
    } else {
        handler
    };
    let addrs = expand_ports(flag, url, &parts.host)?;
    let mut q = parts.query.clone();
    let selector = selector_from(&q).map_err(|e| cli_err(flag, url, e))?;
    let retries = match get(&q, &["retries"]) {
        Some(r) => r
            .parse::<i64>()
            .map_err(|_| cli_err(flag, url, format!("retries={r:?} is not an integer")))?,
        None => 0,
    };
    let Extracted {
        admission,
        bypass,
        resolver,
        hosts,
    } = extract_objects(flag, url, &q, names, cfg)?;
    let limiters = extract_limiters(flag, url, &q, names, cfg)?;
    let auth = auth_from(&parts);
    let tls = tls_from(&q);
    q.retain(|(k, _)| !LISTENER_TLS_KEYS.iter().any(|x| x.eq_ignore_ascii_case(k)) && k != "auth");
    let (smd, hmd, lmd) = scoped_metadata(&q);
    let reverse = ["rtcp", "rudp", "runix"].contains(&listener.as_str());
    for (i, addr) in addrs.iter().enumerate() {
        let svc_targets: Vec<String> = if addrs.len() == 1 || targets.len() == 1 {
            targets.clone()
        } else {
            targets.get(i).cloned().into_iter().collect()
        };
        let n = cfg.services.len();
        let forwarder = (!svc_targets.is_empty()).then(|| ForwarderConfig {
            selector: selector.clone(),
            nodes: svc_targets
                .iter()
                .enumerate()
                .map(|(j, t)| ForwardNodeConfig {
                    name: format!("{prefix}target-{j}"),
                    addr: t.clone(),
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        });
        let chain = chained.then(|| "chain-0".to_string());
        cfg.services.push(ServiceConfig {
            name: format!("{prefix}service-{n}"),
            addr: addr.clone(),
            admission: admission.clone(),
            bypass: bypass.clone(),
            resolver: resolver.clone(),
            hosts: hosts.clone(),
            limiter: limiters.limiter.clone(),
            climiter: limiters.climiter.clone(),
            rlimiter: limiters.rlimiter.clone(),
            handler: Some(HandlerConfig {
                kind: handler.clone(),
                retries,
                chain: if reverse { None } else { chain.clone() },
                auth: auth.clone(),
                metadata: hmd.clone(),
                ..Default::default()
            }),
            listener: Some(ListenerConfig {
                kind: listener.clone(),
                chain: if reverse { chain } else { None },
                tls: (!tls.cert_file.is_empty()).then(|| tls.clone()),
                metadata: lmd.clone(),
                ..Default::default()
            }),
            forwarder,
            metadata: smd.clone(),
            ..Default::default()
        });
    }
    Ok(())
}

/// The handler and listener types of a `-L` scheme (`handler+listener`, or one name for both;
/// GOST's defaults for names that are not a handler or listener), both supported here.
fn service_types(
    url: &str,
    parts: &Parts,
    kinds: &crate::component::Kinds,
) -> Result<(String, String), BuildError> {
    let (h, l) = match parts.scheme.split_once('+') {
        Some((h, l)) => (h.to_string(), l.to_string()),
        None => (parts.scheme.clone(), parts.scheme.clone()),
    };
    let handler = if GOST_HANDLERS.contains(&h.as_str()) {
        h
    } else {
        "auto".into()
    };
    let listener = if GOST_LISTENERS.contains(&l.as_str()) {
        l
    } else if handler == "ssu" {
        "udp".into()
    } else {
        "tcp".into()
    };
    for (kind, name, ours) in [
        (
            "handler",
            &handler,
            kinds.handlers.contains_key(handler.as_str()),
        ),
        (
            "listener",
            &listener,
            kinds.listeners.contains_key(listener.as_str()),
        ),
    ] {
        if !ours {
            let supported = if kind == "handler" {
                crate::component::list_names(&kinds.handlers)
            } else {
                crate::component::list_names(&kinds.listeners)
            };
            return Err(cli_err(
                "-L",
                url,
                format!("{kind} {name:?} is not supported by gost-proxy (supported: {supported})"),
            ));
        }
    }
    Ok((handler, listener))
}

/// The forward targets of a `-L` path (`/a:1,b:2`, port ranges expanded).
fn forward_targets(flag: &str, url: &str, parts: &Parts) -> Result<Vec<String>, BuildError> {
    let mut targets = Vec::new();
    for t in parts
        .path
        .trim_matches('/')
        .split(',')
        .filter(|t| !t.is_empty())
    {
        targets.extend(expand_ports(flag, url, t)?);
    }
    Ok(targets)
}

/// The handler of a service with forward targets: the listener's own forwarder where GOST has
/// one (`tcp`, `udp`, `rtcp`, …), else `forward`.
fn forwarding_handler(
    url: &str,
    listener: &str,
    kinds: &crate::component::Kinds,
) -> Result<String, BuildError> {
    let handler = if [
        "tcp", "udp", "rtcp", "rudp", "tun", "tap", "dns", "unix", "runix", "serial",
    ]
    .contains(&listener)
    {
        listener.to_string()
    } else {
        "forward".into()
    };
    if !kinds.handlers.contains_key(handler.as_str()) {
        return Err(cli_err(
            "-L",
            url,
            format!("handler {handler:?} is not supported by gost-proxy"),
        ));
    }
    Ok(handler)
}

/// Service, handler and listener metadata from the query: `service.`/`handler.`/`listener.`
/// prefixes pick one, service-scope keys go to the service, every other key to all three.
fn scoped_metadata(q: &[(String, String)]) -> (Metadata, Metadata, Metadata) {
    let (mut smd, mut hmd, mut lmd) = (Metadata::new(), Metadata::new(), Metadata::new());
    for (k, v) in q {
        if let Some(x) = k.strip_prefix("service.") {
            md_insert(&mut smd, x, v);
        } else if let Some(x) = k.strip_prefix("handler.") {
            md_insert(&mut hmd, x, v);
        } else if let Some(x) = k.strip_prefix("listener.") {
            md_insert(&mut lmd, x, v);
        } else if SERVICE_SCOPE_KEYS.contains(&k.as_str()) {
            md_insert(&mut smd, k, v);
        } else {
            md_insert(&mut smd, k, v);
            md_insert(&mut hmd, k, v);
            md_insert(&mut lmd, k, v);
        }
    }
    for k in EXTRACTED_HANDLER_KEYS {
        hmd.remove(*k);
    }
    if let Some(v) = smd.get("dns").and_then(|v| v.as_str()).map(str::to_string) {
        let list: Vec<Value> = v.split(',').map(|s| Value::String(s.to_string())).collect();
        smd.insert("dns".into(), Value::Array(list.clone()));
        hmd.insert("dns".into(), Value::Array(list.clone()));
        lmd.insert("dns".into(), Value::Array(list));
    }
    (smd, hmd, lmd)
}

/// Builds hop `hop-<i>` of `chain-0` from a `-F` value.
fn build_hop(
    i: usize,
    url: &str,
    names: &mut Names,
    cfg: &mut Config,
    kinds: &crate::component::Kinds,
) -> Result<HopConfig, BuildError> {
    let flag = "-F";
    let parts = split_url(flag, url)?;
    let (c, d) = match parts.scheme.split_once('+') {
        Some((c, d)) => (c.to_string(), d.to_string()),
        None => (parts.scheme.clone(), parts.scheme.clone()),
    };
    let connector = if GOST_CONNECTORS.contains(&c.as_str()) {
        c
    } else {
        "http".into()
    };
    let dialer = if GOST_DIALERS.contains(&d.as_str()) {
        d
    } else {
        "tcp".into()
    };
    if !kinds.connectors.contains_key(connector.as_str()) {
        return Err(cli_err(
            flag,
            url,
            format!(
                "connector {connector:?} is not supported by gost-proxy (supported: {})",
                crate::component::list_names(&kinds.connectors)
            ),
        ));
    }
    if !kinds.dialers.contains_key(dialer.as_str()) {
        return Err(cli_err(
            flag,
            url,
            format!(
                "dialer {dialer:?} is not supported by gost-proxy (supported: {})",
                crate::component::list_names(&kinds.dialers)
            ),
        ));
    }
    let mut q = parts.query.clone();
    let selector = selector_from(&q).map_err(|e| cli_err(flag, url, e))?;
    let Extracted {
        bypass,
        resolver,
        hosts,
        ..
    } = extract_objects(flag, url, &q, names, cfg)?;
    let auth = auth_from(&parts);
    let secure = get(&q, &["secure"]).is_some_and(|v| v == "true" || v == "1");
    let server_name = get(&q, &["tls.servername", "servername", "serverName"]);
    let mut tls = tls_from(&q);
    tls.secure = secure;
    for k in [
        "auth",
        "secure",
        "tls.servername",
        "servername",
        "serverName",
    ] {
        take(&mut q, &[k]);
    }
    q.retain(|(k, _)| !LISTENER_TLS_KEYS.iter().any(|x| x.eq_ignore_ascii_case(k)));
    let (mut hmd, mut nmd, mut cmd, mut dmd) = (
        Metadata::new(),
        Metadata::new(),
        Metadata::new(),
        Metadata::new(),
    );
    for (k, v) in &q {
        if let Some(x) = k.strip_prefix("hop.") {
            md_insert(&mut hmd, x, v);
        } else if let Some(x) = k.strip_prefix("node.") {
            md_insert(&mut nmd, x, v);
        } else if let Some(x) = k.strip_prefix("connector.") {
            md_insert(&mut cmd, x, v);
        } else if let Some(x) = k.strip_prefix("dialer.") {
            md_insert(&mut dmd, x, v);
        } else if ["interface", "so_mark", "proxyProtocol"].contains(&k.as_str()) {
            md_insert(&mut hmd, k, v);
        } else if [
            "bypass",
            "resolver",
            "hosts",
            "prefer",
            "strategy",
            "maxFails",
            "max_fails",
            "failTimeout",
            "fail_timeout",
        ]
        .contains(&k.as_str())
        {
            continue;
        } else {
            md_insert(&mut hmd, k, v);
            md_insert(&mut nmd, k, v);
            md_insert(&mut cmd, k, v);
            md_insert(&mut dmd, k, v);
        }
    }
    let mut nodes = Vec::new();
    for (j, addr) in parts.host.split(',').filter(|a| !a.is_empty()).enumerate() {
        let host = crate::addr::split_host_port(addr)
            .map(|(h, _)| h.to_string())
            .unwrap_or_default();
        let mut ntls = tls.clone();
        if let Some(sn) = &server_name {
            ntls.server_name = sn.clone();
        } else if host.parse::<std::net::IpAddr>().is_err() {
            ntls.server_name = host.clone();
        }
        let dtls = (ntls != TlsConfig::default()).then_some(ntls);
        nodes.push(NodeConfig {
            name: format!("node-{j}"),
            addr: addr.to_string(),
            connector: Some(ConnectorConfig {
                kind: connector.clone(),
                auth: auth.clone(),
                metadata: cmd.clone(),
                ..Default::default()
            }),
            dialer: Some(DialerConfig {
                kind: dialer.clone(),
                tls: dtls,
                metadata: dmd.clone(),
                ..Default::default()
            }),
            metadata: nmd.clone(),
            ..Default::default()
        });
    }
    if nodes.is_empty() {
        return Err(cli_err(flag, url, "node address is required (host:port)"));
    }
    Ok(HopConfig {
        name: format!("hop-{i}"),
        selector,
        bypass,
        resolver,
        hosts,
        nodes: Some(nodes),
        metadata: hmd,
        ..Default::default()
    })
}

/// `-api` value → `api:` object.
pub fn api_from_flag(v: &str) -> Result<ApiConfig, BuildError> {
    let p = split_url("-api", &format!("api://{v}"))?;
    Ok(ApiConfig {
        addr: p.host,
        path_prefix: get(&p.query, &["pathPrefix"]).unwrap_or_default(),
        accesslog: get(&p.query, &["accesslog", "accessLog"])
            .is_some_and(|v| v == "true" || v == "1"),
        auth: p.user.map(|(u, pw)| AuthConfig {
            username: u,
            password: pw.unwrap_or_default(),
            file: None,
        }),
        auther: None,
    })
}

/// `-metrics` value → `metrics:` object.
pub fn metrics_from_flag(v: &str) -> Result<MetricsConfig, BuildError> {
    let p = split_url("-metrics", &format!("metrics://{v}"))?;
    Ok(MetricsConfig {
        addr: p.host,
        path: get(&p.query, &["path"]).unwrap_or_default(),
        auth: p.user.map(|(u, pw)| AuthConfig {
            username: u,
            password: pw.unwrap_or_default(),
            file: None,
        }),
        auther: None,
    })
}

/// Builds the CLI part of the config from `-L` and `-F` values. `gost_id` is set in the
/// children of a `--` multi-process run and prefixes generated names with `go-<id>@`.
pub fn build(
    services: &[String],
    nodes: &[String],
    gost_id: Option<&str>,
    kinds: &crate::component::Kinds,
) -> Result<Config, BuildError> {
    let mut cfg = Config::default();
    let mut names = Names::default();
    let prefix = gost_id.map(|i| format!("go-{i}@")).unwrap_or_default();
    if !nodes.is_empty() {
        let mut hops = Vec::new();
        for (i, n) in nodes.iter().enumerate() {
            hops.push(build_hop(i, n, &mut names, &mut cfg, kinds)?);
        }
        cfg.chains.push(ChainConfig {
            name: "chain-0".into(),
            hops,
            ..Default::default()
        });
    }
    for s in services {
        build_services(s, &mut names, &mut cfg, !nodes.is_empty(), &prefix, kinds)?;
    }
    Ok(cfg)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn k() -> crate::component::Kinds {
        crate::component::Kinds::builtin()
    }

    #[test]
    fn defaults_and_schemes() {
        let c = build(
            &[
                ":8080".into(),
                "socks5://u:p@127.0.0.1:1080?udp=true".into(),
            ],
            &[],
            None,
            &k(),
        )
        .unwrap();
        assert_eq!(c.services[0].name, "service-0");
        assert_eq!(c.services[0].handler.as_ref().unwrap().kind, "auto");
        assert_eq!(c.services[0].listener.as_ref().unwrap().kind, "tcp");
        let s1 = &c.services[1];
        let h = s1.handler.as_ref().unwrap();
        assert_eq!(h.kind, "socks5");
        assert_eq!(h.auth.as_ref().unwrap().username, "u");
        assert_eq!(h.metadata["udp"], "true");
        assert_eq!(s1.metadata["udp"], "true");
    }

    #[test]
    fn forward_targets_and_port_ranges() {
        let c = build(
            &["tcp://:8000-8002/10.0.0.1:9000-9002".into()],
            &[],
            None,
            &k(),
        )
        .unwrap();
        assert_eq!(c.services.len(), 3);
        assert_eq!(c.services[2].addr, ":8002");
        assert_eq!(
            c.services[2].forwarder.as_ref().unwrap().nodes[0].addr,
            "10.0.0.1:9002"
        );
        let c = build(
            &["tcp://:8080/a:1,b:2?strategy=fifo".into()],
            &[],
            None,
            &k(),
        )
        .unwrap();
        let f = c.services[0].forwarder.as_ref().unwrap();
        assert_eq!(f.nodes.len(), 2);
        assert_eq!(f.selector.as_ref().unwrap().strategy, "fifo");
        assert_eq!(c.services[0].handler.as_ref().unwrap().kind, "tcp");
    }

    #[test]
    fn chain_from_f_and_ignore_chain() {
        let c = build(
            &[
                "http://:8080".into(),
                "socks5://:1080?ignoreChain=true".into(),
            ],
            &[
                "socks5://u:p@127.0.0.1:1081,127.0.0.1:1082?bypass=~.corp".into(),
                "http://h:1".into(),
            ],
            Some("1"),
            &k(),
        )
        .unwrap();
        assert_eq!(c.services[0].name, "go-1@service-0");
        assert_eq!(
            c.services[0].handler.as_ref().unwrap().chain.as_deref(),
            Some("chain-0")
        );
        let hop0 = &c.chains[0].hops[0];
        assert_eq!(hop0.nodes.as_ref().unwrap().len(), 2);
        assert_eq!(hop0.bypass.as_deref(), Some("bypass-0"));
        assert!(c.bypasses[0].whitelist);
        assert_eq!(c.chains[0].hops[1].name, "hop-1");
        assert_eq!(c.services[1].metadata["ignoreChain"], "true");
    }

    #[test]
    fn unsupported_types_are_named() {
        let e = build(&["socks5+quic://:1080".into()], &[], None, &k()).unwrap_err();
        assert!(e.msg.contains("quic"), "{e}");
        let e = build(&[":1".into()], &["relay+kcp://h:1".into()], None, &k()).unwrap_err();
        assert!(e.msg.contains("relay") || e.msg.contains("kcp"), "{e}");
    }

    #[test]
    fn api_and_metrics_flags() {
        let a = api_from_flag("user:pass@:18080?pathPrefix=/api&accesslog=true").unwrap();
        assert_eq!(a.addr, ":18080");
        assert_eq!(a.path_prefix, "/api");
        assert!(a.accesslog);
        assert_eq!(a.auth.unwrap().password, "pass");
        assert_eq!(metrics_from_flag(":9000?path=/m").unwrap().path, "/m");
    }
}
