//! `--` multi-process mode: one child process per argument group, supervised.
//!
//! Better than GOST: SIGTERM/SIGINT/SIGHUP are forwarded to every child; a child that exits
//! with an error is reported, the others are stopped and the parent exits with that child's
//! code; children die with the parent (PR_SET_PDEATHSIG, checked against the parent's PID).

use std::process::ExitCode;
use std::time::Duration;

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

/// In a child: ask the kernel to SIGTERM us when the parent dies, and exit if it already has.
pub fn child_guard(id: &str) {
    let _ = nix::sys::prctl::set_pdeathsig(Signal::SIGTERM);
    if let Ok(p) = std::env::var("KUBEGOST_PARENT_PID") {
        if p.parse::<i32>().ok() != Some(nix::unistd::getppid().as_raw()) {
            eprintln!("gost-proxy child {id}: parent is gone, exiting");
            std::process::exit(1);
        }
    }
}

/// Takes `--health ADDR` / `--health=ADDR` out of a group's arguments.
fn take_health(g: &mut Vec<String>) -> Option<String> {
    let i = g
        .iter()
        .position(|a| a == "--health" || a.starts_with("--health="))?;
    let a = g.remove(i);
    match a.strip_prefix("--health=") {
        Some(v) => Some(v.to_string()),
        None if i < g.len() => Some(g.remove(i)),
        None => None,
    }
}

/// A free loopback port for a group's own health endpoint.
fn loopback_port() -> std::io::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// Runs each group as a child and supervises them. A `--health` address given to any group is
/// served by the supervisor for all of them ([`crate::health::aggregate`]): every group then
/// gets a loopback health endpoint of its own, so readiness and `hook post-up` cover every
/// process, `Dedicated` ones included.
pub async fn run(mut groups: Vec<Vec<String>>) -> Result<ExitCode, crate::error::ProgramError> {
    use tokio::signal::unix::{signal, SignalKind};
    // Registered before the children exist, so no signal falls through to the default action.
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    let mut hup = signal(SignalKind::hangup())?;
    let exe = std::env::current_exe()?;
    let parent = std::process::id().to_string();
    let mut health = None;
    for g in &mut groups {
        if let Some(h) = take_health(g) {
            health.get_or_insert(h);
        }
    }
    if let Some(h) = &health {
        let mut inner = Vec::new();
        for g in &mut groups {
            let a = format!("127.0.0.1:{}", loopback_port()?);
            g.extend(["--health".to_string(), a.clone()]);
            inner.push(a);
        }
        let bound = crate::health::serve(h, crate::health::aggregate(inner))
            .map_err(|e| crate::error::ProgramError::msg(format!("--health {h}: {e}")))?;
        eprintln!("gost-proxy: health endpoint for every group on {bound}");
    }
    let mut children = Vec::new();
    for (i, g) in groups.iter().enumerate() {
        let child = tokio::process::Command::new(&exe)
            .args(g)
            .env("_GOST_ID", i.to_string())
            .env("KUBEGOST_PARENT_PID", &parent)
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| {
                crate::error::ProgramError::msg(format!(
                    "starting group {i} ({}): {e}",
                    exe.display()
                ))
            })?;
        eprintln!(
            "gost-proxy: started group {i} (pid {}): {}",
            child.id().unwrap_or(0),
            g.join(" ")
        );
        children.push(child);
    }
    let pids: Vec<Pid> = children
        .iter()
        .filter_map(|c| c.id())
        .map(|p| Pid::from_raw(p as i32))
        .collect();
    let send = |sig: Signal| {
        for p in &pids {
            let _ = kill(*p, sig);
        }
    };
    let (tx, mut rx) = tokio::sync::mpsc::channel(children.len());
    for (i, mut c) in children.into_iter().enumerate() {
        let tx = tx.clone();
        tokio::spawn(async move {
            let st = c.wait().await;
            let _ = tx.send((i, st)).await;
        });
    }
    drop(tx);
    let total = pids.len();
    let mut exited = 0;
    let mut code: u8 = 0;
    let mut stopping = false;
    loop {
        tokio::select! {
            _ = term.recv() => { stopping = true; send(Signal::SIGTERM); }
            _ = int.recv() => { stopping = true; send(Signal::SIGINT); }
            _ = hup.recv() => send(Signal::SIGHUP),
            m = rx.recv() => {
                let Some((i, st)) = m else { break };
                exited += 1;
                let c = match st {
                    Ok(s) => s.code().map(|c| c.clamp(0, 255) as u8).unwrap_or(if stopping { 0 } else { 1 }),
                    Err(_) => 1,
                };
                if c != 0 || !stopping {
                    eprintln!("gost-proxy: group {i} exited with status {c}; stopping the other groups");
                    if code == 0 {
                        code = if c == 0 { 1 } else { c };
                    }
                    if !stopping {
                        stopping = true;
                        send(Signal::SIGTERM);
                        let pids = pids.clone();
                        tokio::spawn(async move {
                            tokio::time::sleep(Duration::from_secs(40)).await;
                            for p in &pids {
                                let _ = kill(*p, Signal::SIGKILL);
                            }
                        });
                    }
                }
                if exited == total {
                    break;
                }
            }
        }
    }
    Ok(ExitCode::from(code))
}
