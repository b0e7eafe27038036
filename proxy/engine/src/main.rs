//! `gost-proxy`: a drop-in for `gost` v3 and the kubegost sidecar.

use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
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
