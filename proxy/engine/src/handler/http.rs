//! `http` handler: HTTP proxy. `CONNECT` tunnels, absolute-form (and Host-routed origin-form)
//! request forwarding, Basic proxy authentication (407), GOST's UDP-over-HTTP
//! (`X-Gost-Protocol: udp`) when `udp` is set.
//!
//! ```yaml
//! services:
//! - name: http
//!   addr: :8080
//!   handler: {type: http, auth: {username: u, password: p}}
//! ```
//!
//! | key | type | default | meaning |
//! |---|---|---|---|
//! | `readTimeout` | duration | 15s | the request head must arrive within this (else 408 and close; GOST has no deadline here); also upstream response-header timeout |
//! | `maxHeaderBytes` | int | 65536 | largest request head (request line and headers; more: 431 and close) |
//! | `maxHeaders` | int | 100 | most header lines (more: 431 and close) |
//! | `idleTimeout` | duration | none | per-direction idle timeout for tunnels |
//! | `udp` | bool | false | allow UDP over HTTP (`X-Gost-Protocol: udp`) |
//! | `proxyAgent` / `http.proxyAgent` | string | `gost/3.0` | `Proxy-Agent` of proxy-generated responses |
//! | `header` / `http.header` | map | none | extra headers on proxy-generated responses |
//! | `authBasicRealm` | string | `gost` | realm of the 407 challenge |
//! | `udp.bufferSize` | int | 4096 | largest datagram |
//!
//! Status codes as GOST answers them: 407 bad/missing credentials, 400 `PRI` or a non-http
//! scheme, 403 bypassed target (or UDP not enabled), 503 target unreachable. Beyond GOST, a
//! head that does not parse gets 400, one over the caps 431, one not complete in time 408;
//! each closes only that connection.

use std::convert::Infallible;
use std::sync::Arc;

use async_trait::async_trait;
use base64::Engine as _;
use bytes::Bytes;
use http_body_util::{combinators::BoxBody, BodyExt, Empty};
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::addr::with_default_port;
use crate::component::{ConnCtx, Handler, HandlerError, HandlerOpts, Inbound};
use crate::error::{BuildError, DialError};
use crate::handler::Common;
use crate::io::{pipe, BoxStream, Outbound, Rewind};

/// Default `maxHeaderBytes`.
const MAX_HEAD: usize = 64 * 1024;
/// Default `maxHeaders`.
const MAX_HEADERS: usize = 100;

type Body = BoxBody<Bytes, Box<dyn std::error::Error + Send + Sync>>;

/// The HTTP proxy server.
#[derive(Clone)]
pub struct HttpHandler {
    o: HandlerOpts,
    common: Common,
    udp: bool,
    udp_buf: usize,
    proxy_agent: String,
    headers: Vec<(String, String)>,
    realm: String,
    max_head: usize,
    max_headers: usize,
}

/// Factory for `http`.
pub fn new(o: &HandlerOpts) -> Result<Arc<dyn Handler>, BuildError> {
    Ok(Arc::new(build(o)?))
}

/// Builds the handler (also used by `auto`).
pub fn build(o: &HandlerOpts) -> Result<HttpHandler, BuildError> {
    let common = Common::parse(o)?;
    let udp = o.md.bool_or(&["udp", "enableUDP"], false)?;
    let udp_buf =
        o.md.int(&["udp.bufferSize", "udpBufferSize"])?
            .unwrap_or(4096)
            .clamp(512, 65535) as usize;
    let proxy_agent =
        o.md.string(&["proxyAgent", "http.proxyAgent"])?
            .unwrap_or_else(|| "gost/3.0".into());
    let headers = o.md.map(&["header", "http.header"])?.unwrap_or_default();
    let realm =
        o.md.string(&["authBasicRealm"])?
            .unwrap_or_else(|| "gost".into());
    let bounded = |keys: &[&str], def: usize, lo: i64, hi: i64| -> Result<usize, BuildError> {
        match o.md.int(keys)? {
            None => Ok(def),
            Some(v) if (lo..=hi).contains(&v) => Ok(v as usize),
            Some(v) => Err(BuildError::new(
                format!("{}.metadata.{}", o.path, keys[0]),
                format!("{v} is out of range (accepted: {lo} to {hi})"),
            )),
        }
    };
    let max_head = bounded(&["maxHeaderBytes"], MAX_HEAD, 1024, 16 << 20)?;
    let max_headers = bounded(&["maxHeaders"], MAX_HEADERS, 1, 10_000)?;
    o.md.mark_known(&["keepalive", "compression", "probeResist", "knock"]);
    Ok(HttpHandler {
        o: o.clone(),
        common,
        udp,
        udp_buf,
        proxy_agent,
        headers,
        realm,
        max_head,
        max_headers,
    })
}

/// Why no request head could be read.
#[derive(Debug)]
enum HeadError {
    /// The client closed first.
    Closed,
    /// Over `maxHeaderBytes` or `maxHeaders`: 431.
    TooLarge(&'static str),
    /// Not HTTP/1: 400.
    Malformed(String),
    /// A read failed.
    Io(std::io::Error),
}

/// A parsed request head.
struct Head {
    method: String,
    uri: String,
    headers: Vec<(String, String)>,
}

impl Head {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn count(&self, name: &str) -> usize {
        self.headers
            .iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case(name))
            .count()
    }

    /// Framing or routing a recipient could read two ways (request smuggling shapes): these
    /// get 400 and a closed connection, never a forward.
    fn ambiguity(&self) -> Option<&'static str> {
        if self.count("Host") > 1 {
            return Some("more than one Host header");
        }
        if self.count("Transfer-Encoding") > 0 && self.count("Content-Length") > 0 {
            return Some("both Transfer-Encoding and Content-Length");
        }
        None
    }
}

/// Reads one request head of at most `max_head` bytes and `max_headers` header lines;
/// returns it, every byte read so far, and the head's length.
async fn read_head(
    conn: &mut BoxStream,
    max_head: usize,
    max_headers: usize,
) -> Result<(Head, Vec<u8>, usize), HeadError> {
    let mut buf = Vec::with_capacity(4096);
    let mut tmp = [0u8; 4096];
    loop {
        let room = (max_head + 1).saturating_sub(buf.len()).clamp(1, tmp.len());
        let n = conn.read(&mut tmp[..room]).await.map_err(HeadError::Io)?;
        if n == 0 {
            return Err(HeadError::Closed);
        }
        buf.extend_from_slice(&tmp[..n]);
        let mut hs = vec![httparse::EMPTY_HEADER; max_headers];
        let mut req = httparse::Request::new(&mut hs);
        match req.parse(&buf) {
            Ok(httparse::Status::Complete(len)) => {
                let head = Head {
                    method: req.method.unwrap_or("").to_string(),
                    uri: req.path.unwrap_or("").to_string(),
                    headers: req
                        .headers
                        .iter()
                        .map(|h| {
                            (
                                h.name.to_string(),
                                String::from_utf8_lossy(h.value).to_string(),
                            )
                        })
                        .collect(),
                };
                // Keep the whole buffer: forwarding replays the head to the HTTP server.
                return Ok((head, buf, len));
            }
            Ok(httparse::Status::Partial) if buf.len() <= max_head => continue,
            Ok(httparse::Status::Partial) => {
                return Err(HeadError::TooLarge("request head over maxHeaderBytes"))
            }
            Err(httparse::Error::TooManyHeaders) => {
                return Err(HeadError::TooLarge("more header lines than maxHeaders"))
            }
            Err(e) => return Err(HeadError::Malformed(format!("malformed HTTP request: {e}"))),
        }
    }
}

fn decode_gost_target(v: &str) -> Option<String> {
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let raw = b64.decode(v.trim()).ok()?;
    if raw.len() < 5 {
        return None;
    }
    let host = b64.decode(&raw[4..]).ok()?;
    let crc = u32::from_be_bytes([raw[0], raw[1], raw[2], raw[3]]);
    (crc32fast::hash(&host) == crc)
        .then(|| String::from_utf8(host).ok())
        .flatten()
}

/// Splits `http://host[:port]/path` into (scheme, authority).
fn absolute_target(uri: &str) -> Option<(String, String)> {
    let (scheme, rest) = uri.split_once("://")?;
    let auth = rest.split(['/', '?']).next().unwrap_or("");
    let auth = auth.rsplit('@').next().unwrap_or(auth);
    Some((scheme.to_ascii_lowercase(), auth.to_string()))
}

fn basic_credentials(v: Option<&str>) -> Option<(String, String)> {
    let v = v?.trim();
    let (scheme, b) = v.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let raw = base64::engine::general_purpose::STANDARD
        .decode(b.trim())
        .ok()?;
    let s = String::from_utf8(raw).ok()?;
    let (u, p) = s.split_once(':').unwrap_or((s.as_str(), ""));
    Some((u.to_string(), p.to_string()))
}

impl HttpHandler {
    fn simple_response(&self, status: StatusCode, extra: &[(&str, String)]) -> Vec<u8> {
        let mut s = format!(
            "HTTP/1.1 {} {}\r\nProxy-Agent: {}\r\n",
            status.as_u16(),
            status.canonical_reason().unwrap_or(""),
            self.proxy_agent
        );
        for (k, v) in &self.headers {
            s.push_str(&format!("{k}: {v}\r\n"));
        }
        for (k, v) in extra {
            s.push_str(&format!("{k}: {v}\r\n"));
        }
        s.push_str("Content-Length: 0\r\n\r\n");
        s.into_bytes()
    }

    fn authenticate(&self, proxy_auth: Option<&str>) -> Option<String> {
        if !self.o.auth.enabled() {
            return Some(String::new());
        }
        let (u, p) = basic_credentials(proxy_auth)?;
        self.o.auth.authenticate(&u, &p)
    }

    fn challenge(&self) -> Vec<(&'static str, String)> {
        vec![
            (
                "Proxy-Authenticate",
                format!("Basic realm=\"{}\"", self.realm),
            ),
            ("Connection", "close".into()),
        ]
    }

    /// Serves one HTTP proxy connection.
    pub async fn serve(&self, mut conn: BoxStream, ctx: ConnCtx) -> Result<(), HandlerError> {
        let read = read_head(&mut conn, self.max_head, self.max_headers);
        let failed = match tokio::time::timeout(self.common.read_timeout, read).await {
            Ok(Ok(head)) => Ok(head),
            Err(_) => Err((
                Some(StatusCode::REQUEST_TIMEOUT),
                "request head timed out".to_string(),
            )),
            Ok(Err(HeadError::TooLarge(w))) => Err((
                Some(StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE),
                w.to_string(),
            )),
            Ok(Err(HeadError::Malformed(w))) => Err((Some(StatusCode::BAD_REQUEST), w)),
            Ok(Err(HeadError::Closed)) => Err((
                None,
                "connection closed before a complete request head".to_string(),
            )),
            Ok(Err(HeadError::Io(e))) => return Err(e.into()),
        };
        let failed = failed.and_then(|h| match h.0.ambiguity() {
            Some(why) => Err((
                Some(StatusCode::BAD_REQUEST),
                format!("ambiguous request: {why}"),
            )),
            None => Ok(h),
        });
        let (head, buf, head_len) = match failed {
            Ok(h) => h,
            Err((status, msg)) => {
                if let Some(st) = status {
                    let close = [("Connection", "close".to_string())];
                    let _ = conn.write_all(&self.simple_response(st, &close)).await;
                    let _ = conn.shutdown().await;
                }
                return Err(HandlerError::Protocol(msg));
            }
        };
        let connect = head.method.eq_ignore_ascii_case("CONNECT");
        let udp = head
            .header("X-Gost-Protocol")
            .is_some_and(|v| v.eq_ignore_ascii_case("udp"));
        if !connect && !udp {
            // Forwarding: hand the connection (head replayed) to the HTTP/1 server.
            let s: BoxStream = Box::new(Rewind::new(buf, conn));
            return self.forward(s, ctx).await;
        }
        let leftover = buf[head_len..].to_vec();
        let client_id =
            match self.authenticate(head.header("Proxy-Authorization")) {
                Some(id) => id,
                None => {
                    conn.write_all(&self.simple_response(
                        StatusCode::PROXY_AUTHENTICATION_REQUIRED,
                        &self.challenge(),
                    ))
                    .await?;
                    return Err(HandlerError::Auth(
                        basic_credentials(head.header("Proxy-Authorization"))
                            .map(|c| c.0)
                            .unwrap_or_default(),
                    ));
                }
            };
        let mut target = head.uri.clone();
        if let Some(t) = head
            .header("Gost-Target")
            .or(head.header("X-Gost-Target"))
            .and_then(decode_gost_target)
        {
            target = t;
        }
        let target = with_default_port(&target, 80);
        if udp {
            return self.udp(conn, &ctx, &client_id).await;
        }
        let up = match self
            .common
            .connect(&self.o, &ctx, &client_id, &target)
            .await
        {
            Ok(s) => s,
            Err(e) => {
                let status = if matches!(e, DialError::Bypassed(_)) {
                    StatusCode::FORBIDDEN
                } else {
                    StatusCode::SERVICE_UNAVAILABLE
                };
                conn.write_all(&self.simple_response(status, &[])).await?;
                return Err(e.into());
            }
        };
        conn.write_all(
            format!(
                "HTTP/1.1 200 Connection established\r\nProxy-Agent: {}\r\n\r\n",
                self.proxy_agent
            )
            .as_bytes(),
        )
        .await?;
        conn.flush().await?;
        let client: BoxStream = if leftover.is_empty() {
            conn
        } else {
            Box::new(Rewind::new(leftover, conn))
        };
        pipe(client, up, self.common.idle_timeout).await;
        Ok(())
    }

    async fn udp(
        &self,
        mut conn: BoxStream,
        ctx: &ConnCtx,
        client_id: &str,
    ) -> Result<(), HandlerError> {
        if !self.udp {
            conn.write_all(&self.simple_response(StatusCode::FORBIDDEN, &[]))
                .await?;
            return Err(HandlerError::Unsupported(
                "UDP over HTTP is not enabled (handler metadata udp: true)".into(),
            ));
        }
        let up = match self
            .o
            .router
            .dial("udp", "", self.common.hash_key(ctx, client_id, ""))
            .await
        {
            Ok(Outbound::Packet(p)) => p,
            Ok(Outbound::Stream(_)) => {
                return Err(HandlerError::Unsupported(
                    "chain returned a stream for UDP".into(),
                ))
            }
            Err(e) => {
                conn.write_all(&self.simple_response(StatusCode::SERVICE_UNAVAILABLE, &[]))
                    .await?;
                return Err(e.into());
            }
        };
        conn.write_all(&self.simple_response(StatusCode::OK, &[]))
            .await?;
        crate::handler::relay_stream_packets(conn, up, self.udp_buf, &self.o).await;
        Ok(())
    }

    async fn forward(&self, conn: BoxStream, ctx: ConnCtx) -> Result<(), HandlerError> {
        let this = self.clone();
        // The first target that could not be reached: the connection then ends as a handler
        // error (GOST's `gost_service_handler_errors_total`), after every answer was sent.
        let failed: Arc<parking_lot::Mutex<Option<DialError>>> = Arc::default();
        let seen = failed.clone();
        let svc = hyper::service::service_fn(move |req: Request<Incoming>| {
            let this = this.clone();
            let ctx = ctx.clone();
            let seen = seen.clone();
            async move { Ok::<_, Infallible>(this.forward_one(req, &ctx, &seen).await) }
        });
        let r = hyper::server::conn::http1::Builder::new()
            // later requests on the connection get the first one's limits: the head deadline
            // and (at least hyper's 8 KiB minimum) the head size cap
            .timer(hyper_util::rt::TokioTimer::new())
            .header_read_timeout(self.common.read_timeout)
            .max_buf_size(self.max_head.max(8192))
            .preserve_header_case(true)
            .title_case_headers(true)
            .serve_connection(TokioIo::new(conn), svc)
            .with_upgrades()
            .await;
        r.map_err(|e| HandlerError::Protocol(format!("http: {e}")))?;
        let first = failed.lock().take();
        match first {
            Some(e) => Err(e.into()),
            None => Ok(()),
        }
    }

    fn response(
        &self,
        status: StatusCode,
        close: bool,
        extra: Vec<(&'static str, String)>,
    ) -> Response<Body> {
        let mut b = Response::builder()
            .status(status)
            .header("Proxy-Agent", self.proxy_agent.as_str());
        for (k, v) in &self.headers {
            b = b.header(k.as_str(), v.as_str());
        }
        for (k, v) in extra {
            b = b.header(k, v);
        }
        if close {
            b = b.header("Connection", "close");
        }
        b.body(
            Empty::new()
                .map_err(|e: Infallible| -> Box<dyn std::error::Error + Send + Sync> { match e {} })
                .boxed(),
        )
        .unwrap_or_else(|_| Response::new(Empty::new().map_err(|e: Infallible| match e {}).boxed()))
    }

    async fn forward_one(
        &self,
        mut req: Request<Incoming>,
        ctx: &ConnCtx,
        failed: &parking_lot::Mutex<Option<DialError>>,
    ) -> Response<Body> {
        let hdr = |name: &str| {
            req.headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
        };
        let client_id = match self.authenticate(hdr("Proxy-Authorization").as_deref()) {
            Some(id) => id,
            None => {
                tracing::debug!(sid = %ctx.sid, "http proxy authentication failed");
                return self.response(
                    StatusCode::PROXY_AUTHENTICATION_REQUIRED,
                    true,
                    vec![(
                        "Proxy-Authenticate",
                        format!("Basic realm=\"{}\"", self.realm),
                    )],
                );
            }
        };
        if req.headers().get_all(hyper::header::HOST).iter().count() > 1 {
            return self.response(StatusCode::BAD_REQUEST, true, vec![]);
        }
        if req.method().as_str() == "PRI" {
            return self.response(StatusCode::BAD_REQUEST, true, vec![]);
        }
        let uri = req.uri().to_string();
        let target = match absolute_target(&uri) {
            Some((scheme, _)) if scheme != "http" => {
                return self.response(StatusCode::BAD_REQUEST, true, vec![])
            }
            Some((_, auth)) => auth,
            None => match hdr("Host") {
                Some(h) if !h.is_empty() => h,
                _ => return self.response(StatusCode::BAD_REQUEST, true, vec![]),
            },
        };
        let target = match hdr("Gost-Target")
            .or(hdr("X-Gost-Target"))
            .and_then(|v| decode_gost_target(&v))
        {
            Some(t) => t,
            None => target,
        };
        let target = with_default_port(&target, 80);
        if self.o.bypass.bypass("tcp", &target) {
            return self.response(StatusCode::FORBIDDEN, false, vec![]);
        }
        if req.method() == hyper::Method::CONNECT {
            return self
                .connect_upgrade(req, ctx, &client_id, target, failed)
                .await;
        }
        for h in [
            "Proxy-Authorization",
            "Proxy-Connection",
            "Gost-Target",
            "X-Gost-Target",
            "Gost-Record",
        ] {
            req.headers_mut().remove(h);
        }
        if let Some(pq) = req.uri().path_and_query().cloned() {
            if let Ok(u) = pq.as_str().parse() {
                *req.uri_mut() = u;
            }
        }
        if !req.headers().contains_key(hyper::header::HOST) {
            if let Ok(v) = target.parse() {
                req.headers_mut().insert(hyper::header::HOST, v);
            }
        }
        let up = match self
            .o
            .router
            .dial(
                "tcp",
                &target,
                self.common.hash_key(ctx, &client_id, &target),
            )
            .await
        {
            Ok(Outbound::Stream(s)) => s,
            Ok(Outbound::Packet(_)) => {
                return self.response(StatusCode::SERVICE_UNAVAILABLE, false, vec![])
            }
            Err(e) => {
                tracing::warn!(sid = %ctx.sid, dst = %target, error = %e, "http forward dial");
                failed.lock().get_or_insert(e);
                return self.response(StatusCode::SERVICE_UNAVAILABLE, false, vec![]);
            }
        };
        let (mut sender, conn) = match hyper::client::conn::http1::handshake(TokioIo::new(up)).await
        {
            Ok(x) => x,
            Err(_) => return self.response(StatusCode::SERVICE_UNAVAILABLE, false, vec![]),
        };
        tokio::spawn(async move {
            let _ = conn.with_upgrades().await;
        });
        let resp = tokio::time::timeout(self.common.read_timeout, sender.send_request(req)).await;
        match resp {
            Ok(Ok(r)) => r.map(|b| {
                b.map_err(|e| -> Box<dyn std::error::Error + Send + Sync> { Box::new(e) })
                    .boxed()
            }),
            Ok(Err(e)) => {
                tracing::warn!(sid = %ctx.sid, dst = %target, error = %e, "http forward");
                self.response(StatusCode::SERVICE_UNAVAILABLE, false, vec![])
            }
            Err(_) => self.response(StatusCode::SERVICE_UNAVAILABLE, false, vec![]),
        }
    }

    async fn connect_upgrade(
        &self,
        req: Request<Incoming>,
        ctx: &ConnCtx,
        client_id: &str,
        target: String,
        failed: &parking_lot::Mutex<Option<DialError>>,
    ) -> Response<Body> {
        let up = match self
            .o
            .router
            .dial(
                "tcp",
                &target,
                self.common.hash_key(ctx, client_id, &target),
            )
            .await
        {
            Ok(Outbound::Stream(s)) => s,
            Ok(Outbound::Packet(_)) => {
                return self.response(StatusCode::SERVICE_UNAVAILABLE, false, vec![])
            }
            Err(e) => {
                failed.lock().get_or_insert(e);
                return self.response(StatusCode::SERVICE_UNAVAILABLE, false, vec![]);
            }
        };
        let idle = self.common.idle_timeout;
        tokio::spawn(async move {
            if let Ok(upgraded) = hyper::upgrade::on(req).await {
                pipe(TokioIo::new(upgraded), up, idle).await;
            }
        });
        let mut r = self.response(StatusCode::OK, false, vec![]);
        r.extensions_mut()
            .insert(hyper::ext::ReasonPhrase::from_static(
                b"Connection established",
            ));
        r
    }
}

#[async_trait]
impl Handler for HttpHandler {
    async fn handle(&self, conn: Inbound, ctx: ConnCtx) -> Result<(), HandlerError> {
        match conn {
            Inbound::Stream(s) => self.serve(s, ctx).await,
            Inbound::Datagram(_) => Err(HandlerError::Unsupported(
                "http handler needs a stream listener".into(),
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gost_target_header_decodes() {
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let host = b"example.com:443";
        let inner = b64.encode(host);
        let mut raw = crc32fast::hash(inner.as_bytes()).to_be_bytes().to_vec();
        raw.extend_from_slice(inner.as_bytes());
        // CRC is over the decoded host, so this one is wrong and must be ignored.
        assert_eq!(decode_gost_target(&b64.encode(&raw)), None);
        let mut raw = crc32fast::hash(host).to_be_bytes().to_vec();
        raw.extend_from_slice(inner.as_bytes());
        assert_eq!(
            decode_gost_target(&b64.encode(&raw)).as_deref(),
            Some("example.com:443")
        );
    }

    #[test]
    fn absolute_and_basic() {
        assert_eq!(
            absolute_target("http://a.b:81/x?y"),
            Some(("http".into(), "a.b:81".into()))
        );
        assert_eq!(absolute_target("/x"), None);
        assert_eq!(
            basic_credentials(Some("Basic dTpw")),
            Some(("u".into(), "p".into()))
        );
        assert_eq!(basic_credentials(Some("Bearer x")), None);
    }
}
