//! `api` handler: the Web API as an ordinary service, so it can use any listener.
//!
//! ```yaml
//! services:
//! - name: api
//!   addr: 127.0.0.1:18080
//!   handler: {type: api, auth: {username: admin, password: s3cret}, metadata: {pathPrefix: /api}}
//! ```
//!
//! | key | type | default | meaning |
//! |---|---|---|---|
//! | `pathPrefix` / `api.pathPrefix` | string | none | prefix of every route |
//! | `accessLog` / `api.accessLog` | bool | false | one info line per request |
//!
//! The HTTP side lives in the API layer above the components: it reaches this handler as a
//! [`Serve`] value captured by the factory ([`factory`]); without one (an engine used only to
//! validate) every connection is refused with a clear error.

use std::sync::Arc;

use async_trait::async_trait;
use futures::future::BoxFuture;

use crate::component::{Auth, ConnCtx, Handler, HandlerError, HandlerOpts, Inbound};
use crate::error::BuildError;
use crate::io::BoxStream;

/// Per-service settings of the API handler.
#[derive(Clone)]
pub struct Settings {
    /// Route prefix (`/api`).
    pub prefix: String,
    /// Basic authentication; `None` means open.
    pub auth: Option<Arc<dyn Auth>>,
    /// One info line per request.
    pub accesslog: bool,
}

/// Serves one HTTP connection of the Web API until it ends.
pub type Serve =
    Arc<dyn Fn(BoxStream, Settings) -> BoxFuture<'static, Result<(), String>> + Send + Sync>;

/// The API handler.
pub struct ApiHandler {
    serve: Option<Serve>,
    settings: Settings,
}

/// The factory for `api`, serving through `serve` (`None`: the Web API is not available in
/// this process).
pub fn factory(
    serve: Option<Serve>,
) -> impl Fn(&HandlerOpts) -> Result<Arc<dyn Handler>, BuildError> + Send + Sync + 'static {
    move |o| {
        let settings = Settings {
            prefix: o
                .md
                .string(&["pathPrefix", "api.pathPrefix"])?
                .unwrap_or_default(),
            auth: o.auth.enabled().then(|| Arc::clone(&o.auth)),
            accesslog: o
                .md
                .bool_or(&["accessLog", "api.accessLog", "accesslog"], false)?,
        };
        Ok(Arc::new(ApiHandler {
            serve: serve.clone(),
            settings,
        }))
    }
}

#[async_trait]
impl Handler for ApiHandler {
    async fn handle(&self, conn: Inbound, _ctx: ConnCtx) -> Result<(), HandlerError> {
        let Inbound::Stream(s) = conn else {
            return Err(HandlerError::Unsupported(
                "api handler needs a stream listener".into(),
            ));
        };
        let Some(serve) = &self.serve else {
            return Err(HandlerError::Unsupported(
                "the Web API is not available in this process".into(),
            ));
        };
        serve(s, self.settings.clone())
            .await
            .map_err(|e| HandlerError::Protocol(format!("api: {e}")))
    }
}
