//! The re-sealing of secrets sealed before they were bound to their purpose and row
//! ([`crate::sealing`]), run once by the operator (`sigil migrate --reseal-legacy`) while
//! upgrading; the server never opens a legacy blob itself. Each legacy blob is re-sealed for the
//! row it is in only when it fits that row: a CA key must be the key of the CA certificate on
//! record (an issuing CA's not its root's); a credential key that of its end-entity certificate,
//! signed by its CA, and no CA's key; a card key must have its cipher's length, an unlock code
//! must look like one. A blob that does not fit stays as it is, is refused wherever it is used,
//! and is reported in the audit trail.

use crate::audit::AuditAction;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use time::OffsetDateTime;

use crate::access::authz::Principal;
use crate::audit::NewAuditEvent;
use crate::cards::unlock::{DeviceSecret, admin_key_binding, unlock_code_binding};
use crate::certs::ca::{ca_key_binding, ca_root_key_binding};
use crate::error::Result;
use crate::ports::Store;
use crate::records::{Filter, Record, RecordQuery, decode_all};
use crate::sealing::{LegacyCheck, Resealed, Resealer, SealBinding};
use crate::signing::credential::SigningCredential;

/// The audit action of a re-binding (one event per row re-sealed, one for the refusals).
const ACTION: AuditAction = AuditAction::SealingRebind;

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

/// Reads every record of `R`'s collection, a page at a time, in row order. The cursor is the decoded
/// record's id; a row whose body holds an id that does not advance the cursor ends the walk
/// (such a row is corrupt and refused wherever it is used), so the walk always ends.
async fn all_records<R: Record>(store: &dyn Store) -> Result<Vec<Vec<R>>> {
    let mut pages = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let filter = Filter::all(R::COLLECTION);
        let q = RecordQuery { filter, after: after.clone(), limit: PAGE };
        let page: Vec<R> = decode_all(store.records(&q).await?)?;
        let Some(last) = page.last().map(Record::key) else { return Ok(pages) };
        if after.as_ref().is_some_and(|a| *a >= last) {
            return Ok(pages);
        }
        after = Some(last);
        pages.push(page);
    }
}

/// Whether a CA's stored key is a reference to a key on a token.
fn ca_key_on_token(stored: &[u8]) -> bool {
    std::str::from_utf8(stored).is_ok_and(on_token)
}

/// Whether a stored credential key is a reference to a key on a token.
fn on_token(stored: &str) -> bool {
    crate::signing::key_store::KeyStoreKind::of_stored(stored)
        == crate::signing::key_store::KeyStoreKind::Pkcs11
}

/// How many stored secrets are still legacy blobs (refused until re-sealed).
pub async fn count_legacy(store: &dyn Store, sealer: &dyn Resealer) -> Result<usize> {
    let mut n = 0;
    for rec in store.cas().await? {
        n += usize::from(!ca_key_on_token(&rec.key_sealed) && !sealer.is_bound(&rec.key_sealed));
        n += usize::from(rec.root_key_sealed.as_ref().is_some_and(|r| !sealer.is_bound(r)));
    }
    let legacy = |b64: &str| STANDARD.decode(b64).map_or(true, |b| !sealer.is_bound(&b));
    for page in all_records::<SigningCredential>(store).await? {
        // A key on a token is a reference, not a sealed blob.
        n += page.iter().filter(|c| !on_token(&c.sealed_key) && legacy(&c.sealed_key)).count();
    }
    for page in all_records::<DeviceSecret>(store).await? {
        for s in page {
            n += usize::from(s.admin_key.as_deref().is_some_and(legacy));
            n += usize::from(s.unlock_code.as_deref().is_some_and(legacy));
        }
    }
    Ok(n)
}

async fn cas(
    store: &dyn Store,
    sealer: &dyn Resealer,
    report: &mut ResealReport,
    now: OffsetDateTime,
) -> Result<()> {
    for rec in store.cas().await? {
        let at = ca_key_binding(&rec.id, rec.key_type);
        // An issuing CA's row holding its root's key would put the root online.
        let root_only = [rec.root_der.clone()];
        let not_of: &[Vec<u8>] = if rec.cert_der == rec.root_der { &[] } else { &root_only };
        let check =
            LegacyCheck::KeyOf { cert: &rec.cert_der, end_entity: false, issued_by: None, not_of };
        let key = if sealer.is_bound(&rec.key_sealed) || ca_key_on_token(&rec.key_sealed) {
            None
        } else {
            report.note(&at, sealer.reseal_legacy(&rec.key_sealed, &at, check))
        };
        let root = match &rec.root_key_sealed {
            Some(sealed) if !sealer.is_bound(sealed) => {
                let at = ca_root_key_binding(&rec.id, rec.key_type);
                let check = LegacyCheck::KeyOf {
                    cert: &rec.root_der,
                    end_entity: false,
                    issued_by: None,
                    not_of: &[],
                };
                report.note(&at, sealer.reseal_legacy(sealed, &at, check))
            }
            _ => None,
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
            // Only over what was read: a row changed meanwhile (say, its root key moved out by
            // another node) is left alone.
            let old = (rec.key_sealed.as_slice(), rec.root_key_sealed.as_deref());
            if tx.set_ca_keys(&rec.id, old, (key, root)).await? {
                tx.commit(vec![rebound("ca", &rec.id, &purposes)], now).await?;
            }
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
    let cas = store.cas().await?;
    let ca_certs: Vec<Vec<u8>> =
        cas.iter().flat_map(|c| [c.cert_der.clone(), c.root_der.clone()]).collect();
    for page in all_records::<SigningCredential>(store).await? {
        for c in page {
            let at = crate::signing::credential::credential_binding(c.id, c.key_algorithm);
            if on_token(&c.sealed_key) {
                continue;
            }
            let Ok(sealed) = STANDARD.decode(&c.sealed_key) else {
                report.refused.push((at.to_string(), "not base64".into()));
                continue;
            };
            if sealer.is_bound(&sealed) {
                continue;
            }
            let outcome = match store.certificate(c.certificate_id).await? {
                Some(cert) => {
                    // Its CA's certificate when the CA is stored here (a connector's CA is not).
                    let issued_by =
                        cas.iter().find(|ca| ca.id == cert.ca_id).map(|ca| ca.cert_der.as_slice());
                    let check = LegacyCheck::KeyOf {
                        cert: &cert.der,
                        end_entity: true,
                        issued_by,
                        not_of: &ca_certs,
                    };
                    sealer.reseal_legacy(&sealed, &at, check)
                }
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
    Ok(())
}

async fn device_secrets(
    store: &dyn Store,
    sealer: &dyn Resealer,
    report: &mut ResealReport,
    now: OffsetDateTime,
) -> Result<()> {
    for page in all_records::<DeviceSecret>(store).await? {
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
    Ok(())
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
    if sealer.is_bound(&raw) {
        return None;
    }
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
    let Some(body) = tx.record_for_update(R::COLLECTION, &id.to_string()).await? else {
        return Ok(());
    };
    let mut r = R::from_body(&body)?;
    if change(&mut r) {
        tx.update_record(r.row()).await?;
        tx.commit(vec![event], now).await?;
    }
    Ok(())
}
