#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Pod, Secret};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta, Time};
use k8s_openapi::ByteString;

use super::*;
use crate::inject::{plan_injection, InjectSettings};

const NS: &str = "shop";

fn gsvc(yaml: &str) -> GostService {
    let mut g: GostService = serde_saphyr::from_str(yaml).unwrap();
    g.metadata.namespace.get_or_insert_with(|| NS.to_string());
    let uid = format!("uid-{}", g.name_any());
    g.metadata.uid.get_or_insert(uid);
    g.metadata.generation.get_or_insert(1);
    g
}

fn chain(yaml: &str) -> GostChain {
    let mut c: GostChain = serde_saphyr::from_str(yaml).unwrap();
    c.metadata.namespace.get_or_insert_with(|| NS.to_string());
    c.metadata.generation.get_or_insert(1);
    c
}

fn secret(name: &str, data: &[(&str, &str)]) -> Secret {
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

fn web() -> GostService {
    gsvc(
        r#"
metadata: {name: web}
spec:
  selector: {matchLabels: {app: web}}
  chain: corp
  services:
  - {name: http-proxy, addr: "127.0.0.1:8080", handler: {type: http}}
  - {name: direct, addr: ":9100", ignoreChain: true, handler: {type: tcp}, forwarder: {nodes: [{name: m, addr: "127.0.0.1:9090"}]}}
"#,
    )
}

fn corp(addr: &str) -> GostChain {
    chain(&format!(
        r#"
metadata: {{name: corp}}
spec:
  hops:
  - name: hop-0
    nodes: [{{name: p, addr: "{addr}", connector: {{type: http, auth: {{secretRef: {{name: creds}}}}}}}}]
"#
    ))
}

fn creds() -> Secret {
    secret("creds", &[("username", "u"), ("password", "p")])
}

fn now() -> Time {
    Time("2026-12-02T10:00:00Z".parse().unwrap())
}

struct World {
    gsvcs: Vec<GostService>,
    chains: Vec<GostChain>,
    secrets: Vec<Secret>,
    pods: Vec<ObjectMeta>,
    current: Option<Secret>,
    render: RenderSettings,
    inject: InjectSettings,
}

impl World {
    fn new(gsvcs: Vec<GostService>, chains: Vec<GostChain>, secrets: Vec<Secret>) -> World {
        World {
            gsvcs,
            chains,
            secrets,
            pods: Vec::new(),
            current: None,
            render: RenderSettings::default(),
            inject: InjectSettings::default(),
        }
    }

    fn plan(&self, name: &str) -> GostServicePlan {
        let g = self.gsvcs.iter().find(|g| g.name_any() == name).unwrap();
        plan_gostservice(&GostServiceInputs {
            gsvc: g,
            chains: &self.chains,
            secrets: &self.secrets,
            namespace_gostservices: &self.gsvcs,
            pods: &self.pods,
            current_secret: self.current.as_ref(),
            render: &self.render,
            inject: &self.inject,
            now: now(),
        })
    }

    /// Carries a plan out the way the controller does (apply Secret, store status).
    fn apply(&mut self, name: &str, plan: &GostServicePlan) {
        if let Some(s) = &plan.secret {
            self.current = Some(s.clone());
        }
        let g = self
            .gsvcs
            .iter_mut()
            .find(|g| g.name_any() == name)
            .unwrap();
        g.status = Some(plan.status.clone());
    }
}

fn cond<'a>(st: &'a GostServiceStatus, t: &str) -> &'a Condition {
    st.conditions.iter().find(|c| c.type_ == t).unwrap()
}

fn config_text(s: &Secret, key: &str) -> String {
    String::from_utf8(s.data.as_ref().unwrap()[key].0.clone()).unwrap()
}

#[test]
fn a_clean_gostservice_writes_its_secret_and_reports_ready() {
    let w = World::new(vec![web()], vec![corp("proxy.corp:3128")], vec![creds()]);
    let p = w.plan("web");
    let s = p.secret.as_ref().expect("a Secret to write");
    assert_eq!(s.metadata.name.as_deref(), Some("kubegost-web"));
    assert_eq!(
        s.metadata.owner_references.as_ref().unwrap()[0].uid,
        "uid-web"
    );
    assert_eq!(
        s.metadata.labels.as_ref().unwrap()[GOSTSERVICE_LABEL],
        "web"
    );
    let text = config_text(s, "web.yaml");
    assert!(text.contains("web_corp"), "{text}");
    assert!(text.contains("password: p"), "{text}");
    for t in [
        types::ACCEPTED,
        types::RESOLVED_REFS,
        types::READY,
        types::PODS_UP_TO_DATE,
    ] {
        assert_eq!(cond(&p.status, t).status, "True", "{t}: {:?}", p.status);
    }
    assert_eq!(p.status.observed_generation, Some(1));
    assert_eq!(
        p.status.config_hash.as_deref(),
        s.metadata
            .annotations
            .as_ref()
            .unwrap()
            .get(CONFIG_HASH_ANNOTATION)
            .map(String::as_str)
    );
    assert!(p.status_changed);
    assert!(p
        .events
        .iter()
        .any(|e| e.reason == "ConfigWritten" && !e.warning));
}

#[test]
fn a_reconcile_that_changes_nothing_writes_nothing() {
    let mut w = World::new(vec![web()], vec![corp("proxy.corp:3128")], vec![creds()]);
    let p = w.plan("web");
    w.apply("web", &p);
    let again = w.plan("web");
    assert_eq!(again.secret, None);
    assert!(!again.status_changed, "{:?}", again.status);
    assert!(again.events.is_empty(), "{:?}", again.events);
    assert!(again.nudges.is_empty());
}

#[test]
fn a_chain_change_re_renders_and_changes_the_hash() {
    let mut w = World::new(vec![web()], vec![corp("proxy.corp:3128")], vec![creds()]);
    let p = w.plan("web");
    w.apply("web", &p);
    let before = p.status.config_hash.clone().unwrap();
    w.chains = vec![corp("proxy2.corp:3128")];
    let p2 = w.plan("web");
    let s = p2.secret.as_ref().expect("new content");
    assert!(config_text(s, "web.yaml").contains("proxy2.corp:3128"));
    assert_ne!(p2.status.config_hash.as_deref(), Some(before.as_str()));
    assert!(p2.status_changed);
}

#[test]
fn a_missing_chain_keeps_the_previous_secret_and_names_the_field() {
    let mut w = World::new(vec![web()], vec![corp("proxy.corp:3128")], vec![creds()]);
    let p = w.plan("web");
    w.apply("web", &p);
    let good_hash = p.status.config_hash.clone().unwrap();
    w.chains.clear();
    let p2 = w.plan("web");
    assert_eq!(p2.secret, None, "the previous content stays");
    let rr = cond(&p2.status, types::RESOLVED_REFS);
    assert_eq!(
        (rr.status.as_str(), rr.reason.as_str()),
        ("False", "ChainNotFound")
    );
    assert!(
        rr.message.contains("spec.chain") && rr.message.contains("\"corp\""),
        "{}",
        rr.message
    );
    let ready = cond(&p2.status, types::READY);
    assert_eq!(ready.reason, reasons::PREVIOUS_CONFIG_KEPT);
    assert!(ready.message.contains(&good_hash), "{}", ready.message);
    assert_eq!(p2.status.config_hash.as_deref(), Some(good_hash.as_str()));
    assert!(p2
        .events
        .iter()
        .any(|e| e.warning && e.reason == "ChainNotFound" && e.note.contains("spec.chain")));
}

#[test]
fn a_missing_chain_without_a_secret_yet_writes_fail_closed_services() {
    let w = World::new(vec![web()], vec![], vec![]);
    let p = w.plan("web");
    let text = config_text(p.secret.as_ref().unwrap(), "web.yaml");
    assert!(text.contains("failClosed"), "{text}");
    assert!(!text.contains("chains"), "{text}");
    let ready = cond(&p.status, types::READY);
    assert_eq!(ready.reason, reasons::SERVICES_FAIL_CLOSED);
    assert!(ready.message.contains("http-proxy"), "{}", ready.message);
    // the chained service fails closed; the one ignoring chains is rendered normally
    let cfg = gost_config::Config::from_yaml(&text).unwrap();
    let direct = cfg.services.iter().find(|s| s.name == "direct").unwrap();
    assert!(!direct.metadata.contains_key("failClosed"));
}

#[test]
fn a_bad_handler_type_is_not_accepted_and_never_reaches_the_secret() {
    let mut w = World::new(vec![web()], vec![corp("proxy.corp:3128")], vec![creds()]);
    let p = w.plan("web");
    w.apply("web", &p);
    let mut bad = web();
    bad.metadata.generation = Some(2);
    bad.spec.services[0].handler.as_mut().unwrap().kind = "htp".into();
    bad.status = w.gsvcs[0].status.clone();
    w.gsvcs = vec![bad];
    let p2 = w.plan("web");
    assert_eq!(p2.secret, None);
    let acc = cond(&p2.status, types::ACCEPTED);
    assert_eq!(
        (acc.status.as_str(), acc.reason.as_str()),
        ("False", "Invalid")
    );
    assert!(
        acc.message
            .contains("spec.services[http-proxy].handler.type")
            && acc.message.contains("htp"),
        "{}",
        acc.message
    );
    assert_eq!(acc.observed_generation, Some(2));
    assert_eq!(p2.status.observed_generation, Some(2));

    // with no Secret yet, the bad service is a placeholder: its bad settings are not written
    w.current = None;
    let p3 = w.plan("web");
    let text = config_text(p3.secret.as_ref().unwrap(), "web.yaml");
    assert!(
        !text.contains("htp\n") && !text.contains("type: htp"),
        "{text}"
    );
    assert!(text.contains("failClosed"), "{text}");
}

fn pod(name: &str, labels: &[(&str, &str)]) -> Pod {
    serde_json::from_value(serde_json::json!({
        "metadata": {
            "name": name, "namespace": NS,
            "labels": labels.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect::<BTreeMap<_, _>>(),
        },
        "spec": {"containers": [{"name": "app", "image": "app"}]},
    }))
    .unwrap()
}

#[test]
fn an_address_clash_with_another_gostservice_on_a_shared_pod_is_a_conflict() {
    let other = gsvc(
        r#"
metadata: {name: other}
spec:
  selector: {matchLabels: {tier: front}}
  services: [{name: other-proxy, addr: ":8080", handler: {type: socks5}}]
"#,
    );
    let mut w = World::new(
        vec![web(), other],
        vec![corp("proxy.corp:3128")],
        vec![creds()],
    );
    // no pod both select: no conflict
    let p = w.plan("web");
    assert_eq!(cond(&p.status, types::ACCEPTED).status, "True");
    w.apply("web", &p);
    // a pod with both labels
    w.pods = vec![pod("web-1", &[("app", "web"), ("tier", "front")]).metadata];
    let p = w.plan("web");
    let acc = cond(&p.status, types::ACCEPTED);
    assert_eq!(acc.reason, reasons::CONFLICT);
    assert!(
        acc.message.contains("spec.services[http-proxy].addr") && acc.message.contains("\"other\""),
        "{}",
        acc.message
    );
    assert_eq!(p.secret, None, "the previous content stays");
    let o = w.plan("other");
    let oc = cond(&o.status, types::ACCEPTED);
    assert_eq!(oc.reason, reasons::CONFLICT);
    assert!(oc.message.contains("\"web\""), "{}", oc.message);
}

#[test]
fn a_selector_implied_by_another_shares_pods_without_any_pod_existing() {
    let all = gsvc(
        r#"
metadata: {name: all}
spec:
  selector: {}
  services: [{name: http-proxy, addr: ":1080"}]
"#,
    );
    let w = World::new(
        vec![web(), all],
        vec![corp("proxy.corp:3128")],
        vec![creds()],
    );
    let acc = cond(&w.plan("web").status, types::ACCEPTED).clone();
    assert_eq!(acc.reason, reasons::CONFLICT);
    assert!(
        acc.message.contains("service name \"http-proxy\""),
        "{}",
        acc.message
    );
}

#[test]
fn pods_are_counted_nudged_and_marked_outdated() {
    let mut w = World::new(vec![web()], vec![corp("proxy.corp:3128")], vec![creds()]);
    let p = w.plan("web");
    w.apply("web", &p);
    let settings = InjectSettings::default();
    let injected = |name: &str, gs: &[GostService]| {
        let refs: Vec<&GostService> = gs.iter().collect();
        plan_injection(&pod(name, &[("app", "web")]), &refs, &settings)
            .unwrap()
            .metadata
    };
    let gs = w.gsvcs.clone();
    w.pods = vec![
        injected("web-1", &gs),
        injected("web-2", &gs),
        pod("web-3", &[("app", "web")]).metadata, // selected, not injected (created before)
        pod("db-1", &[("app", "db")]).metadata,
    ];
    let p = w.plan("web");
    assert_eq!(
        (
            p.status.selected_pods,
            p.status.injected_pods,
            p.status.outdated_pods
        ),
        (3, 2, 0)
    );
    // the pod without the sidecar is reported, not restarted for; an opted-out one is not
    let c = cond(&p.status, types::PODS_UP_TO_DATE);
    assert_eq!(
        (c.status.as_str(), c.reason.as_str()),
        ("False", "SidecarMissing")
    );
    assert!(
        c.message
            .contains("1 selected pods run without the sidecar")
            && c.message.ends_with(": web-3"),
        "{}",
        c.message
    );
    assert!(p.restart.is_empty());
    w.pods[2] = pod("web-3", &[("app", "web"), ("kubegost.io/inject", "false")]).metadata;
    let p = w.plan("web");
    assert_eq!(cond(&p.status, types::PODS_UP_TO_DATE).status, "True");
    // both injected pods get the config hash annotation, once
    let nudged: Vec<&str> = p.nudges.iter().map(|n| n.pod.as_str()).collect();
    assert_eq!(nudged, ["web-1", "web-2"]);
    for m in &mut w.pods {
        if let Some(n) = p.nudges.iter().find(|n| Some(&n.pod) == m.name.as_ref()) {
            m.annotations
                .get_or_insert_with(Default::default)
                .insert(CONFIG_HASH_ANNOTATION.into(), n.hash.clone());
        }
    }
    w.apply("web", &p);
    assert!(w.plan("web").nudges.is_empty());

    // a hook change cannot reach running pods: both are outdated
    let mut changed = w.gsvcs[0].clone();
    changed.spec.services[0].hooks = Some(crate::crd::HooksSpec {
        post_up: vec!["true".into()],
        ..Default::default()
    });
    w.gsvcs = vec![changed];
    let p = w.plan("web");
    assert_eq!(p.status.outdated_pods, 2);
    let c = cond(&p.status, types::PODS_UP_TO_DATE);
    assert_eq!(
        (c.status.as_str(), c.reason.as_str()),
        ("False", "RestartNeeded")
    );
    assert!(c.message.contains("web-1, web-2"), "{}", c.message);
}

#[test]
fn the_cleanup_secret_empties_the_config() {
    let s = cleanup_secret(&web());
    assert_eq!(config_text(&s, "web.yaml"), "services: []\n");
    assert_eq!(s.data.as_ref().unwrap().len(), 1);
    let cfg = gost_config::Config::from_yaml(&config_text(&s, "web.yaml")).unwrap();
    assert!(cfg.services.is_empty());
}

#[test]
fn selectors_match_labels_and_expressions() {
    let sel: LabelSelector = serde_json::from_value(serde_json::json!({
        "matchLabels": {"app": "web"},
        "matchExpressions": [
            {"key": "tier", "operator": "In", "values": ["a", "b"]},
            {"key": "canary", "operator": "DoesNotExist"},
        ],
    }))
    .unwrap();
    let l = |kv: &[(&str, &str)]| {
        kv.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect::<BTreeMap<_, _>>()
    };
    assert!(selects(&sel, &l(&[("app", "web"), ("tier", "a")])));
    assert!(!selects(&sel, &l(&[("app", "web"), ("tier", "c")])));
    assert!(!selects(
        &sel,
        &l(&[("app", "web"), ("tier", "a"), ("canary", "1")])
    ));
    assert!(!selects(&sel, &l(&[("tier", "a")])));
    assert!(selects(&LabelSelector::default(), &l(&[])));
    assert_eq!(selector_error(&sel), None);
    let bad: LabelSelector = serde_json::from_value(serde_json::json!({
        "matchExpressions": [{"key": "tier", "operator": "Equals", "values": ["a"]}],
    }))
    .unwrap();
    let e = selector_error(&bad).unwrap();
    assert!(
        e.contains("spec.selector.matchExpressions[0].operator") && e.contains("Equals"),
        "{e}"
    );
}

#[test]
fn an_invalid_selector_is_not_accepted() {
    let mut g = web();
    g.spec.selector = serde_json::from_value(serde_json::json!({
        "matchExpressions": [{"key": "app", "operator": "In"}],
    }))
    .unwrap();
    let w = World::new(vec![g], vec![corp("proxy.corp:3128")], vec![creds()]);
    let acc = cond(&w.plan("web").status, types::ACCEPTED).clone();
    assert_eq!(acc.reason, reasons::INVALID);
    assert!(
        acc.message.contains("matchExpressions[0].values"),
        "{}",
        acc.message
    );
}

fn plan_chain(c: &GostChain, secrets: &[Secret], gsvcs: &[GostService]) -> GostChainPlan {
    plan_gostchain(&GostChainInputs {
        chain: c,
        secrets,
        namespace_gostservices: gsvcs,
        render: &RenderSettings::default(),
        now: now(),
    })
}

#[test]
fn gostchain_status_reports_acceptance_readiness_and_users() {
    let c = corp("proxy.corp:3128");
    let p = plan_chain(&c, &[creds()], &[web()]);
    let st = &p.status;
    assert_eq!(st.referenced_by, ["web"]);
    assert!(st.conditions.iter().all(|c| c.status == "True"), "{st:?}");
    assert!(p.status_changed);

    // missing Secret: accepted, not ready, names the field
    let p = plan_chain(&c, &[], &[web()]);
    let ready = p
        .status
        .conditions
        .iter()
        .find(|c| c.type_ == "Ready")
        .unwrap();
    assert_eq!(
        (ready.status.as_str(), ready.reason.as_str()),
        ("False", "SecretNotFound")
    );
    assert!(
        ready
            .message
            .contains("nodes[p].connector.auth.secretRef.name"),
        "{}",
        ready.message
    );
    assert_eq!(p.status.conditions[0].status, "True");

    // a connector the engine does not know: not accepted
    let mut bad = c.clone();
    bad.spec.hops[0].nodes[0].connector.as_mut().unwrap().kind = "sock5".into();
    let p = plan_chain(&bad, &[creds()], &[]);
    let acc = &p.status.conditions[0];
    assert_eq!(
        (acc.status.as_str(), acc.reason.as_str()),
        ("False", "Invalid")
    );
    assert!(acc.message.contains("sock5"), "{}", acc.message);
    assert!(p.status.referenced_by.is_empty());

    // stored equal: nothing to write
    let mut stored = c.clone();
    stored.status = Some(plan_chain(&c, &[creds()], &[web()]).status);
    let again = plan_chain(&stored, &[creds()], &[web()]);
    assert!(!again.status_changed && again.events.is_empty());
}

#[test]
fn referenced_secrets_follow_the_chains_in_use() {
    let r = referenced_secrets(&web(), &[corp("x:1")]);
    assert_eq!(r, BTreeSet::from(["creds".to_string()]));
    let mut g = web();
    g.spec.chain = None;
    assert!(referenced_secrets(&g, &[corp("x:1")]).is_empty());
}

#[test]
fn the_sidecar_health_port_is_reserved() {
    let g = gsvc(
        r#"
metadata: {name: squat}
spec:
  selector: {}
  services: [{name: s, addr: ":15300", handler: {type: http}}]
"#,
    );
    let w = World::new(vec![g.clone()], vec![], vec![]);
    let acc = cond(&w.plan("squat").status, types::ACCEPTED).clone();
    assert_eq!(acc.reason, reasons::CONFLICT);
    assert!(
        acc.message
            .contains("spec.services[s].addr: port 15300 is reserved"),
        "{}",
        acc.message
    );
    let pod = pod("p", &[]);
    let err = plan_injection(&pod, &[&g], &InjectSettings::default()).unwrap_err();
    assert!(err.to_string().contains("port 15300 is reserved"), "{err}");
}

#[test]
fn terminating_pods_are_not_counted_nor_restarted_for() {
    let mut g = web();
    g.spec.rollout = crate::crd::RolloutPolicy::Automatic;
    let mut w = World::new(
        vec![g.clone()],
        vec![corp("proxy.corp:3128")],
        vec![creds()],
    );
    let settings = InjectSettings::default();
    let mut old = plan_injection(&pod("web-old", &[("app", "web")]), &[&g], &settings)
        .unwrap()
        .metadata;
    old.owner_references = Some(vec![
        k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference {
            kind: "ReplicaSet".into(),
            name: "web-1".into(),
            controller: Some(true),
            ..Default::default()
        },
    ]);
    // a hook change makes it outdated, and rollout wants its ReplicaSet restarted
    let mut changed = g.clone();
    changed.spec.services[0].hooks = Some(crate::crd::HooksSpec {
        post_up: vec!["true".into()],
        ..Default::default()
    });
    w.gsvcs = vec![changed];
    w.pods = vec![old.clone()];
    let p = w.plan("web");
    assert_eq!(p.status.outdated_pods, 1);
    assert_eq!(p.restart, [("ReplicaSet".to_string(), "web-1".to_string())]);
    // once it is terminating it counts no more
    old.deletion_timestamp = Some(now());
    w.pods = vec![old];
    let p = w.plan("web");
    assert_eq!((p.status.injected_pods, p.status.outdated_pods), (0, 0));
    assert!(p.restart.is_empty());
}

/// Credentials live only in Secrets: whatever goes wrong, no status message and no Event
/// carries a user name or password taken from one (the rendered config Secret is the only
/// place they are copied to, and there they round-trip exactly, quotes and newlines included).
#[test]
fn credentials_never_reach_status_or_events() {
    const USER: &str = "user-SEKRIT-1";
    const PASS: &str = "pa\"ss: SEKRIT-2\n- x";
    let creds = secret("creds", &[("username", USER), ("password", PASS)]);
    let leaks = |what: &str, text: String| {
        for s in [USER, PASS, "SEKRIT"] {
            assert!(!text.contains(s), "{what} carries a credential:\n{text}");
        }
    };
    let check = |what: &str, p: &GostServicePlan| {
        leaks(what, format!("{:?}", p.status));
        leaks(what, format!("{:?}", p.events));
    };
    let authed = |name: &str, addr: &str, htype: &str| {
        gsvc(&format!(
            r#"
metadata: {{name: {name}}}
spec:
  selector: {{matchLabels: {{app: web}}}}
  chain: corp
  services:
  - {{name: {name}-p, addr: "{addr}", handler: {{type: {htype}, auth: {{secretRef: {{name: creds}}}}}}}}
"#
        ))
    };
    // valid: the password reaches the rendered config, exactly, and nothing else
    let w = World::new(
        vec![authed("a", "127.0.0.1:8080", "http")],
        vec![corp("proxy.corp:3128")],
        vec![creds.clone()],
    );
    let p = w.plan("a");
    check("a valid plan", &p);
    let cfg =
        gost_config::Config::from_yaml(&config_text(p.secret.as_ref().unwrap(), "a.yaml")).unwrap();
    let auth = cfg.services[0]
        .handler
        .as_ref()
        .unwrap()
        .auth
        .clone()
        .unwrap();
    assert_eq!(
        (auth.username.as_str(), auth.password.as_str()),
        (USER, PASS)
    );
    assert_eq!(
        cfg.chains[0].hops[0].nodes.as_ref().unwrap()[0]
            .connector
            .as_ref()
            .unwrap()
            .auth
            .as_ref()
            .unwrap()
            .password,
        PASS
    );
    // an unknown handler type, a missing chain, a bad node address, an address conflict
    let mut w = World::new(
        vec![authed("a", "127.0.0.1:8080", "htp")],
        vec![corp("proxy.corp:3128")],
        vec![creds.clone()],
    );
    check("an invalid handler", &w.plan("a"));
    w.chains.clear();
    check("a missing chain", &w.plan("a"));
    w.chains = vec![corp("not an address")];
    w.gsvcs = vec![authed("a", "127.0.0.1:8080", "http")];
    check("a bad node address", &w.plan("a"));
    w.chains = vec![corp("proxy.corp:3128")];
    w.gsvcs = vec![
        authed("a", "127.0.0.1:8080", "http"),
        authed("b", "127.0.0.1:8080", "socks5"),
    ];
    let p = w.plan("b");
    assert_eq!(cond(&p.status, types::ACCEPTED).reason, reasons::CONFLICT);
    check("a conflict", &p);
    // the GostChain's own status and Events
    let mut bad = corp("proxy.corp:3128");
    bad.spec.hops[0].nodes[0].connector.as_mut().unwrap().kind = "sock5".into();
    for c in [corp("proxy.corp:3128"), bad, corp("bad addr")] {
        let p = plan_chain(&c, std::slice::from_ref(&creds), &w.gsvcs);
        leaks("a GostChain plan", format!("{:?} {:?}", p.status, p.events));
    }
}
