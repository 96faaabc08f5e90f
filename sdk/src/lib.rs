//! `sigil-plugin-sdk`: write a Sigil plugin as a plain Rust impl.
//!
//! The SDK targets the plugin contract `sigil:plugin@0.1.0` ([`WIT_PACKAGE`], `wit/` at the
//! repository root). A plugin implements the trait of its world and exports it with that world's
//! macro; the generated WIT bindings stay hidden. Worlds: [`validator`]
//! ([`export_validator!`]), [`workflow`] ([`export_workflow!`]), [`endpoint`]
//! ([`export_endpoint!`]), [`connector`] ([`export_ca_connector!`]) and [`identity`]
//! ([`export_identity_source!`]). No feature selects a world: every world is available, and the
//! export macro a plugin calls decides which one its component targets, so plugins of different
//! worlds build together in one cargo call. Build with `cargo build --release --target
//! wasm32-wasip2`; the result is a component Sigil loads (see `sdk/README.md`).
//!
//! How: the host interfaces (log, config, clock, outbound HTTP, Sigil's API) and the contract's
//! types are generated once here, in an imports-only world; a component keeps only the imports
//! it calls. Each export macro generates its world's export glue in the plugin crate, reusing
//! those types, so a component describes exactly one world.
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

/// The WIT package this SDK targets; a host that speaks another version refuses the plugin.
pub const WIT_PACKAGE: &str = "sigil:plugin@0.1.0";

#[doc(hidden)]
pub use wit_bindgen as __wit_bindgen;

/// The contract's types and host interfaces, generated once for every world. Only what a
/// component calls becomes one of its imports.
#[doc(hidden)]
#[allow(missing_docs, clippy::all)]
pub mod wit {
    wit_bindgen::generate!({
        inline: "package sigil:sdk;
            world imports {
                import sigil:plugin/types@0.1.0;
                import sigil:plugin/log@0.1.0;
                import sigil:plugin/config@0.1.0;
                import sigil:plugin/clock@0.1.0;
                import sigil:plugin/outbound-http@0.1.0;
                import sigil:plugin/sigil-api@0.1.0;
                import sigil:plugin/validation@0.1.0;
                import sigil:plugin/connector@0.1.0;
                import sigil:plugin/events@0.1.0;
            }",
        path: "../wit",
        world: "sigil:sdk/imports",
        generate_all,
    });
}

include!(concat!(env!("OUT_DIR"), "/world_macro.rs"));

/// Exports a type implementing [`validator::Validator`] as the plugin (world `validator`).
#[macro_export]
macro_rules! export_validator {
    ($t:ty) => {
        #[doc(hidden)]
        mod __sigil_export {
            #[allow(unused_imports)]
            use super::*;
            $crate::__sigil_world!("validator", with: {
                "sigil:plugin/types@0.1.0": ::sigil_plugin_sdk::wit::sigil::plugin::types,
                "sigil:plugin/log@0.1.0": ::sigil_plugin_sdk::wit::sigil::plugin::log,
                "sigil:plugin/config@0.1.0": ::sigil_plugin_sdk::wit::sigil::plugin::config,
                "sigil:plugin/clock@0.1.0": ::sigil_plugin_sdk::wit::sigil::plugin::clock,
                "sigil:plugin/validation@0.1.0": ::sigil_plugin_sdk::wit::sigil::plugin::validation,
            });
            struct Export;
            impl Guest for Export {
                fn validate(
                    s: $crate::validator::Subject,
                ) -> ::core::result::Result<$crate::validator::Verdict, ::std::string::String> {
                    <$t as $crate::validator::Validator>::validate(s)
                }
            }
            export!(Export);
        }
    };
}

/// Exports a type implementing [`workflow::Workflow`] as the plugin (world `workflow`).
#[macro_export]
macro_rules! export_workflow {
    ($t:ty) => {
        #[doc(hidden)]
        mod __sigil_export {
            #[allow(unused_imports)]
            use super::*;
            $crate::__sigil_world!("workflow", with: {
                "sigil:plugin/types@0.1.0": ::sigil_plugin_sdk::wit::sigil::plugin::types,
                "sigil:plugin/log@0.1.0": ::sigil_plugin_sdk::wit::sigil::plugin::log,
                "sigil:plugin/config@0.1.0": ::sigil_plugin_sdk::wit::sigil::plugin::config,
                "sigil:plugin/clock@0.1.0": ::sigil_plugin_sdk::wit::sigil::plugin::clock,
                "sigil:plugin/outbound-http@0.1.0": ::sigil_plugin_sdk::wit::sigil::plugin::outbound_http,
                "sigil:plugin/events@0.1.0": ::sigil_plugin_sdk::wit::sigil::plugin::events,
            });
            struct Export;
            impl Guest for Export {
                fn on_event(
                    e: $crate::workflow::Event,
                ) -> ::core::result::Result<
                    ::std::vec::Vec<$crate::workflow::Action>,
                    ::std::string::String,
                > {
                    <$t as $crate::workflow::Workflow>::on_event(e)
                }
            }
            export!(Export);
        }
    };
}

/// Exports a type implementing [`endpoint::Endpoint`] as the plugin (world `endpoint`).
#[macro_export]
macro_rules! export_endpoint {
    ($t:ty) => {
        #[doc(hidden)]
        mod __sigil_export {
            #[allow(unused_imports)]
            use super::*;
            $crate::__sigil_world!("endpoint", with: {
                "sigil:plugin/types@0.1.0": ::sigil_plugin_sdk::wit::sigil::plugin::types,
                "sigil:plugin/log@0.1.0": ::sigil_plugin_sdk::wit::sigil::plugin::log,
                "sigil:plugin/config@0.1.0": ::sigil_plugin_sdk::wit::sigil::plugin::config,
                "sigil:plugin/clock@0.1.0": ::sigil_plugin_sdk::wit::sigil::plugin::clock,
                "sigil:plugin/sigil-api@0.1.0": ::sigil_plugin_sdk::wit::sigil::plugin::sigil_api,
            });
            struct Export;
            impl Guest for Export {
                fn handle(r: $crate::http::HttpRequest) -> $crate::http::HttpResponse {
                    <$t as $crate::endpoint::Endpoint>::handle(r)
                }
            }
            export!(Export);
        }
    };
}

/// Exports a type implementing [`connector::CaConnector`] as the plugin (world `ca-connector`).
#[macro_export]
macro_rules! export_ca_connector {
    ($t:ty) => {
        #[doc(hidden)]
        mod __sigil_export {
            #[allow(unused_imports)]
            use super::*;
            $crate::__sigil_world!("ca-connector", with: {
                "sigil:plugin/types@0.1.0": ::sigil_plugin_sdk::wit::sigil::plugin::types,
                "sigil:plugin/log@0.1.0": ::sigil_plugin_sdk::wit::sigil::plugin::log,
                "sigil:plugin/config@0.1.0": ::sigil_plugin_sdk::wit::sigil::plugin::config,
                "sigil:plugin/clock@0.1.0": ::sigil_plugin_sdk::wit::sigil::plugin::clock,
                "sigil:plugin/outbound-http@0.1.0": ::sigil_plugin_sdk::wit::sigil::plugin::outbound_http,
                "sigil:plugin/connector@0.1.0": ::sigil_plugin_sdk::wit::sigil::plugin::connector,
            });
            struct Export;
            impl Guest for Export {
                fn info() -> ::core::result::Result<$crate::connector::ConnectorInfo, ::std::string::String> {
                    <$t as $crate::connector::CaConnector>::info()
                }
                fn issue(r: $crate::connector::IssueRequest) -> ::core::result::Result<$crate::connector::Issued, ::std::string::String> {
                    <$t as $crate::connector::CaConnector>::issue(r)
                }
                fn revoke(
                    c: $crate::connector::CertificateRef,
                    reason: ::std::string::String,
                ) -> ::core::result::Result<(), ::std::string::String> {
                    <$t as $crate::connector::CaConnector>::revoke(c, reason)
                }
                fn suspend(c: $crate::connector::CertificateRef) -> ::core::result::Result<(), ::std::string::String> {
                    <$t as $crate::connector::CaConnector>::suspend(c)
                }
                fn reactivate(
                    c: $crate::connector::CertificateRef,
                ) -> ::core::result::Result<(), ::std::string::String> {
                    <$t as $crate::connector::CaConnector>::reactivate(c)
                }
            }
            export!(Export);
        }
    };
}

/// Exports a type implementing [`identity::IdentitySource`] as the plugin (world
/// `identity-source`).
#[macro_export]
macro_rules! export_identity_source {
    ($t:ty) => {
        #[doc(hidden)]
        mod __sigil_export {
            #[allow(unused_imports)]
            use super::*;
            $crate::__sigil_world!("identity-source", with: {
                "sigil:plugin/types@0.1.0": ::sigil_plugin_sdk::wit::sigil::plugin::types,
                "sigil:plugin/log@0.1.0": ::sigil_plugin_sdk::wit::sigil::plugin::log,
                "sigil:plugin/config@0.1.0": ::sigil_plugin_sdk::wit::sigil::plugin::config,
                "sigil:plugin/clock@0.1.0": ::sigil_plugin_sdk::wit::sigil::plugin::clock,
                "sigil:plugin/outbound-http@0.1.0": ::sigil_plugin_sdk::wit::sigil::plugin::outbound_http,
            });
            struct Export;
            impl Guest for Export {
                fn lookup(
                    known: ::std::vec::Vec<$crate::identity::Kv>,
                ) -> ::core::result::Result<
                    ::core::option::Option<::std::vec::Vec<$crate::identity::Kv>>,
                    ::std::string::String,
                > {
                    <$t as $crate::identity::IdentitySource>::lookup(known)
                }
            }
            export!(Export);
        }
    };
}

/// HTTP request and response records shared by `outbound-http`, `sigil-api` and endpoints.
pub mod http {
    pub use crate::wit::sigil::plugin::types::{HttpRequest, HttpResponse, Kv};

    /// A request with no query, headers or body.
    pub fn request(method: &str, path: &str) -> HttpRequest {
        HttpRequest {
            method: method.to_owned(),
            path: path.to_owned(),
            query: String::new(),
            headers: Vec::new(),
            body: Vec::new(),
        }
    }

    /// A request carrying `json` as an `application/json` body.
    pub fn json_request(method: &str, path: &str, json: String) -> HttpRequest {
        HttpRequest {
            headers: vec![Kv { key: "content-type".into(), value: "application/json".into() }],
            body: json.into_bytes(),
            ..request(method, path)
        }
    }

    /// A response with `status`, a content type and a body.
    pub fn response(status: u16, content_type: &str, body: Vec<u8>) -> HttpResponse {
        HttpResponse {
            status,
            headers: vec![Kv { key: "content-type".into(), value: content_type.to_owned() }],
            body,
        }
    }
}

/// Requests to the origins in the plugin's `allowed_hosts` (needs the `outbound-http` grant;
/// HTTPS trusts only the plugin's `ca_file`).
pub mod outbound {
    use crate::http::{HttpRequest, HttpResponse};

    /// Sends `request` (`path` is the absolute URL); no redirects are followed.
    pub fn send(request: &HttpRequest) -> Result<HttpResponse, String> {
        crate::wit::sigil::plugin::outbound_http::send(request)
    }
}

/// Sigil's own API, called as the plugin with its configured permissions (needs the `sigil-api`
/// grant; every call is audited with the plugin as the actor).
pub mod api {
    use crate::http::{HttpRequest, HttpResponse};

    /// Calls `request.path` (an API path such as `/api/v1/certificates`).
    pub fn call(request: &HttpRequest) -> Result<HttpResponse, String> {
        crate::wit::sigil::plugin::sigil_api::call(request)
    }
}

/// The workflow world: lifecycle events in, actions out.
pub mod workflow {
    /// A workflow plugin: lifecycle events in, API calls out.
    pub trait Workflow {
        /// Handles one event; the actions are API calls the host carries out as the plugin.
        fn on_event(event: Event) -> Result<Vec<Action>, String>;
    }
    pub use crate::wit::sigil::plugin::events::{Action, Event};

    impl Action {
        /// An API call the host carries out as the plugin.
        pub fn call(method: &str, path: impl Into<String>, body: Option<String>) -> Self {
            Action { method: method.to_owned(), path: path.into(), body }
        }
    }
}

/// The CA connector world: Sigil's profiles route issuance and revocation to an external CA.
///
/// The host checks every certificate `issue` returns (requested key, issuer, signature) and
/// records the serial and validity the CA chose. `revoke` must be idempotent: Sigil calls it
/// again when a retry follows a failure.
pub mod connector {
    /// A CA connector plugin.
    pub trait CaConnector {
        /// The CA certificate and chain (called at load, as the canary, and on every reload).
        fn info() -> Result<ConnectorInfo, String>;
        /// Issues a certificate for `request`.
        fn issue(request: IssueRequest) -> Result<Issued, String>;
        /// Revokes `certificate` (`reason` is the RFC 5280 name); must be idempotent.
        fn revoke(certificate: CertificateRef, reason: String) -> Result<(), String>;
        /// Puts `certificate` on hold; only called when `info` says holds are supported.
        fn suspend(certificate: CertificateRef) -> Result<(), String> {
            let _ = certificate;
            Err("this CA cannot put certificates on hold".into())
        }
        /// Lifts a hold; only called when `info` says holds are supported.
        fn reactivate(certificate: CertificateRef) -> Result<(), String> {
            let _ = certificate;
            Err("this CA cannot put certificates on hold".into())
        }
    }
    pub use crate::wit::sigil::plugin::connector::{
        CertificateRef, ConnectorInfo, IssueRequest, Issued,
    };
    pub use crate::wit::sigil::plugin::types::Kv;

    impl IssueRequest {
        /// The first subject attribute named `name` (`CN`, `O`, …).
        pub fn attribute(&self, name: &str) -> Option<&str> {
            self.subject.iter().find(|kv| kv.key == name).map(|kv| kv.value.as_str())
        }

        /// DNS names and IP addresses among the SANs (what most CAs call `hosts`).
        pub fn hosts(&self) -> Vec<&str> {
            self.sans
                .iter()
                .filter_map(|s| s.strip_prefix("dns:").or_else(|| s.strip_prefix("ip:")))
                .collect()
        }
    }
}

/// PEM encoding and decoding (external CAs speak PEM; the WIT carries DER), through the `pem`
/// crate rather than a codec of our own.
pub mod pem {
    use ::pem::{EncodeConfig, LineEnding, Pem};

    /// `der` as a PEM block labelled `label` (`CERTIFICATE`, `CERTIFICATE REQUEST`, …), with
    /// Unix line endings, as OpenSSL and cfssl write it.
    pub fn encode(label: &str, der: &[u8]) -> String {
        ::pem::encode_config(
            &Pem::new(label, der),
            EncodeConfig::new().set_line_ending(LineEnding::LF),
        )
    }

    /// Every block labelled `label` in `text`, decoded, in order; blocks with other labels are
    /// skipped.
    pub fn decode_all(label: &str, text: &str) -> Result<Vec<Vec<u8>>, String> {
        let blocks = ::pem::parse_many(text).map_err(|e| format!("{label}: {e}"))?;
        Ok(blocks.into_iter().filter(|b| b.tag() == label).map(Pem::into_contents).collect())
    }

    /// The first block labelled `label` in `text`, decoded.
    pub fn decode(label: &str, text: &str) -> Result<Vec<u8>, String> {
        decode_all(label, text)?.into_iter().next().ok_or_else(|| format!("no {label} block"))
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn a_block_is_written_in_64_character_lines_and_reads_back() {
            let der: Vec<u8> = (0..=255).collect();
            let text = encode("CERTIFICATE", &der);
            assert!(text.starts_with("-----BEGIN CERTIFICATE-----\n"));
            assert!(text.ends_with("-----END CERTIFICATE-----\n"));
            assert!(!text.contains('\r'));
            assert!(text.lines().all(|l| l.len() <= 64));
            assert_eq!(decode("CERTIFICATE", &text).unwrap(), der);
        }

        #[test]
        fn only_blocks_with_the_asked_label_are_returned_in_order() {
            let chain = format!(
                "{}{}junk between\n{}",
                encode("CERTIFICATE", b"leaf"),
                encode("PRIVATE KEY", b"secret"),
                encode("CERTIFICATE", b"issuer")
            );
            assert_eq!(
                decode_all("CERTIFICATE", &chain).unwrap(),
                vec![b"leaf".to_vec(), b"issuer".to_vec()]
            );
        }

        #[test]
        fn missing_or_broken_blocks_are_errors() {
            assert!(decode("CERTIFICATE", "no pem here").is_err());
            assert!(
                decode(
                    "CERTIFICATE",
                    "-----BEGIN CERTIFICATE-----\n!!!\n-----END CERTIFICATE-----\n"
                )
                .is_err()
            );
        }
    }
}

/// The identity-source world: completes person records from a system of record.
pub mod identity {
    /// An identity source plugin.
    pub trait IdentitySource {
        /// The person the source knows by `known` (Sigil's fields by name), as the source has
        /// them; `None` when it has no such person.
        fn lookup(known: Vec<Kv>) -> Result<Option<Vec<Kv>>, String>;
    }
    pub use crate::wit::sigil::plugin::types::Kv;

    /// The value Sigil knows under `name` (`external_id`, `email`, `attributes.badge`, …).
    pub fn known<'a>(known: &'a [Kv], name: &str) -> Option<&'a str> {
        known.iter().find(|kv| kv.key == name).map(|kv| kv.value.as_str())
    }

    /// A field to return.
    pub fn field(name: &str, value: impl Into<String>) -> Kv {
        Kv { key: name.to_owned(), value: value.into() }
    }
}

/// The endpoint world: requests under `/api/v1/ext/{plugin}/`.
pub mod endpoint {
    use crate::http::{HttpRequest, HttpResponse};

    /// An endpoint plugin.
    pub trait Endpoint {
        /// Answers a request below `/api/v1/ext/{plugin}/` (the host authenticated and
        /// authorized it first).
        fn handle(request: HttpRequest) -> HttpResponse;
    }
}

/// Logging into Sigil's log (needs the `log` grant).
pub mod log {
    pub use crate::wit::sigil::plugin::log::Level;

    /// Logs `message` at `level`, tagged with the plugin id.
    pub fn log(level: Level, message: &str) {
        crate::wit::sigil::plugin::log::log(level, message);
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
        crate::wit::sigil::plugin::config::get(key)
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
        crate::wit::sigil::plugin::clock::now_ms()
    }
}

/// The validator world.
pub mod validator {
    /// A validator plugin.
    pub trait Validator {
        /// Judges `subject`; `Err` counts as a plugin failure (fail-closed unless configured
        /// open).
        fn validate(subject: Subject) -> Result<Verdict, String>;
    }
    pub use crate::wit::sigil::plugin::types::Kv;
    pub use crate::wit::sigil::plugin::validation::{Subject, Verdict};

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
