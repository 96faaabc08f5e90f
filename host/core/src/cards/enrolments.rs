//! Enrolment requests: create (validated, and checked by `enrolment-request` validator
//! plugins), list with filters, show, enrich metadata, approve (with dual control and
//! separation of duties from the profile), reject, cancel. The last approval carries the
//! request out — device registration, certificate issuance, linking — as the approver, and the
//! request records what was issued.

use crate::ErrorCode;
use crate::audit::AuditAction;
use std::sync::Arc;

use uuid::Uuid;

use crate::access::authz::{Capability, Principal, perm};
use crate::audit::NewAuditEvent;
use crate::cards::devices::{DeviceService, RegisterDevice};
use crate::cards::enrolment::{
    Approval, Approver, CertificateItem, DeviceItem, EnrolmentRequest, MAX_ITEMS, RequestFilter,
    RequestResult, RequestStatus,
};
use crate::certs::certificates::{CertificateService, IssueRequest};
use crate::certs::profiles::ProfileService;
use crate::error::{CoreError, Result};
use crate::events::EventKind;
use crate::page::{Page, check_metadata, lock_unchanged, record_page};
use crate::people::directory::PeopleService;
use crate::ports::{Clock, EventSink, PageRequest, Store, ValidationInput, Validators};
use crate::records::{Collection, Filter, Record, scope_offices};

/// What a caller asks for.
#[derive(Debug, Clone)]
pub struct NewRequest {
    /// For whom.
    pub person_id: Uuid,
    /// Certificates.
    pub certificates: Vec<CertificateItem>,
    /// Device.
    pub device: Option<DeviceItem>,
    /// Free-form attributes.
    pub metadata: Option<serde_json::Value>,
}

/// Request operations.
pub struct RequestService {
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    people: Arc<PeopleService>,
    profiles: Arc<ProfileService>,
    certificates: Arc<CertificateService>,
    devices: Arc<DeviceService>,
    validators: Arc<dyn Validators>,
    events: Arc<dyn EventSink>,
}

impl std::fmt::Debug for RequestService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RequestService").finish_non_exhaustive()
    }
}

/// Who acts, for approvals: the operator when there is one, else the key or plugin.
fn actor(p: &Principal) -> String {
    p.operator_id.clone().unwrap_or_else(|| p.id.clone())
}

fn comment(c: Option<String>) -> Result<Option<String>> {
    match c {
        Some(c) if c.chars().count() > 1000 => Err(CoreError::invalid(
            ErrorCode::InvalidComment,
            "a comment or reason is at most 1000 characters",
        )),
        c => Ok(c.filter(|c| !c.trim().is_empty())),
    }
}

/// The collaborators a request service works with.
pub struct RequestDeps {
    /// People.
    pub people: Arc<PeopleService>,
    /// Profiles.
    pub profiles: Arc<ProfileService>,
    /// Certificates.
    pub certificates: Arc<CertificateService>,
    /// Devices.
    pub devices: Arc<DeviceService>,
    /// Validator plugins.
    pub validators: Arc<dyn Validators>,
    /// Lifecycle events.
    pub events: Arc<dyn EventSink>,
}

impl RequestService {
    /// Wires the service.
    pub fn new(store: Arc<dyn Store>, clock: Arc<dyn Clock>, d: RequestDeps) -> Self {
        Self {
            store,
            clock,
            people: d.people,
            profiles: d.profiles,
            certificates: d.certificates,
            devices: d.devices,
            validators: d.validators,
            events: d.events,
        }
    }

    fn emit(&self, kind: EventKind, r: &EnrolmentRequest) {
        crate::ports::announce(self.events.as_ref(), kind, "request", r.id, || {
            serde_json::json!({
                "id": r.id, "office_id": r.office_id, "person_id": r.person_id,
                "status": r.status, "requested_by": r.requested_by, "profile": r.profile(),
                "approvals": r.approvals.len(), "approvals_required": r.approvals_required,
                "result": r.result, "metadata": r.metadata,
            })
        });
    }

    /// A request `p` sees, or 404.
    async fn visible(&self, p: &Principal, id: Uuid) -> Result<EnrolmentRequest> {
        let body = self.store.record(Collection::Requests, &id.to_string()).await?;
        match body.map(|b| EnrolmentRequest::from_body(&b)).transpose()? {
            Some(r) if p.scope.sees(Some(r.office_id)) => Ok(r),
            _ => Err(CoreError::not_found("request", id.to_string())),
        }
    }

    /// Creates a pending request for a person the caller sees.
    pub async fn create(
        &self,
        cap: &Capability<perm::RequestsWrite>,
        n: NewRequest,
    ) -> Result<EnrolmentRequest> {
        let p = cap.principal();
        let person = self.people.visible(p, n.person_id).await.map_err(|_| {
            CoreError::invalid(ErrorCode::UnknownPerson, format!("no person {}", n.person_id))
        })?;
        if n.certificates.is_empty() && n.device.is_none() {
            return Err(CoreError::invalid(
                ErrorCode::EmptyRequest,
                "ask for at least one certificate or a device",
            ));
        }
        if n.certificates.len() > MAX_ITEMS {
            return Err(CoreError::invalid(
                ErrorCode::TooManyItems,
                format!("at most {MAX_ITEMS} certificates per request"),
            ));
        }
        let mut approvals_required = 1;
        let mut requester_may_approve = true;
        for c in &n.certificates {
            let profile = self.profiles.find(&c.profile).await?;
            // The CSR must parse and pass the profile now, not at approval time.
            self.certificates.check_request(c.csr.as_bytes(), &profile).await?;
            approvals_required = approvals_required.max(profile.spec.approvals_required);
            requester_may_approve &= profile.spec.requester_may_approve;
        }
        if let Some(s) = n.device.as_ref().and_then(|d| d.serial.as_ref())
            && (s.trim().is_empty() || s.len() > 128)
        {
            return Err(CoreError::invalid(
                ErrorCode::InvalidSerial,
                "a serial is 1 to 128 characters",
            ));
        }
        let metadata = n.metadata.unwrap_or_else(|| serde_json::json!({}));
        check_metadata(&metadata)?;
        let now = self.clock.now();
        let r = EnrolmentRequest {
            id: Uuid::now_v7(),
            office_id: person.office_id,
            person_id: person.id,
            certificates: n.certificates,
            device: n.device,
            status: RequestStatus::Pending,
            requested_by: actor(p),
            approvals_required,
            requester_may_approve,
            approvals: vec![],
            decision: None,
            result: RequestResult::default(),
            metadata,
            created_at: now,
            updated_at: now,
        };
        if self.validators.active("enrolment-request") {
            let input = ValidationInput {
                attributes: vec![
                    crate::certs::NameAttribute {
                        attribute: "given_name".into(),
                        value: person.given_name.clone(),
                    },
                    crate::certs::NameAttribute {
                        attribute: "family_name".into(),
                        value: person.family_name.clone(),
                    },
                    crate::certs::NameAttribute {
                        attribute: "office_id".into(),
                        value: person.office_id.to_string(),
                    },
                ],
                sans: vec![],
                key: None,
                context: r.profile().unwrap_or("device").to_owned(),
                json: serde_json::to_string(&r).unwrap_or_default(),
            };
            self.validators.validate("enrolment-request", &input).await?;
        }
        let mut tx = self.store.begin().await?;
        tx.insert_record(r.row()).await?;
        let ev = NewAuditEvent::new(p, AuditAction::RequestCreate, "request", r.id).details(
            serde_json::json!({
                "person_id": r.person_id, "office_id": r.office_id,
                "profiles": r.certificates.iter().map(|c| &c.profile).collect::<Vec<_>>(),
                "device": r.device, "approvals_required": r.approvals_required,
            }),
        );
        tx.commit(vec![ev], now).await?;
        self.emit(EventKind::RequestCreated, &r);
        Ok(r)
    }

    /// One request.
    pub async fn get(
        &self,
        cap: &Capability<perm::RequestsRead>,
        id: Uuid,
    ) -> Result<EnrolmentRequest> {
        self.visible(cap.principal(), id).await
    }

    /// A page of requests in scope.
    pub async fn list(
        &self,
        cap: &Capability<perm::RequestsRead>,
        f: RequestFilter,
        page: PageRequest,
    ) -> Result<Page<EnrolmentRequest>> {
        let filter = Filter::Requests { f, offices: scope_offices(&cap.principal().scope) };
        record_page::<EnrolmentRequest, _>(self.store.as_ref(), filter, page).await
    }

    /// Locks the request, checks it is unchanged since `before`, applies `f`, writes it with
    /// `action`'s audit event.
    async fn write(
        &self,
        p: &Arc<Principal>,
        before: &EnrolmentRequest,
        after: &EnrolmentRequest,
        action: AuditAction,
        details: serde_json::Value,
    ) -> Result<()> {
        let now = self.clock.now();
        let mut tx = self.store.begin().await?;
        lock_unchanged(tx.as_mut(), before, "request").await?;
        tx.update_record(after.row()).await?;
        let ev = NewAuditEvent::new(p, action, "request", before.id).details(details);
        tx.commit(vec![ev], now).await?;
        Ok(())
    }

    /// Merges `patch` into the request's metadata (any state).
    pub async fn update_metadata(
        &self,
        cap: &Capability<perm::RequestsWrite>,
        id: Uuid,
        patch: serde_json::Value,
    ) -> Result<EnrolmentRequest> {
        if !patch.is_object() {
            return Err(CoreError::invalid(
                ErrorCode::InvalidMetadata,
                "metadata must be a JSON object",
            ));
        }
        let before = self.visible(cap.principal(), id).await?;
        let mut r = before.clone();
        crate::certs::certificates::merge_patch(&mut r.metadata, &patch);
        if r.metadata.to_string().len() > 16 * 1024 {
            return Err(CoreError::invalid(
                ErrorCode::InvalidMetadata,
                "metadata is larger than 16 KiB",
            ));
        }
        if r == before {
            return Ok(before);
        }
        r.updated_at = self.clock.now();
        self.write(
            cap.principal(),
            &before,
            &r,
            AuditAction::RequestUpdate,
            serde_json::json!({"before": before.metadata, "after": r.metadata}),
        )
        .await?;
        Ok(r)
    }

    /// Rejects a pending request.
    pub async fn reject(
        &self,
        cap: &Capability<perm::RequestsApprove>,
        id: Uuid,
        reason: Option<String>,
    ) -> Result<EnrolmentRequest> {
        self.decide(cap.principal(), id, reason, RequestStatus::Rejected).await
    }

    /// Cancels a pending request.
    pub async fn cancel(
        &self,
        cap: &Capability<perm::RequestsWrite>,
        id: Uuid,
        reason: Option<String>,
    ) -> Result<EnrolmentRequest> {
        self.decide(cap.principal(), id, reason, RequestStatus::Cancelled).await
    }

    async fn decide(
        &self,
        p: &Arc<Principal>,
        id: Uuid,
        reason: Option<String>,
        to: RequestStatus,
    ) -> Result<EnrolmentRequest> {
        let reason = comment(reason)?;
        let before = self.visible(p, id).await?;
        if before.status == to {
            return Ok(before);
        }
        before.ensure_pending()?;
        let now = self.clock.now();
        let mut r = before.clone();
        r.status = to;
        r.decision = Some(Approval { by: actor(p), comment: reason.clone(), at: now });
        r.updated_at = now;
        let action = if to == RequestStatus::Rejected {
            AuditAction::RequestReject
        } else {
            AuditAction::RequestCancel
        };
        self.write(p, &before, &r, action, serde_json::json!({"reason": reason})).await?;
        self.emit(
            if to == RequestStatus::Rejected {
                EventKind::RequestRejected
            } else {
                EventKind::RequestCancelled
            },
            &r,
        );
        Ok(r)
    }

    /// Approves a pending request. The approval that completes the quorum carries it out.
    pub async fn approve(
        &self,
        cap: &Capability<perm::RequestsApprove>,
        id: Uuid,
        note: Option<String>,
    ) -> Result<EnrolmentRequest> {
        let p = cap.principal();
        let note = comment(note)?;
        let before = self.visible(p, id).await?;
        let by = Approver {
            id: actor(p),
            is_operator: p.operator_id.is_some()
                && p.kind != crate::access::authz::ActorKind::Plugin,
        };
        // An approval that completes the quorum is claimed under the row lock (`write` checks
        // the request is unchanged): only one approver carries a request out.
        let (r, done) = before.approve(&by, note, self.clock.now())?;
        self.write(
            p,
            &before,
            &r,
            AuditAction::RequestApprove,
            serde_json::json!({
                "approvals": r.approvals.len(), "approvals_required": r.approvals_required,
            }),
        )
        .await?;
        if !done {
            self.emit(EventKind::RequestApproved, &r);
            return Ok(r);
        }
        self.carry_out(p, r).await
    }

    /// Issues what the request asks for, as the approver acting for the request.
    async fn carry_out(
        &self,
        approver: &Arc<Principal>,
        claimed: EnrolmentRequest,
    ) -> Result<EnrolmentRequest> {
        let acting = approver.acting_with(["certificate:issue", "devices:write"])?;
        let mut result = RequestResult::default();
        let outcome = self.issue_items(&acting, &claimed, &mut result).await;
        let mut r = claimed.clone();
        r.result = result;
        r.status = RequestStatus::Completed;
        if let Err(e) = &outcome {
            r.status = RequestStatus::Failed;
            r.result.error = Some(e.to_string());
        }
        r.updated_at = self.clock.now();
        let action =
            if outcome.is_ok() { AuditAction::RequestComplete } else { AuditAction::RequestFail };
        self.write(
            approver,
            &claimed,
            &r,
            action,
            serde_json::to_value(&r.result).unwrap_or_default(),
        )
        .await?;
        let kind =
            if outcome.is_ok() { EventKind::RequestCompleted } else { EventKind::RequestFailed };
        self.emit(kind, &r);
        Ok(r)
    }

    async fn issue_items(
        &self,
        acting: &Arc<Principal>,
        r: &EnrolmentRequest,
        out: &mut RequestResult,
    ) -> Result<()> {
        let issue_cap = acting.authorize::<perm::CertificateIssue>()?;
        let dev_cap = acting.authorize::<perm::DevicesWrite>()?;
        // The person must still be one of the request's office (and visible to the approver):
        // a person moved since would get certificates and a device in an office not theirs.
        let person = self.people.visible(acting, r.person_id).await?;
        if person.office_id != r.office_id {
            return Err(CoreError::conflict(
                ErrorCode::PersonMoved,
                "the person has moved to another office since the request was filed",
            ));
        }
        if let Some(d) = &r.device {
            let serial =
                d.serial.clone().unwrap_or_else(|| format!("VT-{}", Uuid::now_v7().simple()));
            let dev = self
                .devices
                .register(
                    &dev_cap,
                    RegisterDevice {
                        kind: d.kind,
                        serial,
                        office_id: r.office_id,
                        holder_id: Some(r.person_id),
                        production: Default::default(),
                        metadata: Some(serde_json::json!({"request_id": r.id})),
                    },
                )
                .await?;
            out.device_id = Some(dev.id);
        }
        for item in &r.certificates {
            let cert = self
                .certificates
                .issue(
                    &issue_cap,
                    IssueRequest {
                        csr: item.csr.as_bytes().to_vec(),
                        profile: item.profile.clone(),
                        metadata: Some(serde_json::json!({
                            "request_id": r.id, "person_id": r.person_id, "office_id": r.office_id,
                        })),
                        office_id: Some(r.office_id),
                    },
                )
                .await?;
            out.certificates.push(cert.id);
            if let Some(dev) = out.device_id {
                self.devices.link_certificate(&dev_cap, dev, cert.id).await?;
            }
        }
        Ok(())
    }
}
