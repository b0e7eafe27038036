use super::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn pair(cfg: Config) -> (Session, Session) {
    let (a, b) = tokio::io::duplex(256 * 1024);
    (
        Session::new(Box::new(a), cfg.clone(), true),
        Session::new(Box::new(b), cfg, false),
    )
}

#[test]
fn header_layout_matches_smux_v1() {
    // ver=1, cmd=PSH, len=0x0102 little endian, sid=0x01020304 little endian.
    assert_eq!(
        header(CMD_PSH, 0x0102, 0x0102_0304),
        [1, 2, 0x02, 0x01, 0x04, 0x03, 0x02, 0x01]
    );
    assert_eq!(header(CMD_NOP, 0, 0), [1, 3, 0, 0, 0, 0, 0, 0]);
}

#[tokio::test]
async fn raw_frames_from_a_peer_are_understood() {
    // A hand-written smux v1 client: SYN sid 1, PSH "hi", FIN.
    let (mut raw, b) = tokio::io::duplex(64 * 1024);
    let server = Session::new(Box::new(b), Config::default(), false);
    let mut bytes = header(CMD_SYN, 0, 1).to_vec();
    bytes.extend_from_slice(&header(CMD_PSH, 2, 1));
    bytes.extend_from_slice(b"hi");
    bytes.extend_from_slice(&header(CMD_FIN, 0, 1));
    raw.write_all(&bytes).await.unwrap();
    let mut s = server.accept().await.unwrap();
    assert_eq!(s.id(), 1);
    let mut got = Vec::new();
    s.read_to_end(&mut got).await.unwrap();
    assert_eq!(got, b"hi");
    // The reply goes out as PSH on sid 1, then FIN when shut down.
    s.write_all(b"ok").await.unwrap();
    s.shutdown().await.unwrap();
    let mut h = [0u8; 8];
    raw.read_exact(&mut h).await.unwrap();
    assert_eq!(h, header(CMD_PSH, 2, 1));
    let mut d = [0u8; 2];
    raw.read_exact(&mut d).await.unwrap();
    assert_eq!(&d, b"ok");
    raw.read_exact(&mut h).await.unwrap();
    assert_eq!(h, header(CMD_FIN, 0, 1));
}

#[tokio::test]
async fn streams_both_ways_with_odd_and_even_ids() {
    let (c, s) = pair(Config::default());
    let mut c1 = c.open().await.unwrap();
    let mut s1 = s.open().await.unwrap();
    assert_eq!((c1.id(), s1.id()), (1, 2));
    let mut a1 = s.accept().await.unwrap();
    let mut b1 = c.accept().await.unwrap();
    let big = vec![7u8; 300 * 1024];
    let w = {
        let big = big.clone();
        tokio::spawn(async move {
            c1.write_all(&big).await.unwrap();
            c1.shutdown().await.unwrap();
            c1
        })
    };
    let mut got = Vec::new();
    a1.read_to_end(&mut got).await.unwrap();
    assert_eq!(got.len(), big.len());
    s1.write_all(b"back").await.unwrap();
    drop(s1);
    let mut got = Vec::new();
    b1.read_to_end(&mut got).await.unwrap();
    assert_eq!(got, b"back");
    let _ = w.await.unwrap();
}

#[tokio::test]
async fn slow_reader_bounds_buffering() {
    let cfg = Config {
        max_stream_buffer: 4096,
        ..Config::default()
    };
    let (c, s) = pair(cfg);
    let mut c1 = c.open().await.unwrap();
    let a1 = s.accept().await.unwrap();
    // Nobody reads a1: the writer must eventually block instead of buffering everything.
    let chunk = vec![1u8; 32 * 1024];
    let mut sent = 0usize;
    let res = tokio::time::timeout(Duration::from_millis(500), async {
        loop {
            c1.write_all(&chunk).await.unwrap();
            sent += chunk.len();
        }
    })
    .await;
    assert!(res.is_err(), "writes never blocked");
    assert!(a1.state.buf.lock().len <= 32 * 1024);
    assert!(sent < 64 << 20, "sent {sent}");
}

#[tokio::test(start_paused = true)]
async fn silent_peer_times_out() {
    let (a, _b) = tokio::io::duplex(1024);
    let s = Session::new(Box::new(a), Config::default(), true);
    tokio::time::sleep(Duration::from_secs(29)).await;
    assert!(!s.is_closed());
    tokio::time::sleep(Duration::from_secs(12)).await;
    assert!(s.is_closed());
    assert!(s.open().await.is_err());
}

#[tokio::test]
async fn peer_close_ends_streams_and_accept() {
    let (c, s) = pair(Config::default());
    let mut c1 = c.open().await.unwrap();
    let _a1 = s.accept().await.unwrap();
    drop(s);
    drop(_a1);
    let mut b = [0u8; 8];
    let r = tokio::time::timeout(Duration::from_secs(5), c1.read(&mut b)).await;
    assert!(matches!(r, Ok(Ok(0)) | Ok(Err(_))));
    tokio::time::timeout(Duration::from_secs(5), c.closed())
        .await
        .unwrap();
}
