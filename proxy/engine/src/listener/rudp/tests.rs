use super::*;
use crate::io::PacketConn;
use crate::socks::StreamPacket;

fn opts(keepalive: bool) -> SessionOpts {
    SessionOpts {
        keepalive,
        ttl: Duration::from_secs(5),
        buf_size: 8192,
        queue: 4,
        backlog: 4,
        max_sessions: 64,
    }
}

/// A demux over one end of an in-memory tunnel; the other end plays the remote node.
fn tunnel(keepalive: bool) -> (Demux, StreamPacket) {
    let (a, b) = tokio::io::duplex(64 * 1024);
    let local = StreamPacket::new(Box::new(a));
    let remote = StreamPacket::new(Box::new(b));
    (
        Demux::start(Arc::new(TunnelWire(Arc::new(local))), &opts(keepalive)),
        remote,
    )
}

async fn recv(remote: &StreamPacket) -> (Vec<u8>, String) {
    let mut buf = [0u8; 256];
    let (n, from) = tokio::time::timeout(Duration::from_secs(5), remote.recv_from(&mut buf))
        .await
        .unwrap()
        .unwrap();
    (buf[..n].to_vec(), from)
}

#[tokio::test(start_paused = true)]
async fn peers_get_their_own_sessions_and_replies() {
    let (demux, remote) = tunnel(true);
    remote.send_to(b"a1", "10.0.0.1:1000").await.unwrap();
    remote.send_to(b"b1", "10.0.0.2:2000").await.unwrap();
    remote.send_to(b"a2", "10.0.0.1:1000").await.unwrap();
    let a = demux.accept().await.unwrap();
    let b = demux.accept().await.unwrap();
    assert_eq!(a.peer().to_string(), "10.0.0.1:1000");
    assert_eq!(b.peer().to_string(), "10.0.0.2:2000");
    assert_eq!(&a.recv().await.unwrap()[..], b"a1");
    assert_eq!(&a.recv().await.unwrap()[..], b"a2");
    assert_eq!(&b.recv().await.unwrap()[..], b"b1");
    b.send(b"rb").await.unwrap();
    a.send(b"ra").await.unwrap();
    assert_eq!(
        recv(&remote).await,
        (b"rb".to_vec(), "10.0.0.2:2000".into())
    );
    assert_eq!(
        recv(&remote).await,
        (b"ra".to_vec(), "10.0.0.1:1000".into())
    );
    assert_eq!(demux.len(), 2);
}

#[tokio::test(start_paused = true)]
async fn idle_sessions_die_and_leave_nothing_behind() {
    let (demux, remote) = tunnel(true);
    remote.send_to(b"x", "10.0.0.1:1000").await.unwrap();
    let s = demux.accept().await.unwrap();
    assert_eq!(&s.recv().await.unwrap()[..], b"x");
    // Between ttl and 2×ttl without traffic: closed and removed.
    tokio::time::sleep(Duration::from_secs(11)).await;
    assert!(s.is_closed());
    assert!(s.recv().await.is_none());
    assert!(s.send(b"late").await.is_err());
    assert!(demux.is_empty());
    // The same peer later starts a fresh session.
    remote.send_to(b"y", "10.0.0.1:1000").await.unwrap();
    let s2 = demux.accept().await.unwrap();
    drop(s);
    assert_eq!(&s2.recv().await.unwrap()[..], b"y");
    assert_eq!(demux.len(), 1);
}

#[tokio::test(start_paused = true)]
async fn a_closed_session_never_removes_its_successor() {
    let (demux, remote) = tunnel(false);
    remote.send_to(b"q1", "10.0.0.1:1000").await.unwrap();
    let first = demux.accept().await.unwrap();
    assert_eq!(&first.recv().await.unwrap()[..], b"q1");
    first.send(b"r1").await.unwrap();
    assert!(
        first.is_closed(),
        "one request, one response without keepalive"
    );
    remote.send_to(b"q2", "10.0.0.1:1000").await.unwrap();
    let second = demux.accept().await.unwrap();
    drop(first);
    assert_eq!(demux.len(), 1);
    assert_eq!(&second.recv().await.unwrap()[..], b"q2");
}

#[tokio::test(start_paused = true)]
async fn a_dead_tunnel_ends_accept_and_every_session() {
    let (demux, remote) = tunnel(true);
    remote.send_to(b"x", "10.0.0.1:1000").await.unwrap();
    let s = demux.accept().await.unwrap();
    assert_eq!(&s.recv().await.unwrap()[..], b"x");
    drop(remote);
    assert!(demux.accept().await.is_none());
    assert!(s.recv().await.is_none());
    assert!(demux.is_empty());
}

#[tokio::test(start_paused = true)]
async fn full_backlog_and_queues_drop_instead_of_growing() {
    let (demux, remote) = tunnel(true);
    // Backlog 4: the fifth and sixth new peers are dropped while nobody accepts.
    for i in 0..6 {
        remote
            .send_to(b"hi", &format!("10.0.0.{}:1000", i + 1))
            .await
            .unwrap();
    }
    // Queue 4: one peer flooding a session nobody reads keeps at most 4 datagrams.
    for _ in 0..10 {
        remote.send_to(b"flood", "10.0.0.1:1000").await.unwrap();
    }
    tokio::time::sleep(Duration::from_millis(10)).await;
    assert_eq!(demux.len(), 4);
    let s = demux.accept().await.unwrap();
    let mut n = 0;
    while tokio::time::timeout(Duration::from_millis(10), s.recv())
        .await
        .is_ok()
    {
        n += 1;
    }
    assert_eq!(n, 4);
}

#[tokio::test(start_paused = true)]
async fn a_full_session_table_drops_new_clients_until_a_place_frees() {
    let (a, b) = tokio::io::duplex(64 * 1024);
    let local = StreamPacket::new(Box::new(a));
    let remote = StreamPacket::new(Box::new(b));
    let o = SessionOpts {
        max_sessions: 2,
        ..opts(true)
    };
    let demux = Demux::start(Arc::new(TunnelWire(Arc::new(local))), &o);
    remote.send_to(b"a", "10.0.0.1:1000").await.unwrap();
    remote.send_to(b"b", "10.0.0.2:2000").await.unwrap();
    remote.send_to(b"c", "10.0.0.3:3000").await.unwrap();
    remote.send_to(b"a2", "10.0.0.1:1000").await.unwrap();
    let a = demux.accept().await.unwrap();
    let b = demux.accept().await.unwrap();
    assert_eq!(&a.recv().await.unwrap()[..], b"a");
    // a2 arrived after c: once it is in, c has been read and dropped
    assert_eq!(&a.recv().await.unwrap()[..], b"a2");
    assert_eq!(demux.len(), 2, "the third client got no session");
    // closed but still held by its handler (which may still hold an upstream socket): the
    // place is not free yet
    a.close();
    remote.send_to(b"c1", "10.0.0.3:3000").await.unwrap();
    remote.send_to(b"b2", "10.0.0.2:2000").await.unwrap();
    assert_eq!(&b.recv().await.unwrap()[..], b"b", "b's first datagram");
    assert_eq!(&b.recv().await.unwrap()[..], b"b2", "c1 was read before b2");
    drop(a);
    remote.send_to(b"c2", "10.0.0.3:3000").await.unwrap();
    let c = demux.accept().await.unwrap();
    assert_eq!(c.peer().to_string(), "10.0.0.3:3000");
    assert_eq!(
        &c.recv().await.unwrap()[..],
        b"c2",
        "c's first datagram was dropped, not queued"
    );
}
