//! Audit use cases: query, per-object trail, signed export, checkpoints and verification.

use crate::ErrorCode;
use crate::audit::AuditAction;
use std::sync::Arc;

use crate::access::authz::{Capability, Principal, perm};
use crate::audit::export::{ExportFormat, ExportSignature, encode};
use crate::audit::refusals::Refusals;
use crate::audit::verify::Start;
use crate::audit::{
    AnchorLog, AuditEvent, ChainProblem, ChainVerifier, Checkpoint, Freshness, NewAuditEvent,
    ProblemKind, SignatureCheck, VerifyReport, unix_micros,
};
use crate::error::{CoreError, Result};
use crate::page::{Page, paginate};
use crate::ports::{AuditFilter, AuditKeyRecord, Clock, Store};

/// Most events in one export; larger ranges are exported in pieces with `after`.
pub const MAX_EXPORT: u32 = 100_000;
const VERIFY_BATCH: u32 = 1000;

/// Events checked between two yields of the walk (about half a millisecond of work).
const YIELD_EVERY: usize = 50;
/// Kinds of refusal tracked per minute before they are counted together.
const MAX_REFUSAL_KINDS: usize = 10_000;

pub use crate::audit::AuditCrypto;

/// What the audit chain is held to: the keys pinned by configuration (never the keys stored in
/// the database), this node's anchor log, and how old the newest checkpoint may be.
#[derive(Clone)]
pub struct AuditTrust {
    /// Pinned audit public keys: this node's and the other nodes' configured ones.
    pub keys: Arc<dyn SignatureCheck>,
    /// This node's append-only record of the checkpoints it signed.
    pub anchor: Arc<dyn AnchorLog>,
    /// The newest checkpoint must be younger than this many seconds (0: no bound). Checkpoints
    /// are also written, without new events, when the newest is half this old.
    pub max_age_secs: u64,
}

impl AuditTrust {
    fn freshness(&self, now_us: i64) -> Option<Freshness> {
        (self.max_age_secs > 0).then(|| Freshness {
            now_us,
            max_age_us: i64::try_from(self.max_age_secs.saturating_mul(1_000_000))
                .unwrap_or(i64::MAX),
        })
    }
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
    trust: AuditTrust,
    refusals: Arc<Refusals>,
    // One checkpoint at a time on this node (other nodes race on the counter).
    checkpointing: tokio::sync::Mutex<()>,
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
    pub fn new(
        store: Arc<dyn Store>,
        clock: Arc<dyn Clock>,
        crypto: Arc<dyn AuditCrypto>,
        trust: AuditTrust,
    ) -> Self {
        let refusals = Arc::new(Refusals::new(MAX_REFUSAL_KINDS));
        Self { store, clock, crypto, trust, refusals, checkpointing: tokio::sync::Mutex::new(()) }
    }

    /// The per-minute aggregation of refusals, shared with the services that refuse.
    pub fn refusals(&self) -> Arc<Refusals> {
        self.refusals.clone()
    }

    /// Writes the summaries of refusals counted in minutes that have ended (all of them when
    /// `all`, as at shutdown).
    pub async fn flush_refusals(&self, all: bool) -> Result<()> {
        let now = self.clock.now();
        let events = self.refusals.drain(now, all);
        write_refusals(self.store.as_ref(), &self.refusals, events, now).await
    }

    /// Records this node's audit public key in the store, so operators can see which keys sign
    /// (verifiers never trust a key because it is stored there: keys are pinned).
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
            filter.after_seq =
                Some(c.parse::<u64>().ok().and_then(|v| i64::try_from(v).ok()).ok_or_else(
                    || CoreError::invalid(ErrorCode::InvalidCursor, "cursor is not valid"),
                )?);
        }
        let rows = self.store.audit_events(&filter, limit + 1).await?;
        Ok(paginate(rows, limit, |e| e.seq.to_string()))
    }

    /// Records that `principal` was refused `endpoint` (`METHOD /path`) with `code`. Not a
    /// change of state, but a security event auditors look for: the first such refusal of a
    /// minute is written at once, the rest are counted into one `access.denied.repeated` event.
    pub async fn record_denied(
        &self,
        principal: &Arc<Principal>,
        endpoint: &str,
        code: &str,
    ) -> Result<()> {
        let now = self.clock.now();
        let ev = NewAuditEvent::new(principal, AuditAction::AccessDenied, "endpoint", endpoint)
            .failed()
            .details(serde_json::json!({"code": code}));
        let events = self.refusals.admit(now, &principal.id, endpoint, code, ev).into_events();
        write_refusals(self.store.as_ref(), &self.refusals, events, now).await
    }

    /// Whether the audit key can sign (readiness).
    pub fn key_usable(&self) -> bool {
        self.crypto.sign(b"sigil-readiness-probe").is_ok()
    }

    /// Events appended after the newest checkpoint this node anchored: what its next start
    /// verifies before serving.
    pub async fn unanchored_events(&self) -> Result<i64> {
        let head = self.store.audit_head().await?;
        let anchored = self.trust.anchor.latest()?.map_or(0, |a| a.seq);
        Ok((head.seq - anchored).max(0))
    }

    /// Signs the next checkpoint at the current head, after verifying the chain from this node's
    /// anchored checkpoint (the whole chain when it has none), so that a forged head is never
    /// signed; then appends it to the anchor log. Nothing is signed when the newest checkpoint
    /// already covers the head and is younger than half the freshness bound, or when another
    /// node took the counter first.
    pub async fn checkpoint(&self) -> Result<Option<Checkpoint>> {
        let _one = self.checkpointing.lock().await;
        let head = self.store.audit_head().await?;
        if head.seq == 0 {
            return Ok(None);
        }
        let anchor = self.trust.anchor.latest()?;
        let checkpoints =
            self.store.audit_checkpoints(anchor.as_ref().map_or(1, |a| a.counter)).await?;
        let now_us = unix_micros(self.clock.now());
        let newest = checkpoints.last().cloned();
        let start = match &anchor {
            Some(a) => Start {
                first_seq: a.seq + 1,
                prev_hash: a.hash.clone(),
                checkpoints,
                anchor: anchor.clone(),
                freshness: None,
            },
            None => Start { checkpoints, ..Start::chain() },
        };
        let report = walk(self.store.as_ref(), start, self.trust.keys.as_ref(), head.seq).await?;
        if let Some(p) = report.problem {
            return Err(CoreError::conflict(
                ErrorCode::AuditChainBroken,
                format!(
                    "not signing a checkpoint: the audit chain fails verification at {}: {}",
                    p.seq, p.detail
                ),
            ));
        }
        // The newest checkpoint that verified is anchored here too, whichever node signed it,
        // so that this node holds the others' checkpoints to the chain as well.
        if let Some(n) = &newest
            && anchor.as_ref().is_none_or(|a| n.counter > a.counter)
        {
            self.trust.anchor.append(n)?;
        }
        let fresh = |n: &Checkpoint| {
            self.trust.freshness(now_us).is_none_or(|f| now_us - n.signed_at_us < f.max_age_us / 2)
        };
        if newest.as_ref().is_some_and(|n| n.seq >= head.seq && fresh(n)) {
            return Ok(None);
        }
        // Sign what was verified, not what the head row says.
        if report.last_seq != head.seq || report.last_hash != head.hash {
            return Err(CoreError::conflict(
                ErrorCode::AuditChainBroken,
                "not signing a checkpoint: the recorded head is not the end of the verified chain",
            ));
        }
        let mut c = Checkpoint::next(
            newest.as_ref(),
            report.last_seq,
            &report.last_hash,
            now_us,
            self.crypto.key_id(),
        );
        c.signature = self.crypto.sign(&c.message())?;
        if !self.store.insert_audit_checkpoint(&c).await? {
            return Ok(None);
        }
        self.trust.anchor.append(&c)?;
        Ok(Some(c))
    }

    /// Walks the whole chain and every checkpoint with the pinned keys, this node's anchor and
    /// the freshness bound; reports the first broken link.
    pub async fn verify(&self, _cap: &Capability<perm::AuditVerify>) -> Result<VerifyReport> {
        let anchor = self.trust.anchor.latest()?;
        let freshness = self.trust.freshness(unix_micros(self.clock.now()));
        verify_store(self.store.as_ref(), self.trust.keys.as_ref(), anchor, freshness).await
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
                ErrorCode::InvalidLimit,
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

/// Writes refusal events (and summaries) from `refusals`; when the store fails they are put
/// back, to go out with the next ones.
pub(crate) async fn write_refusals(
    store: &dyn Store,
    refusals: &Refusals,
    events: Vec<NewAuditEvent>,
    now: time::OffsetDateTime,
) -> Result<()> {
    if events.is_empty() {
        return Ok(());
    }
    if let Err(e) = store.commit_ops(vec![], events.clone(), now).await {
        refusals.put_back(events);
        return Err(e.into());
    }
    Ok(())
}

/// Verifies the whole chain stored in `store` against the pinned `keys`, the anchored
/// checkpoint and the freshness bound (also used offline by `sigil audit verify`).
pub async fn verify_store(
    store: &dyn Store,
    keys: &dyn SignatureCheck,
    anchor: Option<Checkpoint>,
    freshness: Option<Freshness>,
) -> Result<VerifyReport> {
    let checkpoints = store.audit_checkpoints(1).await?;
    let head = store.audit_head().await?;
    let start = Start { checkpoints, anchor, freshness, ..Start::chain() };
    walk(store, start, keys, head.seq).await
}

/// Feeds the events from `start` up to `head_seq` through a verifier.
async fn walk(
    store: &dyn Store,
    start: Start,
    keys: &dyn SignatureCheck,
    head_seq: i64,
) -> Result<VerifyReport> {
    let mut filter = AuditFilter { after_seq: Some(start.first_seq - 1), ..Default::default() };
    let mut verifier = ChainVerifier::start(start, keys);
    loop {
        let batch = store.audit_events(&filter, VERIFY_BATCH).await?;
        let Some(last) = batch.last() else { break };
        filter.after_seq = Some(last.seq);
        let full = batch.len() == VERIFY_BATCH as usize;
        // Events written after the head was read are not this run's business.
        let mut beyond = false;
        for (i, e) in batch.into_iter().enumerate() {
            if e.seq > head_seq {
                beyond = true;
                break;
            }
            verifier.push(e);
            // Each event costs about 10 µs to check, and a checkpoint checks thousands: yield
            // now and then, so that requests waiting on this worker thread do not wait for the
            // whole batch (under issuance load they did, 10 ms at a time: a p99 of 20 ms+).
            if i % YIELD_EVERY == YIELD_EVERY - 1 {
                tokio::task::yield_now().await;
            }
        }
        if verifier.failed() || !full || beyond {
            break;
        }
    }
    let mut report = verifier.finish(Some(head_seq));
    if report.valid {
        // Rows past the recorded head (a head moved back over a kept tail). An event written
        // since the head was read is past `head_seq` too, but never past the head re-read after
        // it: the head moves in the same transaction as the event is written.
        let after = AuditFilter { after_seq: Some(head_seq), ..Default::default() };
        if let Some(e) = store.audit_events(&after, 1).await?.pop()
            && e.seq > store.audit_head().await?.seq
        {
            report.valid = false;
            report.problem = Some(ChainProblem {
                seq: e.seq,
                kind: ProblemKind::Inserted,
                detail: format!("event {} lies beyond the recorded head of the chain", e.seq),
            });
        }
    }
    Ok(report)
}
