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
    let result = runtime.block_on(tokend::commands::run(cli));
    // Dropping the runtime would wait for every blocking task without end
    // (a hung name lookup, say): the exit must not outlast the shutdown
    // grace period by more than this.
    runtime.shutdown_timeout(std::time::Duration::from_millis(200));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            tracing::error!(error = %err, "tokend failed");
            eprintln!("tokend: {err}");
            ExitCode::from(err.exit_code())
        }
    }
}
