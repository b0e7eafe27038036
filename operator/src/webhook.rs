//! The mutating admission webhook (operator.md §2): `POST /mutate` with an `AdmissionReview` of
//! a Pod CREATE → the JSON patch of [`crate::inject::plan_injection`], a denial naming the clash
//! when the GostServices selecting the pod conflict, or the pod unchanged.
//!
//! Every replica serves it from its own reflector store of GostServices (never a request to the
//! API server per admission). [`admit`] is the pure decision; [`serve`] is the HTTPS server
//! (certificate from [`crate::certs`], reloaded without a restart).

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::State;
use axum::routing::post;
use axum::{Json, Router};
use k8s_openapi::api::core::v1::Pod;
use kube::core::admission::{AdmissionRequest, AdmissionResponse, AdmissionReview, Operation};
use kube::core::DynamicObject;
use kube::runtime::reflector::Store;
use kube::ResourceExt;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use tokio_util::sync::CancellationToken;

use crate::certs::CertResolver;
use crate::crd::GostService;
use crate::inject::{self, InjectError, InjectSettings};
use crate::reconcile;

/// Label a pod sets to `false` to opt out (the webhook's objectSelector filters it already).
pub use crate::inject::INJECT_LABEL;

/// What the webhook did with one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Patched with the sidecar.
    Injected {
        /// GostServices whose services the sidecar runs.
        gostservices: Vec<String>,
    },
    /// Admitted unchanged, and why.
    Skipped(&'static str),
    /// Denied (conflict, bad annotation) or not understood, and why.
    Failed(&'static str),
}

/// The pure decision for one admission request: the GostServices of the pod's namespace that
/// select it, the injection plan, the response.
pub fn admit(
    req: &AdmissionRequest<Pod>,
    gostservices: &[GostService],
    settings: &InjectSettings,
    operator_namespace: &str,
) -> (AdmissionResponse, Outcome) {
    let resp = AdmissionResponse::from(req);
    if req.operation != Operation::Create {
        return (resp, Outcome::Skipped("not_create"));
    }
    let Some(pod) = &req.object else {
        return (
            resp.deny("kubegost: the admission request carries no pod"),
            Outcome::Failed("no_object"),
        );
    };
    let ns = req
        .namespace
        .clone()
        .or_else(|| pod.namespace())
        .unwrap_or_default();
    if ns == operator_namespace {
        return (resp, Outcome::Skipped("operator_namespace"));
    }
    if pod.labels().get(INJECT_LABEL).map(String::as_str) == Some("false") {
        return (resp, Outcome::Skipped("opted_out"));
    }
    if inject::is_injected(pod) {
        return (resp, Outcome::Skipped("already_injected"));
    }
    let in_ns: Vec<GostService> = gostservices
        .iter()
        .filter(|g| g.namespace().as_deref() == Some(ns.as_str()))
        .cloned()
        .collect();
    let matched = reconcile::selecting(&in_ns, pod.labels());
    if matched.is_empty() {
        return (resp, Outcome::Skipped("no_gostservice"));
    }
    let names: Vec<String> = matched.iter().map(|g| g.name_any()).collect();
    let planned = match inject::plan_injection(pod, &matched, settings) {
        Ok(p) => p,
        Err(e) => {
            let reason = match e {
                InjectError::Conflict(_) => "conflict",
                InjectError::InvalidAnnotation { .. } => "invalid_annotation",
                InjectError::Json(_) => "json",
            };
            return (resp.deny(e.to_string()), Outcome::Failed(reason));
        }
    };
    match inject::injection_patch(pod, &planned).and_then(|p| {
        resp.clone()
            .with_patch(p)
            .map_err(|e| InjectError::Json(e.to_string()))
    }) {
        Ok(r) => (
            r,
            Outcome::Injected {
                gostservices: names,
            },
        ),
        Err(e) => (resp.deny(e.to_string()), Outcome::Failed("json")),
    }
}

/// `reason` label.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabels {
    /// Why a pod was skipped or failed.
    pub reason: String,
}

/// `kubegost_injection_*` metrics.
#[derive(Default, Clone)]
pub struct InjectionMetrics {
    /// Admission requests received.
    pub requests: Counter,
    /// Pods injected.
    pub injected: Counter,
    /// Pods admitted unchanged, by reason.
    pub skipped: Family<ReasonLabels, Counter>,
    /// Pods denied or requests not understood, by reason.
    pub failed: Family<ReasonLabels, Counter>,
}

impl InjectionMetrics {
    /// Registers them.
    pub fn register(&self, r: &mut prometheus_client::registry::Registry) {
        r.register(
            "kubegost_injection_requests",
            "Admission requests the webhook received",
            self.requests.clone(),
        );
        r.register(
            "kubegost_injection_injected",
            "Pods the webhook injected",
            self.injected.clone(),
        );
        r.register(
            "kubegost_injection_skipped",
            "Pods admitted unchanged, by reason",
            self.skipped.clone(),
        );
        r.register(
            "kubegost_injection_failed",
            "Pods denied or requests not understood, by reason",
            self.failed.clone(),
        );
    }
}

/// What the HTTPS handler shares.
pub struct WebhookState {
    /// GostServices (this replica's own reflector).
    pub gostservices: Store<GostService>,
    /// Injection settings.
    pub settings: InjectSettings,
    /// The operator's namespace (never injected).
    pub operator_namespace: String,
    /// Metrics.
    pub metrics: InjectionMetrics,
}

async fn mutate(
    State(st): State<Arc<WebhookState>>,
    Json(review): Json<AdmissionReview<Pod>>,
) -> Json<AdmissionReview<DynamicObject>> {
    st.metrics.requests.inc();
    let req: AdmissionRequest<Pod> = match review.try_into() {
        Ok(r) => r,
        Err(e) => {
            st.metrics
                .failed
                .get_or_create(&ReasonLabels {
                    reason: "bad_review".into(),
                })
                .inc();
            return Json(AdmissionResponse::invalid(format!("kubegost: {e}")).into_review());
        }
    };
    let all: Vec<GostService> = st
        .gostservices
        .state()
        .iter()
        .map(|g| (**g).clone())
        .collect();
    let (resp, outcome) = admit(&req, &all, &st.settings, &st.operator_namespace);
    let pod = req
        .object
        .as_ref()
        .map(|p| {
            p.metadata
                .name
                .clone()
                .or(p.metadata.generate_name.clone())
                .unwrap_or_default()
        })
        .unwrap_or_default();
    let ns = req.namespace.clone().unwrap_or_default();
    match &outcome {
        Outcome::Injected { gostservices } => {
            st.metrics.injected.inc();
            tracing::info!(namespace = %ns, pod = %pod, gostservices = ?gostservices, "injected");
        }
        Outcome::Skipped(r) => {
            st.metrics
                .skipped
                .get_or_create(&ReasonLabels {
                    reason: (*r).into(),
                })
                .inc();
            tracing::debug!(namespace = %ns, pod = %pod, reason = r, "not injected");
        }
        Outcome::Failed(r) => {
            st.metrics
                .failed
                .get_or_create(&ReasonLabels {
                    reason: (*r).into(),
                })
                .inc();
            tracing::warn!(namespace = %ns, pod = %pod, reason = r, message = %resp.result.message, "pod denied");
        }
    }
    Json(resp.into_review())
}

/// The webhook's routes.
pub fn router(st: Arc<WebhookState>) -> Router {
    Router::new().route("/mutate", post(mutate)).with_state(st)
}

/// Serves HTTPS on `addr` with the certificate `resolver` holds (swapped without a restart)
/// until `stop`; connections that arrive before a certificate is loaded fail their handshake.
pub async fn serve(
    addr: SocketAddr,
    st: Arc<WebhookState>,
    resolver: Arc<CertResolver>,
    stop: CancellationToken,
) -> std::io::Result<tokio::task::JoinHandle<()>> {
    let std_l = crate::net::bind_dual_stack(addr)?;
    let l = tokio::net::TcpListener::from_std(std_l)?;
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(std::io::Error::other)?
    .with_no_client_auth()
    .with_cert_resolver(resolver);
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let app = router(st);
    tracing::info!(addr = %addr, "webhook listening (HTTPS)");
    Ok(tokio::spawn(async move {
        loop {
            let (tcp, peer) = tokio::select! {
                _ = stop.cancelled() => break,
                r = l.accept() => match r {
                    Ok(x) => x,
                    Err(e) => {
                        tracing::warn!(error = %e, "webhook accept");
                        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                        continue;
                    }
                },
            };
            let acceptor = acceptor.clone();
            let app = app.clone();
            tokio::spawn(async move {
                let tls = match tokio::time::timeout(
                    std::time::Duration::from_secs(10),
                    acceptor.accept(tcp),
                )
                .await
                {
                    Ok(Ok(s)) => s,
                    Ok(Err(e)) => {
                        tracing::debug!(peer = %peer, error = %e, "webhook TLS handshake failed");
                        return;
                    }
                    Err(_) => return,
                };
                let svc = hyper_util::service::TowerToHyperService::new(app);
                if let Err(e) = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(tls), svc)
                    .await
                {
                    tracing::debug!(peer = %peer, error = %e, "webhook connection");
                }
            });
        }
    }))
}

#[cfg(test)]
mod tests;
