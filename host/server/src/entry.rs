//! What the `sigil` executable does: parse the command line, set up logging, run the
//! subcommand. In the library so that the test suite can build the same executable under a
//! name of its own (`tests/src/bin/sigil_it.rs`) and run it as a child process.

use std::io::IsTerminal as _;
use std::process::ExitCode;

use clap::Parser;

use crate::cli::{Cli, run};
use crate::config::Config;

fn init_tracing(cfg: Option<&Config>) {
    let level = cfg.map(|c| c.log.level.clone()).unwrap_or_else(|| "info".into());
    let filter = tracing_subscriber::EnvFilter::try_from_env("SIGIL_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level));
    let json = cfg.is_some_and(|c| c.log.format == "json");
    // Colour only for a person at a terminal: escape codes in a log file or a journal are noise,
    // and `NO_COLOR` (no-color.org) turns them off there too.
    let ansi = !json && std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(ansi);
    if json {
        builder.json().init();
    } else {
        builder.init();
    }
}

/// `main` of the `sigil` executable.
#[tokio::main]
pub async fn main() -> ExitCode {
    let cli = Cli::parse();
    let cfg = Config::load(cli.config.as_deref());
    init_tracing(cfg.as_ref().ok());
    match run(cli).await {
        Ok(0) => ExitCode::SUCCESS,
        Ok(code) => ExitCode::from(u8::try_from(code).unwrap_or(1)),
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
