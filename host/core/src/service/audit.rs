//! Audit use cases: query, per-object trail, signed export, checkpoints and verification.

use std::sync::Arc;

use crate::audit::NewAuditEvent;
use crate::audit::{
    AuditEvent, ChainVerifier, Checkpoint, GENESIS_HASH, SignatureCheck, VerifyReport, unix_micros,
};
use crate::authz::{Capability, Principal, perm};
use crate::error::{CoreError, Result};
use crate::export::{ExportFormat, ExportSignature, encode};
use crate::ports::{AuditFilter, AuditKeyRecord, Clock, Store};
use crate::service::{Page, paginate};

/// Most events in one export; larger ranges are exported in pieces with `after`.
pub const MAX_EXPORT: u32 = 100_000;
const VERIFY_BATCH: u32 = 1000;

/// Signs with the audit key; implemented in `sigil-pki`.
pub trait AuditCrypto: Send + Sync {
    /// This node's key id.
    fn key_id(&self) -> &str;
    /// This node's public key (SubjectPublicKeyInfo PEM).
    fn public_key_pem(&self) -> &str;
    /// Base64 DER ECDSA signature over `message`.
    fn sign(&self, message: &[u8]) -> Result<String>;
    /// A checker for signatures by any of `keys`.
    fn keyring(&self, keys: &[AuditKeyRecord]) -> Box<dyn SignatureCheck>;
}

/// A signed export.
#[derive(Debug)]
pub struct Export {
    /// The file.
    pub body: Vec<u8>,
    /// Its media type.
    pub content_type: &'static str,
    /// The detached signature over `body`.
    pub signature: ExportSignature,
    /// Events in the file.
    pub count: usize,
}

/// Audit operations.
pub struct AuditService {
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    crypto: Arc<dyn AuditCrypto>,
}

impl std::fmt::Debug for AuditService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuditService")
            .field("key_id", &self.crypto.key_id())
            .finish_non_exhaustive()
    }
}

impl AuditService {
    /// Wires the service.
    pub fn new(store: Arc<dyn Store>, clock: Arc<dyn Clock>, crypto: Arc<dyn AuditCrypto>) -> Self {
        Self { store, clock, crypto }
    }

    /// Registers this node's audit public key so that every verifier can check its checkpoints.
    pub async fn register_key(&self) -> Result<()> {
        let rec = AuditKeyRecord {
            key_id: self.crypto.key_id().to_owned(),
            public_key_pem: self.crypto.public_key_pem().to_owned(),
            created_at_us: unix_micros(self.clock.now()),
        };
        Ok(self.store.register_audit_key(&rec).await?)
    }

    /// Events matching `filter`, oldest first, continuing after the cursor (a sequence number).
    pub async fn query(
        &self,
        _cap: &Capability<perm::AuditRead>,
        mut filter: AuditFilter,
        cursor: Option<&str>,
        limit: u32,
    ) -> Result<Page<AuditEvent>> {
        if let Some(c) = cursor {
            filter.after_seq = Some(
                c.parse::<u64>()
                    .ok()
                    .and_then(|v| i64::try_from(v).ok())
                    .ok_or_else(|| CoreError::invalid("invalid_cursor", "cursor is not valid"))?,
            );
        }
        let rows = self.store.audit_events(&filter, limit + 1).await?;
        Ok(paginate(rows, limit, |e| e.seq.to_string()))
    }

    /// Records that `principal` was refused `endpoint` (`METHOD /path`) with `code`. Not a
    /// change of state, but a security event auditors look for.
    pub async fn record_denied(
        &self,
        principal: &Arc<Principal>,
        endpoint: &str,
        code: &str,
    ) -> Result<()> {
        let now = self.clock.now();
        let tx = self.store.begin().await?;
        let ev = NewAuditEvent::new(principal, "access.denied", "endpoint", endpoint)
            .failed()
            .details(serde_json::json!({"code": code}));
        tx.commit(vec![ev], now).await?;
        Ok(())
    }

    /// Whether the audit key can sign (readiness).
    pub fn key_usable(&self) -> bool {
        self.crypto.sign(b"sigil-readiness-probe").is_ok()
    }

    /// Signs a checkpoint at the current head unless one exists there already.
    pub async fn checkpoint(&self) -> Result<Option<Checkpoint>> {
        let head = self.store.audit_head().await?;
        if head.seq == 0 {
            return Ok(None);
        }
        let existing = self.store.audit_checkpoints().await?;
        if existing.last().is_some_and(|c| c.seq >= head.seq) {
            return Ok(None);
        }
        let signed_at_us = unix_micros(self.clock.now());
        let key_id = self.crypto.key_id().to_owned();
        let msg = Checkpoint::message(head.seq, &head.hash, signed_at_us, &key_id);
        let c = Checkpoint {
            seq: head.seq,
            hash: head.hash,
            signed_at_us,
            key_id,
            signature: self.crypto.sign(&msg)?,
        };
        self.store.insert_audit_checkpoint(&c).await?;
        Ok(Some(c))
    }

    /// Walks the whole chain and every checkpoint; reports the first broken link.
    pub async fn verify(&self, _cap: &Capability<perm::AuditVerify>) -> Result<VerifyReport> {
        verify_store(self.store.as_ref(), &|keys| self.crypto.keyring(keys)).await
    }

    /// Exports matching events in `format` with a detached signature.
    pub async fn export(
        &self,
        cap: &Capability<perm::AuditExport>,
        filter: AuditFilter,
        format: ExportFormat,
        limit: Option<u32>,
    ) -> Result<Export> {
        let limit = limit.unwrap_or(MAX_EXPORT);
        if limit == 0 || limit > MAX_EXPORT {
            return Err(CoreError::invalid(
                "invalid_limit",
                format!("limit must be between 1 and {MAX_EXPORT}"),
            ));
        }
        let events = self.store.audit_events(&filter, limit).await?;
        let now = self.clock.now();
        let body = encode(format, &events, now)?;
        let signature = ExportSignature::sign(&body, now, self.crypto.as_ref())?;
        let _ = cap;
        Ok(Export { count: events.len(), content_type: format.content_type(), body, signature })
    }
}

/// Builds a signature checker from registered audit keys.
pub type KeyringFactory<'a> = &'a (dyn Fn(&[AuditKeyRecord]) -> Box<dyn SignatureCheck> + Sync);

/// Verifies the chain stored in `store` (also used offline by `sigil audit verify`).
pub async fn verify_store(store: &dyn Store, keyring: KeyringFactory<'_>) -> Result<VerifyReport> {
    let keys = store.audit_keys().await?;
    let keyring = keyring(&keys);
    let checkpoints = store.audit_checkpoints().await?;
    let last_checkpoint_seq = checkpoints.last().map(|c| c.seq);
    let head = store.audit_head().await?;
    let mut verifier = ChainVerifier::new(1, GENESIS_HASH, checkpoints, keyring.as_ref());
    let mut filter = AuditFilter::default();
    loop {
        let batch = store.audit_events(&filter, VERIFY_BATCH).await?;
        let Some(last) = batch.last() else { break };
        filter.after_seq = Some(last.seq);
        let full = batch.len() == VERIFY_BATCH as usize;
        for e in batch {
            verifier.push(e);
        }
        if verifier.failed() || !full {
            break;
        }
    }
    let mut report = verifier.finish(Some(head.seq));
    report.last_checkpoint_seq = last_checkpoint_seq;
    Ok(report)
}
