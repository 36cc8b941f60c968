//! `tokend`: parse the command line, run one command, map errors to an exit code.

use std::process::ExitCode;

use clap::Parser;
use tokend::cli::Cli;

fn main() -> ExitCode {
    let cli = Cli::parse();
    tokend::telemetry::init(cli.global.log_format);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("tokend: cannot start the async runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(tokend::commands::run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            tracing::error!(error = %err, "tokend failed");
            eprintln!("tokend: {err}");
            ExitCode::from(err.exit_code())
        }
    }
}
