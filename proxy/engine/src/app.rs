//! The `gost-proxy` program: config sources, logging, the run loop with signals, reload,
//! draining shutdown, the health endpoint, hooks as a subcommand and `--` supervision.

use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use crate::error::{Context as _, ProgramError};
use gost_config::Config;
use std::io::Read as _;
use tokio::io::AsyncReadExt;

use crate::args::Cli;
use crate::engine::{Engine, EngineOpts};

/// Exit code for a bad command line or config (EX_USAGE).
pub const EX_USAGE: u8 = 64;

/// Version line, GOST-style.
pub fn version() -> String {
    format!(
        "gost-proxy {} (kubegost; GOST v3 compatible) {}/{}",
        env!("CARGO_PKG_VERSION"),
        std::env::consts::OS,
        std::env::consts::ARCH
    )
}

/// Reads a config document, refusing one over [`gost_config::MAX_CONFIG_BYTES`] without
/// reading more than one byte past the limit.
fn read_bounded(mut r: impl std::io::Read) -> std::io::Result<String> {
    let mut buf = Vec::new();
    std::io::Read::take(&mut r, gost_config::MAX_CONFIG_BYTES as u64 + 1).read_to_end(&mut buf)?;
    if buf.len() > gost_config::MAX_CONFIG_BYTES {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!(
                "larger than {} bytes, the largest config document accepted",
                gost_config::MAX_CONFIG_BYTES
            ),
        ));
    }
    String::from_utf8(buf).map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))
}

fn load_file(path: &Path) -> Result<Config, ProgramError> {
    let text = std::fs::File::open(path)
        .and_then(read_bounded)
        .with_context(|| format!("-C {}: cannot read", path.display()))?;
    let fmt = match path.extension().and_then(|e| e.to_str()) {
        Some("json") => gost_config::Format::Json,
        _ => gost_config::Format::Yaml,
    };
    Config::parse(&text, fmt).with_context(|| format!("-C {}", path.display()))
}

/// Files of a config directory in name order (`*.yaml`, `*.yml`, `*.json`; hidden entries such
/// as Kubernetes' `..data` are skipped).
pub fn dir_files(dir: &Path) -> Result<Vec<std::path::PathBuf>, ProgramError> {
    crate::watch::dir_files(dir)
        .with_context(|| format!("-C {}: cannot read directory", dir.display()))
}

/// Reads one `-C` source.
pub async fn load_source(src: &str) -> Result<Config, ProgramError> {
    let t = src.trim();
    if t == "-" {
        let mut buf = Vec::new();
        tokio::io::stdin()
            .take(gost_config::MAX_CONFIG_BYTES as u64 + 1)
            .read_to_end(&mut buf)
            .await
            .context("-C -: cannot read stdin")?;
        let s = read_bounded(&buf[..]).context("-C -: cannot read stdin")?;
        return Config::parse_detect(&s).context("-C -");
    }
    if t.starts_with('{') && t.ends_with('}') {
        return Config::from_json(t).context("-C <inline JSON>");
    }
    if t.starts_with("http://") || t.starts_with("https://") {
        return Err(ProgramError::msg(format!("-C {t}: loading config from a URL is not supported by gost-proxy (accepted: a file, a directory, '-' or inline JSON)")));
    }
    let p = Path::new(t);
    if !p.exists() && (t.contains('\n') || t.starts_with("services:")) {
        return Config::from_yaml(t).context("-C <inline YAML>");
    }
    if p.is_dir() {
        let mut cfg = Config::default();
        for f in dir_files(p)? {
            cfg.merge(load_file(&f)?);
        }
        return Ok(cfg);
    }
    load_file(p)
}

/// Builds the effective config: `-C` sources, then the CLI, then environment and flags.
pub async fn effective_config(cli: &Cli, kinds: &crate::Kinds) -> Result<Config, ProgramError> {
    let mut cfg = Config::default();
    for src in &cli.configs {
        cfg.merge(load_source(src).await?);
    }
    let gost_id = std::env::var("_GOST_ID").ok();
    let from_cli = crate::cli::build(&cli.services, &cli.nodes, gost_id.as_deref(), kinds)
        .map_err(|e| ProgramError::msg(format!("{e}")))?;
    cfg.merge(from_cli);
    if cfg.services.is_empty() && cfg.api.is_none() && cli.api.is_none() && cli.configs.is_empty() {
        let home = std::env::var("HOME").unwrap_or_default();
        'search: for dir in [
            "/etc/gost".to_string(),
            format!("{home}/.gost"),
            ".".to_string(),
        ] {
            for ext in ["yaml", "yml", "json"] {
                let p = Path::new(&dir).join(format!("gost.{ext}"));
                if p.is_file() {
                    cfg.merge(load_file(&p)?);
                    break 'search;
                }
            }
        }
    }
    if let Ok(l) = std::env::var("GOST_LOGGER_LEVEL") {
        cfg.log.get_or_insert_with(Default::default).level = l;
    }
    if let Ok(a) = std::env::var("GOST_API") {
        cfg.api = Some(
            crate::cli::api_from_flag(&a)
                .map_err(|e| ProgramError::msg(format!("GOST_API: {e}")))?,
        );
    }
    if let Ok(m) = std::env::var("GOST_METRICS") {
        cfg.metrics = Some(
            crate::cli::metrics_from_flag(&m)
                .map_err(|e| ProgramError::msg(format!("GOST_METRICS: {e}")))?,
        );
    }
    match cli.debug {
        1 => cfg.log.get_or_insert_with(Default::default).level = "debug".into(),
        2 => cfg.log.get_or_insert_with(Default::default).level = "trace".into(),
        _ => {}
    }
    if let Some(a) = &cli.api {
        cfg.api =
            Some(crate::cli::api_from_flag(a).map_err(|e| ProgramError::msg(format!("{e}")))?);
    }
    if let Some(m) = &cli.metrics {
        cfg.metrics =
            Some(crate::cli::metrics_from_flag(m).map_err(|e| ProgramError::msg(format!("{e}")))?);
    }
    Ok(cfg)
}

fn init_logging(cfg: &Config) {
    let log = cfg.log.clone().unwrap_or_default();
    let level = match log.level.as_str() {
        "trace" => "trace",
        "debug" => "debug",
        "warn" | "warning" => "warn",
        "error" | "fatal" => "error",
        _ => "info",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("RUST_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false);
    let out = log.output.as_str();
    let writer: Box<dyn Fn() -> Box<dyn std::io::Write + Send> + Send + Sync> = match out {
        "" | "stderr" => Box::new(|| Box::new(std::io::stderr())),
        "stdout" => Box::new(|| Box::new(std::io::stdout())),
        "none" | "null" => Box::new(|| Box::new(std::io::sink())),
        path => {
            let path = path.to_string();
            if let Some(parent) = Path::new(&path).parent() {
                let _ = std::fs::create_dir_all(parent);
            }
            Box::new(move || {
                match std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(&path)
                {
                    Ok(f) => Box::new(f),
                    Err(_) => Box::new(std::io::stderr()),
                }
            })
        }
    };
    let r = if log.format == "text" {
        builder.with_writer(writer).try_init()
    } else {
        builder.json().with_writer(writer).try_init()
    };
    let _ = r;
}

async fn serve_metrics(
    cfg: gost_config::MetricsConfig,
    engine: Arc<Engine>,
) -> Result<(), ProgramError> {
    let sa = crate::addr::parse_listen_addr(&cfg.addr).ok_or_else(|| {
        ProgramError::msg(format!(
            "metrics.addr {:?}: invalid address (expected host:port)",
            cfg.addr
        ))
    })?;
    let l = tokio::net::TcpListener::bind(sa)
        .await
        .with_context(|| format!("metrics.addr {}", cfg.addr))?;
    let path = if cfg.path.is_empty() {
        "/metrics".to_string()
    } else {
        cfg.path.clone()
    };
    let auth = cfg.auth.clone().filter(|a| !a.username.is_empty());
    tracing::info!(addr = %cfg.addr, path = %path, "metrics listening");
    tokio::spawn(async move {
        loop {
            let Ok((s, _)) = l.accept().await else {
                continue;
            };
            let engine = Arc::clone(&engine);
            let path = path.clone();
            let auth = auth.clone();
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(
                    move |req: hyper::Request<hyper::body::Incoming>| {
                        let engine = Arc::clone(&engine);
                        let path = path.clone();
                        let auth = auth.clone();
                        async move {
                            let authorized = match &auth {
                                None => true,
                                Some(a) => {
                                    use base64::Engine as _;
                                    let want = format!(
                                        "Basic {}",
                                        base64::engine::general_purpose::STANDARD
                                            .encode(format!("{}:{}", a.username, a.password))
                                    );
                                    req.headers()
                                        .get("authorization")
                                        .and_then(|v| v.to_str().ok())
                                        == Some(want.as_str())
                                }
                            };
                            let (code, body, ct) = if !authorized {
                                (401, String::new(), "text/plain")
                            } else if req.uri().path() == path {
                                (
                                    200,
                                    engine.metrics.encode(),
                                    "application/openmetrics-text; version=1.0.0; charset=utf-8",
                                )
                            } else {
                                (404, "404 page not found\n".to_string(), "text/plain")
                            };
                            let mut r = hyper::Response::new(http_body_util::Full::new(
                                bytes::Bytes::from(body),
                            ));
                            *r.status_mut() =
                                hyper::StatusCode::from_u16(code).unwrap_or(hyper::StatusCode::OK);
                            if let Ok(v) = ct.parse() {
                                r.headers_mut().insert("content-type", v);
                            }
                            Ok::<_, std::convert::Infallible>(r)
                        }
                    },
                );
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(s), svc)
                    .await;
            });
        }
    });
    Ok(())
}

/// `gost-proxy hook <phase> -C …`: runs one phase's commands for every service of a config
/// (used as a container lifecycle step).
///
/// Failure semantics in a pod (GOST logs a failing hook and carries on; Kubernetes kills a
/// container whose postStart fails, so these steps never fail on a hook command):
/// - `pre-up` (the `gost-pre-up` init container) exits 1 when a command fails, so the pod start
///   fails visibly (`Init:Error`), like a failed bind;
/// - `post-up` waits until every service of every process group listens, runs the commands,
///   reports to `--health` (`/post-up-done?failed=N`, shown by `/ready`) and exits 0;
/// - `pre-down` runs the commands, then asks the engine to stop accepting on inbound services
///   (`/drain-inbound`; egress keeps serving until SIGTERM) and exits 0;
/// - `post-down` exits 1 when a command fails (the engine runs it itself on SIGTERM).
pub async fn run_hook(cli: &Cli) -> Result<ExitCode, ProgramError> {
    use crate::hooks::Phase;
    let phase = cli
        .positional
        .get(1)
        .and_then(|p| Phase::parse(p))
        .ok_or_else(|| {
            ProgramError::msg(
                "usage: gost-proxy hook <pre-up|post-up|pre-down|post-down> -C <config>",
            )
        })?;
    let kinds = crate::Kinds::builtin();
    let cfg = effective_config(cli, &kinds).await?;
    init_logging(&cfg);
    // As a postStart step: wait until every service listens before running postUp.
    if let (Phase::PostUp, Some(h)) = (phase, &cli.health) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
        loop {
            if crate::health::call(h, "GET", "/listening")
                .await
                .ok()
                .map(|r| r.0)
                == Some(200)
            {
                break;
            }
            if tokio::time::Instant::now() > deadline {
                tracing::error!(health = %h, "hook post-up: services not listening after 120 s; postUp not run");
                return Ok(ExitCode::SUCCESS);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    let mut failed = 0;
    for s in &cfg.services {
        let md = crate::md::Md::new(format!("services[{}].metadata", s.name), &s.metadata);
        let hooks = crate::hooks::Hooks::from_metadata(&md)
            .map_err(|e| ProgramError::msg(format!("{e}")))?;
        failed += hooks.run(phase, &s.name, &s.addr).await;
    }
    let report = match phase {
        Phase::PostUp => Some(format!("/post-up-done?failed={failed}")),
        Phase::PreDown => Some("/drain-inbound".to_string()),
        _ => None,
    };
    if let (Some(path), Some(h)) = (report, &cli.health) {
        match crate::health::call(h, "POST", &path).await {
            Ok((200, _)) => {}
            Ok((code, body)) => {
                tracing::error!(health = %h, path = %path, code, body = %body.trim(), "hook: the engine refused the report")
            }
            Err(e) => {
                tracing::error!(health = %h, path = %path, error = %e, "hook: cannot report to the engine")
            }
        }
    }
    if failed > 0 {
        tracing::warn!(phase = ?phase, failed, "hook commands failed");
    }
    Ok(match phase {
        Phase::PostUp | Phase::PreDown => ExitCode::SUCCESS,
        _ if failed == 0 => ExitCode::SUCCESS,
        _ => ExitCode::from(1),
    })
}

/// `gost-proxy await [--health addr] [--timeout 120s] [--shutdown] -- CMD ARG…`: waits until the
/// sidecar is ready, runs CMD, and with `--shutdown` stops the sidecar afterwards
/// (`POST /shutdown`), so a Job's pod completes without native sidecars. Exits with CMD's code.
pub async fn run_await(args: &[String]) -> Result<ExitCode, ProgramError> {
    let mut health = crate::health::DEFAULT_ADDR.to_string();
    let mut timeout = Duration::from_secs(120);
    let mut shutdown = false;
    let mut it = args.iter().skip(1);
    let mut cmd: Vec<String> = Vec::new();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--health" => health = it.next().cloned().ok_or_else(|| ProgramError::msg("await: --health needs an address"))?,
            "--timeout" => {
                let v = it.next().ok_or_else(|| ProgramError::msg("await: --timeout needs a duration"))?;
                timeout = gost_config::parse_go_duration(v)
                    .map_err(|e| ProgramError::msg(format!("await: --timeout {v:?}: {e}")))?;
            }
            "--shutdown" => shutdown = true,
            "--" => {
                cmd = it.by_ref().cloned().collect();
            }
            other => return Err(ProgramError::msg(format!("await: unexpected argument {other:?} (usage: gost-proxy await [--health addr] [--timeout d] [--shutdown] -- CMD ARG…)"))),
        }
    }
    let Some((prog, rest)) = cmd.split_first() else {
        return Err(ProgramError::msg("await: no command given after --"));
    };
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if crate::health::call(&health, "GET", "/ready")
            .await
            .ok()
            .map(|r| r.0)
            == Some(200)
        {
            break;
        }
        if tokio::time::Instant::now() > deadline {
            return Err(ProgramError::msg(format!(
                "await: the sidecar at {health} was not ready after {timeout:?}"
            )));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let status = tokio::process::Command::new(prog)
        .args(rest)
        .status()
        .await
        .with_context(|| format!("await: cannot run {prog:?}"))?;
    if shutdown {
        if let Err(e) = crate::health::call(&health, "POST", "/shutdown").await {
            eprintln!("gost-proxy await: cannot stop the sidecar at {health}: {e}");
        }
    }
    Ok(ExitCode::from(
        status.code().map_or(1, |c| c.clamp(0, 255) as u8),
    ))
}

/// Runs the engine until SIGTERM/SIGINT; SIGHUP re-reads every source and applies it.
pub async fn run(cli: Cli) -> Result<ExitCode, ProgramError> {
    if cli.version {
        println!("{}", version());
        return Ok(ExitCode::SUCCESS);
    }
    if cli.positional.first().map(String::as_str) == Some("hook") {
        return run_hook(&cli).await;
    }

    if let Some(p) = cli.positional.first() {
        return Err(ProgramError::msg(format!(
            "unexpected argument {p:?}\n{}",
            crate::args::USAGE
        )));
    }
    let kinds = crate::Kinds::builtin();
    let cfg = effective_config(&cli, &kinds).await?;
    if let Some(fmt) = &cli.output {
        let text = if fmt == "json" {
            cfg.to_json_pretty()?
        } else {
            cfg.to_yaml()?
        };
        println!("{}", text.trim_end());
        return Ok(ExitCode::SUCCESS);
    }
    init_logging(&cfg);
    if let Some(gid) = std::env::var_os("_GOST_ID") {
        crate::supervise::child_guard(gid.to_string_lossy().as_ref());
    }
    // Before anything listens: a signal that arrives while services start is handled by the
    // loop below (graceful), never by the default action (immediate death).
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    let mut hup = signal(SignalKind::hangup())?;
    let api_slot = crate::api::Slot::default();
    let kinds = crate::Kinds::builtin_with_api(crate::api::serve_handler(Arc::clone(&api_slot)));
    let engine = Engine::with_kinds(
        kinds,
        EngineOpts {
            strict: cli.strict,
            drain: cli.drain.unwrap_or(Duration::from_secs(30)),
            metrics_client_label: !cli.no_client_label,
            external_hooks: cli.external_hooks,
        },
    );
    let write_lock = Arc::new(tokio::sync::Mutex::new(()));
    let reload: crate::api::ReloadFn = {
        let (cli, engine, lock) = (cli.clone(), Arc::clone(&engine), Arc::clone(&write_lock));
        Arc::new(move || {
            let (cli, engine, lock) = (cli.clone(), Arc::clone(&engine), Arc::clone(&lock));
            Box::pin(async move {
                let _w = lock.lock().await;
                let kinds = crate::Kinds::builtin();
                let cfg = effective_config(&cli, &kinds)
                    .await
                    .map_err(|e| format!("{e:#}"))?;
                engine.apply(cfg).await.map_err(|e| e.to_string())
            })
        })
    };
    let save_path = cli
        .configs
        .iter()
        .map(std::path::PathBuf::from)
        .find(|p| p.is_file());
    let api_ctx = Arc::new(crate::api::ApiContext {
        engine: Arc::downgrade(&engine),
        reload: Arc::clone(&reload),
        save_path,
        write: write_lock,
    });
    let _ = api_slot.set(Arc::clone(&api_ctx));
    let mut _api_task = None;
    if let Some(a) = cfg.api.clone().filter(|a| !a.addr.is_empty()) {
        let app = crate::api::router(
            Arc::clone(&api_ctx),
            crate::api::ApiSettings::from_config(&a, Arc::downgrade(&engine)),
        );
        _api_task = Some(
            crate::api::serve(&a.addr, app)
                .await
                .with_context(|| format!("api.addr {}", a.addr))?,
        );
        tracing::info!(addr = %a.addr, "api listening");
        if a.auth.is_none() && a.auther.as_deref().unwrap_or("").is_empty() {
            // GOST serves an API without credentials too; say loudly that anyone who reaches
            // the address can rewrite the proxy
            tracing::warn!(addr = %a.addr, "the Web API has no auth or auther: anyone who can connect to it can change and read the config");
        }
    }
    if let Some(m) = cfg.metrics.clone().filter(|m| !m.addr.is_empty()) {
        serve_metrics(m, Arc::clone(&engine)).await?;
    }
    let shutdown = tokio_util::sync::CancellationToken::new();
    if let Some(h) = &cli.health {
        let health = crate::health::EngineHealth {
            engine: Arc::clone(&engine),
            external_hooks: cli.external_hooks,
            post_up_done: Default::default(),
            post_up_failed: Default::default(),
            shutdown: shutdown.clone(),
        };
        let bound =
            crate::health::serve(h, health.handler()).with_context(|| format!("--health {h}"))?;
        tracing::info!(addr = %bound, "health endpoint listening");
    }
    let report = match engine.apply(cfg).await {
        Ok(r) => r,
        Err(e) => {
            eprintln!("gost-proxy: invalid configuration:");
            for err in &e.0 {
                eprintln!("  {err}");
            }
            return Ok(ExitCode::from(EX_USAGE));
        }
    };
    if !report.failed.is_empty() {
        for e in &report.failed {
            eprintln!("gost-proxy: {e}");
        }
        engine.shutdown(Duration::ZERO).await;
        return Ok(ExitCode::from(1));
    }
    let watched: Vec<std::path::PathBuf> = cli
        .configs
        .iter()
        .map(std::path::PathBuf::from)
        .filter(|p| p.is_file() || p.is_dir())
        .collect();
    let _watch = (!cli.no_watch && !watched.is_empty()).then(|| {
        crate::watch::spawn(
            watched,
            Arc::clone(&reload),
            Duration::from_secs(5),
            Duration::from_millis(200),
        )
    });
    loop {
        tokio::select! {
            _ = term.recv() => break,
            _ = int.recv() => break,
            _ = shutdown.cancelled() => {
                tracing::info!("shutdown requested on the health endpoint");
                break;
            }
            _ = hup.recv() => {
                match reload().await {
                    Ok(r) => tracing::info!(added = ?r.added, changed = ?r.changed, removed = ?r.removed, "reloaded (SIGHUP)"),
                    Err(e) => tracing::error!(error = %e, "reload rejected; the running config keeps serving"),
                }
            }
        }
    }
    tracing::info!("shutting down: listeners closed, draining connections");
    engine
        .shutdown(cli.drain.unwrap_or(Duration::from_secs(30)))
        .await;
    Ok(ExitCode::SUCCESS)
}
