//! `gost-proxy fetch [-x http://proxy:port] [-X METHOD] [-d DATA] [-T SECONDS] URL`: one plain
//! HTTP request, the body to stdout. The sidecar image is `FROM scratch` with a static busybox
//! for hook commands, and a static glibc program cannot resolve names or, for busybox's `wget`,
//! even connect (no NSS modules): this is the network tool hooks and debugging sessions can rely
//! on there. Names are resolved like the engine does (`/etc/hosts`, `/etc/resolv.conf`).
//!
//! Exit codes follow curl's: 0 for a 2xx answer, 22 for another status, 7 when the server (or
//! proxy) cannot be reached, 28 on timeout, 2 for a bad command line.

use std::process::ExitCode;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

const USAGE: &str =
    "usage: gost-proxy fetch [-x http://proxy:port] [-X METHOD] [-d DATA] [-T SECONDS] http://host[:port]/path";

struct Req {
    url: String,
    proxy: Option<String>,
    method: String,
    data: Option<String>,
    timeout: Duration,
}

fn parse(args: &[String]) -> Result<Req, String> {
    let mut r = Req {
        url: String::new(),
        proxy: None,
        method: String::new(),
        data: None,
        timeout: Duration::from_secs(10),
    };
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut val = |what: &str| {
            it.next()
                .cloned()
                .ok_or_else(|| format!("fetch: {what} needs a value\n{USAGE}"))
        };
        match a.as_str() {
            "-x" | "--proxy" => r.proxy = Some(val("-x")?),
            "-X" | "--request" => r.method = val("-X")?,
            "-d" | "--data" => r.data = Some(val("-d")?),
            "-T" | "--timeout" => {
                let v = val("-T")?;
                r.timeout = Duration::from_secs(
                    v.parse()
                        .map_err(|_| format!("fetch: -T {v:?}: expected seconds\n{USAGE}"))?,
                );
            }
            u if !u.starts_with('-') && r.url.is_empty() => r.url = u.to_string(),
            other => return Err(format!("fetch: unexpected argument {other:?}\n{USAGE}")),
        }
    }
    if r.url.is_empty() {
        return Err(format!("fetch: no URL\n{USAGE}"));
    }
    if r.method.is_empty() {
        r.method = if r.data.is_some() { "POST" } else { "GET" }.into();
    }
    Ok(r)
}

/// `http://host:port/path` → (`host:port`, `/path`).
fn split_url(url: &str) -> Result<(String, String), String> {
    let rest = url.strip_prefix("http://").ok_or_else(|| {
        format!("fetch: {url:?}: only http:// URLs (accepted: http://host[:port]/path)")
    })?;
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    if authority.is_empty() {
        return Err(format!("fetch: {url:?}: no host"));
    }
    Ok((
        crate::addr::with_default_port(authority, 80),
        path.to_string(),
    ))
}

async fn request(r: &Req) -> Result<(u16, Vec<u8>), (u8, String)> {
    let (target, path) = split_url(&r.url).map_err(|e| (2, e))?;
    let (connect_to, request_target) = match &r.proxy {
        Some(p) => (split_url(p).map_err(|e| (2, e))?.0, r.url.clone()),
        None => (target.clone(), path),
    };
    let host = target.clone();
    let addr = crate::addr::resolve_system(&connect_to)
        .await
        .map_err(|e| (6, format!("fetch: {connect_to}: {e}")))?;
    let mut s = tokio::net::TcpStream::connect(addr)
        .await
        .map_err(|e| (7, format!("fetch: connect {connect_to} ({addr}): {e}")))?;
    let body = r.data.clone().unwrap_or_default();
    let head = format!(
        "{} {request_target} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: gost-proxy-fetch\r\nAccept: */*\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        r.method,
        body.len()
    );
    s.write_all(head.as_bytes())
        .await
        .map_err(|e| (7, format!("fetch: send: {e}")))?;
    s.write_all(body.as_bytes())
        .await
        .map_err(|e| (7, format!("fetch: send: {e}")))?;
    // the head, then as much body as it announces (a server may keep the connection open)
    let mut resp = Vec::new();
    let mut buf = [0u8; 16 * 1024];
    let end = loop {
        if let Some(e) = resp.windows(4).position(|w| w == b"\r\n\r\n") {
            break e;
        }
        let n = s
            .read(&mut buf)
            .await
            .map_err(|e| (56, format!("fetch: receive: {e}")))?;
        if n == 0 || resp.len() > 1 << 20 {
            return Err((8, "fetch: no HTTP response head".to_string()));
        }
        resp.extend_from_slice(&buf[..n]);
    };
    let head = String::from_utf8_lossy(&resp[..end]).into_owned();
    let code: u16 = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| {
            (
                8,
                format!("fetch: bad status line {:?}", head.lines().next()),
            )
        })?;
    let header = |name: &str| {
        head.lines().skip(1).find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.trim()
                .eq_ignore_ascii_case(name)
                .then(|| v.trim().to_ascii_lowercase())
        })
    };
    let chunked = header("transfer-encoding").is_some_and(|v| v.contains("chunked"));
    let length: Option<usize> = header("content-length").and_then(|v| v.parse().ok());
    let mut body = resp[end + 4..].to_vec();
    loop {
        let done = match (chunked, length) {
            (true, _) => body.windows(5).any(|w| w == b"0\r\n\r\n"),
            (false, Some(n)) => body.len() >= n,
            (false, None) => false,
        };
        if done || body.len() > 64 << 20 {
            break;
        }
        let n = s
            .read(&mut buf)
            .await
            .map_err(|e| (56, format!("fetch: receive: {e}")))?;
        if n == 0 {
            break;
        }
        body.extend_from_slice(&buf[..n]);
    }
    if let (false, Some(n)) = (chunked, length) {
        body.truncate(n);
    }
    if chunked {
        body = dechunk(&body);
    }
    Ok((code, body))
}

/// The payload of a chunked body (what can be decoded of it).
fn dechunk(mut b: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(eol) = b.windows(2).position(|w| w == b"\r\n") {
        let size = std::str::from_utf8(&b[..eol])
            .ok()
            .and_then(|s| usize::from_str_radix(s.split(';').next().unwrap_or("").trim(), 16).ok());
        let Some(n) = size.filter(|n| *n > 0) else {
            break;
        };
        let start = eol + 2;
        let Some(chunk) = b.get(start..start + n) else {
            break;
        };
        out.extend_from_slice(chunk);
        b = b.get(start + n + 2..).unwrap_or_default();
    }
    out
}

/// Runs `fetch` with the arguments after the subcommand's name.
pub async fn run(args: &[String]) -> ExitCode {
    let r = match parse(args) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    match tokio::time::timeout(r.timeout, request(&r)).await {
        Err(_) => {
            eprintln!("fetch: {} timed out after {:?}", r.url, r.timeout);
            ExitCode::from(28)
        }
        Ok(Err((code, msg))) => {
            eprintln!("{msg}");
            ExitCode::from(code)
        }
        Ok(Ok((status, body))) => {
            use std::io::Write as _;
            let _ = std::io::stdout().write_all(&body);
            if (200..300).contains(&status) {
                ExitCode::SUCCESS
            } else {
                eprintln!("fetch: {} answered {status}", r.url);
                ExitCode::from(22)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_and_flags() {
        assert_eq!(
            split_url("http://a.b:81/x?y").unwrap(),
            ("a.b:81".to_string(), "/x?y".to_string())
        );
        assert_eq!(
            split_url("http://h").unwrap(),
            ("h:80".to_string(), "/".to_string())
        );
        assert!(split_url("https://h/").is_err());
        let a: Vec<String> = ["-x", "http://p:3", "-d", "v", "http://h/"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let r = parse(&a).unwrap();
        assert_eq!(
            (r.method.as_str(), r.proxy.as_deref()),
            ("POST", Some("http://p:3"))
        );
        assert!(parse(&[]).is_err());
        assert_eq!(dechunk(b"3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n"), b"abcde");
    }
}
