//! The certificate lifecycle: issue from a CSR (single and batch), search, show, suspend,
//! reactivate, revoke, renew, and custom metadata. Every change is committed with its audit event
//! and marks the CA's CRL for regeneration in the same transaction.

mod serial;
mod supersession;

use serial::new_serial;

use crate::ErrorCode;
use crate::audit::AuditAction;
use std::sync::Arc;

use sha2::{Digest, Sha256};
use time::Duration;
use uuid::Uuid;

use crate::access::authz::{Capability, Permission, perm};
use crate::audit::NewAuditEvent;
pub use crate::certs::CertChange;
use crate::certs::ca::{CsrParser, IssuedRef, Issuers};
use crate::certs::profile::conformance;
use crate::certs::profiles::ProfileService;
use crate::certs::{CertStatus, Certificate, ParsedCsr, RequestKey, RevocationReason};
use crate::error::{CoreError, Result, StoreError};
use crate::page::{Page, check_metadata, paginate};
use crate::ports::{
    CertFilter, Clock, PageRequest, Store, WriteOp, cert_cursor, parse_cert_cursor,
};
use crate::records::Collection;

/// Most requests in one batch.
pub const MAX_BATCH: usize = 100;

/// A request to issue.
#[derive(Debug, Clone)]
pub struct IssueRequest {
    /// The CSR (PEM, base64 or DER bytes).
    pub csr: Vec<u8>,
    /// Profile name.
    pub profile: String,
    /// Initial metadata (a JSON object).
    pub metadata: Option<serde_json::Value>,
    /// The registration office it belongs to (required for a restricted caller).
    pub office_id: Option<Uuid>,
}

/// Certificate operations.
pub struct CertificateService {
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    issuers: Arc<Issuers>,
    profiles: Arc<ProfileService>,
    csr: Arc<dyn CsrParser>,
    validators: Arc<dyn crate::ports::Validators>,
    events: Arc<dyn crate::ports::EventSink>,
    /// Each CA certificate read once (issued certificates are compared with its name and key
    /// identifier), by the CA's id with the certificate's DER: a swapped back end is read anew.
    ca_content: crate::cache::Cache<String, CaContent>,
}

/// A CA certificate's DER and what it says.
type CaContent = Arc<(Vec<u8>, Arc<conformance::IssuedContent>)>;

impl std::fmt::Debug for CertificateService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CertificateService").finish_non_exhaustive()
    }
}

/// JSON merge patch (RFC 7386) of `patch` into `target`.
pub fn merge_patch(target: &mut serde_json::Value, patch: &serde_json::Value) {
    match (target, patch) {
        (serde_json::Value::Object(t), serde_json::Value::Object(p)) => {
            for (k, v) in p {
                if v.is_null() {
                    t.remove(k);
                } else {
                    merge_patch(t.entry(k.clone()).or_insert(serde_json::Value::Null), v);
                }
            }
        }
        (t, p) => *t = p.clone(),
    }
}

impl CertificateService {
    /// Wires the service.
    pub fn new(
        store: Arc<dyn Store>,
        clock: Arc<dyn Clock>,
        issuers: Arc<Issuers>,
        profiles: Arc<ProfileService>,
        csr: Arc<dyn CsrParser>,
        validators: Arc<dyn crate::ports::Validators>,
        events: Arc<dyn crate::ports::EventSink>,
    ) -> Self {
        Self {
            store,
            clock,
            issuers,
            profiles,
            csr,
            validators,
            events,
            ca_content: crate::cache::Cache::new(std::time::Duration::from_secs(3600), 16),
        }
    }

    fn announce(&self, kind: crate::events::EventKind, c: &Certificate) {
        crate::ports::announce(self.events.as_ref(), kind, "certificate", c.id, || {
            serde_json::json!({
                "id": c.id, "serial": c.serial, "profile": c.profile, "subject": c.subject,
                "status": c.status.as_str(), "reason": c.revocation_reason.map(|r| r.as_str()),
                "metadata": c.metadata,
            })
        });
    }

    /// Issues one certificate.
    pub async fn issue(
        &self,
        cap: &Capability<perm::CertificateIssue>,
        req: IssueRequest,
    ) -> Result<Certificate> {
        self.check_office(cap.principal(), req.office_id).await?;
        let csr = self.csr.parse(&req.csr)?;
        self.issue_parsed(cap, csr, &req.profile, req.metadata, None, req.office_id).await
    }

    /// Issues many; each item succeeds or fails on its own.
    pub async fn issue_batch(
        &self,
        cap: &Capability<perm::CertificateIssue>,
        reqs: Vec<IssueRequest>,
    ) -> Result<Vec<Result<Certificate>>> {
        if reqs.is_empty() || reqs.len() > MAX_BATCH {
            return Err(CoreError::invalid(
                ErrorCode::InvalidBatch,
                format!("a batch holds 1 to {MAX_BATCH} requests"),
            ));
        }
        let mut out = Vec::with_capacity(reqs.len());
        for r in reqs {
            out.push(self.issue(cap, r).await);
        }
        Ok(out)
    }

    async fn issue_parsed<P: Permission>(
        &self,
        cap: &Capability<P>,
        csr: ParsedCsr,
        profile: &str,
        metadata: Option<serde_json::Value>,
        renewed_from: Option<Uuid>,
        office_id: Option<Uuid>,
    ) -> Result<Certificate> {
        let metadata = metadata.unwrap_or_else(|| serde_json::json!({}));
        check_metadata(&metadata)?;
        let profile = self.profiles.find(profile).await?;
        let now = self.clock.now();
        // Validator plugins at the `certificate-issuance` hook run before the profile's rules;
        // one may take over the key policy.
        let outcome = if self.validators.active("certificate-issuance") {
            let input = crate::ports::ValidationInput {
                attributes: csr.subject.clone(),
                sans: csr.sans.clone(),
                key: Some(csr.key.clone()),
                context: profile.name.clone(),
                json: serde_json::json!({
                    "profile": profile.name,
                    "subject": csr.subject.iter().map(|a| format!("{}={}", a.attribute, a.value)).collect::<Vec<_>>(),
                    "sans": csr.sans.iter().map(|s| s.tagged()).collect::<Vec<_>>(),
                    "metadata": metadata,
                })
                .to_string(),
            };
            self.validators.validate("certificate-issuance", &input).await?
        } else {
            crate::ports::ValidationOutcome::default()
        };
        let content = profile.spec.apply_with(&csr, now, outcome.override_builtin)?;
        let issuer = self.issuers.get(&profile.spec.ca)?;
        if content.cabf_server_auth
            && let Some(why) = issuer.unfit_for_public_trust()
        {
            return Err(CoreError::conflict(
                ErrorCode::PublicationRequired,
                format!(
                    "profile `{}` follows the CA/Browser Forum rules and CA `{}` cannot issue \
                     under them: {why}",
                    profile.name,
                    issuer.id()
                ),
            ));
        }
        let serial = new_serial(now)?;
        let issued = issuer
            .issue(&crate::certs::ca::IssueOrder {
                content: &content,
                serial: &serial,
                csr_der: &csr.der,
                profile: &profile.name,
            })
            .await?;
        // What was issued must be what the profile decided (exactly, for Sigil's own CA; never
        // wider, for an external one), read back from the DER, before it is recorded.
        // A certificate that cannot even be read back goes the same way as one that differs.
        let verdict = self
            .csr
            .issued_content(&issued.der)
            .map_err(|e| CoreError::Dependency {
                code: ErrorCode::CaResultMismatch,
                detail: format!("the CA back end issued a certificate Sigil cannot read: {e}"),
            })
            .and_then(|got| {
                let ca = self.ca_content(issuer.id(), issuer.ca_certificate())?;
                conformance::check_issued(&content, &got, &ca, issuer.kind() == "builtin")?;
                Ok(got)
            });
        let got = match verdict {
            Ok(got) => got,
            Err(e) => {
                let serial = hex::encode(&issued.serial);
                // Out there but not recorded: take it back where the back end can.
                let taken_back = issuer
                    .revoke(
                        IssuedRef { serial: &serial, der: &issued.der },
                        RevocationReason::CessationOfOperation,
                    )
                    .await
                    .is_ok();
                let ev = NewAuditEvent::new(
                    cap.principal(),
                    AuditAction::CertificateIssue,
                    "certificate",
                    &serial,
                )
                .details(serde_json::json!({
                    "refused": e.code(), "why": e.to_string(), "ca": issuer.id(),
                    "profile": profile.name, "revoked_at_ca": taken_back,
                }))
                .failed();
                self.store.commit_ops(vec![], vec![ev], now).await?;
                return Err(e);
            }
        };
        let der = issued.der;
        let cert = Certificate {
            id: Uuid::now_v7(),
            serial: hex::encode(&issued.serial),
            ca_id: issuer.id().to_owned(),
            profile: profile.name.clone(),
            status: CertStatus::Active,
            subject: content
                .subject
                .iter()
                .map(|a| format!("{}={}", a.attribute, a.value))
                .collect::<Vec<_>>()
                .join(","),
            sans: content.sans.clone(),
            key_type: content.key_type,
            // As the DER says (an external CA may apply its own validity within the slack).
            not_before: got.not_before,
            not_after: got.not_after,
            sha256: hex::encode(Sha256::digest(&der)),
            der,
            issued_at: now,
            issued_by: cap.principal().id.clone(),
            revoked_at: None,
            revocation_reason: None,
            metadata,
            renewed_from,
            superseded_by: None,
            superseded_until: None,
            office_id,
            updated_at: now,
        };
        let action = if renewed_from.is_some() {
            AuditAction::CertificateRenew
        } else {
            AuditAction::CertificateIssue
        };
        let ev = NewAuditEvent::new(cap.principal(), action, "certificate", cert.id).details(serde_json::json!({
            "serial": cert.serial, "profile": cert.profile, "ca": cert.ca_id, "subject": cert.subject,
            "sans": cert.sans.iter().map(|s| s.tagged()).collect::<Vec<_>>(),
            "not_after": crate::audit::unix_micros(cert.not_after), "renewed_from": renewed_from,
        }));
        // Insert-only: eligible for group commit, which is what makes issuance fast on SQLite.
        // A renewal claims its certificate in the same unit, so of two concurrent renewals of
        // one certificate only one is recorded.
        let cert = Arc::new(cert);
        let mut ops = vec![WriteOp::InsertCertificate(Arc::clone(&cert))];
        if let Some(from) = renewed_from {
            let grace = Duration::days(i64::from(profile.spec.supersede_grace_days));
            ops.push(WriteOp::ClaimRenewal {
                renewed_from: from,
                renewal: cert.id,
                at_us: crate::audit::unix_micros(now),
                superseded_until_us: crate::audit::unix_micros(now + grace),
            });
        }
        match self.store.commit_ops(ops, vec![ev], now).await {
            Ok(_) => {}
            Err(StoreError::Conflict { constraint })
                if constraint.contains("certificate_renewals") =>
            {
                // Never handed out: take it back where the back end keeps its own records.
                let _ = issuer
                    .revoke(
                        IssuedRef { serial: &cert.serial, der: &cert.der },
                        RevocationReason::Superseded,
                    )
                    .await;
                return Err(CoreError::conflict(
                    ErrorCode::AlreadyRenewed,
                    "the certificate was renewed meanwhile; renew its renewal",
                ));
            }
            Err(e) => return Err(e.into()),
        }
        self.announce(
            if renewed_from.is_some() {
                crate::events::EventKind::CertificateRenewed
            } else {
                crate::events::EventKind::CertificateIssued
            },
            &cert,
        );
        // The store has let go of its reference once the commit is answered, so this is the
        // certificate itself, not a copy (a copy only if a store kept it).
        Ok(Arc::try_unwrap(cert).unwrap_or_else(|kept| (*kept).clone()))
    }

    /// Checks that `csr` parses, proves possession and passes `profile` (for requests that
    /// are issued later).
    pub async fn check_request(
        &self,
        csr: &[u8],
        profile: &crate::certs::profile::Profile,
    ) -> Result<()> {
        let parsed = self.csr.parse(csr)?;
        profile.spec.apply_with(&parsed, self.clock.now(), false).map(drop)
    }

    /// One certificate.
    pub async fn get(
        &self,
        cap: &Capability<perm::CertificatesRead>,
        id: Uuid,
    ) -> Result<Certificate> {
        self.visible(cap.principal(), id).await
    }

    /// A certificate `p` sees, or 404: a restricted caller sees only its offices' certificates.
    pub async fn visible(
        &self,
        p: &crate::access::authz::Principal,
        id: Uuid,
    ) -> Result<Certificate> {
        match self.store.certificate(id).await? {
            Some(c) if p.scope.sees(c.office_id) => Ok(c),
            _ => Err(CoreError::not_found("certificate", id.to_string())),
        }
    }

    /// A restricted caller issues only into an office it sees.
    async fn check_office(
        &self,
        p: &crate::access::authz::Principal,
        office: Option<Uuid>,
    ) -> Result<()> {
        match office {
            None if p.scope.is_all() => Ok(()),
            None => Err(CoreError::invalid(
                ErrorCode::MissingField,
                "`office_id` is required for an operator with a restricted scope",
            )),
            Some(o) => {
                let known = self.store.record(Collection::Offices, &o.to_string()).await?.is_some();
                if known && p.scope.sees(Some(o)) {
                    Ok(())
                } else {
                    Err(CoreError::invalid(ErrorCode::UnknownOffice, format!("no office {o}")))
                }
            }
        }
    }

    /// A page of certificates.
    pub async fn list(
        &self,
        cap: &Capability<perm::CertificatesRead>,
        mut filter: CertFilter,
        page: PageRequest,
    ) -> Result<Page<Certificate>> {
        if let Some(c) = &page.after {
            parse_cert_cursor(c).ok_or_else(|| {
                CoreError::invalid(ErrorCode::InvalidCursor, "cursor is not valid")
            })?;
        }
        filter.now_us = crate::audit::unix_micros(self.clock.now());
        if let Some(set) = cap.principal().scope.office_set() {
            filter.scope = Some(set.iter().copied().collect());
        }
        let sort = filter.sort;
        let rows = self
            .store
            .list_certificates(&filter, &PageRequest { after: page.after, limit: page.limit + 1 })
            .await?;
        Ok(paginate(rows, page.limit, |c| cert_cursor(c, sort)))
    }

    /// Active certificates expiring within `days` days, grouped by registration office
    /// (`None`: no office), soonest first, within the caller's scope. At most `max` in all.
    pub async fn expiring_by_office(
        &self,
        cap: &Capability<perm::CertificatesRead>,
        days: u32,
        max: usize,
    ) -> Result<(Vec<(Option<crate::org::Office>, Vec<Certificate>)>, bool)> {
        if !(1..=3650).contains(&days) {
            return Err(CoreError::invalid(
                ErrorCode::InvalidDays,
                "days must be between 1 and 3650",
            ));
        }
        let now = self.clock.now();
        let filter = CertFilter {
            status: Some(CertStatus::Active),
            expires_until_us: Some(crate::audit::unix_micros(
                now + Duration::days(i64::from(days)),
            )),
            sort: crate::ports::CertSort::ExpiresAsc,
            ..Default::default()
        };
        let mut all = Vec::new();
        let mut after = None;
        let mut truncated = false;
        loop {
            let page = self.list(cap, filter.clone(), PageRequest { after, limit: 500 }).await?;
            all.extend(page.items);
            if all.len() >= max {
                truncated = page.next_cursor.is_some() || all.len() > max;
                all.truncate(max);
                break;
            }
            match page.next_cursor {
                Some(c) => after = Some(c),
                None => break,
            }
        }
        let mut groups: std::collections::BTreeMap<Option<Uuid>, Vec<Certificate>> =
            Default::default();
        for c in all {
            groups.entry(c.office_id).or_default().push(c);
        }
        let mut out = Vec::with_capacity(groups.len());
        for (office, certs) in groups {
            let o = match office {
                Some(id) => match self.store.record(Collection::Offices, &id.to_string()).await? {
                    Some(b) => Some(<crate::org::Office as crate::records::Record>::from_body(&b)?),
                    None => None,
                },
                None => None,
            };
            out.push((o, certs));
        }
        Ok((out, truncated))
    }

    /// Applies `change` to certificate `id` inside `tx` (row lock, stale CRL, audit event).
    /// Returns the certificate and, when it changed, the event to commit with the transaction;
    /// the caller commits and then calls [`Self::announce_change`]. The back end must have been
    /// told first ([`Self::tell_backend`]).
    pub async fn change_in_tx(
        &self,
        tx: &mut dyn crate::ports::Tx,
        principal: &Arc<crate::access::authz::Principal>,
        id: Uuid,
        change: CertChange,
        now: time::OffsetDateTime,
    ) -> Result<(Certificate, Option<NewAuditEvent>)> {
        let mut cert = tx
            .certificate_for_update(id)
            .await?
            .ok_or_else(|| CoreError::not_found("certificate", id.to_string()))?;
        let before = cert.status;
        if !change.apply(&mut cert, now)? {
            // Already in the requested state: a retry, nothing to write.
            return Ok((cert, None));
        }
        cert.updated_at = now;
        tx.update_certificate(&cert).await?;
        tx.mark_crl_stale(&cert.ca_id).await?;
        // A renewal revoked within its predecessor's grace leaves the predecessor in service:
        // its scheduled revocation as superseded is cancelled.
        // Not when the renewal is itself superseded (that is the chain moving on).
        let restores = match (change, cert.renewed_from) {
            (CertChange::Revoke(r), Some(prev)) if r != RevocationReason::Superseded => {
                tx.cancel_supersession(prev, crate::audit::unix_micros(now)).await?.then_some(prev)
            }
            _ => None,
        };
        let ev = NewAuditEvent::new(principal, change.action(), "certificate", id).details(
            serde_json::json!({
                "serial": cert.serial, "from": before.as_str(), "to": cert.status.as_str(),
                "reason": cert.revocation_reason.map(|r| r.as_str()),
                "supersession_cancelled_for": restores,
            }),
        );
        Ok((cert, Some(ev)))
    }

    /// Announces a committed change to workflows.
    pub fn announce_change(&self, change: CertChange, cert: &Certificate) {
        self.announce(change.event(), cert);
    }

    /// Tells an external CA about `change` before Sigil records it (a no-op for the built-in
    /// CA and when the change would not apply).
    pub async fn tell_backend(&self, cert: &Certificate, change: CertChange) -> Result<()> {
        let now = self.clock.now();
        let r = IssuedRef { serial: &cert.serial, der: &cert.der };
        // A back end that cannot hold refuses a suspension even of a certificate it would leave
        // as it is: the caller learns the profile's back end cannot do it.
        if change == CertChange::Suspend && self.backend(cert)?.holds().is_none() {
            return Err(CoreError::conflict(
                ErrorCode::SuspensionNotSupported,
                format!("CA back end `{}` cannot put certificates on hold", cert.ca_id),
            ));
        }
        // Only what the change applies to reaches the back end; revocation is idempotent
        // there, so a retry after a failed commit converges.
        if !change.applies_to(cert, now) {
            return Ok(());
        }
        let backend = self.backend(cert)?;
        match (change, backend.holds()) {
            (CertChange::Suspend, Some(holds)) => holds.suspend(r).await?,
            (CertChange::Reactivate, Some(holds)) => holds.reactivate(r).await?,
            (CertChange::Revoke(reason), _) => backend.revoke(r, reason).await?,
            _ => {}
        }
        Ok(())
    }

    /// Applies a state change in a transaction of its own.
    async fn transition<P: Permission>(
        &self,
        cap: &Capability<P>,
        id: Uuid,
        change: CertChange,
    ) -> Result<Certificate> {
        let cert = self.visible(cap.principal(), id).await?;
        self.tell_backend(&cert, change).await?;
        let now = self.clock.now();
        let mut tx = self.store.begin().await?;
        let (cert, ev) = self.change_in_tx(tx.as_mut(), cap.principal(), id, change, now).await?;
        let Some(ev) = ev else { return Ok(cert) };
        tx.commit(vec![ev], now).await?;
        self.announce_change(change, &cert);
        Ok(cert)
    }

    /// Puts a certificate on hold (certificateHold).
    pub async fn suspend(
        &self,
        cap: &Capability<perm::CertificateSuspend>,
        id: Uuid,
    ) -> Result<Certificate> {
        let cert = self.visible(cap.principal(), id).await?;
        let allowed = self
            .profiles
            .find(&cert.profile)
            .await
            .map(|p| p.spec.allow_suspension)
            .unwrap_or(true);
        if !allowed {
            return Err(CoreError::conflict(
                ErrorCode::SuspensionNotAllowed,
                format!("profile `{}` does not allow suspension", cert.profile),
            ));
        }
        self.transition(cap, id, CertChange::Suspend).await
    }

    /// Releases a suspended certificate.
    pub async fn reactivate(
        &self,
        cap: &Capability<perm::CertificateReactivate>,
        id: Uuid,
    ) -> Result<Certificate> {
        self.transition(cap, id, CertChange::Reactivate).await
    }

    /// Revokes a certificate (final).
    pub async fn revoke(
        &self,
        cap: &Capability<perm::CertificateRevoke>,
        id: Uuid,
        reason: RevocationReason,
    ) -> Result<Certificate> {
        if reason == RevocationReason::CertificateHold {
            return Err(CoreError::invalid(
                ErrorCode::InvalidReason,
                "certificateHold is what suspend does; use POST …/suspend",
            ));
        }
        self.transition(cap, id, CertChange::Revoke(reason)).await
    }

    /// Renews a certificate within its profile's renewal window, with a new CSR or the same key.
    pub async fn renew(
        &self,
        cap: &Capability<perm::CertificateRenew>,
        id: Uuid,
        csr: Option<Vec<u8>>,
    ) -> Result<Certificate> {
        let old = self.visible(cap.principal(), id).await?;
        let now = self.clock.now();
        // Refused before the profile is read: that answer does not depend on it.
        old.check_not_held(now)?;
        let profile = self.profiles.find(&old.profile).await?;
        old.check_renewable(now, profile.spec.renewal_window_days)?;
        // A certificate is renewed once: its renewal is renewed next, so no certificate turns
        // into many.
        if let Some(next) = self.store.renewal_of(old.id).await? {
            return Err(CoreError::conflict(
                ErrorCode::AlreadyRenewed,
                format!("certificate {} renewed it; renew that one", next.id),
            ));
        }
        let parsed = match csr {
            Some(bytes) => {
                let parsed = self.csr.parse(&bytes)?;
                // A renewal changes the key, never the identity: a CSR naming another subject
                // or other names is a new enrolment (with its approvals), whoever asks.
                let same = self.same_key_request(&old)?;
                let kept = crate::certs::same_identity(
                    (&same.subject, &old.sans),
                    (&parsed.subject, &parsed.sans),
                );
                if !kept {
                    return Err(CoreError::Forbidden {
                        code: ErrorCode::RenewalChangesIdentity,
                        detail: "the CSR names another subject or other names than the \
                                 certificate it renews; that is a new enrolment"
                            .into(),
                    });
                }
                parsed
            }
            // Same key: the old certificate's key, subject and names go through the profile again.
            None => self.same_key_request(&old)?,
        };
        self.issue_parsed(
            cap,
            parsed,
            &old.profile,
            Some(old.metadata.clone()),
            Some(old.id),
            old.office_id,
        )
        .await
    }

    /// What CA `ca_id`'s certificate `der` says, read once per certificate: kept under the
    /// CA's id and handed out only for the same DER (a CA rotated or a plugin swapped is read
    /// afresh), which a comparison tells quicker than hashing the DER as the key would.
    fn ca_content(&self, ca_id: &str, der: &[u8]) -> Result<Arc<conformance::IssuedContent>> {
        if let Some(c) = self.ca_content.get_if(ca_id, |c| c.0 == der) {
            return Ok(Arc::clone(&c.1));
        }
        let c = Arc::new(self.csr.issued_content(der)?);
        self.ca_content.put(ca_id.to_owned(), Arc::new((der.to_vec(), Arc::clone(&c))));
        Ok(c)
    }

    /// The subject of a stored certificate, attribute by attribute, as its DER says it.
    pub fn subject_attributes(
        &self,
        cert: &Certificate,
    ) -> Result<Vec<crate::certs::NameAttribute>> {
        Ok(self.csr.issued_content(&cert.der)?.subject)
    }

    fn same_key_request(&self, old: &Certificate) -> Result<ParsedCsr> {
        // The subject as the certificate says it, attribute by attribute (the stored text
        // form cannot tell a comma inside a value from a separator).
        let subject = self.csr.issued_content(&old.der)?.subject;
        let spki = self.csr.certificate_spki(&old.der)?;
        // A same-key renewal proves no possession: the key comes from the stored certificate.
        // Never certify a CA's own key as an end entity (a certificate row planted with a CA
        // certificate would otherwise turn into one).
        let issuer = self.issuers.get(&old.ca_id)?;
        for ca in
            std::iter::once(issuer.ca_certificate()).chain(issuer.chain().iter().map(Vec::as_slice))
        {
            if self.csr.certificate_spki(ca)? == spki {
                return Err(CoreError::invalid(
                    ErrorCode::KeyNotAllowed,
                    "the certificate's key is a CA's key; it is never renewed as an end entity",
                ));
            }
        }
        Ok(ParsedCsr {
            der: vec![],
            subject,
            sans: old.sans.clone(),
            spki_der: spki,
            key: RequestKey::Known(old.key_type),
        })
    }

    /// Merges `patch` into the metadata (RFC 7386: `null` removes a member).
    pub async fn update_metadata(
        &self,
        cap: &Capability<perm::CertificatesUpdate>,
        id: Uuid,
        patch: serde_json::Value,
    ) -> Result<Certificate> {
        if !patch.is_object() {
            return Err(CoreError::invalid(
                ErrorCode::InvalidMetadata,
                "metadata must be a JSON object",
            ));
        }
        self.visible(cap.principal(), id).await?;
        let now = self.clock.now();
        let mut tx = self.store.begin().await?;
        let mut cert = tx
            .certificate_for_update(id)
            .await?
            .ok_or_else(|| CoreError::not_found("certificate", id.to_string()))?;
        let before = cert.metadata.clone();
        merge_patch(&mut cert.metadata, &patch);
        check_metadata(&cert.metadata)?;
        if cert.metadata == before {
            return Ok(cert);
        }
        cert.updated_at = now;
        tx.update_certificate(&cert).await?;
        let ev =
            NewAuditEvent::new(cap.principal(), AuditAction::CertificateUpdate, "certificate", id)
                .details(serde_json::json!({"before": before, "after": cert.metadata}));
        tx.commit(vec![ev], now).await?;
        Ok(cert)
    }

    /// The back end that issued `cert`; one that is gone (a connector no longer configured) is a
    /// dependency failure, so that nothing is recorded the CA does not know about.
    fn backend(&self, cert: &Certificate) -> Result<Arc<dyn crate::certs::ca::Issuer>> {
        self.issuers.get(&cert.ca_id).map_err(|_| CoreError::Dependency {
            code: ErrorCode::CaUnavailable,
            detail: format!("CA back end `{}` is not in service", cert.ca_id),
        })
    }

    /// The profiles.
    pub fn profiles(&self) -> &Arc<ProfileService> {
        &self.profiles
    }

    /// Issuers, for the API's chain downloads.
    pub fn issuers(&self) -> &Arc<Issuers> {
        &self.issuers
    }

    /// The CSR parser issuance uses (ACME checks an order's CSR with it before issuing).
    pub fn csr_parser(&self) -> &Arc<dyn CsrParser> {
        &self.csr
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metadata_merges_like_rfc_7386() {
        let mut m = serde_json::json!({"a": 1, "b": {"c": 2, "d": 3}});
        merge_patch(&mut m, &serde_json::json!({"a": null, "b": {"c": 5}, "e": "x"}));
        assert_eq!(m, serde_json::json!({"b": {"c": 5, "d": 3}, "e": "x"}));
    }
}
