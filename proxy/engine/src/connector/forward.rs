//! `forward` / `tcp` connector: returns the connection unchanged for every network (as in
//! GOST); the remote end (a port forwarder) decides the target.
//!
//! ```yaml
//! nodes:
//! - name: fw
//!   addr: 127.0.0.1:8443
//!   connector: {type: forward}
//! ```

use std::sync::Arc;

use async_trait::async_trait;

use crate::component::{Connector, NodeOpts};
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
        _network: &str,
        _addr: &str,
    ) -> Result<Outbound, DialError> {
        Ok(Outbound::Stream(conn))
    }
}
