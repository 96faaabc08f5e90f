//! Sessions of the admin web UI. An operator signs in by pasting an API key; the session then
//! acts with exactly that key's authority, re-admitted on every request from the store (not the
//! key cache): revoking or expiring the key, disabling its operator or leaving its IP whitelist
//! ends the session's power at once, and each request counts against the key's rate limit.
//!
//! The browser holds a random 256-bit session token; the database holds only its SHA-256, so
//! a copy of the database opens no session. Each session has its own CSRF token (synchronizer
//! pattern) that every state-changing form carries. Sessions live in the database so that any
//! node of a scale-out serves them, and sign-out ends a session everywhere.

use std::sync::Arc;

use time::Duration;
use uuid::Uuid;

use crate::access::api_key::hash_secret;
use crate::access::api_keys::ApiKeyService;
use crate::access::authz::{Principal, RequestContext};
use crate::access::ui_session::{NewSession, SessionPolicy, UiSession};
use crate::audit::{AuditAction, NewAuditEvent};
use crate::error::{AuthFailure, CoreError, Result};

/// How often `last_seen_at` is written: a page view is a read, and should not be a write too.
const TOUCH_EVERY: Duration = Duration::minutes(1);

/// A random token of 256 bits, URL-safe base64.
fn random_token() -> Result<String> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes)
        .map_err(|e| CoreError::Internal(format!("random source failed: {e}")))?;
    let t = base64::Engine::encode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, bytes);
    zeroize::Zeroize::zeroize(&mut bytes);
    Ok(t)
}

impl ApiKeyService {
    /// Signs in with a presented API key: the key must authenticate exactly as on the REST
    /// API (known, active, address whitelisted, under its rate limit). Audited as the key.
    pub async fn sign_in(
        &self,
        presented: &str,
        context: RequestContext,
        policy: SessionPolicy,
    ) -> Result<(NewSession, Arc<Principal>)> {
        let principal = self.authenticate(presented, context).await?;
        let key_id =
            principal.api_key_id.ok_or(CoreError::Unauthenticated(AuthFailure::Unknown))?;
        let now = self.clock().now();
        let token = random_token()?;
        let session = UiSession {
            id: Uuid::now_v7(),
            token_hash: hash_secret(&token),
            api_key_id: key_id,
            csrf_token: random_token()?,
            created_at: now,
            last_seen_at: now,
            expires_at: now + policy.lifetime,
        };
        let mut tx = self.access_store().begin_access().await?;
        tx.insert_ui_session(&session).await?;
        let event = NewAuditEvent::new(&principal, AuditAction::UiSignIn, "ui_session", session.id)
            .details(serde_json::json!({
                "api_key_id": key_id.to_string(),
                "expires_at": crate::audit::unix_micros(session.expires_at),
            }));
        tx.commit(vec![event], now).await?;
        Ok((NewSession { token, session }, principal))
    }

    /// The session behind a cookie and the caller it acts as now. An unknown, ended or idle
    /// session is `Unauthenticated(Unknown)`; a key that no longer admits is its own failure.
    pub async fn resume_session(
        &self,
        token: &str,
        context: RequestContext,
        policy: SessionPolicy,
    ) -> Result<(UiSession, Arc<Principal>)> {
        let hash = hash_secret(token);
        let now = self.clock().now();
        let session = self
            .access_store()
            .ui_session(&hash)
            .await?
            .filter(|s| s.expires_at > now && s.last_seen_at + policy.idle > now)
            .ok_or(CoreError::Unauthenticated(AuthFailure::Unknown))?;
        let principal = self.admit_key(session.api_key_id, context).await?;
        // Refreshed often enough that a session in use never reaches its idle limit.
        if now - session.last_seen_at >= TOUCH_EVERY.min(policy.idle / 2) {
            self.access_store().touch_ui_session(&hash, crate::audit::unix_micros(now)).await?;
        }
        Ok((session, principal))
    }

    /// Ends the session behind `token` (audited as its caller); an unknown token is no error.
    pub async fn sign_out(&self, token: &str, principal: &Arc<Principal>) -> Result<()> {
        let hash = hash_secret(token);
        let now = self.clock().now();
        let mut tx = self.access_store().begin_access().await?;
        if let Some(id) = tx.delete_ui_session(&hash).await? {
            let event = NewAuditEvent::new(principal, AuditAction::UiSignOut, "ui_session", id);
            tx.commit(vec![event], now).await?;
        }
        Ok(())
    }

    /// Removes sessions that ended before now (housekeeping); returns how many.
    pub async fn prune_ui_sessions(&self) -> Result<u64> {
        let now = crate::audit::unix_micros(self.clock().now());
        Ok(self.access_store().prune_ui_sessions(now).await?)
    }
}
