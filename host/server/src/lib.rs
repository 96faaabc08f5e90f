//! The `sigil` binary's library half: configuration, start-up wiring, the TLS listener, graceful
//! shutdown and the offline subcommands. The integration tests start the real server through
//! [`startup::start`].

pub mod acme;
pub mod affinity;
pub mod anchor;
pub mod backup;
pub mod ca_cli;
pub mod cli;
pub mod client;
pub mod config;
pub mod entry;
pub mod plugin_cli;
pub mod plugins;
pub mod root_keys;
pub mod startup;
pub mod tls;
