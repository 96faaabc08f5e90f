//! Self-service: a key bound to a token holder acts for that person only — temporary
//! suspension of their devices and its reversal, reporting a device lost or damaged, resetting
//! their PIN, renewing their certificates, asking for a virtual token. Anyone else's device or certificate does not
//! exist for it (404).

use crate::ErrorCode;
use std::sync::Arc;

use uuid::Uuid;

use crate::access::authz::{Capability, PermissionSet, Principal, perm};
use crate::cards::device::DeviceFilter;
use crate::cards::device::{Device, DeviceStatus};
use crate::cards::devices::DeviceService;
use crate::cards::enrolment::{CertificateItem, DeviceItem, EnrolmentRequest};
use crate::cards::enrolments::{NewRequest, RequestService};
use crate::cards::pin_reset::{PinReset, PinResetService};
use crate::certs::Certificate;
use crate::certs::certificates::CertificateService;
use crate::error::{CoreError, Result};
use crate::ports::Store;
use crate::records::{Collection, Filter, Record, select};

/// Self-service operations.
pub struct SelfService {
    store: Arc<dyn Store>,
    devices: Arc<DeviceService>,
    certificates: Arc<CertificateService>,
    requests: Arc<RequestService>,
    pins: Arc<PinResetService>,
}

impl std::fmt::Debug for SelfService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SelfService").finish_non_exhaustive()
    }
}

fn holder(p: &Principal) -> Result<Uuid> {
    p.holder_id.ok_or_else(|| CoreError::Forbidden {
        code: ErrorCode::NotAHolder,
        detail: "self-service needs a key bound to a token holder (`holder_id`)".into(),
    })
}

impl SelfService {
    /// Wires the service.
    pub fn new(
        store: Arc<dyn Store>,
        devices: Arc<DeviceService>,
        certificates: Arc<CertificateService>,
        requests: Arc<RequestService>,
        pins: Arc<PinResetService>,
    ) -> Self {
        Self { store, devices, certificates, requests, pins }
    }

    /// Unblocks the PIN of one of the holder's devices: the response to its challenge, or its
    /// unlock code when no challenge is given.
    pub async fn reset_pin(
        &self,
        cap: &Capability<perm::SelfService>,
        id: Uuid,
        challenge: Option<String>,
    ) -> Result<PinReset> {
        let p = cap.principal();
        let office = self.holder_office(p).await?;
        let d = self.mine(p, office, id).await?;
        let acting = Self::acting(p, office, "device:pin_reset")?;
        self.pins.reset_device(&acting, d, challenge).await
    }

    /// The holder acting with exactly `permission`, within the holder's own office (whoever
    /// manages the holder's key sees that office, and no other), on objects already checked
    /// to be theirs.
    fn acting(
        p: &Arc<Principal>,
        office: Option<Uuid>,
        permission: &str,
    ) -> Result<Arc<Principal>> {
        Ok(Arc::new(Principal {
            permissions: PermissionSet::parse([permission])?,
            scope: crate::access::scope::Scope::offices(office),
            ..(**p).clone()
        }))
    }

    /// The holder's office (None when the person has gone).
    async fn holder_office(&self, p: &Principal) -> Result<Option<Uuid>> {
        let h = holder(p)?;
        let body = self.store.record(Collection::People, &h.to_string()).await?;
        Ok(body
            .map(|b| crate::people::Person::from_body(&b))
            .transpose()?
            .map(|person| person.office_id))
    }

    /// Renews one of the holder's certificates (on one of their devices, or issued for them by
    /// an enrolment request), with a new CSR or the same key, inside the profile's window.
    pub async fn renew(
        &self,
        cap: &Capability<perm::SelfService>,
        id: Uuid,
        csr: Option<Vec<u8>>,
    ) -> Result<Certificate> {
        let p = cap.principal();
        let h = holder(p)?;
        let cert = self
            .store
            .certificate(id)
            .await?
            .ok_or_else(|| CoreError::not_found("certificate", id.to_string()))?;
        let office = self.holder_office(p).await?;
        if office.is_none() || cert.office_id != office {
            return Err(CoreError::not_found("certificate", id.to_string()));
        }
        // A renewal is the holder's when what it renewed was: the chain back to the first.
        let mut chain = vec![cert.clone()];
        while let Some(prev) = chain.last().and_then(|c| c.renewed_from) {
            if chain.len() >= 64 {
                break;
            }
            match self.store.certificate(prev).await? {
                Some(c) => chain.push(c),
                None => break,
            }
        }
        let ids: Vec<Uuid> = chain.iter().map(|c| c.id).collect();
        // Issued for the holder by an enrolment request: the request (a server-kept record)
        // says so, not the certificate's metadata, which callers can write.
        let origin = chain.last().unwrap_or(&cert);
        let for_holder = match origin
            .metadata
            .get("request_id")
            .and_then(|v| v.as_str())
            .and_then(|r| Uuid::parse_str(r).ok())
        {
            Some(rid) => self
                .store
                .record(Collection::Requests, &rid.to_string())
                .await?
                .map(|b| EnrolmentRequest::from_body(&b))
                .transpose()?
                .is_some_and(|r| r.person_id == h && r.result.certificates.contains(&origin.id)),
            None => false,
        };
        let on_device = self
            .devices_of(h)
            .await?
            .iter()
            .any(|d| d.certificates.iter().any(|c| ids.contains(c)));
        if !for_holder && !on_device {
            return Err(CoreError::not_found("certificate", id.to_string()));
        }
        self.still_names_holder(h, &cert).await?;
        let c =
            Self::acting(p, office, "certificate:renew")?.authorize::<perm::CertificateRenew>()?;
        self.certificates.renew(&c, id, csr).await
    }

    /// A holder renews a certificate only while it still describes them: its e-mail addresses
    /// (subject and SANs), given name, surname and serialNumber (against the record's external
    /// id, when it has one) must be what the person record says now. A
    /// changed record (a new name or address, or one removed) calls for a new enrolment, with
    /// its approvals. The CN is free text (a device id, a role) and is not compared.
    async fn still_names_holder(&self, h: Uuid, cert: &Certificate) -> Result<()> {
        let person = self
            .store
            .record(Collection::People, &h.to_string())
            .await?
            .map(|b| crate::people::Person::from_body(&b))
            .transpose()?
            .ok_or_else(|| CoreError::not_found("certificate", cert.id.to_string()))?;
        let email = person.email.as_deref().map(str::to_lowercase);
        let mut stale = Vec::new();
        for a in self.certificates.subject_attributes(cert)? {
            let current = match a.attribute.as_str() {
                "emailAddress" => email.clone().filter(|e| *e == a.value.to_lowercase()),
                "GN" => Some(person.given_name.clone()).filter(|g| *g == a.value),
                "SN" => Some(person.family_name.clone()).filter(|f| *f == a.value),
                // An employee number, when the record keeps one (else it may be a device's).
                "serialNumber" if person.external_id.is_some() => {
                    person.external_id.clone().filter(|x| *x == a.value)
                }
                _ => continue,
            };
            if current.is_none() {
                stale.push(format!("{}={}", a.attribute, a.value));
            }
        }
        for s in &cert.sans {
            if let crate::certs::San::Email(e) = s
                && email.as_deref() != Some(e.to_lowercase().as_str())
            {
                stale.push(format!("email:{e}"));
            }
        }
        if stale.is_empty() {
            return Ok(());
        }
        Err(CoreError::conflict(
            ErrorCode::PersonRecordChanged,
            format!(
                "the certificate names {} and the person record no longer does; ask for a new \
                 enrolment",
                stale.join(", ")
            ),
        ))
    }

    /// Asks for a virtual token for the holder: an enrolment request (pending approval, as
    /// any other) with a `virtual_token` device and, optionally, a certificate from `csr`.
    pub async fn request_virtual_token(
        &self,
        cap: &Capability<perm::SelfService>,
        certificate: Option<CertificateItem>,
    ) -> Result<EnrolmentRequest> {
        let p = cap.principal();
        let h = holder(p)?;
        let office = self.holder_office(p).await?;
        let c = Self::acting(p, office, "requests:write")?.authorize::<perm::RequestsWrite>()?;
        let n = NewRequest {
            person_id: h,
            certificates: certificate.into_iter().collect(),
            device: Some(DeviceItem {
                kind: crate::cards::device::DeviceKind::VirtualToken,
                serial: None,
            }),
            metadata: Some(serde_json::json!({"self_service": true})),
        };
        self.requests.create(&c, n).await
    }

    async fn devices_of(&self, h: Uuid) -> Result<Vec<Device>> {
        let f = DeviceFilter { holder_id: Some(h), ..DeviceFilter::default() };
        select(self.store.as_ref(), Filter::Devices { f, offices: None }).await
    }

    /// The holder's devices.
    pub async fn devices(&self, cap: &Capability<perm::SelfService>) -> Result<Vec<Device>> {
        let office = self.holder_office(cap.principal()).await?;
        let mut all = self.devices_of(holder(cap.principal())?).await?;
        all.retain(|d| Some(d.office_id) == office);
        Ok(all)
    }

    /// One of the holder's devices, or 404.
    async fn mine(&self, p: &Principal, office: Option<Uuid>, id: Uuid) -> Result<Device> {
        let h = holder(p)?;
        let body = self.store.record(Collection::Devices, &id.to_string()).await?;
        match body.map(|b| Device::from_body(&b)).transpose()? {
            Some(d) if d.holder_id == Some(h) && Some(d.office_id) == office => Ok(d),
            _ => Err(CoreError::not_found("device", id.to_string())),
        }
    }

    /// Moves one of the holder's devices: `suspended`, `active` (only back from a suspension),
    /// `lost` or `damaged`. The cascade to its certificates is the operators' one.
    pub async fn transition(
        &self,
        cap: &Capability<perm::SelfService>,
        id: Uuid,
        to: DeviceStatus,
        reason: Option<String>,
    ) -> Result<Device> {
        let p = cap.principal();
        let office = self.holder_office(p).await?;
        let d = self.mine(p, office, id).await?;
        if to == DeviceStatus::Active && d.status != DeviceStatus::Suspended && d.status != to {
            return Err(CoreError::conflict(
                ErrorCode::InvalidTransition,
                format!(
                    "a holder can reactivate a suspended device, not a {} one",
                    d.status.as_str()
                ),
            ));
        }
        // A holder lifts only a suspension the holder placed; an operator's stays until an
        // operator lifts it.
        if to == DeviceStatus::Active
            && d.status == DeviceStatus::Suspended
            && d.suspended_by != Some(crate::cards::devices::actor_of(p))
        {
            return Err(CoreError::Forbidden {
                code: ErrorCode::SuspendedByOperator,
                detail:
                    "this device was suspended by an operator; only an operator can reactivate it"
                        .into(),
            });
        }
        let acting = Self::acting(p, office, crate::cards::devices::permission_for(d.status, to))?;
        match to {
            DeviceStatus::Suspended | DeviceStatus::Lost => {
                let c = acting.authorize::<perm::DeviceSuspend>()?;
                self.devices.transition(&c, id, to, reason, None).await
            }
            DeviceStatus::Active => {
                let c = acting.authorize::<perm::DeviceReactivate>()?;
                self.devices.transition(&c, id, to, reason, None).await
            }
            DeviceStatus::Damaged => {
                let c = acting.authorize::<perm::DeviceRevoke>()?;
                self.devices.transition(&c, id, to, reason, None).await
            }
            other => Err(CoreError::invalid(
                ErrorCode::NotSelfService,
                format!("a holder cannot move a device to {}", other.as_str()),
            )),
        }
    }
}
