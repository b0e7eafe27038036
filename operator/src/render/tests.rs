#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::ByteString;
use kube::api::ObjectMeta;

use super::*;

const NS: &str = "shop";

fn mk_gsvc(yaml: &str) -> GostService {
    let mut g: GostService = serde_saphyr::from_str(yaml).unwrap();
    g.metadata.namespace.get_or_insert_with(|| NS.to_string());
    g
}

fn mk_chain(yaml: &str) -> GostChain {
    let mut c: GostChain = serde_saphyr::from_str(yaml).unwrap();
    c.metadata.namespace.get_or_insert_with(|| NS.to_string());
    c
}

fn mk_secret(name: &str, data: &[(&str, &str)]) -> Secret {
    Secret {
        metadata: ObjectMeta {
            name: Some(name.into()),
            namespace: Some(NS.into()),
            ..Default::default()
        },
        data: Some(
            data.iter()
                .map(|(k, v)| (k.to_string(), ByteString(v.as_bytes().to_vec())))
                .collect(),
        ),
        ..Default::default()
    }
}

fn corp_chain() -> GostChain {
    mk_chain(
        r#"
apiVersion: kubegost.io/v1alpha1
kind: GostChain
metadata: {name: corp-egress}
spec:
  selector: {strategy: round, maxFails: 2, failTimeout: 10s}
  hops:
  - name: hop-0
    nodes:
    - name: corp-proxy
      addr: proxy.corp.example:3128
      connector: {type: http, auth: {secretRef: {name: corp-proxy-creds}}}
  - name: hop-1
    selector: {strategy: fifo}
    nodes:
    - {name: gw, addr: "10.0.0.1:1080", connector: {type: socks5}}
"#,
    )
}

fn corp_creds() -> Secret {
    mk_secret(
        "corp-proxy-creds",
        &[("username", "alice"), ("password", "s3cret")],
    )
}

/// The spec.md example, minus the hooks that need no chain.
fn web_egress() -> GostService {
    mk_gsvc(
        r#"
apiVersion: kubegost.io/v1alpha1
kind: GostService
metadata: {name: web-egress}
spec:
  selector: {matchLabels: {app: web}}
  chain: corp-egress
  services:
  - name: http-proxy
    addr: "127.0.0.1:8080"
    handler: {type: http}
    listener: {type: tcp}
  - name: metrics-forward
    addr: ":9100"
    ignoreChain: true
    handler: {type: tcp}
    listener: {type: tcp}
    forwarder: {nodes: [{name: local, addr: "127.0.0.1:9090"}]}
    hooks:
      preUp: ["sh -c 'echo starting > /run/kubegost/state'"]
      postDown: ["echo bye"]
      timeoutSeconds: 45
"#,
    )
}

fn svc<'a>(r: &'a Rendered, name: &str) -> Option<&'a gost_config::ServiceConfig> {
    r.config.services.iter().find(|s| s.name == name)
}

fn render_ok(g: &GostService, chains: &[GostChain], secrets: &[Secret]) -> Rendered {
    let r = render(g, chains, secrets, &RenderSettings::default());
    assert!(r.errors.is_empty(), "{:?}", r.errors);
    validate(&r, &RenderSettings::default())
        .unwrap_or_else(|e| panic!("engine rejects the render: {e}"));
    r
}

#[test]
fn spec_chain_is_the_default_chain_scoped_by_gostservice() {
    let r = render_ok(&web_egress(), &[corp_chain()], &[corp_creds()]);
    let h = svc(&r, "http-proxy").unwrap().handler.as_ref().unwrap();
    assert_eq!(h.chain.as_deref(), Some("web-egress_corp-egress"));
    assert_eq!(r.config.chains.len(), 1);
    assert_eq!(r.config.chains[0].name, "web-egress_corp-egress");
    assert_eq!(r.chains, BTreeSet::from(["corp-egress".to_string()]));
    assert_eq!(r.secrets, BTreeSet::from(["corp-proxy-creds".to_string()]));
}

#[test]
fn credentials_are_copied_from_the_secret() {
    let r = render_ok(&web_egress(), &[corp_chain()], &[corp_creds()]);
    let node = &r.config.chains[0].hops[0].nodes.as_ref().unwrap()[0];
    let auth = node.connector.as_ref().unwrap().auth.as_ref().unwrap();
    assert_eq!(
        (auth.username.as_str(), auth.password.as_str()),
        ("alice", "s3cret")
    );
}

#[test]
fn chain_selector_is_the_default_of_hops_without_one() {
    let r = render_ok(&web_egress(), &[corp_chain()], &[corp_creds()]);
    let hops = &r.config.chains[0].hops;
    let s0 = hops[0].selector.as_ref().unwrap();
    assert_eq!(s0.strategy, "round");
    assert_eq!(s0.max_fails, 2);
    assert_eq!(
        s0.fail_timeout.unwrap().0,
        std::time::Duration::from_secs(10)
    );
    assert_eq!(hops[1].selector.as_ref().unwrap().strategy, "fifo");
}

#[test]
fn ignore_chain_wins_over_spec_chain_and_handler_chain() {
    let mut g = web_egress();
    g.spec.services[1].handler.as_mut().unwrap().chain = Some("other".into());
    let r = render_ok(&g, &[corp_chain()], &[corp_creds()]);
    let s = svc(&r, "metrics-forward").unwrap();
    assert_eq!(s.handler.as_ref().unwrap().chain, None);
    assert_eq!(s.listener.as_ref().unwrap().chain, None);
    assert_eq!(s.metadata["ignoreChain"], true);
    // an ignored reference is still reported as referenced, but not rendered
    assert!(r.chains.contains("other"));
    assert!(r.config.chains.iter().all(|c| c.name != "web-egress/other"));
}

#[test]
fn ignore_chain_in_metadata_means_the_same_as_the_field() {
    let mut g = web_egress();
    g.spec.services[0]
        .metadata
        .insert("ignorechain".into(), "true".into());
    let r = render_ok(&g, &[], &[]);
    let s = svc(&r, "http-proxy").unwrap();
    assert_eq!(s.handler.as_ref().unwrap().chain, None);
    assert_eq!(
        s.metadata.get("ignoreChain"),
        Some(&serde_json::json!(true))
    );
    assert!(!s.metadata.contains_key("ignorechain"));
    assert!(r.config.chains.is_empty(), "no service uses the chain");
}

#[test]
fn handler_chain_wins_over_spec_chain() {
    let mut g = web_egress();
    g.spec.services[0].handler.as_mut().unwrap().chain = Some("direct-gw".into());
    let gw = mk_chain(
        r#"
metadata: {name: direct-gw}
spec: {hops: [{name: h, nodes: [{name: n, addr: "10.1.1.1:1080", connector: {type: socks5}}]}]}
"#,
    );
    let r = render_ok(&g, &[corp_chain(), gw], &[corp_creds()]);
    let h = svc(&r, "http-proxy").unwrap().handler.as_ref().unwrap();
    assert_eq!(h.chain.as_deref(), Some("web-egress_direct-gw"));
    // corp-egress is used by no rendered service any more
    let names: Vec<_> = r.config.chains.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, ["web-egress_direct-gw"]);
}

#[test]
fn spec_chain_goes_to_the_listener_of_reverse_listeners() {
    let g = mk_gsvc(
        r#"
metadata: {name: rev}
spec:
  selector: {}
  chain: corp-egress
  services:
  - name: rtcp-in
    addr: ":8443"
    handler: {type: tcp}
    listener: {type: rtcp}
    forwarder: {nodes: [{name: app, addr: "127.0.0.1:8080"}]}
"#,
    );
    let r = render(
        &g,
        &[corp_chain()],
        &[corp_creds()],
        &RenderSettings::default(),
    );
    assert!(r.errors.is_empty(), "{:?}", r.errors);
    let s = svc(&r, "rtcp-in").unwrap();
    assert_eq!(s.handler.as_ref().unwrap().chain, None);
    assert_eq!(
        s.listener.as_ref().unwrap().chain.as_deref(),
        Some("rev_corp-egress")
    );
}

#[test]
fn hooks_become_service_metadata() {
    let r = render_ok(&web_egress(), &[corp_chain()], &[corp_creds()]);
    let md = &svc(&r, "metrics-forward").unwrap().metadata;
    assert_eq!(
        md["preUp"],
        serde_json::json!(["sh -c 'echo starting > /run/kubegost/state'"])
    );
    assert_eq!(md["postDown"], serde_json::json!(["echo bye"]));
    assert_eq!(md["hookTimeout"], "45s");
    assert!(!md.contains_key("postUp"));
}

#[test]
fn hook_keys_in_metadata_are_an_error_naming_the_field() {
    let mut g = web_egress();
    g.spec.services[0]
        .metadata
        .insert("PreUp".into(), serde_json::json!(["echo"]));
    let r = render(
        &g,
        &[corp_chain()],
        &[corp_creds()],
        &RenderSettings::default(),
    );
    assert_eq!(r.failed_services, ["http-proxy"]);
    assert_eq!(
        r.errors[0].field(),
        "spec.services[http-proxy].metadata.PreUp"
    );
    assert!(
        r.errors[0].to_string().contains("hooks.preUp"),
        "{}",
        r.errors[0]
    );
}

#[test]
fn out_of_range_hook_timeout_is_an_error() {
    let mut g = web_egress();
    g.spec.services[1].hooks.as_mut().unwrap().timeout_seconds = Some(0);
    let r = render(
        &g,
        &[corp_chain()],
        &[corp_creds()],
        &RenderSettings::default(),
    );
    assert_eq!(r.failed_services, ["metrics-forward"]);
    assert_eq!(
        r.errors[0].field(),
        "spec.services[metrics-forward].hooks.timeoutSeconds"
    );
}

#[test]
fn missing_chain_fails_the_services_closed_and_names_the_field() {
    let r = render(&web_egress(), &[], &[], &RenderSettings::default());
    assert_eq!(
        r.errors,
        [RenderError::ChainNotFound {
            field: "spec.chain".into(),
            name: "corp-egress".into()
        }]
    );
    assert_eq!(r.errors[0].reason(), "ChainNotFound");
    assert!(r.errors[0].is_unresolved_ref());
    // the chained service fails closed (listens, refuses with the reason), never direct
    assert_eq!(r.failed_services, ["http-proxy"]);
    let placeholder = svc(&r, "http-proxy").unwrap();
    assert_eq!(
        placeholder.metadata["failClosed"],
        "spec.chain: GostChain \"corp-egress\" not found"
    );
    assert_eq!(placeholder.addr, web_egress().spec.services[0].addr);
    assert!(placeholder.handler.is_none());
    assert!(r.config.chains.is_empty());
    // the service that ignores chains still runs
    assert!(!svc(&r, "metrics-forward")
        .unwrap()
        .metadata
        .contains_key("failClosed"));
    validate(&r, &RenderSettings::default()).unwrap();
}

#[test]
fn missing_explicit_chain_names_the_handler_field() {
    let mut g = web_egress();
    g.spec.services[0].handler.as_mut().unwrap().chain = Some("nope".into());
    let r = render(
        &g,
        &[corp_chain()],
        &[corp_creds()],
        &RenderSettings::default(),
    );
    assert_eq!(
        r.errors[0].to_string(),
        "spec.services[http-proxy].handler.chain: GostChain \"nope\" not found"
    );
}

#[test]
fn missing_secret_of_a_chain_fails_every_service_using_it() {
    let g = mk_gsvc(
        r#"
metadata: {name: two}
spec:
  selector: {}
  chain: corp-egress
  services:
  - {name: a, addr: ":1", handler: {type: http}}
  - {name: b, addr: ":2", handler: {type: socks5}}
  - {name: c, addr: ":3", handler: {type: http}, ignoreChain: true}
"#,
    );
    let r = render(&g, &[corp_chain()], &[], &RenderSettings::default());
    assert_eq!(r.failed_services, ["a", "b"]);
    assert_eq!(r.errors.len(), 1, "reported once: {:?}", r.errors);
    assert_eq!(
        r.errors[0].field(),
        "GostChain corp-egress: spec.hops[hop-0].nodes[corp-proxy].connector.auth.secretRef.name"
    );
    assert!(r.config.chains.is_empty());
    // a and b are fail-closed placeholders; c runs
    let closed: Vec<_> = r
        .config
        .services
        .iter()
        .filter(|s| s.metadata.contains_key("failClosed"))
        .map(|s| s.name.as_str())
        .collect();
    assert_eq!(closed, ["a", "b"]);
    assert_eq!(r.config.services.len(), 3);
}

#[test]
fn missing_secret_and_key_name_the_field() {
    let g = mk_gsvc(
        r#"
metadata: {name: authed}
spec:
  selector: {}
  services:
  - name: p
    addr: ":8080"
    handler: {type: http, auth: {secretRef: {name: users, passwordKey: pw}}}
"#,
    );
    let r = render(&g, &[], &[], &RenderSettings::default());
    assert_eq!(
        r.errors,
        [RenderError::SecretNotFound {
            field: "spec.services[p].handler.auth.secretRef.name".into(),
            name: "users".into()
        }]
    );
    let r = render(
        &g,
        &[],
        &[mk_secret("users", &[("username", "u"), ("password", "p")])],
        &RenderSettings::default(),
    );
    assert_eq!(
        r.errors,
        [RenderError::SecretKeyMissing {
            field: "spec.services[p].handler.auth.secretRef".into(),
            name: "users".into(),
            key: "pw".into()
        }]
    );
    assert_eq!(r.config.services.len(), 1);
    assert!(r.config.services[0].metadata.contains_key("failClosed"));
    assert!(r.config.services[0].handler.is_none());
    let r = render_ok(
        &g,
        &[],
        &[mk_secret("users", &[("username", "u"), ("pw", "p")])],
    );
    let auth = svc(&r, "p")
        .unwrap()
        .handler
        .as_ref()
        .unwrap()
        .auth
        .clone()
        .unwrap();
    assert_eq!((auth.username.as_str(), auth.password.as_str()), ("u", "p"));
}

#[test]
fn objects_of_other_namespaces_are_never_used() {
    let mut chain = corp_chain();
    chain.metadata.namespace = Some("elsewhere".into());
    let r = render(
        &web_egress(),
        &[chain],
        &[corp_creds()],
        &RenderSettings::default(),
    );
    assert_eq!(r.errors[0].reason(), "ChainNotFound");
}

#[test]
fn listener_tls_from_a_secret_becomes_files_next_to_the_config() {
    let cert = rcgen::generate_simple_self_signed(vec!["web.shop".into()]).unwrap();
    let (crt, key) = (cert.cert.pem(), cert.signing_key.serialize_pem());
    let g = mk_gsvc(
        r#"
metadata: {name: tls-in}
spec:
  selector: {}
  services:
  - name: https-proxy
    addr: ":8443"
    handler: {type: http}
    listener: {type: tls, tls: {secretRef: {name: web-tls}}}
"#,
    );
    let dir = tempfile::tempdir().unwrap();
    let settings = RenderSettings {
        config_dir: dir.path().display().to_string(),
    };
    let secrets = [mk_secret(
        "web-tls",
        &[("tls.crt", &crt), ("tls.key", &key)],
    )];
    let r = render(&g, &[], &secrets, &settings);
    assert!(r.errors.is_empty(), "{:?}", r.errors);
    assert_eq!(
        r.files.keys().collect::<Vec<_>>(),
        ["tls-in.web-tls.tls.crt", "tls-in.web-tls.tls.key"]
    );
    let tls = svc(&r, "https-proxy")
        .unwrap()
        .listener
        .clone()
        .unwrap()
        .tls
        .unwrap();
    assert_eq!(
        tls.cert_file,
        format!("{}/tls-in.web-tls.tls.crt", dir.path().display())
    );
    assert!(tls.ca_file.is_empty());
    // validated in memory: nothing was written to the directory the paths point at
    validate(&r, &settings).unwrap();
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    let data = r.secret_data("tls-in", ProcessMode::Shared).unwrap();
    assert!(data.contains_key("tls-in.yaml"));
    assert_eq!(data.len(), 3);
}

#[test]
fn client_tls_with_a_ca_verifies_the_server() {
    let g = mk_gsvc(
        "metadata: {name: g}\nspec: {selector: {}, chain: c, services: [{name: s, addr: ':1'}]}",
    );
    let c = mk_chain(
        r#"
metadata: {name: c}
spec:
  hops:
  - name: h
    nodes:
    - name: n
      addr: proxy.corp.example:443
      connector: {type: http}
      dialer: {type: tls, tls: {serverName: proxy.corp.example, secretRef: {name: corp-ca}}}
"#,
    );
    let r = render(
        &g,
        &[c],
        &[mk_secret("corp-ca", &[("ca.crt", "PEM")])],
        &RenderSettings::default(),
    );
    assert!(r.errors.is_empty(), "{:?}", r.errors);
    let node = &r.config.chains[0].hops[0].nodes.as_ref().unwrap()[0];
    let tls = node.dialer.as_ref().unwrap().tls.as_ref().unwrap();
    assert!(tls.secure);
    assert_eq!(tls.server_name, "proxy.corp.example");
    assert_eq!(tls.ca_file, "/etc/kubegost/config/g.corp-ca.ca.crt");
    assert_eq!(r.files["g.corp-ca.ca.crt"], "PEM");
}

#[test]
fn config_hash_is_stable_and_follows_content() {
    let a = render_ok(&web_egress(), &[corp_chain()], &[corp_creds()]);
    let data = a.secret_data("web-egress", ProcessMode::Shared).unwrap();
    let h = config_hash(&data);
    assert_eq!(h.len(), 32);
    assert_eq!(h, config_hash(&data.clone()));
    // metadata key order does not matter
    let mut g1 = web_egress();
    let mut g2 = web_egress();
    let (x, y) = (serde_json::json!(1), serde_json::json!("5s"));
    g1.spec.services[0].metadata.insert("a".into(), x.clone());
    g1.spec.services[0]
        .metadata
        .insert("dialTimeout".into(), y.clone());
    g2.spec.services[0].metadata.insert("dialTimeout".into(), y);
    g2.spec.services[0].metadata.insert("a".into(), x);
    let d1 = render(
        &g1,
        &[corp_chain()],
        &[corp_creds()],
        &RenderSettings::default(),
    )
    .secret_data("web-egress", ProcessMode::Shared)
    .unwrap();
    let d2 = render(
        &g2,
        &[corp_chain()],
        &[corp_creds()],
        &RenderSettings::default(),
    )
    .secret_data("web-egress", ProcessMode::Shared)
    .unwrap();
    assert_eq!(config_hash(&d1), config_hash(&d2));
    assert_ne!(config_hash(&d1), h);
    // a rotated password changes the hash
    let b = render_ok(
        &web_egress(),
        &[corp_chain()],
        &[mk_secret(
            "corp-proxy-creds",
            &[("username", "alice"), ("password", "new")],
        )],
    );
    assert_ne!(
        config_hash(&b.secret_data("web-egress", ProcessMode::Shared).unwrap()),
        h
    );
}

#[test]
fn strict_engine_rejects_unknown_metadata_keys() {
    let mut g = web_egress();
    g.spec.services[0]
        .metadata
        .insert("noSuchKey".into(), serde_json::json!(1));
    let r = render(
        &g,
        &[corp_chain()],
        &[corp_creds()],
        &RenderSettings::default(),
    );
    let err = validate(&r, &RenderSettings::default())
        .unwrap_err()
        .to_string();
    assert!(err.to_lowercase().contains("nosuchkey"), "{err}");
    // render_checked turns it into an error naming the CRD field and fails the service closed
    let r = render_checked(
        &g,
        &[corp_chain()],
        &[corp_creds()],
        &RenderSettings::default(),
    );
    assert_eq!(r.errors.len(), 1, "{:?}", r.errors);
    assert!(
        r.errors[0]
            .field()
            .eq_ignore_ascii_case("spec.services[http-proxy].metadata.noSuchKey"),
        "{}",
        r.errors[0].field()
    );
    assert_eq!(r.errors[0].reason(), "Invalid");
    assert_eq!(r.failed_services, ["http-proxy"]);
    assert!(svc(&r, "http-proxy")
        .unwrap()
        .metadata
        .contains_key("failClosed"));
    assert!(
        r.config.chains.is_empty(),
        "the chain only the failed service used is gone"
    );
    validate(&r, &RenderSettings::default()).unwrap();
}

#[test]
fn config_keys_separate_shared_and_dedicated() {
    assert_eq!(config_key("web", ProcessMode::Shared), "web.yaml");
    assert_eq!(config_key("web", ProcessMode::Dedicated), "web.dedicated");
    assert_eq!(config_secret_name("web"), "kubegost-web");
}

// === conflicts ===

fn two(a: &str, b: &str) -> (GostService, GostService) {
    (mk_gsvc(a), mk_gsvc(b))
}

#[test]
fn same_address_in_two_gostservices_is_a_conflict_naming_the_other() {
    let (a, b) = two(
        "metadata: {name: a}\nspec: {selector: {}, services: [{name: x, addr: ':8080'}]}",
        "metadata: {name: b}\nspec: {selector: {}, services: [{name: y, addr: '127.0.0.1:8080'}]}",
    );
    let c = detect_conflicts(&[&a, &b]);
    assert_eq!(c.len(), 1);
    assert!(c[0].involves("a") && c[0].involves("b"));
    assert_eq!(
        c[0].message_for("a"),
        "spec.services[x].addr: \":8080\" clashes with \"127.0.0.1:8080\" of service \"y\" in GostService \"b\""
    );
    assert_eq!(
        c[0].message_for("b"),
        "spec.services[y].addr: \"127.0.0.1:8080\" clashes with \":8080\" of service \"x\" in GostService \"a\""
    );
}

#[test]
fn same_service_name_in_two_gostservices_is_a_conflict() {
    let (a, b) = two(
        "metadata: {name: a}\nspec: {selector: {}, services: [{name: web, addr: ':1'}]}",
        "metadata: {name: b}\nspec: {selector: {}, services: [{name: web, addr: ':2'}]}",
    );
    let c = detect_conflicts(&[&a, &b]);
    assert_eq!(c.len(), 1);
    assert_eq!(c[0].kind, ConflictKind::ServiceName);
    assert!(c[0].message_for("b").contains("GostService \"a\""));
}

#[test]
fn different_hosts_ports_or_networks_do_not_conflict() {
    let (a, b) = two(
        "metadata: {name: a}\nspec: {selector: {}, services: [{name: x, addr: '127.0.0.1:53'}, {name: p, addr: ':9000'}]}",
        r#"
metadata: {name: b}
spec:
  selector: {}
  services:
  - {name: y, addr: '127.0.0.2:53'}
  - {name: u, addr: ':9000', listener: {type: udp}, handler: {type: udp}}
"#,
    );
    assert_eq!(detect_conflicts(&[&a, &b]), []);
}

#[test]
fn address_clash_inside_one_gostservice_is_reported() {
    let a = mk_gsvc(
        "metadata: {name: a}\nspec: {selector: {}, services: [{name: x, addr: ':1'}, {name: y, addr: '[::]:1'}]}",
    );
    let c = detect_conflicts(&[&a]);
    assert_eq!(c.len(), 1);
    assert_eq!(
        (c[0].service.as_str(), c[0].other_service.as_str()),
        ("x", "y")
    );
}

#[test]
fn the_spec_example_parses_with_defaults() {
    let g = web_egress();
    assert_eq!(g.spec.process, ProcessMode::Shared);
    assert_eq!(g.spec.rollout, crate::crd::RolloutPolicy::Manual);
    let _: BTreeMap<String, String> = BTreeMap::new();
}

#[test]
fn engine_errors_name_the_crd_field_of_the_service_or_the_chain() {
    // a handler type the engine does not know
    let mut g = web_egress();
    g.spec.services[1].handler.as_mut().unwrap().kind = "htp".into();
    let r = render_checked(
        &g,
        &[corp_chain()],
        &[corp_creds()],
        &RenderSettings::default(),
    );
    assert_eq!(r.errors.len(), 1, "{:?}", r.errors);
    assert_eq!(
        r.errors[0].field(),
        "spec.services[metrics-forward].handler.type"
    );
    assert!(
        r.errors[0].to_string().contains("\"htp\""),
        "{}",
        r.errors[0]
    );
    assert_eq!(r.failed_services, ["metrics-forward"]);
    // the other service is rendered in full
    assert!(!svc(&r, "http-proxy")
        .unwrap()
        .metadata
        .contains_key("failClosed"));
    validate(&r, &RenderSettings::default()).unwrap();

    // a connector type the engine does not know, in the chain: every service using it fails
    let mut c = corp_chain();
    c.spec.hops[0].nodes[0].connector.as_mut().unwrap().kind = "sock5".into();
    let r = render_checked(
        &web_egress(),
        &[c],
        &[corp_creds()],
        &RenderSettings::default(),
    );
    assert_eq!(r.errors.len(), 1, "{:?}", r.errors);
    assert!(
        r.errors[0]
            .field()
            .starts_with("GostChain corp-egress: spec.hops[hop-0].nodes[corp-proxy].connector"),
        "{}",
        r.errors[0].field()
    );
    assert_eq!(r.failed_services, ["http-proxy"]);
    assert!(r.config.chains.is_empty());
    validate(&r, &RenderSettings::default()).unwrap();
}

#[test]
fn crd_fields_from_engine_paths() {
    assert_eq!(
        crd_field("web", "services[a].listener.metadata.x"),
        "spec.services[a].listener.metadata.x"
    );
    assert_eq!(
        crd_field("web", "chains[web_corp].hops[h].nodes[n].addr"),
        "GostChain corp: spec.hops[h].nodes[n].addr"
    );
    assert_eq!(crd_field("web", "tls"), "tls");
}

fn limited() -> GostService {
    mk_gsvc(
        r#"
apiVersion: kubegost.io/v1alpha1
kind: GostService
metadata: {name: shaped}
spec:
  selector: {matchLabels: {app: web}}
  services:
  - name: web
    addr: ":8080"
    handler: {type: http}
    limits:
      traffic: ["$ 100MB 100MB", "$$ 10MB"]
      connections: ["$ 1000", "$$ 100"]
      rate: ["$$ 10"]
  - name: plain
    addr: ":8081"
    handler: {type: socks5}
"#,
    )
}

#[test]
fn limits_become_the_services_own_limiters() {
    let r = render_ok(&limited(), &[], &[]);
    let web = svc(&r, "web").unwrap();
    assert_eq!(web.limiter.as_deref(), Some("web-traffic"));
    assert_eq!(web.climiter.as_deref(), Some("web-connections"));
    assert_eq!(web.rlimiter.as_deref(), Some("web-rate"));
    assert_eq!(r.config.limiters[0].limits, ["$ 100MB 100MB", "$$ 10MB"]);
    assert_eq!(r.config.climiters[0].limits, ["$ 1000", "$$ 100"]);
    assert_eq!(r.config.rlimiters[0].limits, ["$$ 10"]);
    let plain = svc(&r, "plain").unwrap();
    assert!(plain.limiter.is_none() && plain.climiter.is_none() && plain.rlimiter.is_none());
}

#[test]
fn a_bad_limit_line_fails_only_its_service_and_names_the_crd_field() {
    let mut g = limited();
    g.spec.services[0].limits.as_mut().unwrap().connections[1] = "$$ lots".into();
    let r = render_checked(&g, &[], &[], &RenderSettings::default());
    assert_eq!(r.failed_services, ["web"]);
    let e = r.errors.iter().map(ToString::to_string).collect::<Vec<_>>();
    assert!(
        e.iter()
            .any(|e| e.contains("spec.services[web].limits.connections[1]")
                && e.contains("\"lots\"")),
        "{e:?}"
    );
    assert!(svc(&r, "web").unwrap().metadata.contains_key("failClosed"));
    assert!(!svc(&r, "plain")
        .unwrap()
        .metadata
        .contains_key("failClosed"));
    assert!(
        r.config.limiters.is_empty()
            && r.config.climiters.is_empty()
            && r.config.rlimiters.is_empty(),
        "a failed service's limiters are not rendered"
    );
    validate(&r, &RenderSettings::default()).unwrap();
}
