//! Leaks and shutdown (`../shared/bench.md` §8.3 rows 15 and 17), in their own test binary
//! because they hold thousands of sockets: 9,000 SOCKS5 tunnels opened and closed ten times
//! (client FIN, client RST, server FIN first) leave no descriptor and no CLOSE_WAIT socket in
//! the proxy; SIGTERM with 100 tunnels mid-transfer closes the listener, lets every transfer
//! finish byte for byte and exits 0.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
use common::*;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// Raises this process's descriptor limit to its hard limit (the proxy inherits it) and
/// returns how many tunnels fit: each costs two descriptors here (client and server end) and
/// two in the proxy.
fn tunnels_that_fit(want: usize) -> usize {
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    let (_, hard) = getrlimit(Resource::RLIMIT_NOFILE).unwrap();
    setrlimit(Resource::RLIMIT_NOFILE, hard, hard).unwrap();
    let fit = (hard.saturating_sub(1000) / 2) as usize;
    if fit < want {
        eprintln!("descriptor limit {hard}: {fit} tunnels instead of {want}");
    }
    want.min(fit)
}

/// Echoes until EOF; a first byte `c` asks it to close first instead (server FIN first).
async fn echo_server() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let a = l.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            tokio::spawn(async move {
                let mut b = [0u8; 256];
                while let Ok(n) = s.read(&mut b).await {
                    if n == 0 || b[..n].contains(&b'c') {
                        break;
                    }
                    if s.write_all(&b[..n]).await.is_err() {
                        break;
                    }
                }
            });
        }
    });
    a
}

/// A no-auth SOCKS5 tunnel to the echo server, proven with one echoed byte.
async fn echo_tunnel(port: u16, to: SocketAddr) -> std::io::Result<TcpStream> {
    let mut s = socks5_tunnel(port, to, None).await?;
    s.write_all(b"p").await?;
    let mut echo = [0u8; 1];
    s.read_exact(&mut echo).await?;
    Ok(s)
}

/// bench.md §8.3 row 15.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nine_thousand_tunnels_ten_times_leave_no_descriptor_and_no_close_wait() {
    const CYCLES: usize = 10;
    let n = tunnels_that_fit(9000);
    let to = echo_server().await;
    let port = free_port();
    let url = format!("socks5://127.0.0.1:{port}");
    let proxy = tokio::task::spawn_blocking(move || Proxy::start(&["-L", &url], &[port]))
        .await
        .unwrap();
    let pid = proxy.pid();
    // warm-up, so lazily made state is in the baseline
    drop(echo_tunnel(port, to).await.unwrap());
    let baseline = tokio::task::spawn_blocking(move || {
        std::thread::sleep(Duration::from_millis(300));
        fd_count(pid)
    })
    .await
    .unwrap();
    let mut peak = 0;
    let mut settle_max = Duration::ZERO;
    for cycle in 0..CYCLES {
        let gate = Arc::new(tokio::sync::Semaphore::new(64));
        let mut opening = tokio::task::JoinSet::new();
        for _ in 0..n {
            let permit = Arc::clone(&gate).acquire_owned().await.unwrap();
            opening.spawn(async move {
                let s = echo_tunnel(port, to).await;
                drop(permit);
                s
            });
        }
        let mut tunnels = Vec::with_capacity(n);
        while let Some(t) = opening.join_next().await {
            tunnels.push(
                t.unwrap()
                    .unwrap_or_else(|e| panic!("cycle {cycle}: tunnel: {e}")),
            );
        }
        peak = peak.max(fd_count(pid));
        // close a third each way: client FIN, client RST, server FIN first
        let mut closing = tokio::task::JoinSet::new();
        for (i, mut s) in tunnels.into_iter().enumerate() {
            closing.spawn(async move {
                match i % 3 {
                    0 => {
                        let _ = s.shutdown().await;
                        let mut rest = Vec::new();
                        let _ =
                            tokio::time::timeout(Duration::from_secs(20), s.read_to_end(&mut rest))
                                .await;
                    }
                    1 => {
                        let _ = socket2::SockRef::from(&s).set_linger(Some(Duration::ZERO));
                    }
                    _ => {
                        let _ = s.write_all(b"c").await;
                        let mut rest = Vec::new();
                        let _ =
                            tokio::time::timeout(Duration::from_secs(20), s.read_to_end(&mut rest))
                                .await;
                    }
                }
            });
        }
        while closing.join_next().await.is_some() {}
        let t = Instant::now();
        let (fds, close_wait) = tokio::task::spawn_blocking(move || {
            let fds = fds_settle(pid, baseline, 2, 10);
            (fds, close_wait_of(pid))
        })
        .await
        .unwrap();
        settle_max = settle_max.max(t.elapsed());
        assert!(
            fds <= baseline + 2,
            "cycle {cycle}: {fds} descriptors after closing {n} tunnels (baseline {baseline})"
        );
        assert_eq!(
            close_wait, 0,
            "cycle {cycle}: CLOSE_WAIT sockets in the proxy"
        );
    }
    eprintln!(
        "{CYCLES} cycles of {n} tunnels: baseline {baseline} fds, peak {peak}, back to baseline ±2 within {settle_max:.1?} of the last close each cycle, 0 CLOSE_WAIT"
    );
    let mut proxy = proxy;
    assert!(
        proxy.child.try_wait().unwrap().is_none(),
        "{}",
        proxy.logs()
    );
}

const CHUNK: usize = 32 * 1024;
const CHUNKS: usize = 32;

/// Sends CHUNKS × CHUNK bytes (byte i of the stream is `i % 251`) one chunk every 100 ms.
async fn slow_server() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let a = l.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            tokio::spawn(async move {
                let all: Vec<u8> = (0..CHUNK * CHUNKS).map(|i| (i % 251) as u8).collect();
                for c in all.chunks(CHUNK) {
                    if s.write_all(c).await.is_err() {
                        return;
                    }
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            });
        }
    });
    a
}

/// bench.md §8.3 row 17.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_lets_a_hundred_transfers_finish_and_exits_zero() {
    const TUNNELS: usize = 100;
    let to = slow_server().await;
    let port = free_port();
    let url = format!("socks5://127.0.0.1:{port}");
    let proxy = tokio::task::spawn_blocking(move || {
        Proxy::start(&["-L", &url, "--drain-timeout", "60s"], &[port])
    })
    .await
    .unwrap();
    let mut transfers = tokio::task::JoinSet::new();
    let (started_tx, mut started_rx) = tokio::sync::mpsc::channel(TUNNELS);
    for _ in 0..TUNNELS {
        let started_tx = started_tx.clone();
        transfers.spawn(async move {
            let mut s = socks5_tunnel(port, to, None).await.unwrap();
            let mut got = vec![0u8; CHUNK];
            s.read_exact(&mut got).await.unwrap();
            started_tx.send(()).await.unwrap();
            s.read_to_end(&mut got).await.unwrap();
            got
        });
    }
    for _ in 0..TUNNELS {
        started_rx.recv().await.unwrap();
    }
    proxy.signal("TERM");
    let t = Instant::now();
    // the listener closes while the transfers go on
    let refused = loop {
        if TcpStream::connect(("127.0.0.1", port)).await.is_err() {
            break t.elapsed();
        }
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "listener still accepting 10 s after SIGTERM"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    };
    let want: Vec<u8> = (0..CHUNK * CHUNKS).map(|i| (i % 251) as u8).collect();
    let mut truncated = 0;
    while let Some(got) = transfers.join_next().await {
        if got.unwrap() != want {
            truncated += 1;
        }
    }
    let drained = t.elapsed();
    let mut proxy = proxy;
    let status = tokio::task::spawn_blocking(move || {
        let st = proxy.wait_exit(30);
        (st, proxy.logs())
    })
    .await
    .unwrap();
    eprintln!(
        "SIGTERM with {TUNNELS} transfers of {} KiB: listener refused after {refused:.1?}, {truncated} truncated, all done after {drained:.1?}, exit {:?}",
        CHUNK * CHUNKS / 1024,
        status.0.code()
    );
    assert_eq!(truncated, 0, "transfers cut by the shutdown");
    assert_eq!(status.0.code(), Some(0), "{}", status.1);
}
