//! `tcp` dialer: a plain TCP connection to the node (TCP_NODELAY on).
//!
//! ```yaml
//! nodes:
//! - name: n
//!   addr: 127.0.0.1:1080
//!   dialer: {type: tcp}
//! ```

use std::sync::Arc;

use async_trait::async_trait;

use crate::component::{Dialer, NodeOpts};
use crate::error::BuildError;

/// The TCP dialer.
pub struct TcpDialer;

/// Factory for `tcp`.
pub fn new(o: &NodeOpts) -> Result<Arc<dyn Dialer>, BuildError> {
    o.md.mark_known(crate::md::TCP_KEYS);
    Ok(Arc::new(TcpDialer))
}

#[async_trait]
impl Dialer for TcpDialer {}
