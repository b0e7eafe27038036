//! The core seams every component plugs into, and the type-string registry ([`Kinds`]) that
//! turns config `type:` strings into them.
//!
//! This module is the bottom layer of the engine (with `addr`, `error`, `io`, `md` and
//! `files`): it names no component, no runtime object and no API. What a component needs from
//! the runtime (routing, authentication, bypass checks, forwarder targets) reaches it as a
//! trait object built by the layers above ([`Route`], [`Auth`], [`Bypass`], [`Targets`]).
//!
//! - [`Listener`] (GOST "data channel") and [`Handler`] (GOST "protocol"): a service.
//! - [`Dialer`] (how bytes reach a node) and [`Connector`] (which proxy protocol a node
//!   speaks): a chain node.
//! - [`UdpSession`]: one client's datagrams, as UDP listeners hand them to handlers.

use std::collections::BTreeMap;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;

use crate::error::{BuildError, DialError};
use crate::io::{BoxStream, Outbound, PacketConn};
use crate::md::Md;

/// An accepted inbound connection.
pub enum Inbound {
    /// A byte stream (TCP-family listeners).
    Stream(BoxStream),
    /// A UDP client session (the `udp` and `rudp` listeners).
    Datagram(Box<dyn UdpSession>),
}

/// One client's UDP session, as a datagram listener delivers it.
#[async_trait]
pub trait UdpSession: Send + Sync {
    /// The client address.
    fn peer(&self) -> SocketAddr;
    /// Next datagram from the client; `None` when the session has ended.
    async fn recv(&self) -> Option<Bytes>;
    /// Sends a datagram to the client (a session without keepalive ends after it).
    async fn send(&self, data: &[u8]) -> io::Result<usize>;
    /// Ends the session (a later datagram from the same peer starts a new one).
    fn close(&self);
    /// Whether the session has ended.
    fn is_closed(&self) -> bool;
}

/// Per-connection facts passed to handlers.
#[derive(Debug, Clone)]
pub struct ConnCtx {
    /// Session id (for logs).
    pub sid: String,
    /// Service name.
    pub service: Arc<str>,
    /// Client address.
    pub src: SocketAddr,
    /// Local address the client connected to.
    pub local: SocketAddr,
}

/// Errors ending one connection (logged; never fatal to the service).
#[derive(Debug, thiserror::Error)]
pub enum HandlerError {
    /// Client-side I/O.
    #[error("{0}")]
    Io(#[from] io::Error),
    /// The client spoke the protocol wrongly.
    #[error("protocol error: {0}")]
    Protocol(String),
    /// Authentication failed.
    #[error("authentication failed for {0:?}")]
    Auth(String),
    /// The target could not be reached.
    #[error("{0}")]
    Dial(#[from] DialError),
    /// The handler does not accept this kind of connection.
    #[error("{0}")]
    Unsupported(String),
}

/// A listener (GOST "data channel"): accepts inbound connections.
#[async_trait]
pub trait Listener: Send + Sync {
    /// Accepts the next connection.
    async fn accept(&self) -> io::Result<(Inbound, SocketAddr)>;
    /// The bound address.
    fn local_addr(&self) -> SocketAddr;
}

/// A handler (GOST "protocol"): serves one accepted connection.
#[async_trait]
pub trait Handler: Send + Sync {
    /// Serves the connection until it ends.
    async fn handle(&self, conn: Inbound, ctx: ConnCtx) -> Result<(), HandlerError>;
}

/// Socket options for the first dial of a route or a direct dial.
#[derive(Debug, Clone, Default)]
pub struct DialOpts {
    /// Per-attempt timeout.
    pub timeout: Option<Duration>,
}

/// The raw connection a multiplexing dialer builds a new session on: a TCP dial, or the part
/// of the route before the node (GOST's route split). Only polled when a session is needed.
pub type Underlay<'a> = futures::future::BoxFuture<'a, io::Result<BoxStream>>;

/// How bytes reach a node (GOST "dialer"): `tcp`, `tls`, `ws`, ….
#[async_trait]
pub trait Dialer: Send + Sync {
    /// Opens the transport to `addr` (only ever called for the first node of a route): by
    /// default a plain TCP connection, on which [`Dialer::handshake`] then runs.
    async fn dial(&self, addr: &str, opts: &DialOpts) -> io::Result<BoxStream> {
        Ok(Box::new(crate::io::connect_tcp(addr, opts.timeout).await?))
    }
    /// Runs the transport handshake (TLS, WebSocket upgrade, …) over an existing stream.
    async fn handshake(&self, conn: BoxStream, _addr: &str) -> io::Result<BoxStream> {
        Ok(conn)
    }
    /// Multiplexing dialers (`mtls`, `mws`, `mwss`) keep one session per node address; the
    /// route before such a node is carried inside its transport (engine spec §3.2).
    fn multiplex(&self) -> bool {
        false
    }
    /// Multiplexing dialers: a new stream of the session for `addr`, creating the session
    /// (transport handshake + smux) over `underlay` when none is alive.
    async fn dial_mux(&self, addr: &str, _underlay: Underlay<'_>) -> io::Result<BoxStream> {
        Err(io::Error::other(format!(
            "dialer for {addr} does not multiplex"
        )))
    }
}

/// Accepts connections arriving on a port bound by a remote node (reverse forwarding).
#[async_trait]
pub trait Accept: Send + Sync {
    /// The next connection and its peer address.
    async fn accept(&self) -> io::Result<(BoxStream, String)>;
    /// The bound address as reported by the node.
    fn addr(&self) -> String;
}

/// What [`Connector::bind`] returns.
pub enum Bound {
    /// TCP: inbound connections.
    Stream(Box<dyn Accept>),
    /// UDP: datagrams with peer addresses, and the bound address.
    Packet(Arc<dyn PacketConn>, String),
}

/// Which proxy protocol a node speaks (GOST "connector"): `http`, `socks5`, `forward`, ….
#[async_trait]
pub trait Connector: Send + Sync {
    /// Per-connection protocol handshake (e.g. SOCKS5 method negotiation).
    async fn handshake(&self, conn: BoxStream) -> io::Result<BoxStream> {
        Ok(conn)
    }
    /// Asks the node to open `network` (`tcp`/`udp`) to `addr`.
    async fn connect(
        &self,
        conn: BoxStream,
        network: &str,
        addr: &str,
    ) -> Result<Outbound, DialError>;
    /// Asks the node to listen on `addr` for `network` and hand over what arrives there
    /// (`rtcp`/`rudp`). Only some connectors support it (`relay`, `socks5`).
    async fn bind(&self, _conn: BoxStream, network: &str, addr: &str) -> Result<Bound, DialError> {
        Err(DialError::Upstream(format!(
            "bind {network} {addr}: this connector does not support binding"
        )))
    }
}

/// How a handler (or a reverse listener) reaches targets: the service's router (hosts,
/// resolver, chain, retries).
#[async_trait]
pub trait Route: Send + Sync {
    /// Opens `network` (`tcp`, `udp`) to `addr`; `hash_key` feeds the `hash` selector.
    async fn dial(
        &self,
        network: &str,
        addr: &str,
        hash_key: Option<String>,
    ) -> Result<Outbound, DialError>;
    /// Asks the chain's last node to bind `addr` for `network` (`rtcp`/`rudp`); `Ok(None)`
    /// when there is no chain or its route is empty.
    async fn bind(&self, network: &str, addr: &str) -> Result<Option<Bound>, DialError>;
    /// Whether a chain is configured at all.
    fn has_chain(&self) -> bool;
}

/// A handler's authentication.
pub trait Auth: Send + Sync {
    /// Whether credentials are required at all.
    fn enabled(&self) -> bool;
    /// `Some(client id)` when the credentials are accepted (everyone, with an empty id,
    /// when authentication is off).
    fn authenticate(&self, user: &str, pass: &str) -> Option<String>;
}

/// A service-level bypass: which targets a handler refuses.
pub trait Bypass: Send + Sync {
    /// Whether `network`/`addr` is refused.
    fn bypass(&self, network: &str, addr: &str) -> bool;
}

/// A service's forwarder targets (`forwarder.nodes` or `forwarder.hop`).
pub trait Targets: Send + Sync {
    /// Selects a target for `network`; `hash_key` feeds the `hash` selector. A missing named
    /// hop is `DialError::Config`, no eligible target `DialError::NoNode`.
    fn select(&self, network: &str, hash_key: Option<String>)
        -> Result<Arc<dyn Target>, DialError>;
}

/// One forwarder target, with its failure marker.
pub trait Target: Send + Sync {
    /// `host:port`.
    fn addr(&self) -> &str;
    /// Network override (`tcp`, `udp`, …).
    fn network(&self) -> Option<&str>;
    /// Records a failed dial.
    fn mark_failed(&self);
    /// Records a successful dial.
    fn mark_ok(&self);
}

/// No authentication: everyone passes with an empty client id.
pub struct NoAuth;

impl Auth for NoAuth {
    fn enabled(&self) -> bool {
        false
    }
    fn authenticate(&self, _: &str, _: &str) -> Option<String> {
        Some(String::new())
    }
}

/// No bypass: nothing is refused.
pub struct NoBypass;

impl Bypass for NoBypass {
    fn bypass(&self, _: &str, _: &str) -> bool {
        false
    }
}

/// What a handler factory gets.
#[derive(Clone)]
pub struct HandlerOpts {
    /// Config path of the handler (`services[web].handler`).
    pub path: String,
    /// Handler metadata.
    pub md: Arc<Md>,
    /// The handler's router.
    pub router: Arc<dyn Route>,
    /// Authentication.
    pub auth: Arc<dyn Auth>,
    /// Service-level bypass (refuse matching targets).
    pub bypass: Arc<dyn Bypass>,
    /// Forwarder targets, when configured.
    pub forwarder: Option<Arc<dyn Targets>>,
    /// Server TLS, for handlers that terminate TLS themselves.
    pub tls: Option<Arc<rustls::ServerConfig>>,
}

/// What a listener factory gets.
pub struct ListenerOpts {
    /// Config path of the listener.
    pub path: String,
    /// Listen address as configured.
    pub addr: String,
    /// Listener metadata.
    pub md: Arc<Md>,
    /// Server TLS for TLS-based listeners.
    pub tls: Option<Arc<rustls::ServerConfig>>,
    /// Router over `listener.chain` (direct without one), for `rtcp`/`rudp`.
    pub router: Arc<dyn Route>,
}

/// What connector and dialer factories get.
pub struct NodeOpts {
    /// Config path of the connector/dialer.
    pub path: String,
    /// Its metadata.
    pub md: Arc<Md>,
    /// Client credentials.
    pub auth: Option<gost_config::AuthConfig>,
    /// Client TLS.
    pub tls: Option<gost_config::TlsConfig>,
    /// Node address (for SNI defaults).
    pub node_addr: String,
}

/// Builds a handler.
pub type HandlerFactory =
    Arc<dyn Fn(&HandlerOpts) -> Result<Arc<dyn Handler>, BuildError> + Send + Sync>;
/// Binds a listener.
pub type ListenerFactory =
    Arc<dyn Fn(&ListenerOpts) -> Result<Arc<dyn Listener>, BuildError> + Send + Sync>;
/// Validates a listener's options without binding.
pub type ListenerCheck = Arc<dyn Fn(&ListenerOpts) -> Result<(), BuildError> + Send + Sync>;
/// Builds a connector.
pub type ConnectorFactory =
    Arc<dyn Fn(&NodeOpts) -> Result<Arc<dyn Connector>, BuildError> + Send + Sync>;
/// Builds a dialer.
pub type DialerFactory =
    Arc<dyn Fn(&NodeOpts) -> Result<Arc<dyn Dialer>, BuildError> + Send + Sync>;

/// The type-string registry: `type:` value → factory, one map per component kind. The
/// built-in list is [`crate::register_all`]; a factory is any closure, so it can capture what
/// its components need.
#[derive(Default, Clone)]
pub struct Kinds {
    /// Handlers.
    pub handlers: BTreeMap<&'static str, HandlerFactory>,
    /// Listeners: (validate, bind).
    pub listeners: BTreeMap<&'static str, (ListenerCheck, ListenerFactory)>,
    /// Connectors.
    pub connectors: BTreeMap<&'static str, ConnectorFactory>,
    /// Dialers.
    pub dialers: BTreeMap<&'static str, DialerFactory>,
}

/// Registers `f` under `name`. A type string registered twice is a programming error that
/// must not pass unnoticed (the second factory would silently replace the first): it panics,
/// at start-up, where the registry is built, and in the registry unit test.
fn insert<F>(map: &mut BTreeMap<&'static str, F>, kind: &str, name: &'static str, f: F) {
    if map.insert(name, f).is_some() {
        panic!("duplicate {kind} registration: {name:?}");
    }
}

impl Kinds {
    /// Registers a handler type (panics when `name` is taken).
    pub fn handler(
        &mut self,
        name: &'static str,
        f: impl Fn(&HandlerOpts) -> Result<Arc<dyn Handler>, BuildError> + Send + Sync + 'static,
    ) {
        insert(&mut self.handlers, "handler", name, Arc::new(f));
    }
    /// Registers a listener type (panics when `name` is taken).
    pub fn listener(
        &mut self,
        name: &'static str,
        check: impl Fn(&ListenerOpts) -> Result<(), BuildError> + Send + Sync + 'static,
        f: impl Fn(&ListenerOpts) -> Result<Arc<dyn Listener>, BuildError> + Send + Sync + 'static,
    ) {
        let entry: (ListenerCheck, ListenerFactory) = (Arc::new(check), Arc::new(f));
        insert(&mut self.listeners, "listener", name, entry);
    }
    /// Registers a connector type (panics when `name` is taken).
    pub fn connector(
        &mut self,
        name: &'static str,
        f: impl Fn(&NodeOpts) -> Result<Arc<dyn Connector>, BuildError> + Send + Sync + 'static,
    ) {
        insert(&mut self.connectors, "connector", name, Arc::new(f));
    }
    /// Registers a dialer type (panics when `name` is taken).
    pub fn dialer(
        &mut self,
        name: &'static str,
        f: impl Fn(&NodeOpts) -> Result<Arc<dyn Dialer>, BuildError> + Send + Sync + 'static,
    ) {
        insert(&mut self.dialers, "dialer", name, Arc::new(f));
    }
}

/// "x, y, z" for error messages.
pub fn list_names<V>(m: &BTreeMap<&'static str, V>) -> String {
    m.keys().copied().collect::<Vec<_>>().join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[should_panic(expected = "duplicate handler registration: \"x\"")]
    fn registering_a_type_string_twice_panics() {
        struct H;
        #[async_trait]
        impl Handler for H {
            async fn handle(&self, _: Inbound, _: ConnCtx) -> Result<(), HandlerError> {
                Ok(())
            }
        }
        let mut k = Kinds::default();
        k.handler("x", |_| Ok(Arc::new(H) as Arc<dyn Handler>));
        k.handler("x", |_| Ok(Arc::new(H) as Arc<dyn Handler>));
    }
}
