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

use std::sync::Arc;

use async_trait::async_trait;
use hyper_util::rt::TokioIo;

use crate::api::{ApiSettings, CredentialCheck};
use crate::component::{ConnCtx, Handler, HandlerError, HandlerOpts, Inbound};
use crate::error::BuildError;
use crate::store::{AuthRef, Store};

/// The API handler.
pub struct ApiHandler {
    store: Arc<Store>,
    prefix: String,
    accesslog: bool,
    auth: AuthRef,
}

/// Factory for `api`.
pub fn new(o: &HandlerOpts) -> Result<Arc<dyn Handler>, BuildError> {
    Ok(Arc::new(ApiHandler {
        store: Arc::clone(&o.store),
        prefix: o
            .md
            .string(&["pathPrefix", "api.pathPrefix"])?
            .unwrap_or_default(),
        accesslog: o
            .md
            .bool_or(&["accessLog", "api.accessLog", "accesslog"], false)?,
        auth: o.auth.clone(),
    }))
}

#[async_trait]
impl Handler for ApiHandler {
    async fn handle(&self, conn: Inbound, _ctx: ConnCtx) -> Result<(), HandlerError> {
        let Inbound::Stream(s) = conn else {
            return Err(HandlerError::Unsupported(
                "api handler needs a stream listener".into(),
            ));
        };
        let Some(ctx) = self.store.api.read().clone() else {
            return Err(HandlerError::Unsupported(
                "the Web API is not available in this process".into(),
            ));
        };
        let check: Option<CredentialCheck> = if self.auth.enabled() {
            let (auth, store) = (self.auth.clone(), Arc::clone(&self.store));
            Some(Arc::new(move |u: &str, p: &str| {
                auth.authenticate(&store, u, p).is_some()
            }))
        } else {
            None
        };
        let app = crate::api::router(
            ctx,
            ApiSettings {
                prefix: self.prefix.clone(),
                check,
                accesslog: self.accesslog,
            },
        );
        hyper::server::conn::http1::Builder::new()
            .serve_connection(
                TokioIo::new(s),
                hyper_util::service::TowerToHyperService::new(app),
            )
            .await
            .map_err(|e| HandlerError::Protocol(format!("api: {e}")))
    }
}
