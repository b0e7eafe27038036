//! `gost-operator`: reconciles GostService and GostChain resources (see `gost_operator::app`).

use std::process::ExitCode;

use clap::Parser;
use gost_operator::app::{init_logging, run, Args};

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    if let Err(e) = init_logging(&args) {
        eprintln!("gost-operator: {e}");
        return ExitCode::from(64);
    }
    match run(args).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %e, "gost-operator failed");
            eprintln!("gost-operator: {e}");
            ExitCode::FAILURE
        }
    }
}
