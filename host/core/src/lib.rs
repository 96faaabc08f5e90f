//! Sigil's domain: types, rules, authorization, the audit chain, the services that carry out use
//! cases, and the ports (traits) that storage and crypto implement.
//!
//! This crate knows nothing of HTTP, SQL or WebAssembly: it depends on none of axum, sqlx or
//! wasmtime. Every state change goes through a service, which needs a [`authz::Capability`] for
//! the permission involved and commits the change with its audit events in one transaction.
#![deny(missing_docs)]

pub mod apikey;
pub mod audit;
pub mod authz;
pub mod ca;
pub mod cert;
pub mod csc;
pub mod device;
pub mod error;
pub mod export;
pub mod operator;
pub mod org;
pub mod people;
pub mod ports;
pub mod profile;
pub mod records;
pub mod request;
pub mod sealing;
pub mod service;
pub mod unlock;

pub use error::{AuthFailure, CoreError, Result, StoreError};
