//! Devices: register, list, show, update, link certificates, and move through the lifecycle.
//!
//! A transition and its certificate cascade are one transaction: the device row, its history
//! entry, every affected certificate (with a stale CRL) and all their audit events commit
//! together or not at all. External CAs are told about certificate changes first, so a CA that
//! refuses leaves everything as it was.

use crate::ErrorCode;
use crate::audit::AuditAction;
use std::sync::Arc;

use uuid::Uuid;

use crate::access::authz::{Capability, Permission, Principal, perm};
use crate::audit::NewAuditEvent;
use crate::cards::device::{
    Device, DeviceEvent, DeviceFilter, DeviceKind, DeviceStatus, MAX_CERTIFICATES, Production,
};
use crate::cards::unlock::DeviceSecret;
use crate::certs::certificates::{CertChange, CertificateService};
use crate::certs::{Certificate, RevocationReason};
use crate::error::{CoreError, Result};
use crate::events::EventKind;
use crate::page::{Page, check_metadata, lock_unchanged, record_page};
use crate::people::directory::PeopleService;
use crate::ports::{Clock, EventSink, PageRequest, Store};
use crate::records::{Collection, Filter, Record, conflict_as, scope_offices};

/// Default PIN retries of a new device.
pub const PIN_RETRIES: u8 = 3;
/// Most PIN retries a card may report.
pub const MAX_PIN_RETRIES: u8 = 15;

/// A device to register.
#[derive(Debug, Clone)]
pub struct RegisterDevice {
    /// Kind.
    pub kind: DeviceKind,
    /// Serial number.
    pub serial: String,
    /// Office.
    pub office_id: Uuid,
    /// Holder.
    pub holder_id: Option<Uuid>,
    /// Production metadata.
    pub production: Production,
    /// Free-form attributes.
    pub metadata: Option<serde_json::Value>,
}

/// A change to a device's data.
#[derive(Debug, Clone, Default)]
pub struct UpdateDevice {
    /// New holder (`Some(None)` removes it).
    pub holder_id: Option<Option<Uuid>>,
    /// Merge patch into the metadata.
    pub metadata: Option<serde_json::Value>,
    /// Production fields to set (absent ones stay; `extra` is merged).
    pub production: Option<Production>,
    /// PIN retries left, as the card reports them.
    pub pin_retries_left: Option<u8>,
}

/// The permission a transition needs: activation of a new device, suspension (or a loss
/// report), reactivation, or the final states.
pub fn permission_for(from: DeviceStatus, to: DeviceStatus) -> &'static str {
    match (from, to) {
        (DeviceStatus::Registered, DeviceStatus::Active) => "device:activate",
        (_, DeviceStatus::Active) => "device:reactivate",
        (_, DeviceStatus::Suspended | DeviceStatus::Lost) => "device:suspend",
        _ => "device:revoke",
    }
}

/// A device's secrets, written in the same transaction as a change of the device.
#[derive(Debug)]
pub(crate) enum RowWrite {
    /// A new row.
    Insert(DeviceSecret),
    /// A replaced row.
    Update(DeviceSecret),
}

/// What else a device change writes in its transaction.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Also<'a> {
    /// Certificates the change cascades to.
    pub(crate) certs: &'a [(Uuid, CertChange)],
    /// Rows of other tables.
    pub(crate) rows: &'a [RowWrite],
}

/// Device operations.
pub struct DeviceService {
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    certificates: Arc<CertificateService>,
    people: Arc<PeopleService>,
    events: Arc<dyn EventSink>,
}

impl std::fmt::Debug for DeviceService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeviceService").finish_non_exhaustive()
    }
}

fn check_text(v: &Option<String>, field: &str) -> Result<()> {
    if let Some(s) = v
        && (s.chars().count() > 200 || s.chars().any(char::is_control))
    {
        return Err(CoreError::invalid(
            ErrorCode::InvalidField,
            format!("`{field}` is at most 200 characters"),
        ));
    }
    Ok(())
}

fn check_production(p: &Production) -> Result<()> {
    for (v, f) in [
        (&p.batch, "batch"),
        (&p.manufacturer, "manufacturer"),
        (&p.model, "model"),
        (&p.applet, "applet"),
        (&p.chip_serial, "chip_serial"),
        (&p.disposal_status, "disposal_status"),
    ] {
        check_text(v, f)?;
    }
    if serde_json::Value::Object(p.extra.clone()).to_string().len() > 16 * 1024 {
        return Err(CoreError::invalid(
            ErrorCode::InvalidField,
            "production.extra is larger than 16 KiB",
        ));
    }
    Ok(())
}

impl DeviceService {
    /// Wires the service.
    pub fn new(
        store: Arc<dyn Store>,
        clock: Arc<dyn Clock>,
        certificates: Arc<CertificateService>,
        people: Arc<PeopleService>,
        events: Arc<dyn EventSink>,
    ) -> Self {
        Self { store, clock, certificates, people, events }
    }
}

/// Who `p` is in a device's history and in `suspended_by`: the token holder when a holder's
/// key acts, else the actor itself.
pub(crate) fn actor_of(p: &Principal) -> String {
    match p.holder_id {
        Some(h) => format!("holder:{h}"),
        None => format!("{}:{}", p.kind.as_str(), p.id),
    }
}

impl DeviceService {
    /// A device `p` sees, or 404.
    pub async fn visible(&self, p: &Principal, id: Uuid) -> Result<Device> {
        let body = self.store.record(Collection::Devices, &id.to_string()).await?;
        match body.map(|b| Device::from_body(&b)).transpose()? {
            Some(d) if p.scope.sees(Some(d.office_id)) => Ok(d),
            _ => Err(CoreError::not_found("device", id.to_string())),
        }
    }

    async fn check_holder(&self, p: &Arc<Principal>, holder: Option<Uuid>) -> Result<()> {
        if let Some(h) = holder {
            self.people.visible(p, h).await.map_err(|_| {
                CoreError::invalid(ErrorCode::UnknownPerson, format!("no person {h}"))
            })?;
        }
        Ok(())
    }

    pub(crate) fn history_entry(&self, d: &Device, p: &Principal, kind: &str) -> DeviceEvent {
        DeviceEvent {
            id: Uuid::now_v7(),
            device_id: d.id,
            kind: kind.to_owned(),
            from: None,
            to: None,
            reason: None,
            actor: actor_of(p),
            certificates: vec![],
            at: self.clock.now(),
        }
    }

    pub(crate) fn emit(&self, kind: EventKind, d: &Device, extra: serde_json::Value) {
        crate::ports::announce(self.events.as_ref(), kind, "device", d.id, || {
            serde_json::json!({
                "id": d.id, "serial": d.serial, "kind": d.kind, "status": d.status,
                "office_id": d.office_id, "holder_id": d.holder_id, "details": extra,
            })
        });
    }

    /// Registers a device (state `registered`).
    pub async fn register(
        &self,
        cap: &Capability<perm::DevicesWrite>,
        r: RegisterDevice,
    ) -> Result<Device> {
        let p = cap.principal();
        let exists =
            self.store.record(Collection::Offices, &r.office_id.to_string()).await?.is_some();
        if !exists || !p.scope.sees(Some(r.office_id)) {
            return Err(CoreError::invalid(
                ErrorCode::UnknownOffice,
                format!("no office {}", r.office_id),
            ));
        }
        self.check_holder(p, r.holder_id).await?;
        let serial = r.serial.trim().to_owned();
        if serial.is_empty() || serial.len() > 128 || serial.chars().any(char::is_control) {
            return Err(CoreError::invalid(
                ErrorCode::InvalidSerial,
                "a serial is 1 to 128 characters",
            ));
        }
        check_production(&r.production)?;
        let metadata = r.metadata.unwrap_or_else(|| serde_json::json!({}));
        check_metadata(&metadata)?;
        let now = self.clock.now();
        let d = Device {
            id: Uuid::now_v7(),
            office_id: r.office_id,
            holder_id: r.holder_id,
            kind: r.kind,
            serial,
            status: DeviceStatus::Registered,
            certificates: vec![],
            held: vec![],
            suspended_by: None,
            production: r.production,
            metadata,
            pin_retries_left: PIN_RETRIES,
            pin_reset: Default::default(),
            created_at: now,
            updated_at: now,
            status_changed_at: now,
        };
        let mut h = self.history_entry(&d, p, "registered");
        h.to = Some(DeviceStatus::Registered);
        let mut tx = self.store.begin().await?;
        tx.insert_record(d.row()).await.map_err(conflict_as(
            ErrorCode::SerialTaken,
            format!("a device with serial `{}` exists in this office", d.serial),
        ))?;
        tx.insert_record(h.row()).await?;
        let ev = NewAuditEvent::new(p, AuditAction::DeviceRegister, "device", d.id).details(serde_json::json!({
            "serial": d.serial, "kind": d.kind, "office_id": d.office_id, "holder_id": d.holder_id,
            "production": d.production,
        }));
        tx.commit(vec![ev], now).await?;
        self.emit(EventKind::DeviceRegistered, &d, serde_json::json!({}));
        Ok(d)
    }

    /// One device.
    pub async fn get(&self, cap: &Capability<perm::DevicesRead>, id: Uuid) -> Result<Device> {
        let d = self.visible(cap.principal(), id).await?;
        self.redacted(cap.principal(), d).await
    }

    /// `d` as `p` may see it: the certificates on it (and on hold by it) that `p` does not see
    /// are left out, so that their ids do not leak through a device in `p`'s office.
    async fn redacted(&self, p: &Principal, mut d: Device) -> Result<Device> {
        if p.scope.is_all() {
            return Ok(d);
        }
        let mut seen = Vec::with_capacity(d.certificates.len());
        for c in &d.certificates {
            if self.certificates.visible(p, *c).await.is_ok() {
                seen.push(*c);
            }
        }
        d.held.retain(|h| seen.contains(h));
        d.certificates = seen;
        Ok(d)
    }

    /// A page of devices in scope.
    pub async fn list(
        &self,
        cap: &Capability<perm::DevicesRead>,
        f: DeviceFilter,
        page: PageRequest,
    ) -> Result<Page<Device>> {
        let filter = Filter::Devices { f, offices: scope_offices(&cap.principal().scope) };
        let mut page = record_page::<Device, _>(self.store.as_ref(), filter, page).await?;
        let p = cap.principal();
        let mut items = Vec::with_capacity(page.items.len());
        for d in page.items {
            items.push(self.redacted(p, d).await?);
        }
        page.items = items;
        Ok(page)
    }

    /// A device's lifecycle history, oldest first.
    pub async fn history(
        &self,
        cap: &Capability<perm::DevicesRead>,
        id: Uuid,
        page: PageRequest,
    ) -> Result<Page<DeviceEvent>> {
        let p = cap.principal();
        self.visible(p, id).await?;
        let mut page: Page<DeviceEvent> =
            record_page(self.store.as_ref(), Filter::DeviceEvents { device_id: Some(id) }, page)
                .await?;
        if !p.scope.is_all() {
            // An entry names only the certificates the caller sees (an unrestricted actor's
            // cascade may have reached others).
            for e in &mut page.items {
                let mut seen = Vec::with_capacity(e.certificates.len());
                for c in &e.certificates {
                    if self.certificates.visible(p, *c).await.is_ok() {
                        seen.push(*c);
                    }
                }
                e.certificates = seen;
            }
        }
        Ok(page)
    }

    /// Writes `after` over `before` (which must still be current) with a history entry and
    /// audit events, plus whatever `extra` adds to the transaction.
    pub(crate) async fn save(
        &self,
        before: &Device,
        after: &Device,
        history: DeviceEvent,
        mut events: Vec<NewAuditEvent>,
        also: Also<'_>,
        p: &Arc<Principal>,
    ) -> Result<Vec<(CertChange, Certificate)>> {
        let Also { certs, rows } = also;
        let now = self.clock.now();
        let mut tx = self.store.begin().await?;
        lock_unchanged(tx.as_mut(), before, "device").await?;
        tx.update_record(after.row()).await?;
        tx.insert_record(history.row()).await?;
        for w in rows {
            match w {
                RowWrite::Insert(r) => tx.insert_record(r.row()).await?,
                RowWrite::Update(r) => tx.update_record(r.row()).await?,
            }
        }
        let mut changed = Vec::new();
        for (id, change) in certs {
            let (cert, ev) =
                self.certificates.change_in_tx(tx.as_mut(), p, *id, *change, now).await?;
            if let Some(ev) = ev {
                events.push(ev);
                changed.push((*change, cert));
            }
        }
        tx.commit(events, now).await?;
        for (change, cert) in &changed {
            self.certificates.announce_change(*change, cert);
        }
        Ok(changed)
    }

    /// Changes holder, metadata or production data.
    pub async fn update(
        &self,
        cap: &Capability<perm::DevicesWrite>,
        id: Uuid,
        u: UpdateDevice,
    ) -> Result<Device> {
        let p = cap.principal();
        let before = self.visible(p, id).await?;
        let mut d = before.clone();
        if let Some(h) = u.holder_id {
            self.check_holder(p, h).await?;
            d.holder_id = h;
        }
        if let Some(m) = &u.metadata {
            crate::certs::certificates::merge_patch(&mut d.metadata, m);
            check_metadata(&d.metadata)?;
        }
        if let Some(pr) = u.production {
            let cur = &mut d.production;
            for (dst, src) in [
                (&mut cur.batch, pr.batch),
                (&mut cur.manufacturer, pr.manufacturer),
                (&mut cur.model, pr.model),
                (&mut cur.applet, pr.applet),
                (&mut cur.chip_serial, pr.chip_serial),
                (&mut cur.disposal_status, pr.disposal_status),
            ] {
                if src.is_some() {
                    *dst = src;
                }
            }
            for (k, v) in pr.extra {
                if v.is_null() {
                    cur.extra.remove(&k);
                } else {
                    cur.extra.insert(k, v);
                }
            }
            check_production(&d.production)?;
        }
        if let Some(n) = u.pin_retries_left {
            if n > MAX_PIN_RETRIES {
                return Err(CoreError::invalid(
                    ErrorCode::InvalidField,
                    format!("`pin_retries_left` is 0 to {MAX_PIN_RETRIES}"),
                ));
            }
            d.pin_retries_left = n;
        }
        if d == before {
            return self.redacted(p, before).await;
        }
        d.updated_at = self.clock.now();
        let h = self.history_entry(&d, p, "updated");
        let ev = NewAuditEvent::new(p, AuditAction::DeviceUpdate, "device", id).details(
            serde_json::json!({
                "holder_id": d.holder_id, "production": d.production, "metadata": d.metadata,
                "pin_retries_left": d.pin_retries_left,
            }),
        );
        self.save(&before, &d, h, vec![ev], Also::default(), p).await?;
        self.redacted(p, d).await
    }

    /// Records that a certificate is on the device (its lifecycle then follows the device's).
    pub async fn link_certificate(
        &self,
        cap: &Capability<perm::DevicesWrite>,
        id: Uuid,
        cert_id: Uuid,
    ) -> Result<Device> {
        let p = cap.principal();
        let before = self.visible(p, id).await?;
        // Through the certificates' visibility rule: one outside the caller's scope and one
        // that does not exist get the same answer (also when it is linked already).
        if self.certificates.visible(p, cert_id).await.is_err() {
            return Err(CoreError::invalid(
                ErrorCode::UnknownCertificate,
                format!("no certificate {cert_id}"),
            ));
        }
        if before.certificates.contains(&cert_id) {
            return self.redacted(p, before).await;
        }
        if before.certificates.len() >= MAX_CERTIFICATES {
            return Err(CoreError::conflict(
                ErrorCode::TooManyCertificates,
                format!("a device holds at most {MAX_CERTIFICATES} certificates"),
            ));
        }
        let mut d = before.clone();
        d.certificates.push(cert_id);
        d.updated_at = self.clock.now();
        let mut h = self.history_entry(&d, p, "certificate_linked");
        h.certificates = vec![cert_id];
        let ev = NewAuditEvent::new(p, AuditAction::DeviceLinkCertificate, "device", id)
            .details(serde_json::json!({"certificate_id": cert_id}));
        self.save(&before, &d, h, vec![ev], Also::default(), p).await?;
        self.redacted(p, d).await
    }

    /// Moves a device to `to`; `P` must be the permission [`permission_for`] names. The
    /// certificate cascade happens in the same transaction. Repeating the current state is a
    /// harmless no-op.
    pub async fn transition<P: Permission>(
        &self,
        cap: &Capability<P>,
        id: Uuid,
        to: DeviceStatus,
        reason: Option<String>,
        revocation_reason: Option<RevocationReason>,
    ) -> Result<Device> {
        if revocation_reason == Some(RevocationReason::CertificateHold) {
            return Err(CoreError::invalid(
                ErrorCode::InvalidReason,
                "certificateHold is what suspension does",
            ));
        }
        if let Some(r) = &reason
            && r.chars().count() > 500
        {
            return Err(CoreError::invalid(
                ErrorCode::InvalidReason,
                "a reason is at most 500 characters",
            ));
        }
        let p = cap.principal();
        let before = self.visible(p, id).await?;
        if before.status == to {
            return self.redacted(p, before).await;
        }
        let needed = permission_for(before.status, to);
        if P::NAME != needed {
            return Err(CoreError::Forbidden {
                code: ErrorCode::PermissionDenied,
                detail: format!(
                    "moving a {} device to {} needs `{needed}`",
                    before.status.as_str(),
                    to.as_str()
                ),
            });
        }
        if !before.status.next().contains(&to) {
            return Err(CoreError::conflict(
                ErrorCode::InvalidTransition,
                format!(
                    "a {} device cannot become {} (allowed: {})",
                    before.status.as_str(),
                    to.as_str(),
                    before.status.next().iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", ")
                ),
            ));
        }
        let now = self.clock.now();
        let change = to.cascade(before.status, revocation_reason);
        let mut d = before.clone();
        // Which certificates the change touches, checked (and told to external CAs) up front.
        let mut targets: Vec<(Uuid, CertChange)> = Vec::new();
        if let Some(change) = change {
            let ids: Vec<Uuid> = match change {
                CertChange::Reactivate => before.held.clone(),
                _ => before.certificates.clone(),
            };
            // A linked certificate's renewals are the device's too: the cascade follows each
            // one's chain of renewals (a renewal is not linked by itself).
            let mut certs = Vec::new();
            for cid in ids {
                // The cascade reaches only certificates the caller sees.
                let Ok(mut cert) = self.certificates.visible(p, cid).await else { continue };
                // Bounded: a chain is one certificate per renewal.
                for _ in 0..64 {
                    let next = cert.superseded_by;
                    if !certs.iter().any(|c: &Certificate| c.id == cert.id) {
                        certs.push(cert);
                    }
                    let Some(next) = next.filter(|_| change != CertChange::Reactivate) else {
                        break;
                    };
                    let Ok(n) = self.certificates.visible(p, next).await else { break };
                    cert = n;
                }
            }
            for cert in certs {
                if change.applies_to(&cert, now) {
                    self.certificates.tell_backend(&cert, change).await?;
                    targets.push((cert.id, change));
                }
            }
            let touched: Vec<Uuid> = targets.iter().map(|t| t.0).collect();
            d.held = before.held_after(change, &touched);
        }
        d.status = to;
        d.suspended_by = match to {
            DeviceStatus::Suspended | DeviceStatus::Lost => Some(actor_of(p)),
            _ => None,
        };
        d.status_changed_at = now;
        d.updated_at = now;
        let mut h = self.history_entry(&d, p, "transition");
        h.from = Some(before.status);
        h.to = Some(to);
        h.reason = reason.clone();
        h.certificates = targets.iter().map(|t| t.0).collect();
        let ev =
            NewAuditEvent::new(p, to.audit_action(), "device", id).details(serde_json::json!({
                "serial": d.serial, "from": before.status, "to": to, "reason": reason,
                "certificates": h.certificates,
            }));
        let certs = h.certificates.clone();
        self.save(&before, &d, h, vec![ev], Also { certs: &targets, rows: &[] }, p).await?;
        self.emit(
            to.event_kind(),
            &d,
            serde_json::json!({"from": before.status, "certificates": certs}),
        );
        self.redacted(p, d).await
    }
}
