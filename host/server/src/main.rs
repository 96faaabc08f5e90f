//! `sigil`: parse the command line, set up logging, run the subcommand.

use std::io::IsTerminal as _;

use clap::Parser;
use sigil_server::cli::{Cli, run};
use sigil_server::config::Config;

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

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let cfg = Config::load(cli.config.as_deref());
    init_tracing(cfg.as_ref().ok());
    match run(cli).await {
        Ok(0) => std::process::ExitCode::SUCCESS,
        Ok(code) => std::process::ExitCode::from(u8::try_from(code).unwrap_or(1)),
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
