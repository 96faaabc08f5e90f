//! The audit area's storage port: reads of the chain, its checkpoints and its keys.

use async_trait::async_trait;

use crate::audit::{AuditEvent, AuditFilter, AuditHead, AuditKeyRecord, Checkpoint};
use crate::error::StoreResult;

/// Reads of the audit chain, and its checkpoints and keys (which attest to the chain and are
/// not themselves audited changes).
#[async_trait]
pub trait AuditLog: Send + Sync {
    /// A page of audit events, ordered by seq ascending.
    async fn audit_events(&self, f: &AuditFilter, limit: u32) -> StoreResult<Vec<AuditEvent>>;
    /// The recorded head of the chain.
    async fn audit_head(&self) -> StoreResult<AuditHead>;
    /// Checkpoints whose counter is at least `from_counter`, ordered by counter.
    async fn audit_checkpoints(&self, from_counter: i64) -> StoreResult<Vec<Checkpoint>>;
    /// Stores a signed checkpoint (not itself an audited change: it only attests to the chain).
    /// False when its counter is taken (another node checkpointed first).
    async fn insert_audit_checkpoint(&self, c: &Checkpoint) -> StoreResult<bool>;
    /// Registers an audit public key (idempotent).
    async fn register_audit_key(&self, k: &AuditKeyRecord) -> StoreResult<()>;
    /// All registered audit keys.
    async fn audit_keys(&self) -> StoreResult<Vec<AuditKeyRecord>>;
}
