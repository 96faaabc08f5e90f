//! Sigil's domain, by area. Each area is a folder holding its models (singular nouns: what the
//! objects are and their state machines) and its use cases (plural nouns: the services):
//!
//! - [`access`]: API keys, principals, permissions, roles, operators and their scopes;
//! - [`audit`]: the hash-chained, signed audit trail, its verifier, queries and exports;
//! - [`org`]: organizations, divisions, registration offices, and the [`access::scope::Scope`] every
//!   object is seen through;
//! - [`people`]: person records, custom fields, identity sources;
//! - [`certs`]: certificates, profiles and their conformance rules, CA back ends, CRLs, OCSP;
//! - [`cards`]: devices and tokens, enrolment requests, PIN reset, self-service;
//! - [`signing`]: signers, signing credentials, the CSC protocol, CSC providers;
//! - [`acme`]: the ACME protocol (RFC 8555) over the certificate area.
//!
//! Shared: [`page`], [`ports`] (the traits storage, crypto and plugins implement, with the
//! narrow `AccessPort` and the per-area read and write ports), [`records`] (typed records and
//! filters, and the narrow `Records` port), [`sealing`], [`secrets`], [`settings`], [`error`]
//! with [`codes`] (the catalogue of error codes), and [`events`] (the catalogue of lifecycle
//! events). With the `testing` feature (and in this crate's unit tests), `testing` holds the
//! in-memory fakes of the narrow ports and a settable clock.
//!
//! Core speaks no SQL: it names collections and filters, and `sigil-store` turns them into
//! tables, columns and conditions (`tests/import_graph.rs` holds both this and the absence of
//! import circles).
//!
//! This crate knows nothing of HTTP, SQL drivers or WebAssembly: it depends on none of axum,
//! sqlx or wasmtime. Every state change goes through a use case, which needs a
//! [`access::authz::Capability`] for the permission involved and commits the change with its
//! audit events in one transaction.
#![deny(missing_docs)]

pub mod access;
pub mod acme;
pub mod audit;
pub mod cache;
pub mod cards;
mod catalogue;
pub mod certs;
pub mod codes;
pub mod error;
pub mod events;
pub mod org;
pub mod page;
pub mod pem;
pub mod people;
pub mod ports;
pub mod records;
pub mod sealing;
pub mod secrets;
pub mod settings;
pub mod signing;
#[cfg(any(test, feature = "testing"))]
pub mod testing;

pub use error::{AuthFailure, CoreError, ErrorCode, Result, StoreError};
