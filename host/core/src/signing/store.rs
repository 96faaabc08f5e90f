//! The signing area's storage ports: CSC session housekeeping and SAD writes.

use async_trait::async_trait;
use uuid::Uuid;

use crate::error::StoreResult;

/// Housekeeping of CSC sessions.
#[async_trait]
pub trait SigningStore: Send + Sync {
    /// Removes CSC access/refresh tokens and SADs that expired before `before` (unix µs).
    async fn csc_prune(&self, before: i64) -> StoreResult<u64>;
}

/// Writes of CSC signature activation data and sessions.
#[async_trait]
pub trait SigningTx: Send {
    /// Inserts a SAD.
    async fn insert_sad(&mut self, sad: &crate::signing::credential::Sad) -> StoreResult<()>;

    /// Deletes every CSC token and SAD of `signer`; returns how many.
    async fn end_csc_sessions(&mut self, signer: Uuid) -> StoreResult<u64>;
}
