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
pub mod api;
pub mod app;
pub mod args;
pub mod build;
pub mod chain;
pub mod cli;
pub mod component;
pub mod connector;
pub mod dialer;
pub mod engine;
pub mod error;
pub mod fail_closed;
pub mod files;
pub mod handler;
pub mod health;
pub mod hooks;
pub mod io;
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
pub mod supervise;
pub mod tls;
pub mod watch;
pub mod ws;

pub use component::Kinds;
pub use engine::{Engine, EngineOpts};

/// Registers every built-in component type: the one explicit list.
pub fn register_all(k: &mut Kinds) {
    k.listener("tcp", listener::tcp::check, listener::tcp::new);
    k.listener("udp", listener::udp::check, listener::udp::new);
    k.listener("tls", listener::tls::check, listener::tls::new);
    k.listener("rtcp", listener::rtcp::check, listener::rtcp::new);
    k.listener("rudp", listener::rudp::check, listener::rudp::new);
    k.listener("mtls", listener::mtls::check, listener::mtls::new);
    k.listener("ws", listener::ws::check_ws, listener::ws::new_ws);
    k.listener("wss", listener::ws::check_wss, listener::ws::new_wss);
    k.listener("mws", listener::mws::check_mws, listener::mws::new_mws);
    k.listener("mwss", listener::mws::check_mwss, listener::mws::new_mwss);

    k.handler("api", handler::api::new);
    k.handler("auto", handler::auto::new);
    k.handler("http", handler::http::new);
    k.handler("socks5", handler::socks5::new);
    k.handler("socks", handler::socks5::new);
    k.handler("socks4", handler::socks4::new);
    k.handler("socks4a", handler::socks4::new);
    k.handler("tcp", handler::forward::new);
    k.handler("udp", handler::forward::new);
    k.handler("forward", handler::forward::new);
    k.handler("relay", handler::relay::new);
    k.handler("sni", handler::sni::new);
    k.handler("rtcp", handler::forward::new);
    k.handler("rudp", handler::forward::new);

    k.connector("http", connector::http::new);
    k.connector("socks5", connector::socks5::new);
    k.connector("socks", connector::socks5::new);
    k.connector("socks4", connector::socks4::new);
    k.connector("socks4a", connector::socks4::new);
    k.connector("relay", connector::relay::new);
    k.connector("forward", connector::forward::new);
    k.connector("tcp", connector::forward::new);

    k.dialer("tcp", dialer::tcp::new);
    k.dialer("tls", dialer::tls::new);
    k.dialer("mtls", dialer::mtls::new);
    k.dialer("ws", dialer::ws::new_ws);
    k.dialer("wss", dialer::ws::new_wss);
    k.dialer("mws", dialer::mws::new_mws);
    k.dialer("mwss", dialer::mws::new_mwss);
}

#[cfg(test)]
mod tests {
    #[test]
    fn registry_has_no_duplicates_and_core_types() {
        let mut k = super::Kinds::default();
        super::register_all(&mut k);
        for h in ["auto", "http", "socks5", "socks4", "tcp", "udp", "forward"] {
            assert!(k.handlers.contains_key(h), "{h}");
        }
        assert!(k.listeners.len() >= 3);
    }
}
