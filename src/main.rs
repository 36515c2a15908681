//! The `fleetform` binary: parse arguments, choose the log format, run on one async runtime,
//! report the error chain.

use clap::Parser;
use fleetform::cli::output::{self, ExitStatus};
use fleetform::cli::{Cli, LogFormat, run};
use std::process::ExitCode;
use std::time::Duration;

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_tracing(cli.log_format(), cli.default_log_filter());
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            output::print_error(&anyhow::Error::new(e).context("cannot start the async runtime"));
            return ExitStatus::Failure.into();
        }
    };
    let result = runtime.block_on(run(cli));
    // Calls that outlived the command (none should) are not waited for.
    runtime.shutdown_timeout(Duration::from_secs(5));
    match result {
        Ok(status) => status.into(),
        Err(err) => {
            output::print_error(&err);
            ExitStatus::Failure.into()
        }
    }
}

/// Logs go to stderr, in the command's format (`watch --log-format json` writes one JSON
/// object per line), coloured only on a terminal without `NO_COLOR`; `RUST_LOG` wins over
/// `-v` and the command's default.
fn init_tracing(format: LogFormat, default: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(output::stderr_color());
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_span_list(false)
            .init(),
    }
}
