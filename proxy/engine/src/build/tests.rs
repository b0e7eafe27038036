//! Every error path of the build step: each case is a config that must be rejected with an
//! error at the given path whose message contains the given text.

use gost_config::Config;

use crate::engine::{Engine, EngineOpts};

/// (what, config, path, part of the message)
const CASES: &[(&str, &str, &str, &str)] = &[
    // named objects
    ("unsupported section", "quotas: [{name: q}]", "quotas", "not supported"),
    ("service without name", "services: [{name: '', addr: ':0'}]", "services[]", "name is required"),
    ("duplicate service", "services: [{name: a, addr: ':0'}, {name: a, addr: ':1'}]", "services[a]", "duplicate services name"),
    ("duplicate chain", "chains: [{name: c, hops: []}, {name: c, hops: []}]", "chains[c]", "duplicate chains name"),
    ("duplicate hop", "hops: [{name: h, nodes: []}, {name: h, nodes: []}]", "hops[h]", "duplicate hops name"),
    ("auther without name", "authers: [{name: ' '}]", "authers[]", "non-empty name"),
    ("duplicate bypass", "bypasses: [{name: b}, {name: b}]", "bypasses[b]", "duplicate"),
    ("top-level hop without nodes", "hops: [{name: h}]", "hops[h].nodes", "needs `nodes`"),
    ("chain hop neither inline nor named", "chains: [{name: c, hops: [{}]}]", "chains[c].hops[0]", "either `nodes`"),
    ("chain names a missing hop", "chains: [{name: c, hops: [{name: nope}]}]", "chains[c].hops[nope]", "not found in hops[]"),
    ("bad resolver scheme", "resolvers: [{name: r, nameservers: [{addr: 'quic://1.1.1.1'}]}]", "resolvers[r].nameservers[0].addr", "not supported"),
    ("bad admission matcher", "admissions: [{name: a, matchers: ['10.0.0.0/99']}]", "admissions[a].matchers[0]", "bad prefix length"),
    // nodes and hops
    ("node without addr", "hops: [{name: h, nodes: [{name: n}]}]", "hops[h].nodes[n].addr", "required"),
    ("node with bad addr", "hops: [{name: h, nodes: [{name: n, addr: 'no-port'}]}]", "hops[h].nodes[n].addr", "expected host:port"),
    ("node probe", "hops: [{name: h, nodes: [{name: n, addr: 'a:1', probe: {}}]}]", "hops[h].nodes[n].probe", "not supported"),
    ("unknown connector", "hops: [{name: h, nodes: [{name: n, addr: 'a:1', connector: {type: nope}}]}]", "hops[h].nodes[n].connector.type", "unknown connector"),
    ("unknown dialer", "hops: [{name: h, nodes: [{name: n, addr: 'a:1', dialer: {type: nope}}]}]", "hops[h].nodes[n].dialer.type", "unknown dialer"),
    ("unknown node metadata (strict)", "hops: [{name: h, nodes: [{name: n, addr: 'a:1', metadata: {nope: 1}}]}]", "hops[h].nodes[n].metadata.nope", "unknown metadata key"),
    ("duplicate node", "hops: [{name: h, nodes: [{name: n, addr: 'a:1'}, {name: n, addr: 'a:2'}]}]", "hops[h].nodes[n]", "duplicate node name"),
    ("hop node source", "hops: [{name: h, nodes: [], file: {path: x}}]", "hops[h].file", "not supported"),
    ("bad strategy", "hops: [{name: h, nodes: [], selector: {strategy: best}}]", "hops[h].selector.strategy", "unknown strategy"),
    // services
    ("service without addr", "services: [{name: s}]", "services[s].addr", "required"),
    ("bad listen address", "services: [{name: s, addr: 'nowhere'}]", "services[s].addr", "invalid listen address"),
    ("unknown handler", "services: [{name: s, addr: ':0', handler: {type: nope}}]", "services[s].handler.type", "unknown handler"),
    ("unknown listener", "services: [{name: s, addr: ':0', listener: {type: nope}}]", "services[s].listener.type", "unknown listener"),
    ("dangling limiter", "services: [{name: s, addr: ':0', limiter: l}]", "services[s].limiter", "limiter \"l\" not found in limiters[]"),
    ("dangling climiter", "services: [{name: s, addr: ':0', climiter: c}]", "services[s].climiter", "climiter \"c\" not found in climiters[]"),
    ("dangling rlimiter", "services: [{name: s, addr: ':0', rlimiter: r}]", "services[s].rlimiter", "rlimiter \"r\" not found in rlimiters[]"),
    ("dangling handler limiter", "services: [{name: s, addr: ':0', handler: {type: http, limiter: l}}]", "services[s].handler.limiter", "not found in limiters[]"),
    ("bad traffic limit", "limiters: [{name: t, limits: ['$ 1XB']}]", "limiters[t].limits[0]", "unknown unit \"XB\""),
    ("bad limiter scope", "climiters: [{name: c, limits: ['10.0.0.0/40 5']}]", "climiters[c].limits[0]", "bad prefix length"),
    ("bad rate", "rlimiters: [{name: r, limits: ['$$ fast']}]", "rlimiters[r].limits[0]", "is not a rate"),
    ("limiter redis source", "rlimiters: [{name: r, redis: {addr: x}}]", "rlimiters[r].redis", "not supported"),
    ("duplicate limiter", "limiters: [{name: t, limits: ['$ 1MB']}, {name: t}]", "limiters[t]", "duplicate"),
    ("service recorders", "services: [{name: s, addr: ':0', recorders: []}]", "services[s].recorders", "not supported"),
    ("handler observer", "services: [{name: s, addr: ':0', handler: {type: http, observer: o}}]", "services[s].handler.observer", "not supported"),
    ("chain group", "services: [{name: s, addr: ':0', handler: {type: http, chainGroup: {chains: [c]}}}]", "services[s].handler.chainGroup", "not supported"),
    ("negative retries", "services: [{name: s, addr: ':0', handler: {type: http, retries: -1}}]", "services[s].handler.retries", "0 or more"),
    ("unknown service metadata (strict)", "services: [{name: s, addr: ':0', metadata: {nope: 1}}]", "services[s].metadata.nope", "unknown metadata key"),
    ("empty failClosed reason", "services: [{name: s, addr: ':0', metadata: {failClosed: ' '}}]", "services[s].metadata.failClosed", "non-empty reason"),
    ("fail-closed bad address", "services: [{name: s, addr: 'x', metadata: {failClosed: why}}]", "services[s].addr", "invalid listen address"),
    // references
    ("dangling chain", "services: [{name: s, addr: ':0', handler: {type: http, chain: c}}]", "services[s].handler.chain", "not found in chains[]"),
    ("dangling auther", "services: [{name: s, addr: ':0', handler: {type: http, auther: a}}]", "services[s].handler.auther", "not found in authers[]"),
    ("dangling admission", "services: [{name: s, addr: ':0', admission: a}]", "services[s].admission", "not found"),
    ("dangling bypass", "services: [{name: s, addr: ':0', bypass: b}]", "services[s].bypass", "not found"),
    ("dangling hosts", "services: [{name: s, addr: ':0', hosts: h}]", "services[s].hosts", "not found"),
    ("dangling resolver", "services: [{name: s, addr: ':0', resolver: r}]", "services[s].resolver", "not found"),
    ("dangling forwarder hop", "services: [{name: s, addr: ':0', handler: {type: tcp}, forwarder: {hop: h}}]", "services[s].forwarder.hop", "not found in hops[]"),
    // forwarders
    ("forward target without addr", "services: [{name: s, addr: ':0', handler: {type: tcp}, forwarder: {nodes: [{name: t}]}}]", "services[s].forwarder.nodes[t].addr", "required"),
    ("forward target bad network", "services: [{name: s, addr: ':0', handler: {type: tcp}, forwarder: {nodes: [{name: t, addr: 'a:1', network: sctp}]}}]", "services[s].forwarder.nodes[t].network", "unknown network"),
    ("forward target matcher", "services: [{name: s, addr: ':0', handler: {type: tcp}, forwarder: {nodes: [{name: t, addr: 'a:1', matcher: {}}]}}]", "services[s].forwarder.nodes[t].matcher", "not supported"),
];

#[test]
fn every_build_error_names_its_path() {
    let engine = Engine::new(EngineOpts {
        strict: true,
        ..Default::default()
    });
    let mut failures = Vec::new();
    for (what, yaml, path, msg) in CASES {
        let cfg = match Config::from_yaml(yaml) {
            Ok(c) => c,
            Err(e) => {
                failures.push(format!("{what}: the test config does not parse: {e}"));
                continue;
            }
        };
        match engine.validate(&cfg) {
            Ok(()) => failures.push(format!("{what}: accepted")),
            Err(errs) => {
                if !errs
                    .0
                    .iter()
                    .any(|e| e.path == *path && e.msg.contains(msg))
                {
                    failures.push(format!("{what}: want {path} ~ {msg:?}, got {errs}"));
                }
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn a_valid_config_builds() {
    let cfg = Config::from_yaml(
        "services: [{name: s, addr: '127.0.0.1:0', handler: {type: tcp, chain: c}, forwarder: {nodes: [{name: t, addr: 'a:1'}]}}]\n\
         chains: [{name: c, hops: [{name: h}]}]\n\
         hops: [{name: h, nodes: [{name: n, addr: 'a:1', connector: {type: socks5}}]}]",
    )
    .unwrap();
    Engine::new(EngineOpts {
        strict: true,
        ..Default::default()
    })
    .validate(&cfg)
    .unwrap();
}
