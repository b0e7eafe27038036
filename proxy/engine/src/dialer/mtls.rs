//! `mtls` dialer: TLS + smux client ("multiplexed TLS", not mutual TLS). One session per node
//! address is reused for every connection; a dead session is replaced. When the node is not
//! the first of its route, the nodes before it carry the session's connection (GOST's route
//! split). smux keys are listed in [`crate::mux`].
//!
//! ```yaml
//! nodes:
//! - name: n
//!   addr: 10.0.0.1:8443
//!   connector: {type: relay}
//!   dialer: {type: mtls, metadata: {mux.keepaliveInterval: 10s}}
//! ```
//!
//! | key | type | default | meaning |
//! |---|---|---|---|
//! | `handshakeTimeout` | duration | 10s | TLS handshake deadline |
//! | `mux.*` | | | smux settings ([`crate::mux`]) |

use std::sync::Arc;

use crate::component::{Dialer, NodeOpts};
use crate::error::BuildError;

/// Factory for `mtls`: the `tls` dialer's handshake under a smux session.
pub fn new(o: &NodeOpts) -> Result<Arc<dyn Dialer>, BuildError> {
    Ok(Arc::new(super::Multiplexed::new(super::tls::new(o)?, o)?))
}
