//! The one-time re-sealing, at start, of secrets sealed before they were bound to their purpose
//! and row ([`crate::sealing`]). Each legacy blob is re-sealed for the row it is in only when it
//! fits that row: a key must be the one of the certificate on record, a card key must have its
//! cipher's length, an unlock code must look like one. A blob that does not fit stays as it is,
//! is refused wherever it is used, and is reported in the audit trail.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use time::OffsetDateTime;

use crate::audit::NewAuditEvent;
use crate::authz::Principal;
use crate::ca::{ca_key_binding, ca_root_key_binding};
use crate::csc::{CREDENTIALS, SigningCredential};
use crate::error::Result;
use crate::ports::Store;
use crate::records::{Record, RecordQuery, decode_all};
use crate::sealing::{LegacyCheck, Resealed, Resealer, SealBinding};
use crate::unlock::{DEVICE_SECRETS, DeviceSecret, admin_key_binding, unlock_code_binding};

/// The audit action of a re-binding (one event per row re-sealed, one for the refusals).
const ACTION: &str = "sealing.rebind";

/// The event of re-sealing `purposes` in the row of object `kind` `id`.
fn rebound(kind: &str, id: &str, purposes: &[&str]) -> NewAuditEvent {
    NewAuditEvent::new(&Principal::system(), ACTION, kind, id)
        .details(serde_json::json!({"secrets": purposes}))
}

/// Rows read per page.
const PAGE: u32 = 200;
/// Refusals named in the audit event (the count is always whole).
const NAMED: usize = 100;

/// What the re-sealing did.
#[derive(Debug, Default)]
pub struct ResealReport {
    /// Legacy blobs re-sealed for their rows.
    pub resealed: usize,
    /// Legacy blobs left as they are, with why: they are refused where used.
    pub refused: Vec<(String, String)>,
}

impl ResealReport {
    fn note(&mut self, binding: &SealBinding, outcome: Resealed) -> Option<Vec<u8>> {
        match outcome {
            Resealed::Current => None,
            Resealed::New(b) => {
                self.resealed += 1;
                Some(b)
            }
            Resealed::Refused(why) => {
                self.refused.push((binding.to_string(), why));
                None
            }
        }
    }
}

/// Re-seals every legacy blob in the store that fits its row, and records what it did.
pub async fn reseal_legacy(
    store: &dyn Store,
    sealer: &dyn Resealer,
    now: OffsetDateTime,
) -> Result<ResealReport> {
    let mut report = ResealReport::default();
    cas(store, sealer, &mut report, now).await?;
    credentials(store, sealer, &mut report, now).await?;
    device_secrets(store, sealer, &mut report, now).await?;
    if !report.refused.is_empty() {
        let named: Vec<_> = report
            .refused
            .iter()
            .take(NAMED)
            .map(|(at, why)| serde_json::json!({"at": at, "why": why}))
            .collect();
        let ev = NewAuditEvent::new(&Principal::system(), ACTION, "sealing", "legacy")
            .details(serde_json::json!({"refused": report.refused.len(), "named": named}))
            .failed();
        store.begin().await?.commit(vec![ev], now).await?;
    }
    Ok(report)
}

async fn cas(
    store: &dyn Store,
    sealer: &dyn Resealer,
    report: &mut ResealReport,
    now: OffsetDateTime,
) -> Result<()> {
    for rec in store.cas().await? {
        let at = ca_key_binding(&rec.id, rec.key_type);
        let key = report.note(
            &at,
            sealer.reseal_legacy(&rec.key_sealed, &at, LegacyCheck::KeyOf(&rec.cert_der)),
        );
        let root = match &rec.root_key_sealed {
            Some(sealed) => {
                let at = ca_root_key_binding(&rec.id, rec.key_type);
                report
                    .note(&at, sealer.reseal_legacy(sealed, &at, LegacyCheck::KeyOf(&rec.root_der)))
            }
            None => None,
        };
        let (key_new, root_new) = (key.is_some(), root.is_some());
        if key_new || root_new {
            let key = key.as_deref().unwrap_or(&rec.key_sealed);
            let root = root.as_deref().or(rec.root_key_sealed.as_deref());
            let purposes: Vec<&str> = [(key_new, "ca-key"), (root_new, "ca-root-key")]
                .into_iter()
                .filter_map(|(new, name)| new.then_some(name))
                .collect();
            let mut tx = store.begin().await?;
            tx.set_ca_keys(&rec.id, key, root).await?;
            tx.commit(vec![rebound("ca", &rec.id, &purposes)], now).await?;
        }
    }
    Ok(())
}

async fn credentials(
    store: &dyn Store,
    sealer: &dyn Resealer,
    report: &mut ResealReport,
    now: OffsetDateTime,
) -> Result<()> {
    let mut after = None;
    loop {
        let q = RecordQuery { conds: vec![], after: after.clone(), limit: PAGE };
        let page: Vec<SigningCredential> = decode_all(store.records(&CREDENTIALS, &q).await?)?;
        let Some(last) = page.last() else { return Ok(()) };
        after = Some(last.id.to_string());
        for c in page {
            let at = crate::csc::credential_binding(c.id, c.key_algorithm);
            let Ok(sealed) = STANDARD.decode(&c.sealed_key) else {
                report.refused.push((at.to_string(), "not base64".into()));
                continue;
            };
            let outcome = match store.certificate(c.certificate_id).await? {
                Some(cert) => sealer.reseal_legacy(&sealed, &at, LegacyCheck::KeyOf(&cert.der)),
                None => Resealed::Refused("its certificate is not in the inventory".into()),
            };
            if let Some(new) = report.note(&at, outcome) {
                let old = c.sealed_key;
                let ev = rebound("signing_credential", &c.id.to_string(), &["credential-key"]);
                replace::<SigningCredential>(store, c.id, now, ev, |c| {
                    if c.sealed_key != old {
                        return false;
                    }
                    c.sealed_key = STANDARD.encode(&new);
                    true
                })
                .await?;
            }
        }
    }
}

async fn device_secrets(
    store: &dyn Store,
    sealer: &dyn Resealer,
    report: &mut ResealReport,
    now: OffsetDateTime,
) -> Result<()> {
    let mut after = None;
    loop {
        let q = RecordQuery { conds: vec![], after: after.clone(), limit: PAGE };
        let page: Vec<DeviceSecret> = decode_all(store.records(&DEVICE_SECRETS, &q).await?)?;
        let Some(last) = page.last() else { return Ok(()) };
        after = Some(last.id.to_string());
        for s in page {
            let admin = match (&s.admin_key, s.algorithm) {
                (Some(k), Some(alg)) => {
                    let at = admin_key_binding(s.id, alg);
                    let check = LegacyCheck::SymmetricKey(alg.key_len());
                    reseal_text(sealer, report, &at, k, check)
                }
                _ => None,
            };
            let code = s.unlock_code.as_ref().and_then(|c| {
                reseal_text(sealer, report, &unlock_code_binding(s.id), c, LegacyCheck::UnlockCode)
            });
            if admin.is_some() || code.is_some() {
                let (old_admin, old_code) = (s.admin_key.clone(), s.unlock_code.clone());
                let purposes: Vec<&str> =
                    [(admin.is_some(), "card-admin-key"), (code.is_some(), "card-unlock-code")]
                        .into_iter()
                        .filter_map(|(new, name)| new.then_some(name))
                        .collect();
                let ev = rebound("device", &s.id.to_string(), &purposes);
                replace::<DeviceSecret>(store, s.id, now, ev, |s| {
                    if s.admin_key != old_admin || s.unlock_code != old_code {
                        return false;
                    }
                    if admin.is_some() {
                        s.admin_key.clone_from(&admin);
                    }
                    if code.is_some() {
                        s.unlock_code.clone_from(&code);
                    }
                    true
                })
                .await?;
            }
        }
    }
}

/// Re-seals a base64 blob; the new blob, base64, when it was re-sealed.
fn reseal_text(
    sealer: &dyn Resealer,
    report: &mut ResealReport,
    at: &SealBinding,
    sealed: &str,
    check: LegacyCheck<'_>,
) -> Option<String> {
    let Ok(raw) = STANDARD.decode(sealed) else {
        report.refused.push((at.to_string(), "not base64".into()));
        return None;
    };
    report.note(at, sealer.reseal_legacy(&raw, at, check)).map(|b| STANDARD.encode(b))
}

/// Rewrites record `id` under a row lock when `change` (given the current record) says the
/// record is still the one read (a concurrent change on another node wins).
async fn replace<R: Record>(
    store: &dyn Store,
    id: uuid::Uuid,
    now: OffsetDateTime,
    event: NewAuditEvent,
    change: impl FnOnce(&mut R) -> bool,
) -> Result<()> {
    let mut tx = store.begin().await?;
    let Some(body) = tx.record_for_update(R::TABLE, &id.to_string()).await? else {
        return Ok(());
    };
    let mut r = R::from_body(&body)?;
    if change(&mut r) {
        tx.update_record(R::TABLE, &r.to_row()?).await?;
        tx.commit(vec![event], now).await?;
    }
    Ok(())
}
