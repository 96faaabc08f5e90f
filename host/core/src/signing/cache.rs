//! Token and credential lookups kept for a short time, shared by the CSC and signer services.

use std::sync::Arc;

use time::OffsetDateTime;
use uuid::Uuid;

use crate::cache::Cache;
use crate::certs::Certificate;
use crate::signing::credential::{Signer, SigningCredential};

/// Most entries in each cache.
const CACHE_MAX: usize = 10_000;

/// Token and credential lookups shared by the CSC and signer services (the signer service
/// drops entries when it changes them). Entries are shared, not copied, on each hit: a
/// signHash reads both.
#[derive(Debug)]
pub struct CscCache {
    /// token digest → (signer, token expiry).
    sessions: Cache<String, (Arc<Signer>, OffsetDateTime)>,
    /// credential id → (credential, its certificate).
    credentials: Cache<Uuid, Arc<(SigningCredential, Certificate)>>,
}

impl CscCache {
    /// A cache whose entries live `ttl` (zero: no caching).
    pub fn new(ttl: std::time::Duration) -> Self {
        Self { sessions: Cache::new(ttl, CACHE_MAX), credentials: Cache::new(ttl, CACHE_MAX) }
    }

    pub(crate) fn session(&self, token: &str) -> Option<(Arc<Signer>, OffsetDateTime)> {
        self.sessions.get(token)
    }

    pub(crate) fn put_session(&self, token: String, s: Arc<Signer>, exp: OffsetDateTime) {
        self.sessions.put(token, (s, exp));
    }

    pub(crate) fn credential(&self, id: Uuid) -> Option<Arc<(SigningCredential, Certificate)>> {
        self.credentials.get(&id)
    }

    pub(crate) fn put_credential(&self, entry: Arc<(SigningCredential, Certificate)>) {
        self.credentials.put(entry.0.id, entry);
    }

    /// Forgets token `digest`.
    pub fn forget_token(&self, digest: &str) {
        self.sessions.forget(digest);
    }

    /// Forgets every session of signer `id`.
    pub fn forget_signer(&self, id: Uuid) {
        self.sessions.forget_where(|_, (s, _)| s.id == id);
    }

    /// Forgets credential `id`.
    pub fn forget_credential(&self, id: Uuid) {
        self.credentials.forget(&id);
    }
}
