//! The operator's plain-HTTP endpoint: `/healthz` (the process serves), `/readyz` (connected to
//! the API server and not shutting down; every replica, leader or not, is ready, since every
//! replica serves the webhook), `/metrics` (OpenMetrics text).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use tokio_util::sync::CancellationToken;

use crate::metrics::Metrics;

/// State shared with the handlers.
pub struct Health {
    /// Set once the API server answered; cleared when shutdown begins.
    pub ready: AtomicBool,
    /// Metrics to expose.
    pub metrics: Arc<Metrics>,
}

async fn healthz() -> &'static str {
    "ok\n"
}

async fn readyz(State(h): State<Arc<Health>>) -> (StatusCode, &'static str) {
    if h.ready.load(Ordering::Relaxed) {
        (StatusCode::OK, "ready\n")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "not ready\n")
    }
}

async fn metrics(State(h): State<Arc<Health>>) -> impl IntoResponse {
    match h.metrics.encode() {
        Ok(text) => (
            StatusCode::OK,
            [(
                header::CONTENT_TYPE,
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
            )],
            text,
        )
            .into_response(),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
    }
}

/// The routes.
pub fn router(h: Arc<Health>) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/livez", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .with_state(h)
}

/// Binds `addr` and serves until `stop` is cancelled.
pub async fn serve(
    addr: SocketAddr,
    h: Arc<Health>,
    stop: CancellationToken,
) -> std::io::Result<tokio::task::JoinHandle<()>> {
    let l = tokio::net::TcpListener::bind(addr).await?;
    tracing::info!(addr = %addr, "health and metrics listening");
    Ok(tokio::spawn(async move {
        let r = axum::serve(l, router(h))
            .with_graceful_shutdown(async move { stop.cancelled().await })
            .await;
        if let Err(e) = r {
            tracing::error!(error = %e, "health server stopped");
        }
    }))
}
