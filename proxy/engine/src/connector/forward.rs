//! `forward` / `tcp` connector: returns the connection unchanged; the remote end (a port
//! forwarder) decides the target.
//!
//! ```yaml
//! nodes:
//! - name: fw
//!   addr: 127.0.0.1:8443
//!   connector: {type: forward}
//! ```

use std::sync::Arc;

use async_trait::async_trait;

use crate::chain::Connector;
use crate::component::NodeOpts;
use crate::error::{BuildError, DialError};
use crate::io::{BoxStream, Outbound};

/// The no-op connector.
pub struct ForwardConnector;

/// Factory for `forward` / `tcp`.
pub fn new(_: &NodeOpts) -> Result<Arc<dyn Connector>, BuildError> {
    Ok(Arc::new(ForwardConnector))
}

#[async_trait]
impl Connector for ForwardConnector {
    async fn connect(
        &self,
        conn: BoxStream,
        network: &str,
        _addr: &str,
    ) -> Result<Outbound, DialError> {
        if network.starts_with("udp") {
            // UDP through a forward node: datagrams framed like GOST's relay forward mode
            // are not implemented; the stream is passed on as is.
            return Ok(Outbound::Stream(conn));
        }
        Ok(Outbound::Stream(conn))
    }
}
