//! Integration tests: the real server over HTTPS, on SQLite and (when configured) PostgreSQL.

// Helpers outside #[test] functions may fail loudly too.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod acme;
mod acme_clients;
mod apikeys;
mod audit;
mod audit_anchor;
mod authz_attacks;
mod authz_matrix;
mod cabf;
mod certificates;
mod cli;
mod conformance;
mod connector;
mod csc;
mod csc_login;
mod devices;
mod durability;
mod exposure;
mod hsm;
mod http;
mod identity;
mod import;
mod monitoring;
mod mtls;
mod operations;
mod operators;
mod org;
mod people;
mod pin_reset;
mod pkilint;
mod plugins;
mod pyhanko;
mod requests;
mod scaleout;
mod sealing;
mod selfservice;
mod supersession;
mod ui;
mod walkthrough;
