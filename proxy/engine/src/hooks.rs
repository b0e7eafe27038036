//! Hook commands: `preUp`, `postUp`, `preDown`, `postDown` (service metadata).
//!
//! Each entry is split like a POSIX shell would (quotes, backslashes) and run **without a
//! shell**, sequentially, each waited for. Unlike GOST, each command has a timeout
//! (`hookTimeout`, default 30 s) and the environment carries `KUBEGOST_SERVICE`,
//! `KUBEGOST_ADDR` and `KUBEGOST_PHASE`. Failures are logged and do not stop the service.

use std::process::Stdio;
use std::time::Duration;

/// A hook phase.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// After bind, before accepting.
    PreUp,
    /// At the start of serving, before the first accept.
    PostUp,
    /// First thing when closing, while the listener is open.
    PreDown,
    /// After the listener closed and connections drained.
    PostDown,
}

impl Phase {
    /// `pre-up`, `post-up`, `pre-down`, `post-down`.
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::PreUp => "pre-up",
            Phase::PostUp => "post-up",
            Phase::PreDown => "pre-down",
            Phase::PostDown => "post-down",
        }
    }

    /// Parses `pre-up`/`preUp`, etc.
    pub fn parse(s: &str) -> Option<Phase> {
        match s.to_ascii_lowercase().replace(['-', '_'], "").as_str() {
            "preup" => Some(Phase::PreUp),
            "postup" => Some(Phase::PostUp),
            "predown" => Some(Phase::PreDown),
            "postdown" => Some(Phase::PostDown),
            _ => None,
        }
    }

    /// The metadata key.
    pub fn key(self) -> &'static str {
        match self {
            Phase::PreUp => "preUp",
            Phase::PostUp => "postUp",
            Phase::PreDown => "preDown",
            Phase::PostDown => "postDown",
        }
    }
}

/// The four command lists of one service.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Hooks {
    /// `preUp`.
    pub pre_up: Vec<String>,
    /// `postUp`.
    pub post_up: Vec<String>,
    /// `preDown`.
    pub pre_down: Vec<String>,
    /// `postDown`.
    pub post_down: Vec<String>,
    /// Per-command timeout.
    pub timeout: Duration,
}

impl Hooks {
    /// Reads the four lists and `hookTimeout` (default 30 s) from service metadata.
    pub fn from_metadata(md: &crate::md::Md) -> Result<Hooks, crate::error::BuildError> {
        Ok(Hooks {
            pre_up: md.strings(&["preUp"])?.unwrap_or_default(),
            post_up: md.strings(&["postUp"])?.unwrap_or_default(),
            pre_down: md.strings(&["preDown"])?.unwrap_or_default(),
            post_down: md.strings(&["postDown"])?.unwrap_or_default(),
            timeout: md
                .duration(&["hookTimeout"])?
                .filter(|d| !d.is_zero())
                .unwrap_or(Duration::from_secs(30)),
        })
    }

    /// Only the phase the engine itself runs when the others are container lifecycle steps
    /// (`--external-hooks`): `postDown`.
    pub fn post_down_only(self) -> Hooks {
        Hooks {
            pre_up: vec![],
            post_up: vec![],
            pre_down: vec![],
            ..self
        }
    }

    /// The commands of a phase.
    pub fn commands(&self, phase: Phase) -> &[String] {
        match phase {
            Phase::PreUp => &self.pre_up,
            Phase::PostUp => &self.post_up,
            Phase::PreDown => &self.pre_down,
            Phase::PostDown => &self.post_down,
        }
    }

    /// Runs a phase's commands for `service` listening on `addr`; returns how many failed.
    pub async fn run(&self, phase: Phase, service: &str, addr: &str) -> usize {
        let mut failed = 0;
        for cmd in self.commands(phase) {
            let cmd = cmd.trim();
            if cmd.is_empty() {
                continue;
            }
            if let Err(e) = run_one(cmd, phase, service, addr, self.timeout).await {
                failed += 1;
                tracing::warn!(service, phase = phase.as_str(), command = cmd, error = %e, "hook failed");
            }
        }
        failed
    }
}

async fn run_one(
    cmd: &str,
    phase: Phase,
    service: &str,
    addr: &str,
    timeout: Duration,
) -> Result<(), String> {
    let argv = shlex::split(cmd)
        .ok_or_else(|| "cannot parse command line (unbalanced quotes?)".to_string())?;
    let Some((prog, args)) = argv.split_first() else {
        return Ok(());
    };
    tracing::info!(
        service,
        phase = phase.as_str(),
        command = cmd,
        "running hook"
    );
    let mut child = tokio::process::Command::new(prog)
        .args(args)
        .env("KUBEGOST_SERVICE", service)
        .env("KUBEGOST_ADDR", addr)
        .env("KUBEGOST_PHASE", phase.as_str())
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| format!("cannot start {prog:?}: {e}"))?;
    match tokio::time::timeout(timeout, child.wait()).await {
        Ok(Ok(st)) if st.success() => Ok(()),
        Ok(Ok(st)) => Err(format!("exited with {st}")),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => {
            let _ = child.kill().await;
            Err(format!("timed out after {timeout:?}"))
        }
    }
}
