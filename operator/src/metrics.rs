//! The operator's Prometheus metrics (`kubegost_*`), exposed on `/metrics` by [`crate::server`].

use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

/// `controller` label.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ControllerLabels {
    /// `gostservice` or `gostchain`.
    pub controller: String,
}

/// `controller` and `error` labels.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ErrorLabels {
    /// `gostservice` or `gostchain`.
    pub controller: String,
    /// The error kind ([`crate::controller::Error::metric_label`]).
    pub error: String,
}

/// Every metric of the operator.
pub struct Metrics {
    registry: Registry,
    reconciles: Family<ControllerLabels, Counter>,
    errors: Family<ErrorLabels, Counter>,
    duration: Family<ControllerLabels, Histogram>,
    /// 1 while this replica holds the leader Lease.
    pub leader: Gauge,
    /// The webhook's `kubegost_injection_*` counters.
    pub injection: crate::webhook::InjectionMetrics,
    /// Unix time at which the webhook's serving certificate expires.
    pub cert_expiry: Gauge,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    /// A fresh registry with every metric registered.
    pub fn new() -> Metrics {
        let mut registry = Registry::default();
        let reconciles = Family::<ControllerLabels, Counter>::default();
        let errors = Family::<ErrorLabels, Counter>::default();
        let duration = Family::<ControllerLabels, Histogram>::new_with_constructor(|| {
            Histogram::new([
                0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
            ])
        });
        let leader = Gauge::default();
        registry.register(
            "kubegost_reconcile",
            "Reconciles run, by controller",
            reconciles.clone(),
        );
        registry.register(
            "kubegost_reconcile_errors",
            "Reconciles that failed, by controller and error kind",
            errors.clone(),
        );
        registry.register(
            "kubegost_reconcile_duration_seconds",
            "Time a reconcile took, by controller",
            duration.clone(),
        );
        registry.register(
            "kubegost_leader",
            "1 while this replica holds the leader Lease and runs the controllers",
            leader.clone(),
        );
        let injection = crate::webhook::InjectionMetrics::default();
        injection.register(&mut registry);
        let cert_expiry = Gauge::default();
        registry.register(
            "kubegost_webhook_certificate_expiry_seconds",
            "Unix time at which the webhook's serving certificate expires",
            cert_expiry.clone(),
        );
        Metrics {
            registry,
            reconciles,
            errors,
            duration,
            leader,
            injection,
            cert_expiry,
        }
    }

    /// Records one reconcile.
    pub fn reconciled(&self, controller: &str, took: Duration, error: Option<&str>) {
        let l = ControllerLabels {
            controller: controller.to_string(),
        };
        self.reconciles.get_or_create(&l).inc();
        self.duration.get_or_create(&l).observe(took.as_secs_f64());
        if let Some(e) = error {
            self.errors
                .get_or_create(&ErrorLabels {
                    controller: controller.to_string(),
                    error: e.to_string(),
                })
                .inc();
        }
    }

    /// The OpenMetrics text of every metric.
    pub fn encode(&self) -> Result<String, std::fmt::Error> {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry)?;
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_the_spec() {
        let m = Metrics::new();
        m.reconciled("gostservice", Duration::from_millis(3), None);
        m.reconciled("gostservice", Duration::from_millis(3), Some("kube"));
        let text = m.encode().unwrap();
        assert!(
            text.contains("kubegost_reconcile_total{controller=\"gostservice\"} 2"),
            "{text}"
        );
        assert!(
            text.contains(
                "kubegost_reconcile_errors_total{controller=\"gostservice\",error=\"kube\"} 1"
            ),
            "{text}"
        );
        assert!(
            text.contains(
                "kubegost_reconcile_duration_seconds_count{controller=\"gostservice\"} 2"
            ),
            "{text}"
        );
        assert!(text.contains("kubegost_leader 0"), "{text}");
    }
}
