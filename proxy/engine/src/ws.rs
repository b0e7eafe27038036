//! WebSocket as a byte stream, shared by the `ws`/`wss`/`mws`/`mwss` listeners and dialers.
//! Every binary (or text) message payload is appended to the read stream; every write is sent
//! as one binary message. Ping/pong is answered by tungstenite; a close frame is end of stream.

use std::collections::BTreeMap;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use futures::{Sink, Stream};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tokio_tungstenite::tungstenite::http::{HeaderName, HeaderValue, StatusCode};
use tokio_tungstenite::tungstenite::{client::IntoClientRequest, Message};
use tokio_tungstenite::WebSocketStream;

use crate::component::ListenerOpts;
use crate::error::BuildError;
use crate::io::BoxStream;
use crate::md::Md;

/// WebSocket options shared by listeners and dialers.
#[derive(Debug, Clone)]
pub struct WsOpts {
    /// Request path (`path`, default `/ws`).
    pub path: String,
    /// Dialer: `Host` of the upgrade request (`host`, default the node address).
    pub host: Option<String>,
    /// Extra headers (`header`): request headers for dialers, response headers for listeners.
    pub headers: Vec<(String, String)>,
    /// Upgrade deadline (`handshakeTimeout`, default 10 s).
    pub timeout: Duration,
}

impl WsOpts {
    /// Reads `path`/`ws.path`, `host`/`ws.host`, `header`, `handshakeTimeout`.
    pub fn from_md(md: &Md) -> Result<WsOpts, BuildError> {
        let path = md
            .string(&["path", "ws.path"])?
            .filter(|p| !p.is_empty())
            .unwrap_or_else(|| "/ws".into());
        let path = if path.starts_with('/') {
            path
        } else {
            format!("/{path}")
        };
        let host = md.string(&["host", "ws.host"])?.filter(|h| !h.is_empty());
        let headers = md
            .map(&["header", "ws.header"])?
            .unwrap_or_default()
            .into_iter()
            .collect::<BTreeMap<_, _>>()
            .into_iter()
            .collect();
        let timeout = md
            .duration(&["handshakeTimeout"])?
            .filter(|d| !d.is_zero())
            .unwrap_or(Duration::from_secs(10));
        md.mark_known(crate::md::TCP_KEYS);
        md.mark_known(&[
            "readHeaderTimeout",
            "readBufferSize",
            "writeBufferSize",
            "enableCompression",
            "ws.keepalive",
            "ttl",
            "tcp.keepalive",
            "backlog",
        ]);
        Ok(WsOpts {
            path,
            host,
            headers,
            timeout,
        })
    }

    /// Listener variant (checks the options at `o.path`).
    pub fn listener(o: &ListenerOpts) -> Result<WsOpts, BuildError> {
        WsOpts::from_md(&o.md)
    }
}

/// A WebSocket connection as a byte stream.
pub struct WsStream<S> {
    ws: WebSocketStream<S>,
    rbuf: Bytes,
}

fn ws_err(e: tokio_tungstenite::tungstenite::Error) -> io::Error {
    use tokio_tungstenite::tungstenite::Error as E;
    match e {
        E::Io(e) => e,
        E::ConnectionClosed | E::AlreadyClosed => {
            io::Error::new(io::ErrorKind::BrokenPipe, "websocket closed")
        }
        other => io::Error::other(other.to_string()),
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncRead for WsStream<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        out: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        loop {
            if !self.rbuf.is_empty() {
                let n = self.rbuf.len().min(out.remaining());
                let chunk = self.rbuf.split_to(n);
                out.put_slice(&chunk);
                return Poll::Ready(Ok(()));
            }
            match std::task::ready!(Pin::new(&mut self.ws).poll_next(cx)) {
                None => return Poll::Ready(Ok(())),
                Some(Err(e)) => {
                    use tokio_tungstenite::tungstenite::Error as E;
                    return match e {
                        E::ConnectionClosed | E::AlreadyClosed => Poll::Ready(Ok(())),
                        other => Poll::Ready(Err(ws_err(other))),
                    };
                }
                Some(Ok(Message::Binary(b))) => self.rbuf = b,
                Some(Ok(Message::Text(t))) => self.rbuf = Bytes::from(t.as_str().to_owned()),
                Some(Ok(Message::Close(_))) => return Poll::Ready(Ok(())),
                Some(Ok(_)) => {}
            }
        }
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncWrite for WsStream<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        std::task::ready!(Pin::new(&mut self.ws).poll_ready(cx)).map_err(ws_err)?;
        Pin::new(&mut self.ws)
            .start_send(Message::Binary(Bytes::copy_from_slice(buf)))
            .map_err(ws_err)?;
        // Push the message out now: callers that write a reply and drop the stream without
        // flushing (error paths) must not lose it. A pending flush finishes on the next call.
        let _ = Pin::new(&mut self.ws).poll_flush(cx);
        Poll::Ready(Ok(buf.len()))
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.ws).poll_flush(cx).map_err(ws_err)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match std::task::ready!(Pin::new(&mut self.ws).poll_close(cx)) {
            Ok(()) => Poll::Ready(Ok(())),
            Err(e) => {
                use tokio_tungstenite::tungstenite::Error as E;
                match e {
                    E::ConnectionClosed | E::AlreadyClosed => Poll::Ready(Ok(())),
                    other => Poll::Ready(Err(ws_err(other))),
                }
            }
        }
    }
}

/// Runs the client upgrade `GET ws://<host><path>` over `conn`.
pub async fn client(conn: BoxStream, host: &str, o: &WsOpts) -> io::Result<BoxStream> {
    let url = format!("ws://{host}{}", o.path);
    let mut req = url
        .into_client_request()
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e.to_string()))?;
    for (k, v) in &o.headers {
        let (Ok(k), Ok(v)) = (
            HeaderName::from_bytes(k.as_bytes()),
            HeaderValue::from_str(v),
        ) else {
            continue;
        };
        req.headers_mut().insert(k, v);
    }
    let (ws, _) = tokio::time::timeout(o.timeout, tokio_tungstenite::client_async(req, conn))
        .await
        .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "websocket handshake timed out"))?
        .map_err(ws_err)?;
    Ok(Box::new(WsStream {
        ws,
        rbuf: Bytes::new(),
    }))
}

/// Runs the server upgrade over `conn`; requests for another path get 404.
pub async fn server(conn: BoxStream, o: &WsOpts) -> io::Result<BoxStream> {
    let path = o.path.clone();
    let headers = o.headers.clone();
    #[allow(clippy::result_large_err)] // the callback type is tungstenite's
    let cb = move |req: &Request, mut resp: Response| -> Result<Response, ErrorResponse> {
        if req.uri().path() != path {
            let mut r = ErrorResponse::new(Some("not found".into()));
            *r.status_mut() = StatusCode::NOT_FOUND;
            return Err(r);
        }
        for (k, v) in &headers {
            if let (Ok(k), Ok(v)) = (
                HeaderName::from_bytes(k.as_bytes()),
                HeaderValue::from_str(v),
            ) {
                resp.headers_mut().insert(k, v);
            }
        }
        Ok(resp)
    };
    let ws = tokio::time::timeout(o.timeout, tokio_tungstenite::accept_hdr_async(conn, cb))
        .await
        .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "websocket handshake timed out"))?
        .map_err(ws_err)?;
    Ok(Box::new(WsStream {
        ws,
        rbuf: Bytes::new(),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test]
    async fn upgrade_and_bytes_both_ways() {
        let o = WsOpts {
            path: "/tun".into(),
            host: None,
            headers: vec![("X-Test".into(), "1".into())],
            timeout: Duration::from_secs(5),
        };
        let (a, b) = tokio::io::duplex(64 * 1024);
        let so = o.clone();
        let srv = tokio::spawn(async move {
            let mut s = server(Box::new(b), &so).await.unwrap();
            let mut buf = vec![0u8; 100_000];
            s.read_exact(&mut buf).await.unwrap();
            s.write_all(&buf[..10]).await.unwrap();
            s.flush().await.unwrap();
        });
        let mut c = client(Box::new(a), "example.test:80", &o).await.unwrap();
        c.write_all(&vec![9u8; 100_000]).await.unwrap();
        c.flush().await.unwrap();
        let mut back = [0u8; 10];
        c.read_exact(&mut back).await.unwrap();
        assert_eq!(back, [9u8; 10]);
        srv.await.unwrap();
    }

    #[tokio::test]
    async fn wrong_path_is_refused() {
        let o = WsOpts {
            path: "/ws".into(),
            host: None,
            headers: vec![],
            timeout: Duration::from_secs(5),
        };
        let (a, b) = tokio::io::duplex(64 * 1024);
        let so = o.clone();
        tokio::spawn(async move {
            let _ = server(Box::new(b), &so).await;
        });
        let other = WsOpts {
            path: "/other".into(),
            ..o
        };
        assert!(client(Box::new(a), "h:1", &other).await.is_err());
    }
}
