//! Token and credential lookups kept for a short time, shared by the CSC and signer services.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Instant;

use time::OffsetDateTime;
use uuid::Uuid;

use crate::certs::Certificate;
use crate::signing::credential::{Signer, SigningCredential};

/// Most entries in each cache; a full clear is cheap and rare.
const CACHE_MAX: usize = 10_000;

/// Token and credential lookups shared by the CSC and signer services (the signer service
/// drops entries when it changes them).
#[derive(Debug)]
pub struct CscCache {
    ttl: std::time::Duration,
    /// token digest → (signer, token expiry, cached at).
    sessions: Mutex<HashMap<String, (Signer, OffsetDateTime, Instant)>>,
    /// credential id → (credential, its certificate, cached at).
    credentials: Mutex<HashMap<Uuid, (SigningCredential, Certificate, Instant)>>,
}

impl CscCache {
    /// A cache whose entries live `ttl` (zero: no caching).
    pub fn new(ttl: std::time::Duration) -> Self {
        Self { ttl, sessions: Mutex::default(), credentials: Mutex::default() }
    }

    pub(crate) fn session(&self, token: &str) -> Option<(Signer, OffsetDateTime)> {
        let c = self.sessions.lock().ok()?;
        let (s, exp, at) = c.get(token)?;
        (at.elapsed() < self.ttl).then(|| (s.clone(), *exp))
    }

    pub(crate) fn put_session(&self, token: String, s: Signer, exp: OffsetDateTime) {
        if self.ttl.is_zero() {
            return;
        }
        if let Ok(mut c) = self.sessions.lock() {
            if c.len() >= CACHE_MAX {
                c.clear();
            }
            c.insert(token, (s, exp, Instant::now()));
        }
    }

    pub(crate) fn credential(&self, id: Uuid) -> Option<(SigningCredential, Certificate)> {
        let c = self.credentials.lock().ok()?;
        let (cred, cert, at) = c.get(&id)?;
        (at.elapsed() < self.ttl).then(|| (cred.clone(), cert.clone()))
    }

    pub(crate) fn put_credential(&self, c: SigningCredential, cert: Certificate) {
        if self.ttl.is_zero() {
            return;
        }
        if let Ok(mut m) = self.credentials.lock() {
            if m.len() >= CACHE_MAX {
                m.clear();
            }
            m.insert(c.id, (c, cert, Instant::now()));
        }
    }

    /// Forgets token `digest`.
    pub fn forget_token(&self, digest: &str) {
        if let Ok(mut c) = self.sessions.lock() {
            c.remove(digest);
        }
    }

    /// Forgets every session of signer `id`.
    pub fn forget_signer(&self, id: Uuid) {
        if let Ok(mut c) = self.sessions.lock() {
            c.retain(|_, (s, _, _)| s.id != id);
        }
    }

    /// Forgets credential `id`.
    pub fn forget_credential(&self, id: Uuid) {
        if let Ok(mut c) = self.credentials.lock() {
            c.remove(&id);
        }
    }
}
