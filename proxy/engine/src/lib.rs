//! GOST v3 compatible proxy engine.
//!
//! # Layout
//! - [`component`]: the seams (`Listener`, `Handler`) and the type-string registry [`Kinds`];
//!   [`chain`] holds `Dialer`, `Connector`, nodes, hops, selectors and route connection.
//! - [`listener`], [`handler`], [`connector`], [`dialer`]: one module per GOST type string.
//! - [`build`]: raw config (crate `gost-config`) → validated runtime objects, errors with paths.
//! - [`engine`]: the one write path (validate → diff → apply by name) and running services;
//!   [`service`]: accept loop, hooks, status, draining; [`router`]: retries, resolution, chains.
//! - [`cli`]: GOST's command line (`-L`, `-F`, …) → config.
//!
//! Dependency direction: `gost-config` ← this crate ← the `gost-proxy` binary (and later the
//! operator, which shares `gost-config`).

pub mod addr;
#[cfg(feature = "program")]
pub mod api;
#[cfg(feature = "program")]
pub mod app;
#[cfg(feature = "program")]
pub mod args;
pub mod build;
pub mod chain;
#[cfg(feature = "program")]
pub mod cli;
pub mod component;
pub mod components;
pub mod connector;
pub mod dialer;
pub mod engine;
pub mod error;
pub mod fail_closed;
#[cfg(feature = "program")]
pub mod fetch;
pub mod files;
pub mod handler;
pub mod health;
pub mod hooks;
pub mod io;
pub mod limiter;
pub mod listener;
pub mod matcher;
pub mod md;
pub mod metrics;
pub mod mux;
pub mod policy;
pub mod relay;
pub mod resolver;
pub mod router;
pub mod service;
pub mod socks;
pub mod store;
#[cfg(feature = "program")]
pub mod supervise;
pub mod tls;
#[cfg(feature = "program")]
pub mod watch;
pub mod ws;

pub use component::Kinds;
pub use components::{register_all, register_with};
pub use engine::{Engine, EngineOpts};
