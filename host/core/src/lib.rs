//! Sigil's domain: types, rules, authorization, the audit chain, the services that carry out use
//! cases, and the ports (traits) that storage and crypto implement.
//!
//! This crate knows nothing of HTTP, SQL or WebAssembly: it depends on none of axum, sqlx or
//! wasmtime. Every state change goes through a service, which needs a [`authz::Capability`] for
//! the permission involved and commits the change with its audit events in one transaction.
#![deny(missing_docs)]

pub mod access;
pub mod audit;
pub mod cards;
pub mod certs;
pub mod error;
pub mod org;
pub mod page;
pub mod people;
pub mod ports;
pub mod records;
pub mod sealing;
pub mod secrets;
pub mod settings;
pub mod signing;

pub use error::{AuthFailure, CoreError, Result, StoreError};
