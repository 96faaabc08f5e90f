//! The Sigil plugin host: WebAssembly components run with wasmtime's component model.
//!
//! One [`engine::PluginEngine`] per process (pooling allocator when the address space allows,
//! epoch deadlines ticked every 10 ms, a compiled-code cache keyed by the component's digest and
//! the engine). Each plugin is compiled and type-checked once into a pre-instantiated component;
//! every call gets a fresh store with the plugin's memory limit and deadline, under the plugin's
//! concurrency limit. Host interfaces are capabilities: a plugin that imports one its
//! configuration does not grant is refused at load, with the interface named.
//!
//! Worlds: `validator`, `endpoint` (with the `sigil-api` interface), `workflow`, and
//! `ca-connector`, which serves as a CA back end (the core `Issuer` port) under its plugin id.
//! `outbound-http` reaches only the origins in the plugin's `allowed_hosts`.

mod bindings;
mod connector;
pub mod engine;
pub mod error;
mod host;
mod outbound;
pub mod plugin;
pub mod registry;
mod run;

pub use connector::serial_decimal;
pub use engine::PluginEngine;
pub use error::PluginError;
pub use plugin::{LoadedPlugin, PluginPolicy, World};
pub use registry::{PluginRegistry, PluginSpec};
