//! A session of the admin web UI: what is stored of it, how long it lasts, and its CSRF token
//! check. The use cases (sign-in, resume, sign-out) are in `ui_sessions`.

use time::{Duration, OffsetDateTime};
use uuid::Uuid;

use crate::access::api_key::{hash_secret, hashes_match};

/// A stored session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UiSession {
    /// Public id (audit object id).
    pub id: Uuid,
    /// Hex SHA-256 of the session token.
    pub token_hash: String,
    /// The API key the session acts as.
    pub api_key_id: Uuid,
    /// The session's CSRF token.
    pub csrf_token: String,
    /// Sign-in time.
    pub created_at: OffsetDateTime,
    /// Last request (refreshed at most once a minute).
    pub last_seen_at: OffsetDateTime,
    /// Absolute end.
    pub expires_at: OffsetDateTime,
}

/// How long sessions last.
#[derive(Debug, Clone, Copy)]
pub struct SessionPolicy {
    /// From sign-in to the absolute end.
    pub lifetime: Duration,
    /// Without a request for this long, the session ends.
    pub idle: Duration,
}

impl Default for SessionPolicy {
    fn default() -> Self {
        Self { lifetime: Duration::hours(8), idle: Duration::minutes(30) }
    }
}

/// Whose sessions end together: a key's (rotated or revoked), or those of every key bound to an
/// operator (disabled).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SessionOwner {
    /// Sessions signed in with this key.
    Key(Uuid),
    /// Sessions signed in with any key bound to this operator.
    Operator(String),
}

/// A new session: the token goes into the cookie and is never stored.
pub struct NewSession {
    /// The cookie value.
    pub token: String,
    /// The stored record.
    pub session: UiSession,
}

impl std::fmt::Debug for NewSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NewSession").field("session", &self.session.id).finish_non_exhaustive()
    }
}

/// Whether `presented` is the session's CSRF token (constant time).
pub fn csrf_matches(session: &UiSession, presented: &str) -> bool {
    hashes_match(&hash_secret(presented), &hash_secret(&session.csrf_token))
}
