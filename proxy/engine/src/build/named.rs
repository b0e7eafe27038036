//! Every named object of a config, and the references between them.

use std::collections::HashSet;
use std::sync::Arc;

use gost_config::Config;

use super::{chain, hop, BuildOpts};
use crate::chain::{Chain, Hop};
use crate::component::Kinds;
use crate::error::{BuildError, BuildErrors};
use crate::limiter::{conn::ConnLimiter, rate::RateLimiter, traffic::TrafficLimiter};
use crate::md::Md;
use crate::policy::Auther;
use crate::store::names;

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
    /// `limiters`.
    pub limiters: Vec<(String, Arc<TrafficLimiter>)>,
    /// `climiters`.
    pub climiters: Vec<(String, Arc<ConnLimiter>)>,
    /// `rlimiters`.
    pub rlimiters: Vec<(String, Arc<RateLimiter>)>,
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
    for s in cfg.unsupported_sections() {
        errs.push(BuildError::new(
            s,
            format!(
                "section `{s}` is not supported by gost-proxy (supported: {})",
                gost_config::SUPPORTED_SECTIONS.join(", ")
            ),
        ));
    }
    unique_names(cfg, &mut errs);
    let b = build_objects(kinds, cfg, opts, &mut errs);
    check_references(cfg, &b, &mut errs);
    if errs.is_empty() {
        Ok(b)
    } else {
        Err(BuildErrors(errs))
    }
}

/// Every entry of every section has a name, and names are unique per section.
fn unique_names(cfg: &Config, errs: &mut Vec<BuildError>) {
    let sections: [(&str, Vec<&str>); 11] = [
        (
            "services",
            cfg.services.iter().map(|x| x.name.as_str()).collect(),
        ),
        (
            "chains",
            cfg.chains.iter().map(|x| x.name.as_str()).collect(),
        ),
        ("hops", cfg.hops.iter().map(|x| x.name.as_str()).collect()),
        (
            "authers",
            cfg.authers.iter().map(|x| x.name.as_str()).collect(),
        ),
        (
            "admissions",
            cfg.admissions.iter().map(|x| x.name.as_str()).collect(),
        ),
        (
            "bypasses",
            cfg.bypasses.iter().map(|x| x.name.as_str()).collect(),
        ),
        ("hosts", cfg.hosts.iter().map(|x| x.name.as_str()).collect()),
        (
            "resolvers",
            cfg.resolvers.iter().map(|x| x.name.as_str()).collect(),
        ),
        (
            "limiters",
            cfg.limiters.iter().map(|x| x.name.as_str()).collect(),
        ),
        (
            "climiters",
            cfg.climiters.iter().map(|x| x.name.as_str()).collect(),
        ),
        (
            "rlimiters",
            cfg.rlimiters.iter().map(|x| x.name.as_str()).collect(),
        ),
    ];
    for (kind, names) in sections {
        unique(kind, names.into_iter(), errs);
    }
}

/// Builds what can be built; each failure is one error.
fn build_objects(
    kinds: &Kinds,
    cfg: &Config,
    opts: &BuildOpts,
    errs: &mut Vec<BuildError>,
) -> Built {
    let mut b = Built {
        chains: vec![],
        hops: vec![],
        authers: vec![],
        admissions: vec![],
        bypasses: vec![],
        hosts: vec![],
        resolvers: vec![],
        limiters: vec![],
        climiters: vec![],
        rlimiters: vec![],
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
    for l in &cfg.limiters {
        match TrafficLimiter::build(&format!("limiters[{}]", l.name), l) {
            Ok(x) => b.limiters.push((l.name.clone(), Arc::new(x))),
            Err(e) => errs.push(e),
        }
    }
    for l in &cfg.climiters {
        match ConnLimiter::build(&format!("climiters[{}]", l.name), l) {
            Ok(x) => b.climiters.push((l.name.clone(), Arc::new(x))),
            Err(e) => errs.push(e),
        }
    }
    for l in &cfg.rlimiters {
        match RateLimiter::build(&format!("rlimiters[{}]", l.name), l) {
            Ok(x) => b.rlimiters.push((l.name.clone(), Arc::new(x))),
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
    b
}

/// Dangling references: GOST resolves them lazily (and fails open for chains and authers);
/// we report them at load as errors, so a typo never silently sends traffic direct.
fn check_references(cfg: &Config, b: &Built, errs: &mut Vec<BuildError>) {
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
        let limiter_refs = [
            ("limiter", &s.limiter, "limiters", &cfg.limiters),
            ("climiter", &s.climiter, "climiters", &cfg.climiters),
            ("rlimiter", &s.rlimiter, "rlimiters", &cfg.rlimiters),
            (
                "handler.limiter",
                s.handler.as_ref().map_or(&None, |h| &h.limiter),
                "limiters",
                &cfg.limiters,
            ),
        ];
        for (field, name, section, list) in limiter_refs {
            if let Some(n) = name.as_ref().filter(|n| !n.is_empty()) {
                if !list.iter().any(|x| &x.name == n) {
                    errs.push(BuildError::new(
                        format!("{p}.{field}"),
                        format!(
                            "{} {n:?} not found in {section}[]",
                            &section[..section.len() - 1]
                        ),
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
}
