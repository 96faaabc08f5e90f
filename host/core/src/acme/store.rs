//! What ACME keeps beyond its records: the anti-replay nonces, shared by every node of one
//! database (a nonce one node issued is accepted once by any node).

use async_trait::async_trait;

use crate::error::StoreResult;

/// The nonce table. Un-audited housekeeping, like rate-limit windows.
#[async_trait]
pub trait AcmeStore: Send + Sync {
    /// Records a fresh nonce, valid until `expires_us` (unix µs).
    async fn acme_nonce_issue(&self, nonce: &str, expires_us: i64) -> StoreResult<()>;
    /// Spends `nonce`: true once if it was issued and has not expired at `now_us`, then never
    /// again (on any node).
    async fn acme_nonce_consume(&self, nonce: &str, now_us: i64) -> StoreResult<bool>;
    /// Removes nonces that expired before `before_us`; how many.
    async fn acme_nonce_prune(&self, before_us: i64) -> StoreResult<u64>;
}
