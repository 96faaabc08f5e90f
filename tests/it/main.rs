//! Integration tests: the real server over HTTPS, on SQLite and (when configured) PostgreSQL.

mod apikeys;
mod audit;
mod cli;
mod http;
mod exposure;
mod scaleout;
