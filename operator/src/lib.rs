//! `gost-operator`: the Kubernetes side of kubegost.
//!
//! # Layout
//!
//! - [`crd`]: the `GostService` / `GostChain` custom resources (the source of truth for
//!   `crds/*.yaml`).
//! - [`render`]: pure rendering of a GostService, its chains and Secrets into the engine config
//!   `gost-proxy` reads, its hash, and conflict detection between GostServices sharing a pod.
//! - [`inject`]: the pure injection plan (`pod + matched GostServices → injected pod`) and the
//!   JSON patch between them.
//! - [`status`]: conditions as data; [`reconcile`]: the pure reconcile decisions (inputs →
//!   config Secret, status, Events, pod annotations).
//!
//! Everything here is a function from input objects to desired objects; the controllers and
//! the webhook server only fetch inputs and write outputs.

#![forbid(unsafe_code)]

pub mod app;
pub mod certs;
pub mod controller;
pub mod crd;
pub mod crdgen;
pub mod inject;
pub mod metrics;
pub mod net;
pub mod reconcile;
pub mod render;
pub mod server;
pub mod status;
pub mod webhook;
