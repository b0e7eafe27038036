//! Fuzz harness shared by the libFuzzer targets in `fuzz_targets/` (nightly, `cargo fuzz`) and
//! by `proxy/engine/tests/fuzz_corpus.rs`, which replays the committed corpora on stable.
//!
//! Each entry point feeds one untrusted input to the engine's real code path: the protocol
//! handlers get the input as the client's bytes over an in-memory stream (then end of
//! stream), with a router whose upstream is an in-memory stream that is already closed, so a
//! request that parses goes on into the piping code without leaving the process. An entry
//! point panics only on what the engine must never do: panic itself, or hang on an input that
//! has ended (a handler that is still running 5 s after the client's end of stream).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use async_trait::async_trait;
use gost_engine::component::{Auth, Bypass, ConnCtx, Handler, HandlerOpts, Inbound, Route};
use gost_engine::error::DialError;
use gost_engine::io::{BoxStream, Outbound};
use gost_engine::md::Md;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The deadline a handler has to finish after its client's end of stream.
const HANG: Duration = Duration::from_secs(5);

fn runtime() -> &'static tokio::runtime::Runtime {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
    })
}

/// Upstream that accepts every dial and hangs up at once.
struct ClosedUpstream;

#[async_trait]
impl Route for ClosedUpstream {
    async fn dial(
        &self,
        network: &str,
        addr: &str,
        _hash_key: Option<String>,
    ) -> Result<Outbound, DialError> {
        if network != "tcp" {
            return Err(DialError::Upstream(format!(
                "{network} {addr}: not in the harness"
            )));
        }
        let (near, far) = tokio::io::duplex(1024);
        drop(far);
        Ok(Outbound::Stream(Box::new(near)))
    }

    async fn bind(
        &self,
        _network: &str,
        _addr: &str,
    ) -> Result<Option<gost_engine::component::Bound>, DialError> {
        Ok(None)
    }

    fn has_chain(&self) -> bool {
        false
    }
}

/// `user`/`pass` when on; everyone when off.
struct UserPass(bool);

impl Auth for UserPass {
    fn enabled(&self) -> bool {
        self.0
    }
    fn authenticate(&self, user: &str, pass: &str) -> Option<String> {
        if !self.0 {
            return Some(String::new());
        }
        gost_engine::policy::ct_eq(user.as_bytes(), b"user")
            .then_some(())
            .filter(|_| gost_engine::policy::ct_eq(pass.as_bytes(), b"pass"))
            .map(|_| user.to_string())
    }
}

struct NoBypass;

impl Bypass for NoBypass {
    fn bypass(&self, _network: &str, _addr: &str) -> bool {
        false
    }
}

type Factory = fn(&HandlerOpts) -> Result<Arc<dyn Handler>, gost_engine::error::BuildError>;

fn handler(kind: &str, factory: Factory, auth: bool) -> Arc<dyn Handler> {
    let mut md = gost_config::Metadata::new();
    md.insert("readTimeout".into(), "1s".into());
    let opts = HandlerOpts {
        path: format!("services[fuzz].handler({kind})"),
        md: Arc::new(Md::new("services[fuzz].handler.metadata", &md)),
        router: Arc::new(ClosedUpstream),
        auth: Arc::new(UserPass(auth)),
        bypass: Arc::new(NoBypass),
        forwarder: None,
        tls: None,
    };
    factory(&opts).unwrap()
}

fn ctx() -> ConnCtx {
    let a: SocketAddr = "127.0.0.1:40000".parse().unwrap();
    ConnCtx {
        sid: "fuzz".into(),
        service: Arc::from("fuzz"),
        src: a,
        local: a,
    }
}

/// Writes `data` as the client, closes the client's write side, reads whatever comes back
/// and waits for the handler (bounded by `HANG`).
fn drive(h: &Arc<dyn Handler>, data: &[u8]) {
    let h = Arc::clone(h);
    let data = data.to_vec();
    runtime().block_on(async move {
        let (mut client, server) = tokio::io::duplex(64 * 1024);
        let serve = tokio::spawn(async move {
            let _ = h.handle(Inbound::Stream(Box::new(server)), ctx()).await;
        });
        let client_side = async move {
            let _ = client.write_all(&data).await;
            let _ = client.shutdown().await;
            let mut sink = [0u8; 16 * 1024];
            while let Ok(n) = client.read(&mut sink).await {
                if n == 0 {
                    break;
                }
            }
        };
        let done = tokio::time::timeout(HANG, async {
            client_side.await;
            serve.await
        })
        .await;
        match done {
            Ok(Ok(())) => {}
            Ok(Err(e)) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
            Ok(Err(e)) => panic!("handler task: {e}"),
            Err(_) => panic!("handler still running {HANG:?} after the client's end of stream"),
        }
    });
}

macro_rules! handler_target {
    ($(#[$doc:meta])* $name:ident, $kind:literal, $factory:path) => {
        $(#[$doc])*
        pub fn $name(data: &[u8]) {
            static PLAIN: OnceLock<Arc<dyn Handler>> = OnceLock::new();
            static AUTH: OnceLock<Arc<dyn Handler>> = OnceLock::new();
            // The first byte picks authentication on (odd) or off (even).
            let Some((&sel, rest)) = data.split_first() else { return };
            let h = if sel & 1 == 1 {
                AUTH.get_or_init(|| handler($kind, $factory, true))
            } else {
                PLAIN.get_or_init(|| handler($kind, $factory, false))
            };
            drive(h, rest);
        }
    };
}

handler_target!(
    /// SOCKS4/4a requests (USERID and hostname NUL handling, long hostnames).
    socks4, "socks4", gost_engine::handler::socks4::new
);
handler_target!(
    /// SOCKS5 greeting, RFC 1929 sub-negotiation and request (CONNECT/BIND/UDP ASSOCIATE).
    socks5, "socks5", gost_engine::handler::socks5::new
);
handler_target!(
    /// HTTP request head, CONNECT authority and `Proxy-Authorization`.
    http, "http", gost_engine::handler::http::new
);
handler_target!(
    /// GOST relay request frames (version, flags, features, TLV lengths).
    relay, "relay", gost_engine::handler::relay::new
);
handler_target!(
    /// The `auto` handler's protocol sniffing in front of SOCKS4/5 and HTTP.
    auto, "auto", gost_engine::handler::auto::new
);

/// SOCKS5 UDP datagram headers (RSV, FRAG, ATYP) as datagrams and as the framed form UDP
/// over TCP uses.
pub fn socks5_udp(data: &[u8]) {
    if let Ok((addr, n)) = gost_engine::socks::parse_udp_datagram(data) {
        assert!(
            n <= data.len(),
            "header length {n} past the datagram ({})",
            data.len()
        );
        assert!(!addr.is_empty());
    }
    let data = data.to_vec();
    runtime().block_on(async move {
        let mut r = &data[..];
        let mut buf = vec![0u8; 4096];
        for _ in 0..64 {
            match gost_engine::socks::read_udp_frame(&mut r, &mut buf).await {
                Ok((n, _)) => assert!(n <= buf.len()),
                Err(_) => break,
            }
        }
    });
}

/// smux v1 frames from a peer: the server side of a session accepts and reads every stream.
pub fn smux(data: &[u8]) {
    let data = data.to_vec();
    runtime().block_on(async move {
        let (mut peer, conn) = tokio::io::duplex(64 * 1024);
        let session = gost_engine::mux::Session::new(
            Box::new(conn) as BoxStream,
            gost_engine::mux::Config::default(),
            false,
        );
        let peer_side = async move {
            let _ = peer.write_all(&data).await;
            let _ = peer.shutdown().await;
            let mut sink = [0u8; 4096];
            while let Ok(n) = peer.read(&mut sink).await {
                if n == 0 {
                    break;
                }
            }
        };
        let accept_side = async {
            let mut readers = Vec::new();
            for _ in 0..256 {
                match session.accept().await {
                    Ok(mut s) => readers.push(tokio::spawn(async move {
                        let mut b = [0u8; 1024];
                        while let Ok(n) = s.read(&mut b).await {
                            if n == 0 {
                                break;
                            }
                            let _ = s.write_all(&b[..n]).await;
                        }
                    })),
                    Err(_) => break,
                }
            }
            for r in readers {
                r.await.unwrap();
            }
        };
        let done = tokio::time::timeout(HANG, async {
            tokio::join!(peer_side, accept_side);
        })
        .await;
        session.close();
        assert!(
            done.is_ok(),
            "smux session still running {HANG:?} after the peer's end of stream"
        );
    });
}

/// WebSocket upgrade request and frames on the server side of the `ws` transport.
pub fn ws(data: &[u8]) {
    static OPTS: OnceLock<gost_engine::ws::WsOpts> = OnceLock::new();
    let opts = OPTS
        .get_or_init(|| {
            gost_engine::ws::WsOpts::from_md(&Md::empty("services[fuzz].listener.metadata"))
                .unwrap()
        })
        .clone();
    let data = data.to_vec();
    runtime().block_on(async move {
        let (mut client, conn) = tokio::io::duplex(64 * 1024);
        let server = async move {
            if let Ok(mut s) = gost_engine::ws::server(Box::new(conn), &opts).await {
                let mut b = [0u8; 4096];
                while let Ok(n) = s.read(&mut b).await {
                    if n == 0 {
                        break;
                    }
                }
            }
        };
        let client_side = async move {
            let _ = client.write_all(&data).await;
            let _ = client.shutdown().await;
            let mut sink = [0u8; 4096];
            while let Ok(n) = client.read(&mut sink).await {
                if n == 0 {
                    break;
                }
            }
        };
        let done = tokio::time::timeout(HANG, async {
            tokio::join!(server, client_side);
        })
        .await;
        assert!(
            done.is_ok(),
            "ws server still running {HANG:?} after the client's end of stream"
        );
    });
}

fn engine() -> &'static Arc<gost_engine::Engine> {
    static ENGINE: OnceLock<Arc<gost_engine::Engine>> = OnceLock::new();
    ENGINE.get_or_init(|| gost_engine::Engine::new(gost_engine::EngineOpts::default()))
}

/// `-L` and `-F` values: the first line is a `-L` service, every further line a `-F` node; what
/// builds is also validated.
pub fn url(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let mut lines = text.split('\n');
    let service: Vec<String> = lines.next().map(str::to_string).into_iter().collect();
    let nodes: Vec<String> = lines.take(8).map(str::to_string).collect();
    static KINDS: OnceLock<gost_engine::Kinds> = OnceLock::new();
    let kinds = KINDS.get_or_init(gost_engine::Kinds::builtin);
    if let Ok(cfg) = gost_engine::cli::build(&service, &nodes, None, kinds) {
        let _ = engine().validate(&cfg);
    }
}

/// A config document; the first byte picks YAML (even) or JSON (odd). What parses is also
/// validated.
pub fn config(data: &[u8]) {
    let Some((&sel, rest)) = data.split_first() else {
        return;
    };
    let Ok(text) = std::str::from_utf8(rest) else {
        return;
    };
    let fmt = if sel & 1 == 1 {
        gost_config::Format::Json
    } else {
        gost_config::Format::Yaml
    };
    if let Ok(cfg) = gost_config::Config::parse(text, fmt) {
        let _ = engine().validate(&cfg);
    }
}

/// A target's entry point.
pub type Target = fn(&[u8]);

/// Every target by name, for the corpus replay and the run script.
pub const TARGETS: &[(&str, Target)] = &[
    ("socks4", socks4),
    ("socks5", socks5),
    ("socks5_udp", socks5_udp),
    ("http", http),
    ("relay", relay),
    ("auto", auto),
    ("smux", smux),
    ("ws", ws),
    ("url", url),
    ("config", config),
];
