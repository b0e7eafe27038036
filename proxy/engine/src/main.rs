//! `gost-proxy`: a drop-in for `gost` v3 and the kubegost sidecar.

use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        // system name lookups (getaddrinfo, for targets no configured resolver handles) run on
        // blocking threads: 64 at most, so a flood of slow lookups queues instead of growing
        // the process by hundreds of threads (tokio's default cap is 512)
        .max_blocking_threads(64)
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("gost-proxy: cannot start the runtime: {e}");
            return ExitCode::from(1);
        }
    };
    let result = rt.block_on(async {
        // `await` takes a command after `--`, so it is dispatched before `--` groups are split
        if args.first().map(String::as_str) == Some("fetch") {
            return Ok(gost_engine::fetch::run(&args[1..]).await);
        }
        if args.first().map(String::as_str) == Some("await") {
            return gost_engine::app::run_await(&args).await;
        }
        if let Some(groups) = gost_engine::args::split_groups(&args) {
            return gost_engine::supervise::run(groups).await;
        }
        let cli = match gost_engine::args::parse(&args) {
            Ok(c) => c,
            Err(msg) => {
                eprintln!("{msg}");
                return Ok(ExitCode::from(gost_engine::app::EX_USAGE));
            }
        };
        gost_engine::app::run(cli).await
    });
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("gost-proxy: {e:#}");
            ExitCode::from(gost_engine::app::EX_USAGE)
        }
    }
}
