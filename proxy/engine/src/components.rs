//! The built-in components: [`register_all`], the one explicit list of every type string.

use crate::component::Kinds;
use crate::{connector, dialer, handler, listener};

/// Registers every built-in component type: the one explicit list. The `api` handler serves
/// through `api` (`None`: it refuses, for an engine that only validates or has no Web API).
pub fn register_with(k: &mut Kinds, api: Option<handler::api::Serve>) {
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

    k.handler("api", handler::api::factory(api));
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

/// [`register_with`] without a Web API.
pub fn register_all(k: &mut Kinds) {
    register_with(k, None);
}

impl Kinds {
    /// Every built-in component (the `api` handler refuses: no Web API).
    pub fn builtin() -> Kinds {
        let mut k = Kinds::default();
        register_all(&mut k);
        k
    }

    /// Every built-in component, the `api` handler serving through `api`.
    pub fn builtin_with_api(api: handler::api::Serve) -> Kinds {
        let mut k = Kinds::default();
        register_with(&mut k, Some(api));
        k
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Registration panics on a duplicate, so this fails when the list names a type twice.
    #[test]
    fn registry_has_no_duplicates_and_core_types() {
        let k = Kinds::builtin();
        for h in [
            "auto", "http", "socks5", "socks4", "tcp", "udp", "forward", "api",
        ] {
            assert!(k.handlers.contains_key(h), "{h}");
        }
        for l in ["tcp", "udp", "tls", "ws", "rtcp", "rudp"] {
            assert!(k.listeners.contains_key(l), "{l}");
        }
        for c in ["http", "socks5", "relay", "forward"] {
            assert!(k.connectors.contains_key(c), "{c}");
        }
        for d in ["tcp", "tls", "mtls", "ws", "mws"] {
            assert!(k.dialers.contains_key(d), "{d}");
        }
    }
}
