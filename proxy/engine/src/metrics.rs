//! Prometheus metrics with GOST's `gost_*` names and labels. Every series carries `host`
//! (the machine/pod name); `client` can be dropped (unbounded cardinality on public services).

use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

/// `{host, service, client}`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ClientLabels {
    host: String,
    service: String,
    client: String,
}

/// `{host, service}`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ServiceLabels {
    host: String,
    service: String,
}

/// `{host}`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct HostLabels {
    host: String,
}

fn dur_hist() -> Histogram {
    Histogram::new([
        0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 15.0, 30.0, 60.0,
    ])
}

/// The engine's metric families.
pub struct Metrics {
    registry: parking_lot::Mutex<Registry>,
    host: String,
    client_label: bool,
    services: Family<HostLabels, Gauge>,
    requests: Family<ClientLabels, Counter>,
    in_flight: Family<ClientLabels, Gauge>,
    duration: Family<ServiceLabels, Histogram, fn() -> Histogram>,
    errors: Family<ClientLabels, Counter>,
    input: Family<ClientLabels, Counter>,
    output: Family<ClientLabels, Counter>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}

impl Metrics {
    /// New families; `client_label: false` drops the `client` label.
    pub fn new(client_label: bool) -> Metrics {
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|s| s.trim().to_string())
            .unwrap_or_default();
        let mut registry = Registry::default();
        let services = Family::<HostLabels, Gauge>::default();
        let requests = Family::<ClientLabels, Counter>::default();
        let in_flight = Family::<ClientLabels, Gauge>::default();
        let duration = Family::<ServiceLabels, Histogram, fn() -> Histogram>::new_with_constructor(
            dur_hist as fn() -> Histogram,
        );
        let errors = Family::<ClientLabels, Counter>::default();
        let input = Family::<ClientLabels, Counter>::default();
        let output = Family::<ClientLabels, Counter>::default();
        registry.register(
            "gost_services",
            "Number of services in their accept loop",
            services.clone(),
        );
        registry.register(
            "gost_service_requests",
            "Accepted connections",
            requests.clone(),
        );
        registry.register(
            "gost_service_requests_in_flight",
            "Connections being handled",
            in_flight.clone(),
        );
        registry.register(
            "gost_service_request_duration_seconds",
            "Connection handling time",
            duration.clone(),
        );
        registry.register(
            "gost_service_handler_errors",
            "Handler errors",
            errors.clone(),
        );
        registry.register(
            "gost_service_transfer_input_bytes",
            "Bytes read from clients",
            input.clone(),
        );
        registry.register(
            "gost_service_transfer_output_bytes",
            "Bytes written to clients",
            output.clone(),
        );
        Metrics {
            registry: parking_lot::Mutex::new(registry),
            host,
            client_label,
            services,
            requests,
            in_flight,
            duration,
            errors,
            input,
            output,
        }
    }

    fn cl(&self, service: &str, client: &str) -> ClientLabels {
        ClientLabels {
            host: self.host.clone(),
            service: service.to_string(),
            client: if self.client_label {
                client.to_string()
            } else {
                String::new()
            },
        }
    }

    /// A service entered (`+1`) or left (`-1`) its accept loop.
    pub fn service_up(&self, up: bool) {
        let g = self.services.get_or_create(&HostLabels {
            host: self.host.clone(),
        });
        if up {
            g.inc();
        } else {
            g.dec();
        }
    }

    /// A connection was accepted.
    pub fn conn_start(&self, service: &str, client: &str) {
        let l = self.cl(service, client);
        self.requests.get_or_create(&l).inc();
        self.in_flight.get_or_create(&l).inc();
    }

    /// A connection ended.
    pub fn conn_end(&self, service: &str, client: &str, took: Duration) {
        self.in_flight
            .get_or_create(&self.cl(service, client))
            .dec();
        self.duration
            .get_or_create(&ServiceLabels {
                host: self.host.clone(),
                service: service.to_string(),
            })
            .observe(took.as_secs_f64());
    }

    /// A handler returned an error.
    pub fn handler_error(&self, service: &str, client: &str) {
        self.errors.get_or_create(&self.cl(service, client)).inc();
    }

    /// The input/output byte counters of one client of one service.
    pub fn transfer_counters(&self, service: &str, client: &str) -> (Counter, Counter) {
        let l = self.cl(service, client);
        (
            self.input.get_or_create(&l).clone(),
            self.output.get_or_create(&l).clone(),
        )
    }

    /// OpenMetrics text exposition, with process metrics.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry.lock());
        let process = process_metrics();
        match out.rfind("# EOF") {
            Some(i) => out.insert_str(i, &process),
            None => out.push_str(&process),
        }
        out
    }
}

/// `process_*` metrics read from `/proc/self` (Linux).
fn process_metrics() -> String {
    let mut out = String::new();
    let mut metric = |name: &str, kind: &str, help: &str, sample: &str, v: f64| {
        out.push_str(&format!(
            "# HELP {name} {help}\n# TYPE {name} {kind}\n{sample} {v}\n"
        ));
    };
    let ticks = 100.0; // USER_HZ on Linux
    if let Ok(stat) = std::fs::read_to_string("/proc/self/stat") {
        let after: Vec<&str> = stat
            .rsplit(')')
            .next()
            .unwrap_or("")
            .split_whitespace()
            .collect();
        let field = |i: usize| {
            after
                .get(i)
                .and_then(|x| x.parse::<f64>().ok())
                .unwrap_or(0.0)
        };
        // after[0] is field 3 (state): utime=14, stime=15, num_threads=20, starttime=22.
        metric(
            "process_cpu_seconds",
            "counter",
            "Total user and system CPU time spent in seconds.",
            "process_cpu_seconds_total",
            (field(11) + field(12)) / ticks,
        );
        metric(
            "process_threads",
            "gauge",
            "Number of OS threads.",
            "process_threads",
            field(17),
        );
        let boot = std::fs::read_to_string("/proc/stat")
            .ok()
            .and_then(|s| {
                s.lines().find_map(|l| {
                    l.strip_prefix("btime ")
                        .and_then(|v| v.trim().parse::<f64>().ok())
                })
            })
            .unwrap_or(0.0);
        metric(
            "process_start_time_seconds",
            "gauge",
            "Start time of the process since unix epoch in seconds.",
            "process_start_time_seconds",
            boot + field(19) / ticks,
        );
    }
    if let Ok(statm) = std::fs::read_to_string("/proc/self/statm") {
        let pages: Vec<f64> = statm
            .split_whitespace()
            .filter_map(|x| x.parse().ok())
            .collect();
        let page = 4096.0;
        metric(
            "process_virtual_memory_bytes",
            "gauge",
            "Virtual memory size in bytes.",
            "process_virtual_memory_bytes",
            pages.first().copied().unwrap_or(0.0) * page,
        );
        metric(
            "process_resident_memory_bytes",
            "gauge",
            "Resident memory size in bytes.",
            "process_resident_memory_bytes",
            pages.get(1).copied().unwrap_or(0.0) * page,
        );
    }
    if let Ok(fds) = std::fs::read_dir("/proc/self/fd") {
        metric(
            "process_open_fds",
            "gauge",
            "Number of open file descriptors.",
            "process_open_fds",
            fds.count() as f64,
        );
    }
    if let Ok(limits) = std::fs::read_to_string("/proc/self/limits") {
        if let Some(v) = limits
            .lines()
            .find(|l| l.starts_with("Max open files"))
            .and_then(|l| l.split_whitespace().nth(3))
            .and_then(|v| v.parse::<f64>().ok())
        {
            metric(
                "process_max_fds",
                "gauge",
                "Maximum number of open file descriptors.",
                "process_max_fds",
                v,
            );
        }
    }
    out
}
