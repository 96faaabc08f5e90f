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

/// How many tasks a busy async thread runs between two looks at the sockets (tokio's default is
/// 61) and at the queue of tasks woken from other threads, where SQLite's group writer answers
/// (31 by default, or tuned from the mean task time). On SQLite, at 16 clients, the defaults
/// left requests waiting in their sockets while both threads ran other tasks, then idled the
/// cores when those were done: measured on 2 cores in alternating runs (`compare --only
/// sign-hash`, five triples), signHash 12,509/s at 7 against 11,501/s at the defaults (cores
/// busy 83% against 76%, CPU per signature unchanged) and 11,519/s at 3 (more CPU spent
/// looking); 7 for the sockets alone gave 11,791/s, for the queue alone 10,996/s. Issuance (five
/// pairs) was unchanged, 5,779/s against 5,724/s. On PostgreSQL, whose answers come over
/// sockets the runtime already watches, 7 cost CPU per signature (149 µs against 130) and
/// signHash fell from 5,111/s to 4,491/s (three pairs): there the defaults stay. Later, on the
/// faster VM with the LTO build, 3, 7, 15 and the defaults measured alike unpinned; with
/// `server.pin_workers`, 15 beat 7 in alternating runs of 5 s: issuance 12,323/s against
/// 12,120/s (five each), signHash 22,933/s against 22,596/s (three each), and the defaults did
/// as well as 15. 15 keeps the sockets looked at more often than the defaults.
const SQLITE_CHECK_INTERVAL: u32 = 15;

/// `main` of the `sigil` executable.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let cfg = Config::load(cli.config.as_deref());
    init_tracing(cfg.as_ref().ok());
    let mut runtime = tokio::runtime::Builder::new_multi_thread();
    runtime.enable_all();
    // A configuration that does not load is reported by the command itself.
    if cfg.as_ref().map_or(true, |c| c.database_url().starts_with("sqlite:")) {
        runtime.event_interval(SQLITE_CHECK_INTERVAL).global_queue_interval(SQLITE_CHECK_INTERVAL);
    }
    let serving = matches!(cli.command, crate::cli::Command::Serve { .. });
    let mut pin = serving && cfg.as_ref().is_ok_and(|c| c.server.pin_workers);
    if pin {
        // Read before any worker is pinned: the CPUs every thread the runtime starts gets back.
        match crate::affinity::restore_on_thread_start() {
            Ok(hook) => {
                runtime.on_thread_start(hook);
            }
            Err(e) => {
                tracing::warn!(error = %e, "async worker threads not pinned");
                pin = false;
            }
        }
    }
    let runtime = match runtime.build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    if pin {
        match crate::affinity::pin_workers(&runtime) {
            Ok(cpus) => tracing::info!(?cpus, "async worker threads pinned (server.pin_workers)"),
            Err(e) => tracing::warn!(error = %e, "async worker threads not pinned"),
        }
    }
    match runtime.block_on(run(cli)) {
        Ok(0) => ExitCode::SUCCESS,
        Ok(code) => ExitCode::from(u8::try_from(code).unwrap_or(1)),
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
