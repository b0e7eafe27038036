//! Conflicts between the services that would run in one pod: two services that bind the same
//! address, or share a name. Both GostServices report the conflict, naming the other, and the
//! pod is not injected.

use kube::ResourceExt;

use crate::crd::{GostService, ServiceSpec};

/// Listener types that bind UDP; every other type binds TCP.
const UDP_LISTENERS: &[&str] = &[
    "udp", "rudp", "redu", "kcp", "quic", "http3", "h3", "wt", "dtls",
];

/// What two services share.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConflictKind {
    /// Both bind the same port (same network, overlapping host).
    Addr {
        /// Address of the first service.
        addr: String,
        /// Address of the second service.
        other_addr: String,
    },
    /// Both are called the same.
    ServiceName,
}

/// Two services that cannot run in the same pod.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Conflict {
    /// First GostService.
    pub gostservice: String,
    /// Its service.
    pub service: String,
    /// The other GostService (may be the same one for an address clash inside one).
    pub other_gostservice: String,
    /// The other service.
    pub other_service: String,
    /// What they share.
    pub kind: ConflictKind,
}

// === impl Conflict ===

impl Conflict {
    /// True when `gostservice` is one of the two sides.
    pub fn involves(&self, gostservice: &str) -> bool {
        self.gostservice == gostservice || self.other_gostservice == gostservice
    }

    /// A message for the status of `gostservice` that names the other side.
    pub fn message_for(&self, gostservice: &str) -> String {
        let (mine, other_g, other_s) = if self.gostservice == gostservice {
            (&self.service, &self.other_gostservice, &self.other_service)
        } else {
            (&self.other_service, &self.gostservice, &self.service)
        };
        let idx = if self.gostservice == gostservice {
            0
        } else {
            1
        };
        match &self.kind {
            ConflictKind::ServiceName => format!(
                "spec.services[{mine}]: service name {mine:?} is also used by GostService {other_g:?}"
            ),
            ConflictKind::Addr { addr, other_addr } => {
                let (a, b) = if idx == 0 {
                    (addr, other_addr)
                } else {
                    (other_addr, addr)
                };
                format!(
                    "spec.services[{mine}].addr: {a:?} clashes with {b:?} of service {other_s:?} in GostService {other_g:?}"
                )
            }
        }
    }
}

impl std::fmt::Display for Conflict {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let what = match &self.kind {
            ConflictKind::ServiceName => "share the service name".to_string(),
            ConflictKind::Addr { addr, other_addr } => {
                format!("bind the same address ({addr} / {other_addr})")
            }
        };
        write!(
            f,
            "GostService {}/{} and GostService {}/{} {what}",
            self.gostservice, self.service, self.other_gostservice, self.other_service
        )
    }
}

/// Conflicts among the GostServices that select one pod (each pair reported once, in input
/// order). Inside one GostService only addresses are checked (the API server rejects duplicate
/// names).
pub fn detect_conflicts(gostservices: &[&GostService]) -> Vec<Conflict> {
    let all: Vec<(String, &ServiceSpec)> = gostservices
        .iter()
        .flat_map(|g| g.spec.services.iter().map(move |s| (g.name_any(), s)))
        .collect();
    let mut out = Vec::new();
    for (i, (ga, a)) in all.iter().enumerate() {
        for (gb, b) in &all[i + 1..] {
            let kind = if ga != gb && a.name == b.name {
                Some(ConflictKind::ServiceName)
            } else if binds_overlap(a, b) {
                Some(ConflictKind::Addr {
                    addr: a.addr.clone(),
                    other_addr: b.addr.clone(),
                })
            } else {
                None
            };
            if let Some(kind) = kind {
                out.push(Conflict {
                    gostservice: ga.clone(),
                    service: a.name.clone(),
                    other_gostservice: gb.clone(),
                    other_service: b.name.clone(),
                    kind,
                });
            }
        }
    }
    out
}

/// `(host, port, udp)` of a listen address; `None` when it does not parse (the engine reports
/// that).
fn bind(s: &ServiceSpec) -> Option<(String, u16, bool)> {
    let (host, port) = s.addr.rsplit_once(':')?;
    let port: u16 = port.parse().ok()?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let host = match host {
        "" | "0.0.0.0" | "::" => "",
        h => h,
    };
    let kind = s.listener.as_ref().map(|l| l.kind.as_str()).unwrap_or("");
    Some((host.to_string(), port, UDP_LISTENERS.contains(&kind)))
}

/// Two binds clash when network and port match and the hosts are equal or one is a wildcard.
fn binds_overlap(a: &ServiceSpec, b: &ServiceSpec) -> bool {
    match (bind(a), bind(b)) {
        (Some((ha, pa, ua)), Some((hb, pb, ub))) => {
            pa == pb && ua == ub && pa != 0 && (ha == hb || ha.is_empty() || hb.is_empty())
        }
        _ => false,
    }
}

/// Services of a GostService that would bind `port`, the sidecar's own health port, on any
/// address: messages naming the field.
pub fn reserved_port_clashes(gsvc: &GostService, port: i32) -> Vec<String> {
    gsvc.spec
        .services
        .iter()
        .filter(|s| bind(s).is_some_and(|(_, p, udp)| !udp && i32::from(p) == port))
        .map(|s| {
            format!(
                "spec.services[{}].addr: port {port} is reserved for the gost-proxy sidecar's health endpoint",
                s.name
            )
        })
        .collect()
}
