//! `sigil-plugin-sdk`: write a Sigil plugin as a plain Rust impl.
//!
//! The generated WIT bindings stay hidden; a plugin implements a trait per world and exports it
//! with one macro. Choose the world with a feature: `validator` (default), `workflow`,
//! `endpoint`, `ca-connector` or `identity-source` (exactly one). Build with `cargo build --release --target wasm32-wasip2`; the result is a
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

// Exactly one world per plugin: the sum of the enabled world features must be one.
const _: () = assert!(
    (cfg!(feature = "validator") as u8)
        + (cfg!(feature = "workflow") as u8)
        + (cfg!(feature = "endpoint") as u8)
        + (cfg!(feature = "ca-connector") as u8)
        + (cfg!(feature = "identity-source") as u8)
        == 1,
    "a plugin targets one world: enable exactly one of the features `validator`, `workflow`, `endpoint`, `ca-connector`, `identity-source` (use default-features = false)"
);

// One component targets one world, so the SDK generates the bindings of the world its feature
// selects (two worlds in one module would merge into a component that claims both).
#[cfg(feature = "validator")]
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

#[cfg(feature = "workflow")]
#[doc(hidden)]
#[allow(missing_docs, clippy::all)]
pub mod bindings {
    wit_bindgen::generate!({
        world: "workflow",
        path: "../wit",
        pub_export_macro: true,
        export_macro_name: "export_workflow",
        default_bindings_module: "sigil_plugin_sdk::bindings",
    });
}

#[cfg(feature = "endpoint")]
#[doc(hidden)]
#[allow(missing_docs, clippy::all)]
pub mod bindings {
    wit_bindgen::generate!({
        world: "endpoint",
        path: "../wit",
        pub_export_macro: true,
        export_macro_name: "export_endpoint",
        default_bindings_module: "sigil_plugin_sdk::bindings",
    });
}

#[cfg(feature = "ca-connector")]
#[doc(hidden)]
#[allow(missing_docs, clippy::all)]
pub mod bindings {
    wit_bindgen::generate!({
        world: "ca-connector",
        path: "../wit",
        pub_export_macro: true,
        export_macro_name: "export_ca_connector",
        default_bindings_module: "sigil_plugin_sdk::bindings",
    });
}

#[cfg(feature = "identity-source")]
#[doc(hidden)]
#[allow(missing_docs, clippy::all)]
pub mod bindings {
    wit_bindgen::generate!({
        world: "identity-source",
        path: "../wit",
        pub_export_macro: true,
        export_macro_name: "export_identity_source",
        default_bindings_module: "sigil_plugin_sdk::bindings",
    });
}

/// Exports a type implementing [`identity::IdentitySource`] as the plugin.
#[cfg(feature = "identity-source")]
pub use bindings::export_identity_source;

/// Exports a type implementing [`connector::CaConnector`] as the plugin.
#[cfg(feature = "ca-connector")]
pub use bindings::export_ca_connector;

/// Exports a type implementing [`validator::Validator`] as the plugin.
#[cfg(feature = "validator")]
pub use bindings::export_validator;

/// Exports a type implementing [`workflow::Workflow`] as the plugin.
#[cfg(feature = "workflow")]
pub use bindings::export_workflow;

/// Exports a type implementing [`endpoint::Endpoint`] as the plugin.
#[cfg(feature = "endpoint")]
pub use bindings::export_endpoint;

/// HTTP request and response records shared by `outbound-http`, `sigil-api` and endpoints.
#[cfg(any(
    feature = "workflow",
    feature = "endpoint",
    feature = "ca-connector",
    feature = "identity-source"
))]
pub mod http {
    pub use crate::bindings::sigil::plugin::types::{HttpRequest, HttpResponse, Kv};

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
#[cfg(any(feature = "workflow", feature = "ca-connector", feature = "identity-source"))]
pub mod outbound {
    use crate::http::{HttpRequest, HttpResponse};

    /// Sends `request` (`path` is the absolute URL); no redirects are followed.
    pub fn send(request: &HttpRequest) -> Result<HttpResponse, String> {
        crate::bindings::sigil::plugin::outbound_http::send(request)
    }
}

/// Sigil's own API, called as the plugin with its configured permissions (needs the `sigil-api`
/// grant; every call is audited with the plugin as the actor).
#[cfg(feature = "endpoint")]
pub mod api {
    use crate::http::{HttpRequest, HttpResponse};

    /// Calls `request.path` (an API path such as `/api/v1/certificates`).
    pub fn call(request: &HttpRequest) -> Result<HttpResponse, String> {
        crate::bindings::sigil::plugin::sigil_api::call(request)
    }
}

/// The workflow world: lifecycle events in, actions out.
#[cfg(feature = "workflow")]
pub mod workflow {
    pub use crate::bindings::Guest as Workflow;
    pub use crate::bindings::sigil::plugin::events::{Action, Event};

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
#[cfg(feature = "ca-connector")]
pub mod connector {
    pub use crate::bindings::Guest as CaConnector;
    pub use crate::bindings::sigil::plugin::connector::{
        CertificateRef, ConnectorInfo, IssueRequest, Issued,
    };
    pub use crate::bindings::sigil::plugin::types::Kv;

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

/// PEM encoding and decoding (external CAs speak PEM; the WIT carries DER).
pub mod pem {
    use base64::Engine as _;
    use base64::engine::general_purpose::STANDARD;

    /// `der` as a PEM block labelled `label` (`CERTIFICATE`, `CERTIFICATE REQUEST`, …).
    pub fn encode(label: &str, der: &[u8]) -> String {
        let b64 = STANDARD.encode(der);
        let mut out = format!("-----BEGIN {label}-----\n");
        for chunk in b64.as_bytes().chunks(64) {
            out.push_str(&String::from_utf8_lossy(chunk));
            out.push('\n');
        }
        out.push_str(&format!("-----END {label}-----\n"));
        out
    }

    /// Every block labelled `label` in `text`, decoded, in order.
    pub fn decode_all(label: &str, text: &str) -> Result<Vec<Vec<u8>>, String> {
        let begin = format!("-----BEGIN {label}-----");
        let end = format!("-----END {label}-----");
        let mut out = Vec::new();
        let mut rest = text;
        while let Some(start) = rest.find(&begin) {
            let body = &rest[start + begin.len()..];
            let stop = body.find(&end).ok_or_else(|| format!("unterminated {label} block"))?;
            let b64: String = body[..stop].chars().filter(|c| !c.is_whitespace()).collect();
            out.push(STANDARD.decode(b64).map_err(|e| format!("{label}: bad base64: {e}"))?);
            rest = &body[stop + end.len()..];
        }
        Ok(out)
    }

    /// The first block labelled `label` in `text`, decoded.
    pub fn decode(label: &str, text: &str) -> Result<Vec<u8>, String> {
        decode_all(label, text)?.into_iter().next().ok_or_else(|| format!("no {label} block"))
    }
}

/// The identity-source world: completes person records from a system of record.
#[cfg(feature = "identity-source")]
pub mod identity {
    pub use crate::bindings::Guest as IdentitySource;
    pub use crate::bindings::sigil::plugin::types::Kv;

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
#[cfg(feature = "endpoint")]
pub mod endpoint {
    pub use crate::bindings::Guest as Endpoint;
}

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
#[cfg(feature = "validator")]
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
