//! The authorization rule of every route, as the OpenAPI document states it.
//!
//! The rules themselves are enforced in `sigil-core` (visibility, authority, the
//! unrestricted-only permissions); this module names which one applies to a route, so that each
//! operation's description says it. `tests/it/authz_matrix.rs` checks every route against it,
//! and checks that the server behaves as stated.

use axum::http::Method;

/// Who may use a route, beyond holding its permission.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// An object that belongs to an office: it must lie within the caller's scope.
    Scoped,
    /// A collection, or an object every office shares: any holder of the permission (lists and
    /// reports show only what lies within the caller's scope).
    Shared,
    /// Shared configuration or the audit trail: callers who see every office only.
    Unrestricted,
    /// Self-service: a token holder's key, on the holder's own objects.
    SelfService,
    /// The entry point of endpoint plugins.
    Invoke,
    /// No API key: public, or CSC's own authentication.
    Public,
}

impl Access {
    /// The sentence the OpenAPI description of an operation ends with.
    pub fn describe(self, method: &Method, path: &str) -> String {
        let credential =
            path.starts_with("/api/v1/api-keys/") || path.starts_with("/api/v1/operators/");
        let text = match self {
            Self::Scoped if credential && method != Method::GET => {
                "the object must lie within the caller's scope (404 otherwise, as for a missing \
                 one), and its authority — permissions after its operator's roles, and scope — \
                 within the caller's (403 `authority_exceeded`)"
            }
            Self::Scoped => {
                "the object must lie within the caller's scope (404 otherwise, as for a missing \
                 one); objects it references must too"
            }
            Self::Shared => {
                "any caller holding the permission; what it lists or reports is limited to the \
                 caller's scope, and whatever it creates must lie within it"
            }
            Self::Unrestricted => {
                "only a caller who sees every office (403 `scope_restricted` for a restricted \
                 operator, a key bound to one, a token holder's key, or a plugin serving them)"
            }
            Self::SelfService => {
                "a token holder's key (`self_service:use`), on the holder's own devices and \
                 certificates only (404 for any other; 403 `not_a_holder` for other callers)"
            }
            Self::Invoke => {
                "`plugins:invoke:<plugin>` or `plugins:invoke`; the plugin's own calls into the API \
                 act with the intersection of its grant and the caller's authority and scope, \
                 under the exposure rules of the caller's request"
            }
            Self::Public => "no API key",
        };
        format!("**Authorization:** {text}.")
    }
}

/// The rule of `method path` (a route template).
pub fn access(method: &Method, path: &str) -> Access {
    let Some(rest) = path.strip_prefix("/api/v1/") else { return Access::Public };
    if rest.starts_with("self/") {
        return Access::SelfService;
    }
    if rest.starts_with("ext/") {
        return Access::Invoke;
    }
    let get = method == Method::GET;
    let top = rest.split('/').next().unwrap_or("");
    let has_id = rest.contains('{');
    match top {
        // ACME administration: binding keys and accounts of every office.
        "acme" => Access::Unrestricted,
        "audit" if rest == "audit/verify" => Access::Shared,
        "audit" => Access::Unrestricted,
        // Shared configuration: readable by holders of the permission, changed only by callers
        // who see every office.
        "roles" | "profiles" | "csc-providers" | "exposure" | "plugins" => {
            if get {
                Access::Shared
            } else {
                Access::Unrestricted
            }
        }
        "custom-fields" if rest == "custom-fields/validate" || get => Access::Shared,
        "custom-fields" => Access::Unrestricted,
        "organizations" if get => Access::Shared,
        "organizations" => Access::Unrestricted,
        "divisions" if get && has_id => Access::Scoped,
        "divisions" if get => Access::Shared,
        "divisions" => Access::Unrestricted,
        "offices" if has_id => Access::Scoped,
        "offices" if get => Access::Shared,
        "offices" => Access::Unrestricted,
        "api-keys"
        | "certificates"
        | "devices"
        | "operators"
        | "people"
        | "requests"
        | "signers"
        | "signing-credentials"
            if has_id =>
        {
            Access::Scoped
        }
        _ => Access::Shared,
    }
}
