//! The one error type of the domain. Every variant carries a stable machine-readable `code`
//! that the API layer puts on the wire; messages never contain secrets.

use std::fmt;

pub use crate::codes::ErrorCode;

/// Result alias for core services.
pub type Result<T, E = CoreError> = std::result::Result<T, E>;

/// Errors a core service can return. The HTTP mapping lives in `sigil-api` alone.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CoreError {
    /// The request is well-formed JSON but a value is not acceptable.
    #[error("{detail}")]
    Invalid {
        /// Stable code, for example [`ErrorCode::InvalidPermission`].
        code: ErrorCode,
        /// Human-readable explanation naming the offending field or value.
        detail: String,
    },
    /// The object does not exist (or is outside the caller's visibility).
    #[error("{object} {id} not found")]
    NotFound {
        /// Object type, for example `api_key`.
        object: &'static str,
        /// The identifier that was asked for.
        id: String,
    },
    /// The change conflicts with the current state (duplicate name, final state, ...).
    #[error("{detail}")]
    Conflict {
        /// Stable code, for example `name_taken`.
        code: ErrorCode,
        /// Explanation.
        detail: String,
    },
    /// No credentials, or credentials that are unknown, expired or revoked.
    #[error("{0}")]
    Unauthenticated(AuthFailure),
    /// The caller is known but may not do this.
    #[error("{detail}")]
    Forbidden {
        /// Stable code: `permission_denied`, `ip_not_allowed`, ...
        code: ErrorCode,
        /// Explanation, naming the missing permission when there is one.
        detail: String,
    },
    /// The caller exceeded its rate limit.
    #[error("rate limit of {limit} requests per {per} exceeded")]
    RateLimited {
        /// Configured number of requests.
        limit: u32,
        /// The window unit.
        per: &'static str,
        /// Seconds until the window resets.
        retry_after_secs: u64,
    },
    /// The server sheds this request: a bounded resource (such as password hashing) is at its
    /// limit. Nothing was done; retry after the given time.
    #[error("the server is busy; retry in {retry_after_secs} s")]
    Busy {
        /// Seconds to wait.
        retry_after_secs: u64,
    },
    /// A plugin, external CA or key store (PKCS#11 token) the operation depends on failed
    /// (fail-closed).
    #[error("{detail}")]
    Dependency {
        /// Stable code, for example `plugin_timeout`.
        code: ErrorCode,
        /// Explanation.
        detail: String,
    },
    /// Storage is unreachable or failed; the change (if any) was rolled back.
    #[error("storage failure: {0}")]
    Storage(String),
    /// Anything else that is our fault.
    #[error("internal error: {0}")]
    Internal(String),
}

/// Why authentication failed. Kept coarse on the wire so it leaks little.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum AuthFailure {
    /// No credential was presented.
    Missing,
    /// The credential is malformed or unknown.
    Unknown,
    /// The API key has expired.
    Expired,
    /// The API key was revoked.
    Revoked,
    /// The bound operator is disabled.
    Disabled,
}

impl AuthFailure {
    /// Stable code for the wire.
    pub fn code(self) -> ErrorCode {
        match self {
            Self::Missing => ErrorCode::CredentialsMissing,
            Self::Unknown => ErrorCode::CredentialsInvalid,
            Self::Expired => ErrorCode::ApiKeyExpired,
            Self::Revoked => ErrorCode::ApiKeyRevoked,
            Self::Disabled => ErrorCode::PrincipalDisabled,
        }
    }
}

impl fmt::Display for AuthFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Missing => "no API key or client certificate was presented",
            Self::Unknown => "the API key is not valid",
            Self::Expired => "the API key has expired",
            Self::Revoked => "the API key has been revoked",
            Self::Disabled => "the account behind this credential is disabled",
        })
    }
}

impl CoreError {
    /// Shorthand for [`CoreError::Invalid`].
    pub fn invalid(code: ErrorCode, detail: impl Into<String>) -> Self {
        Self::Invalid { code, detail: detail.into() }
    }

    /// Shorthand for [`CoreError::NotFound`].
    pub fn not_found(object: &'static str, id: impl Into<String>) -> Self {
        Self::NotFound { object, id: id.into() }
    }

    /// Shorthand for [`CoreError::Conflict`].
    pub fn conflict(code: ErrorCode, detail: impl Into<String>) -> Self {
        Self::Conflict { code, detail: detail.into() }
    }

    /// Stable machine-readable code.
    pub fn code(&self) -> ErrorCode {
        match self {
            Self::Invalid { code, .. }
            | Self::Conflict { code, .. }
            | Self::Forbidden { code, .. }
            | Self::Dependency { code, .. } => *code,
            Self::NotFound { .. } => ErrorCode::NotFound,
            Self::Unauthenticated(f) => f.code(),
            Self::RateLimited { .. } => ErrorCode::RateLimited,
            Self::Storage(_) => ErrorCode::StorageUnavailable,
            Self::Busy { .. } => ErrorCode::ServerBusy,
            Self::Internal(_) => ErrorCode::Internal,
        }
    }
}

/// Store result.
pub type StoreResult<T> = std::result::Result<T, StoreError>;

/// Errors reported by storage ports; services turn them into [`CoreError`].
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// A uniqueness constraint was violated; `constraint` names it.
    #[error("unique constraint violated: {constraint}")]
    Conflict {
        /// Constraint or column that clashed.
        constraint: String,
    },
    /// The row to change was not there.
    #[error("row not found")]
    NotFound,
    /// A conditional write's condition did not hold (for example a spent SAD); nothing of
    /// the unit was written.
    #[error("{detail}")]
    Refused {
        /// Stable code.
        code: ErrorCode,
        /// Explanation for the client.
        detail: String,
    },
    /// Anything else: connection loss, a failed trigger, a serialization failure.
    #[error("{0}")]
    Backend(String),
}

impl From<StoreError> for CoreError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Conflict { constraint } => Self::conflict(
                ErrorCode::Conflict,
                format!("conflicts with an existing record ({constraint})"),
            ),
            StoreError::NotFound => Self::not_found("record", ""),
            StoreError::Refused { code, detail } => Self::invalid(code, detail),
            StoreError::Backend(m) => Self::Storage(m),
        }
    }
}
