//! `sigil-plugin-sdk`: write a Sigil plugin as a plain Rust impl.
//!
//! The generated WIT bindings stay hidden; a plugin implements a trait per world and exports it
//! with one macro. Build with `cargo build --release --target wasm32-wasip2`; the result is a
//! component Sigil loads (see `sdk/README.md`).
//!
//! ```ignore
//! use sigil_plugin_sdk::validator::{Subject, SubjectExt, Validator, Verdict};
//! use sigil_plugin_sdk::{config, log};
//!
//! struct NoTestNames;
//! impl Validator for NoTestNames {
//!     fn validate(s: Subject) -> Result<Verdict, String> {
//!         match s.attribute("CN") {
//!             Some(cn) if cn.contains("test") => Ok(Verdict::Deny(vec![format!("{cn}: no test names")])),
//!             _ => Ok(Verdict::Allow),
//!         }
//!     }
//! }
//! sigil_plugin_sdk::export_validator!(NoTestNames);
//! ```
#![deny(missing_docs)]

#[doc(hidden)]
#[allow(missing_docs, clippy::all)]
pub mod bindings {
    wit_bindgen::generate!({
        world: "validator",
        path: "../wit",
        pub_export_macro: true,
        export_macro_name: "export_validator",
        default_bindings_module: "sigil_plugin_sdk::bindings",
    });
}

/// Exports a type implementing [`validator::Validator`] as the plugin.
pub use bindings::export_validator;

/// Logging into Sigil's log (needs the `log` grant).
pub mod log {
    pub use crate::bindings::sigil::plugin::log::Level;

    /// Logs `message` at `level`, tagged with the plugin id.
    pub fn log(level: Level, message: &str) {
        crate::bindings::sigil::plugin::log::log(level, message);
    }

    /// Logs at info.
    pub fn info(message: &str) {
        log(Level::Info, message);
    }

    /// Logs at warn.
    pub fn warn(message: &str) {
        log(Level::Warn, message);
    }
}

/// The plugin's configuration values (needs the `config` grant).
pub mod config {
    /// The value of `key` in `[plugins.load.<id>.config]`.
    pub fn get(key: &str) -> Option<String> {
        crate::bindings::sigil::plugin::config::get(key)
    }

    /// The value of `key` parsed, or `default` when absent or unparsable.
    pub fn get_or<T: std::str::FromStr>(key: &str, default: T) -> T {
        get(key).and_then(|v| v.parse().ok()).unwrap_or(default)
    }
}

/// Wall-clock time (needs the `clock` grant).
pub mod clock {
    /// Milliseconds since the Unix epoch.
    pub fn now_ms() -> u64 {
        crate::bindings::sigil::plugin::clock::now_ms()
    }
}

/// The validator world.
pub mod validator {
    pub use crate::bindings::Guest as Validator;
    pub use crate::bindings::sigil::plugin::types::Kv;
    pub use crate::bindings::{Subject, Verdict};

    /// Conveniences on the subject.
    pub trait SubjectExt {
        /// The first attribute named `name` (`CN`, `O`, …).
        fn attribute(&self, name: &str) -> Option<&str>;
        /// DNS names among the SANs.
        fn dns_names(&self) -> Vec<&str>;
    }

    impl SubjectExt for Subject {
        fn attribute(&self, name: &str) -> Option<&str> {
            self.attributes.iter().find(|kv| kv.key == name).map(|kv| kv.value.as_str())
        }

        fn dns_names(&self) -> Vec<&str> {
            self.sans.iter().filter_map(|s| s.strip_prefix("dns:")).collect()
        }
    }
}
