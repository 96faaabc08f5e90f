//! CA back ends: the built-in CA created (or imported) on first start, the list of back ends,
//! and CRLs regenerated after every change and before they go stale.

use crate::ErrorCode;
use crate::audit::AuditAction;
use std::sync::Arc;

use sha2::{Digest, Sha256};

use time::{Duration, OffsetDateTime};

use crate::access::authz::{Capability, Principal, perm};
use crate::audit::{NewAuditEvent, unix_micros};
use crate::cache::Cache;
use crate::certs::ca::{
    CaFactory, CaRecord, Issuer, Issuers, Ocsp, OcspQuery, OcspStatus, RootKeyVault,
};
use crate::certs::{CertStatus, KeyType};
use crate::error::{CoreError, Result};
use crate::ports::{Clock, Store};

/// PEM material for importing the built-in CA instead of creating one.
#[derive(Debug, Clone)]
pub struct CaImport {
    /// Issuing CA certificate.
    pub cert_pem: String,
    /// Its PKCS#8 key (empty when `key_label` names it).
    pub key_pem: String,
    /// The label of its key on the configured PKCS#11 token, instead of `key_pem`.
    pub key_label: Option<String>,
    /// The chain above it, root last (may be empty for a self-signed CA).
    pub chain_pem: String,
}

impl CaImport {
    /// Where the key comes from.
    pub fn key(&self) -> crate::certs::ca::CaKeySource<'_> {
        match &self.key_label {
            Some(l) => crate::certs::ca::CaKeySource::TokenLabel(l),
            None => crate::certs::ca::CaKeySource::Pem(&self.key_pem),
        }
    }
}

/// CA operations.
pub struct CaService {
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    issuers: Arc<Issuers>,
    factory: Arc<dyn CaFactory>,
    ocsp: Arc<dyn Ocsp>,
    crl_validity: Duration,
    answers: OcspAnswers,
}

/// Signed OCSP responses kept with the statuses they state. A request about one certificate
/// (what relying parties send) is answered per certificate (RFC 5019): one response per CertID,
/// without the nonce, served to everyone until that certificate's status changes or a quarter
/// of the response's validity has passed. A request about several certificates is kept per
/// request, nonce and all, briefly. Statuses are read from the store for every request, so a
/// change on any node shows at once.
#[derive(Debug)]
struct OcspAnswers {
    /// One response per certificate, kept a quarter of its validity.
    per_certificate: Cache<[u8; 32], Answer>,
    /// Responses to requests about several certificates, kept briefly.
    per_request: Cache<[u8; 32], Answer>,
}

/// The statuses a response states, and the response.
type Answer = (Vec<OcspStatus>, Vec<u8>);

/// How long a response to a request about several certificates is reused.
const OCSP_REUSE_REQUEST: std::time::Duration = std::time::Duration::from_secs(60);
/// Responses kept at most, of each kind.
const OCSP_KEPT: usize = 16_384;

impl OcspAnswers {
    fn new(validity: Duration) -> Self {
        let quarter = std::time::Duration::try_from(validity / 4).unwrap_or(OCSP_REUSE_REQUEST);
        Self {
            per_certificate: Cache::new(quarter, OCSP_KEPT),
            per_request: Cache::new(OCSP_REUSE_REQUEST, OCSP_KEPT),
        }
    }

    fn kind(&self, per_certificate: bool) -> &Cache<[u8; 32], Answer> {
        if per_certificate { &self.per_certificate } else { &self.per_request }
    }
}

impl std::fmt::Debug for CaService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CaService").field("issuers", &self.issuers).finish_non_exhaustive()
    }
}

impl CaService {
    /// Wires the service. CRLs are valid for `crl_validity` and remade when a quarter of it is left.
    pub fn new(
        store: Arc<dyn Store>,
        clock: Arc<dyn Clock>,
        issuers: Arc<Issuers>,
        factory: Arc<dyn CaFactory>,
        ocsp: Arc<dyn Ocsp>,
        crl_validity: Duration,
    ) -> Self {
        let answers = OcspAnswers::new(ocsp.validity());
        Self { store, clock, issuers, factory, ocsp, crl_validity, answers }
    }

    /// Answers an OCSP request (DER) with an OCSP response (DER). Protocol failures are OCSP
    /// responses too (malformedRequest, unauthorized), as RFC 6960 wants.
    pub async fn ocsp(&self, request: &[u8]) -> Result<Vec<u8>> {
        // Only back ends whose status Sigil publishes: an external CA answers for its own.
        let cas = self.issuers.publishing();
        let Ok(query) = self.ocsp.parse(request, &cas) else {
            return Ok(self.ocsp.malformed());
        };
        let Some(signer) = query.items.iter().find_map(|(i, _)| *i) else {
            return Ok(self.ocsp.unauthorized());
        };
        let Some(ca) = cas.get(signer) else {
            return Ok(self.ocsp.unauthorized());
        };
        let mut statuses = Vec::with_capacity(query.items.len());
        for (idx, serial) in &query.items {
            let status = if *idx != Some(signer) {
                OcspStatus::Unknown
            } else {
                match self.store.certificate_by_serial(ca.id(), serial).await? {
                    None => OcspStatus::Unknown,
                    Some(c) => match (c.status, c.revoked_at, c.revocation_reason) {
                        (CertStatus::Revoked | CertStatus::Suspended, Some(at), Some(reason)) => {
                            OcspStatus::Revoked { at, reason }
                        }
                        _ => OcspStatus::Good,
                    },
                }
            };
            statuses.push(status);
        }
        // One certificate: kept per CertID for everyone; several: per request.
        let one = match query.cert_ids.as_slice() {
            [one] => Some(one.as_slice()),
            _ => None,
        };
        let per_certificate = one.is_some();
        let mut h = Sha256::new();
        h.update(ca.id().as_bytes());
        h.update([u8::from(per_certificate)]);
        h.update(one.unwrap_or(request));
        let key: [u8; 32] = h.finalize().into();
        let kept = self.answers.kind(per_certificate);
        if let Some((_, der)) = kept.get_if(&key, |(said, _)| *said == statuses) {
            return Ok(der);
        }
        let query = OcspQuery { echo_nonce: !per_certificate, ..query };
        let der = self.ocsp.respond(&query, &statuses, ca.as_ref(), self.clock.now())?;
        kept.put(key, (statuses, der.clone()));
        Ok(der)
    }

    /// Creates (or imports) the built-in CA `id` when the store has none, then loads every
    /// stored CA into service. A created root's key goes to `vault`, never to the database.
    pub async fn bootstrap(
        &self,
        id: &str,
        key: KeyType,
        import: Option<CaImport>,
        vault: &dyn RootKeyVault,
    ) -> Result<()> {
        if !self.store.cas().await?.iter().any(|c| c.id == id) {
            let now = self.clock.now();
            let (rec, kept) = match &import {
                Some(i) => {
                    (self.factory.import(id, &i.cert_pem, i.key(), &i.chain_pem, now)?, None)
                }
                None => {
                    let new = self.factory.create(id, key, now)?;
                    // Kept before the CA is stored, so a stored CA never lacks its root key.
                    let at = vault.keep(id, &new.root_key_pem)?;
                    (new.record, Some(at))
                }
            };
            let mut tx = self.store.begin().await?;
            match tx.insert_ca(&rec).await {
                Ok(()) => {
                    let action = if import.is_some() {
                        AuditAction::CaImport
                    } else {
                        AuditAction::CaCreate
                    };
                    let ev = NewAuditEvent::new(&Principal::system(), action, "ca", id).details(
                        serde_json::json!({"key_type": rec.key_type.as_str(), "root_key": kept}),
                    );
                    tx.commit(vec![ev], now).await?;
                }
                // Another node made it first; load theirs.
                Err(crate::StoreError::Conflict { .. }) => {
                    if let Some(at) = &kept {
                        vault.discard(id, at);
                    }
                }
                Err(e) => return Err(e.into()),
            }
        }
        for rec in self.store.cas().await? {
            self.issuers.insert(self.factory.load(&rec)?);
        }
        Ok(())
    }

    /// Moves the root keys that records from before the root key moved out still hold into
    /// `vault`, then removes them from the database: per CA, where it went, or why it could not
    /// (a legacy blob not re-sealed yet, say), which is audited and left as it is.
    pub async fn move_root_keys_out(
        &self,
        vault: &dyn RootKeyVault,
    ) -> Result<Vec<(String, std::result::Result<String, String>)>> {
        let mut moved = Vec::new();
        for rec in self.store.cas().await? {
            let now = self.clock.now();
            let pem = match self.factory.root_key_pem(&rec) {
                Ok(Some(pem)) => pem,
                Ok(None) => continue,
                Err(e) => {
                    let why = e.to_string();
                    let ev = NewAuditEvent::new(
                        &Principal::system(),
                        AuditAction::CaRootKeyMoved,
                        "ca",
                        &rec.id,
                    )
                    .details(serde_json::json!({"why": why}))
                    .failed();
                    self.store.begin().await?.commit(vec![ev], now).await?;
                    moved.push((rec.id, Err(why)));
                    continue;
                }
            };
            let at = vault.keep(&rec.id, &pem)?;
            let mut tx = self.store.begin().await?;
            tx.clear_ca_root_key(&rec.id).await?;
            let ev = NewAuditEvent::new(
                &Principal::system(),
                AuditAction::CaRootKeyMoved,
                "ca",
                &rec.id,
            )
            .details(serde_json::json!({"to": at}));
            tx.commit(vec![ev], now).await?;
            moved.push((rec.id, Ok(at)));
        }
        Ok(moved)
    }

    /// Installs CA `id` from an issuing certificate, its key and the chain above it (the
    /// offline root's certificate), as `sigil ca install` does: the key is sealed for this CA
    /// and the root's key is never asked for. Running nodes serve it after a restart.
    pub async fn install(&self, id: &str, import: &CaImport) -> Result<CaRecord> {
        let now = self.clock.now();
        let rec =
            self.factory.import(id, &import.cert_pem, import.key(), &import.chain_pem, now)?;
        let mut tx = self.store.begin().await?;
        tx.insert_ca(&rec).await.map_err(crate::records::conflict_as(
            ErrorCode::CaExists,
            format!("CA {id} already exists"),
        ))?;
        let ev = NewAuditEvent::new(&Principal::local_cli(), AuditAction::CaInstall, "ca", id)
            .details(serde_json::json!({"key_type": rec.key_type.as_str(), "offline_root": true}));
        tx.commit(vec![ev], now).await?;
        Ok(rec)
    }

    /// The certificate (DER) of CA back end `id`, for relying parties that build the chain
    /// (authorityInfoAccess caIssuers).
    /// `<ca>-root` names CA `<ca>`'s root certificate.
    pub async fn ca_certificate(&self, id: &str) -> Result<Vec<u8>> {
        if let Ok(i) = self.issuers.get(id) {
            return Ok(i.ca_certificate().to_vec());
        }
        self.root_of(id).await?.map(|r| r.root_der).ok_or_else(|| CoreError::not_found("ca", id))
    }

    /// The stored CA whose root `name` (`<ca>-root`) names, when it has a root of its own.
    async fn root_of(&self, name: &str) -> Result<Option<CaRecord>> {
        let Some(id) = name.strip_suffix("-root") else { return Ok(None) };
        Ok(self.store.cas().await?.into_iter().find(|c| c.id == id && c.root_der != c.cert_der))
    }

    /// Publishes CA `id`'s root CRL, signed offline (`sigil ca crl`): it must be the root's,
    /// verify with its key, and be newer than the one published.
    pub async fn publish_root_crl(&self, id: &str, der: &[u8]) -> Result<u64> {
        let rec = self
            .store
            .cas()
            .await?
            .into_iter()
            .find(|c| c.id == id)
            .ok_or_else(|| CoreError::invalid(ErrorCode::UnknownCa, format!("no CA `{id}`")))?;
        if rec.root_der == rec.cert_der {
            return Err(CoreError::invalid(
                ErrorCode::InvalidCrl,
                format!("CA `{id}` is its own root: its CRL is the one Sigil signs"),
            ));
        }
        let now = self.clock.now();
        let number = self.factory.check_root_crl(&rec, der, now)?;
        let mut tx = self.store.begin().await?;
        tx.set_root_crl(id, der).await?;
        let ev =
            NewAuditEvent::new(&Principal::local_cli(), AuditAction::CaRootCrlPublish, "ca", id)
                .details(serde_json::json!({"crl_number": number}));
        tx.commit(vec![ev], now).await?;
        Ok(number)
    }

    /// When each root CRL Sigil publishes (`/crl/<ca>-root.crl`) runs out: the operator signs
    /// the next one offline before then. By CA id.
    pub async fn root_crl_deadlines(&self) -> Result<Vec<(String, OffsetDateTime)>> {
        Ok(self
            .store
            .cas()
            .await?
            .into_iter()
            .filter(|c| c.root_der != c.cert_der)
            .filter_map(|c| {
                let next = self.factory.crl_next_update(c.root_crl_der.as_deref()?)?;
                Some((c.id, next))
            })
            .collect())
    }

    /// Logs a warning for each root CRL that runs out within `within` (an error once it has):
    /// relying parties then fail every chain under that root.
    pub async fn warn_root_crls(&self, within: Duration) -> Result<()> {
        let now = self.clock.now();
        for (ca, next) in self.root_crl_deadlines().await? {
            if next <= now {
                tracing::error!(ca, next_update = %next, "the root CRL has expired: sign the next \
                    one offline (sigil ca crl) and publish it (sigil ca publish-root-crl)");
            } else if next <= now + within {
                tracing::warn!(ca, next_update = %next, "the root CRL runs out soon: sign the \
                    next one offline (sigil ca crl) and publish it (sigil ca publish-root-crl)");
            }
        }
        Ok(())
    }

    /// Every back end in service.
    pub fn list(&self, _cap: &Capability<perm::CaBackendsRead>) -> Vec<Arc<dyn Issuer>> {
        self.issuers.all()
    }

    /// The current CRL of `ca_id`, DER; remade when stale or close to its nextUpdate.
    pub async fn crl(&self, ca_id: &str) -> Result<Vec<u8>> {
        let Some(rec) = self.store.crl(ca_id).await? else {
            // `<ca>-root`: the root's CRL, signed where the root key is and published as is.
            return self
                .root_of(ca_id)
                .await?
                .and_then(|r| r.root_crl_der)
                .ok_or_else(|| CoreError::not_found("ca", ca_id));
        };
        let now = self.clock.now();
        let margin = unix_micros(now + self.crl_validity / 4);
        if let (Some(der), false, Some(next)) = (&rec.der, rec.stale, rec.next_update_us)
            && next > margin
        {
            return Ok(der.clone());
        }
        self.publish(ca_id, now).await
    }

    /// Makes and stores a new CRL for `ca_id`.
    pub async fn publish(&self, ca_id: &str, now: OffsetDateTime) -> Result<Vec<u8>> {
        let issuer = self.issuers.get(ca_id)?;
        let entries = self.store.revoked_entries(ca_id).await?;
        let mut tx = self.store.begin().await?;
        let number = tx.next_crl_number(ca_id).await?;
        let next = now + self.crl_validity;
        let publisher = issuer.status().ok_or_else(|| {
            CoreError::conflict(
                ErrorCode::StatusNotPublished,
                format!(
                    "CA back end `{ca_id}` is an external CA; it publishes its own CRL and OCSP"
                ),
            )
        })?;
        let der = publisher.crl(&entries, u64::try_from(number).unwrap_or(0), now, next)?;
        tx.store_crl(ca_id, &der, unix_micros(now), unix_micros(next)).await?;
        let ev = NewAuditEvent::new(&Principal::system(), AuditAction::CrlPublish, "ca", ca_id)
            .details(serde_json::json!({"crl_number": number, "entries": entries.len()}));
        tx.commit(vec![ev], now).await?;
        Ok(der)
    }

    /// Each publishing CA's current CRL: (CA, thisUpdate, nextUpdate) in Unix seconds (metrics).
    pub async fn crl_times(&self) -> Result<Vec<(String, i64, i64)>> {
        let mut out = Vec::new();
        for ca in self.issuers.publishing() {
            if let Some(rec) = self.store.crl(ca.id()).await?
                && let (Some(this), Some(next)) = (rec.this_update_us, rec.next_update_us)
            {
                out.push((ca.id().to_owned(), this / 1_000_000, next / 1_000_000));
            }
        }
        Ok(out)
    }

    /// Remakes every CRL that is stale or close to expiry (the background job).
    pub async fn refresh_crls(&self) -> Result<()> {
        for ca in self.issuers.publishing() {
            self.crl(ca.id()).await?;
        }
        Ok(())
    }
}
