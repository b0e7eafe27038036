//! GOST relay protocol messages (engine spec §6.6), shared by the `relay` connector and handler.
//!
//! ```text
//! request:  VER=1 | CMD|FLAGS (1) | FEALEN (2, big endian) | FEATURES
//! response: VER=1 | STATUS (1)    | FEALEN (2, big endian) | FEATURES
//! feature:  TYPE (1) | LEN (2, big endian) | DATA
//! ```
//! Features: USERAUTH (1) `ULEN UNAME PLEN PASSWD`; ADDR (2) `ATYP ADDR PORT` (an empty host is
//! ATYP 3 with length 0); TUNNEL (3, ignored); NETWORK (4) `u16` (0 tcp, 1 udp). In the data
//! phase of a UDP CONNECT each datagram is `LEN(2) | PAYLOAD`.

use std::io;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::addr::{decode_socks_addr, encode_host_port, split_host_port};

/// Protocol version.
pub const VERSION: u8 = 1;
/// CONNECT.
pub const CMD_CONNECT: u8 = 0x01;
/// BIND.
pub const CMD_BIND: u8 = 0x02;
/// UDP flag (legacy; NETWORK is the modern way).
pub const FLAG_UDP: u8 = 0x80;

/// Feature type: user/password.
pub const FEATURE_USERAUTH: u8 = 0x01;
/// Feature type: address.
pub const FEATURE_ADDR: u8 = 0x02;
/// Feature type: tunnel id (tunnel handler only).
pub const FEATURE_TUNNEL: u8 = 0x03;
/// Feature type: network.
pub const FEATURE_NETWORK: u8 = 0x04;

/// Status: OK.
pub const STATUS_OK: u8 = 0x00;
/// Status: bad request.
pub const STATUS_BAD_REQUEST: u8 = 0x01;
/// Status: unauthorized.
pub const STATUS_UNAUTHORIZED: u8 = 0x02;
/// Status: forbidden.
pub const STATUS_FORBIDDEN: u8 = 0x03;
/// Status: timeout.
pub const STATUS_TIMEOUT: u8 = 0x04;
/// Status: service unavailable.
pub const STATUS_SERVICE_UNAVAILABLE: u8 = 0x05;
/// Status: host unreachable.
pub const STATUS_HOST_UNREACHABLE: u8 = 0x06;
/// Status: network unreachable.
pub const STATUS_NETWORK_UNREACHABLE: u8 = 0x07;
/// Status: internal server error.
pub const STATUS_INTERNAL: u8 = 0x08;

/// A decoded request or response.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Message {
    /// CMD|FLAGS (request) or STATUS (response).
    pub code: u8,
    /// USERAUTH.
    pub auth: Option<(String, String)>,
    /// ADDR (`host:port`, `:0` for an empty host).
    pub addr: Option<String>,
    /// NETWORK.
    pub network: Option<u16>,
}

fn invalid(msg: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg.into())
}

fn feature(out: &mut Vec<u8>, kind: u8, data: &[u8]) -> io::Result<()> {
    let len = u16::try_from(data.len()).map_err(|_| invalid("relay feature too long"))?;
    out.push(kind);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(data);
    Ok(())
}

/// Encodes `host:port` as an ADDR feature body.
pub fn encode_addr(addr: &str) -> io::Result<Vec<u8>> {
    let (host, port) = split_host_port(addr)
        .ok_or_else(|| invalid(format!("invalid address {addr:?} (expected host:port)")))?;
    let mut b = Vec::new();
    if host.is_empty() {
        b.extend_from_slice(&[3, 0]);
        b.extend_from_slice(&port.to_be_bytes());
    } else {
        encode_host_port(host, port, &mut b)?;
    }
    Ok(b)
}

impl Message {
    /// Encodes the message.
    pub fn encode(&self) -> io::Result<Vec<u8>> {
        let mut feats = Vec::new();
        if let Some(n) = self.network {
            feature(&mut feats, FEATURE_NETWORK, &n.to_be_bytes())?;
        }
        if let Some((u, p)) = &self.auth {
            let (u, p) = (u.as_bytes(), p.as_bytes());
            if u.len() > 255 || p.len() > 255 {
                return Err(invalid("relay user or password longer than 255 bytes"));
            }
            let mut d = vec![u.len() as u8];
            d.extend_from_slice(u);
            d.push(p.len() as u8);
            d.extend_from_slice(p);
            feature(&mut feats, FEATURE_USERAUTH, &d)?;
        }
        if let Some(a) = &self.addr {
            feature(&mut feats, FEATURE_ADDR, &encode_addr(a)?)?;
        }
        let len = u16::try_from(feats.len()).map_err(|_| invalid("relay features too long"))?;
        let mut out = vec![VERSION, self.code];
        out.extend_from_slice(&len.to_be_bytes());
        out.extend_from_slice(&feats);
        Ok(out)
    }

    /// Reads one message. A version other than 1 is an error of kind `InvalidData`.
    pub async fn read<R: AsyncRead + Unpin>(r: &mut R) -> io::Result<Message> {
        let mut h = [0u8; 4];
        r.read_exact(&mut h).await?;
        if h[0] != VERSION {
            return Err(invalid(format!("relay: bad version {}", h[0])));
        }
        let len = u16::from_be_bytes([h[2], h[3]]) as usize;
        let mut feats = vec![0u8; len];
        r.read_exact(&mut feats).await?;
        let mut m = Message {
            code: h[1],
            ..Default::default()
        };
        let mut rest = &feats[..];
        while !rest.is_empty() {
            if rest.len() < 3 {
                return Err(invalid("relay: truncated feature"));
            }
            let kind = rest[0];
            let flen = u16::from_be_bytes([rest[1], rest[2]]) as usize;
            if rest.len() < 3 + flen {
                return Err(invalid("relay: truncated feature"));
            }
            let data = &rest[3..3 + flen];
            rest = &rest[3 + flen..];
            match kind {
                FEATURE_USERAUTH => {
                    let ul = *data.first().ok_or_else(|| invalid("relay: bad USERAUTH"))? as usize;
                    let u = data
                        .get(1..1 + ul)
                        .ok_or_else(|| invalid("relay: bad USERAUTH"))?;
                    let pl = *data
                        .get(1 + ul)
                        .ok_or_else(|| invalid("relay: bad USERAUTH"))?
                        as usize;
                    let p = data
                        .get(2 + ul..2 + ul + pl)
                        .ok_or_else(|| invalid("relay: bad USERAUTH"))?;
                    m.auth = Some((
                        String::from_utf8_lossy(u).to_string(),
                        String::from_utf8_lossy(p).to_string(),
                    ));
                }
                FEATURE_ADDR => {
                    // An empty domain (ATYP 3, length 0) decodes as ":port".
                    let (a, _) = decode_socks_addr(data)?;
                    m.addr = Some(a);
                }
                FEATURE_NETWORK if data.len() >= 2 => {
                    m.network = Some(u16::from_be_bytes([data[0], data[1]]));
                }
                _ => {}
            }
        }
        Ok(m)
    }
}

/// Writes a response with an optional ADDR feature.
pub async fn respond<W: AsyncWrite + Unpin>(
    w: &mut W,
    status: u8,
    addr: Option<&str>,
) -> io::Result<()> {
    let m = Message {
        code: status,
        addr: addr.map(str::to_string),
        ..Default::default()
    };
    w.write_all(&m.encode()?).await?;
    w.flush().await
}

/// Writes one `LEN(2) | PAYLOAD` datagram (UDP data phase of CONNECT).
pub async fn write_datagram<W: AsyncWrite + Unpin>(w: &mut W, payload: &[u8]) -> io::Result<()> {
    let len = u16::try_from(payload.len())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "datagram too large"))?;
    let mut b = Vec::with_capacity(payload.len() + 2);
    b.extend_from_slice(&len.to_be_bytes());
    b.extend_from_slice(payload);
    w.write_all(&b).await?;
    w.flush().await
}

/// Reads one `LEN(2) | PAYLOAD` datagram into `buf` (truncating to its size).
pub async fn read_datagram<R: AsyncRead + Unpin>(r: &mut R, buf: &mut [u8]) -> io::Result<usize> {
    let len = r.read_u16().await? as usize;
    if len > buf.len() {
        let mut tmp = vec![0u8; len];
        r.read_exact(&mut tmp).await?;
        let n = buf.len();
        buf.copy_from_slice(&tmp[..n]);
        return Ok(n);
    }
    r.read_exact(&mut buf[..len]).await?;
    Ok(len)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn request_roundtrip_and_layout() {
        let m = Message {
            code: CMD_CONNECT | FLAG_UDP,
            auth: Some(("u".into(), "pw".into())),
            addr: Some("example.com:53".into()),
            network: Some(1),
        };
        let b = m.encode().unwrap();
        // VER, CMD|FLAGS, FEALEN (big endian), then NETWORK first.
        assert_eq!(&b[..2], &[1, 0x81]);
        assert_eq!(u16::from_be_bytes([b[2], b[3]]) as usize, b.len() - 4);
        assert_eq!(&b[4..9], &[FEATURE_NETWORK, 0, 2, 0, 1]);
        let back = Message::read(&mut &b[..]).await.unwrap();
        assert_eq!(back, m);
        let e = encode_addr(":8080").unwrap();
        assert_eq!(e, vec![3, 0, 0x1f, 0x90]);
        let bad = [2u8, 0, 0, 0];
        assert!(Message::read(&mut &bad[..]).await.is_err());
    }
}
