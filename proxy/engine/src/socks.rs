//! Shared SOCKS pieces: reply codes and GOST's UDP-over-stream framing
//! (`LEN(2) | 0xFF | ATYP ADDR PORT | PAYLOAD`), used by SOCKS5 UDP-TUN and UDP over HTTP.

use std::io;

use async_trait::async_trait;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadHalf, WriteHalf};
use tokio::sync::Mutex;

use crate::addr::{decode_socks_addr, encode_socks_addr, read_socks_addr};
use crate::io::{BoxStream, PacketConn};

/// SOCKS5 reply: succeeded.
pub const REP_OK: u8 = 0;
/// SOCKS5 reply: general failure.
pub const REP_FAILURE: u8 = 1;
/// SOCKS5 reply: not allowed by ruleset.
pub const REP_NOT_ALLOWED: u8 = 2;
/// SOCKS5 reply: network unreachable.
pub const REP_NET_UNREACHABLE: u8 = 3;
/// SOCKS5 reply: host unreachable.
pub const REP_HOST_UNREACHABLE: u8 = 4;
/// GOST SOCKS5 method: TLS, then the request inside TLS.
pub const METHOD_TLS: u8 = 0x80;
/// GOST SOCKS5 method: TLS, then RFC 1929 user/password inside TLS.
pub const METHOD_TLS_AUTH: u8 = 0x82;
/// SOCKS5 reply: command not supported.
pub const REP_CMD_NOT_SUPPORTED: u8 = 7;

/// Writes one UDP frame.
pub async fn write_udp_frame<W: AsyncWrite + Unpin>(
    w: &mut W,
    addr: &str,
    payload: &[u8],
) -> io::Result<()> {
    let len = u16::try_from(payload.len())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "datagram too large"))?;
    let mut b = Vec::with_capacity(payload.len() + 32);
    b.extend_from_slice(&len.to_be_bytes());
    b.push(0xFF);
    encode_socks_addr(addr, &mut b)?;
    b.extend_from_slice(payload);
    w.write_all(&b).await?;
    w.flush().await
}

/// Reads one UDP frame into `buf`; returns the payload length and address.
pub async fn read_udp_frame<R: AsyncRead + Unpin>(
    r: &mut R,
    buf: &mut [u8],
) -> io::Result<(usize, String)> {
    let len = r.read_u16().await? as usize;
    let _frag = r.read_u8().await?;
    let addr = read_socks_addr(r).await?;
    if len > buf.len() {
        let mut skip = vec![0u8; len];
        r.read_exact(&mut skip).await?;
        buf.copy_from_slice(&skip[..buf.len()]);
        return Ok((buf.len(), addr));
    }
    r.read_exact(&mut buf[..len]).await?;
    Ok((len, addr))
}

/// Parses a standard SOCKS5 UDP datagram `RSV(2) FRAG ADDR DATA`; returns address and data offset.
pub fn parse_udp_datagram(b: &[u8]) -> io::Result<(String, usize)> {
    if b.len() < 4 {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "short SOCKS5 UDP datagram",
        ));
    }
    let (addr, n) = decode_socks_addr(&b[3..])?;
    Ok((addr, 3 + n))
}

/// Builds a standard SOCKS5 UDP datagram.
pub fn build_udp_datagram(addr: &str, data: &[u8]) -> io::Result<Vec<u8>> {
    let mut b = Vec::with_capacity(data.len() + 32);
    b.extend_from_slice(&[0, 0, 0]);
    encode_socks_addr(addr, &mut b)?;
    b.extend_from_slice(data);
    Ok(b)
}

/// A datagram channel carried over a stream with GOST's UDP framing.
pub struct StreamPacket {
    r: Mutex<ReadHalf<BoxStream>>,
    w: Mutex<WriteHalf<BoxStream>>,
}

impl StreamPacket {
    /// Wraps a stream whose handshake is done.
    pub fn new(s: BoxStream) -> StreamPacket {
        let (r, w) = tokio::io::split(s);
        StreamPacket {
            r: Mutex::new(r),
            w: Mutex::new(w),
        }
    }
}

#[async_trait]
impl PacketConn for StreamPacket {
    async fn recv_from(&self, buf: &mut [u8]) -> io::Result<(usize, String)> {
        let mut r = self.r.lock().await;
        read_udp_frame(&mut *r, buf).await
    }
    async fn send_to(&self, buf: &[u8], addr: &str) -> io::Result<usize> {
        let mut w = self.w.lock().await;
        write_udp_frame(&mut *w, addr, buf).await?;
        Ok(buf.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn frame_roundtrip() {
        let (mut a, mut b) = tokio::io::duplex(1024);
        write_udp_frame(&mut a, "example.com:53", b"hello")
            .await
            .unwrap();
        let mut buf = [0u8; 64];
        let (n, addr) = read_udp_frame(&mut b, &mut buf).await.unwrap();
        assert_eq!(
            (&buf[..n], addr.as_str()),
            (&b"hello"[..], "example.com:53")
        );
        let d = build_udp_datagram("1.2.3.4:5", b"x").unwrap();
        let (addr, off) = parse_udp_datagram(&d).unwrap();
        assert_eq!((addr.as_str(), &d[off..]), ("1.2.3.4:5", &b"x"[..]));
    }
}
