//! The seams every component plugs into: [`Listener`], [`Handler`], and the build options
//! and type-string registry ([`Kinds`]) that turn config `type:` strings into them.

use std::collections::BTreeMap;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;

use async_trait::async_trait;

use crate::chain::{Connector, Dialer};
use crate::error::{BuildError, DialError};
use crate::io::BoxStream;
use crate::listener::udp::UdpSession;
use crate::md::Md;
use crate::router::Router;
use crate::store::{AuthRef, BypassRef, Store};

/// An accepted inbound connection.
pub enum Inbound {
    /// A byte stream (TCP-family listeners).
    Stream(BoxStream),
    /// A UDP client session (the `udp` and `rudp` listeners).
    Datagram(UdpSession),
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

/// What a handler factory gets.
#[derive(Clone)]
pub struct HandlerOpts {
    /// Config path of the handler (`services[web].handler`).
    pub path: String,
    /// Handler metadata.
    pub md: Arc<Md>,
    /// The handler's router.
    pub router: Arc<Router>,
    /// Authentication.
    pub auth: AuthRef,
    /// Service-level bypass (refuse matching targets).
    pub bypass: BypassRef,
    /// Forwarder targets, when configured.
    pub forwarder: Option<crate::chain::Forwarder>,
    /// Named instances.
    pub store: Arc<Store>,
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
    pub router: Arc<Router>,
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
pub type HandlerFactory = fn(&HandlerOpts) -> Result<Arc<dyn Handler>, BuildError>;
/// Binds a listener.
pub type ListenerFactory = fn(&ListenerOpts) -> Result<Arc<dyn Listener>, BuildError>;
/// Validates a listener's options without binding.
pub type ListenerCheck = fn(&ListenerOpts) -> Result<(), BuildError>;
/// Builds a connector.
pub type ConnectorFactory = fn(&NodeOpts) -> Result<Arc<dyn Connector>, BuildError>;
/// Builds a dialer.
pub type DialerFactory = fn(&NodeOpts) -> Result<Arc<dyn Dialer>, BuildError>;

/// The type-string registry: `type:` value → factory, one map per component kind.
#[derive(Default)]
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

fn insert<F>(map: &mut BTreeMap<&'static str, F>, kind: &str, name: &'static str, f: F) {
    if map.insert(name, f).is_some() {
        // A duplicate is a programming error caught by the registry unit test.
        tracing::error!(kind, name, "duplicate component registration");
    }
}

impl Kinds {
    /// Every built-in component.
    pub fn builtin() -> Kinds {
        let mut k = Kinds::default();
        crate::register_all(&mut k);
        k
    }
    /// Registers a handler type.
    pub fn handler(&mut self, name: &'static str, f: HandlerFactory) {
        insert(&mut self.handlers, "handler", name, f);
    }
    /// Registers a listener type.
    pub fn listener(&mut self, name: &'static str, check: ListenerCheck, f: ListenerFactory) {
        insert(&mut self.listeners, "listener", name, (check, f));
    }
    /// Registers a connector type.
    pub fn connector(&mut self, name: &'static str, f: ConnectorFactory) {
        insert(&mut self.connectors, "connector", name, f);
    }
    /// Registers a dialer type.
    pub fn dialer(&mut self, name: &'static str, f: DialerFactory) {
        insert(&mut self.dialers, "dialer", name, f);
    }
}

/// "x, y, z" for error messages.
pub fn list_names<V>(m: &BTreeMap<&'static str, V>) -> String {
    m.keys().copied().collect::<Vec<_>>().join(", ")
}
