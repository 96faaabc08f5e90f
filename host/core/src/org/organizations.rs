//! Organizations, divisions and registration offices. A restricted caller sees the offices of
//! its scope, the divisions and organizations that hold them, and nothing else (404 for the
//! rest); only an unrestricted caller changes the structure above an office.

use crate::ErrorCode;
use crate::audit::AuditAction;
use std::collections::BTreeSet;
use std::sync::Arc;

use uuid::Uuid;

use crate::access::authz::{Capability, Principal, perm};
use crate::access::scope::{Restricted, Scope};
use crate::audit::NewAuditEvent;
use crate::error::{CoreError, Result};
use crate::org::{Division, Office, OrgFilter, Organization};
use crate::page::{Page, check_metadata, lock_unchanged, record_page};
use crate::ports::{Clock, PageRequest};
use crate::records::{Filter, Record, RecordStore, Records, conflict_as, scope_offices};

/// Fields of an organization, division or office that a caller sets.
#[derive(Debug, Clone, Default)]
pub struct OrgInput {
    /// Name.
    pub name: Option<String>,
    /// Description (organizations, divisions).
    pub description: Option<String>,
    /// Metadata: replaces on create, RFC 7386 merge patch on update.
    pub metadata: Option<serde_json::Value>,
    /// Parent: the organization of a division, the division of an office (create only).
    pub parent: Option<Uuid>,
    /// Office code (create only).
    pub code: Option<String>,
    /// Office address (`Some(None)` clears).
    pub address: Option<Option<String>>,
    /// Office e-mail.
    pub email: Option<Option<String>>,
    /// Office telephone.
    pub phone: Option<Option<String>>,
}

/// How one kind of object is named in audit events and clash errors.
struct Kind {
    object: &'static str,
    created: AuditAction,
    updated: AuditAction,
    clash_code: ErrorCode,
    clash: &'static str,
}

const ORG: Kind = Kind {
    object: "organization",
    created: AuditAction::OrganizationCreate,
    updated: AuditAction::OrganizationUpdate,
    clash_code: ErrorCode::NameTaken,
    clash: "an organization with this name exists",
};
const DIV: Kind = Kind {
    object: "division",
    created: AuditAction::DivisionCreate,
    updated: AuditAction::DivisionUpdate,
    clash_code: ErrorCode::NameTaken,
    clash: "the organization has a division with this name",
};
const OFFICE: Kind = Kind {
    object: "office",
    created: AuditAction::OfficeCreate,
    updated: AuditAction::OfficeUpdate,
    clash_code: ErrorCode::CodeTaken,
    clash: "an office with this code exists",
};

/// Organization operations.
pub struct OrgService {
    store: Arc<dyn Records>,
    clock: Arc<dyn Clock>,
}

impl std::fmt::Debug for OrgService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OrgService").finish_non_exhaustive()
    }
}

fn name(s: Option<&str>, what: &str) -> Result<String> {
    let s = s.map(str::trim).unwrap_or_default();
    if s.is_empty() || s.chars().count() > 200 || s.chars().any(char::is_control) {
        return Err(CoreError::invalid(
            ErrorCode::InvalidName,
            format!("a {what} name is 1 to 200 characters without control characters"),
        ));
    }
    Ok(s.to_owned())
}

fn text(s: Option<&str>, field: &str, max: usize) -> Result<String> {
    let s = s.unwrap_or_default().trim();
    if s.chars().count() > max {
        return Err(CoreError::invalid(
            ErrorCode::InvalidField,
            format!("`{field}` is longer than {max} characters"),
        ));
    }
    Ok(s.to_owned())
}

fn optional(s: Option<String>, field: &str, max: usize) -> Result<Option<String>> {
    s.map(|v| text(Some(&v), field, max)).transpose().map(|o| o.filter(|v| !v.is_empty()))
}

fn metadata(m: Option<serde_json::Value>) -> Result<serde_json::Value> {
    let m = m.unwrap_or_else(|| serde_json::json!({}));
    check_metadata(&m)?;
    Ok(m)
}

fn code(s: Option<&str>) -> Result<String> {
    let s = s.map(str::trim).unwrap_or_default();
    let ok = (1..=32).contains(&s.len())
        && s.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
    if !ok {
        return Err(CoreError::invalid(
            ErrorCode::InvalidCode,
            "an office code is 1 to 32 letters, digits, `-`, `_` or `.`",
        ));
    }
    Ok(s.to_owned())
}

fn restricted_writer(p: &Principal) -> Result<()> {
    if p.scope.is_all() {
        Ok(())
    } else {
        Err(CoreError::Forbidden {
            code: ErrorCode::ScopeRestricted,
            detail: "only an operator who sees every office changes the organization structure"
                .into(),
        })
    }
}

impl OrgService {
    /// Wires the service.
    pub fn new(store: Arc<dyn Records>, clock: Arc<dyn Clock>) -> Self {
        Self { store, clock }
    }

    /// The offices `p` sees, or None when it sees all.
    async fn visible_offices(&self, p: &Principal) -> Result<Option<Vec<Office>>> {
        match scope_offices(&p.scope) {
            None => Ok(None),
            Some(ids) => {
                let filter =
                    Filter::Offices { f: OrgFilter::default(), ids: Some(ids), divisions: None };
                Ok(Some(crate::records::select(self.store.as_ref(), filter).await?))
            }
        }
    }

    async fn get_record<R: Record>(&self, id: Uuid, what: &'static str) -> Result<R> {
        crate::records::get(self.store.as_ref(), &id.to_string())
            .await?
            .ok_or_else(|| CoreError::not_found(what, id.to_string()))
    }

    /// Creates an organization.
    pub async fn create_organization(
        &self,
        cap: &Capability<perm::OrganizationsWrite>,
        input: OrgInput,
    ) -> Result<Organization> {
        restricted_writer(cap.principal())?;
        let now = self.clock.now();
        let o = Organization {
            id: Uuid::now_v7(),
            name: name(input.name.as_deref(), "organization")?,
            description: text(input.description.as_deref(), "description", 2000)?,
            metadata: metadata(input.metadata)?,
            created_at: now,
            updated_at: now,
        };
        self.insert(cap.principal(), &o, &ORG).await?;
        Ok(o)
    }

    async fn insert<R: Record>(&self, p: &Arc<Principal>, r: &R, k: &Kind) -> Result<()> {
        let now = self.clock.now();
        let mut tx = self.store.begin_records().await?;
        tx.insert_record(r.row()).await.map_err(conflict_as(k.clash_code, k.clash.to_owned()))?;
        let ev = NewAuditEvent::new(p, k.created, k.object, r.key())
            .details(serde_json::to_value(r).unwrap_or_default());
        tx.commit(vec![ev], now).await?;
        Ok(())
    }

    async fn replace<R: Record + PartialEq + Clone>(
        &self,
        p: &Arc<Principal>,
        before: &R,
        after: &R,
        k: &Kind,
    ) -> Result<()> {
        if before == after {
            return Ok(());
        }
        let now = self.clock.now();
        let mut tx = self.store.begin_records().await?;
        lock_unchanged(tx.as_mut(), before, k.object).await?;
        tx.update_record(after.row())
            .await
            .map_err(conflict_as(k.clash_code, k.clash.to_owned()))?;
        let ev =
            NewAuditEvent::new(p, k.updated, k.object, after.key()).details(serde_json::json!({
                "before": serde_json::to_value(before).unwrap_or_default(),
                "after": serde_json::to_value(after).unwrap_or_default(),
            }));
        tx.commit(vec![ev], now).await?;
        Ok(())
    }

    /// Lists organizations (those holding a visible office, for a restricted caller).
    pub async fn organizations(
        &self,
        cap: &Capability<perm::OrganizationsRead>,
        q: Option<String>,
        page: PageRequest,
    ) -> Result<Page<Organization>> {
        let ids = self
            .visible_offices(cap.principal())
            .await?
            .map(|offices| offices.iter().map(|o| o.organization_id).collect());
        let filter = Filter::Organizations { name_contains: q, ids };
        record_page(self.store.as_ref(), filter, page).await
    }

    /// One organization.
    pub async fn organization(
        &self,
        cap: &Capability<perm::OrganizationsRead>,
        id: Uuid,
    ) -> Result<Organization> {
        let o: Organization = self.get_record(id, "organization").await?;
        if let Some(offices) = self.visible_offices(cap.principal()).await?
            && !offices.iter().any(|x| x.organization_id == id)
        {
            return Err(CoreError::not_found("organization", id.to_string()));
        }
        Ok(o)
    }

    /// Changes an organization.
    pub async fn update_organization(
        &self,
        cap: &Capability<perm::OrganizationsWrite>,
        id: Uuid,
        input: OrgInput,
    ) -> Result<Organization> {
        restricted_writer(cap.principal())?;
        let before: Organization = self.get_record(id, "organization").await?;
        let mut o = before.clone();
        if input.name.is_some() {
            o.name = name(input.name.as_deref(), "organization")?;
        }
        if input.description.is_some() {
            o.description = text(input.description.as_deref(), "description", 2000)?;
        }
        if let Some(m) = &input.metadata {
            crate::certs::certificates::merge_patch(&mut o.metadata, m);
            check_metadata(&o.metadata)?;
        }
        if o != before {
            o.updated_at = self.clock.now();
        }
        self.replace(cap.principal(), &before, &o, &ORG).await?;
        Ok(o)
    }

    /// Creates a division.
    pub async fn create_division(
        &self,
        cap: &Capability<perm::OrganizationsWrite>,
        input: OrgInput,
    ) -> Result<Division> {
        restricted_writer(cap.principal())?;
        let org_id = input.parent.ok_or_else(|| {
            CoreError::invalid(ErrorCode::MissingField, "`organization_id` is required")
        })?;
        if crate::records::get::<Organization, _>(self.store.as_ref(), &org_id.to_string())
            .await?
            .is_none()
        {
            return Err(CoreError::invalid(
                ErrorCode::UnknownOrganization,
                format!("no organization {org_id}"),
            ));
        }
        let now = self.clock.now();
        let d = Division {
            id: Uuid::now_v7(),
            organization_id: org_id,
            name: name(input.name.as_deref(), "division")?,
            description: text(input.description.as_deref(), "description", 2000)?,
            metadata: metadata(input.metadata)?,
            created_at: now,
            updated_at: now,
        };
        self.insert(cap.principal(), &d, &DIV).await?;
        Ok(d)
    }

    /// Lists divisions.
    pub async fn divisions(
        &self,
        cap: &Capability<perm::OrganizationsRead>,
        f: OrgFilter,
        page: PageRequest,
    ) -> Result<Page<Division>> {
        let ids = self
            .visible_offices(cap.principal())
            .await?
            .map(|offices| offices.iter().map(|o| o.division_id).collect());
        record_page(self.store.as_ref(), Filter::Divisions { f, ids }, page).await
    }

    /// One division.
    pub async fn division(
        &self,
        cap: &Capability<perm::OrganizationsRead>,
        id: Uuid,
    ) -> Result<Division> {
        let d: Division = self.get_record(id, "division").await?;
        if let Some(offices) = self.visible_offices(cap.principal()).await?
            && !offices.iter().any(|x| x.division_id == id)
        {
            return Err(CoreError::not_found("division", id.to_string()));
        }
        Ok(d)
    }

    /// Changes a division.
    pub async fn update_division(
        &self,
        cap: &Capability<perm::OrganizationsWrite>,
        id: Uuid,
        input: OrgInput,
    ) -> Result<Division> {
        restricted_writer(cap.principal())?;
        let before: Division = self.get_record(id, "division").await?;
        let mut d = before.clone();
        if input.name.is_some() {
            d.name = name(input.name.as_deref(), "division")?;
        }
        if input.description.is_some() {
            d.description = text(input.description.as_deref(), "description", 2000)?;
        }
        if let Some(m) = &input.metadata {
            crate::certs::certificates::merge_patch(&mut d.metadata, m);
            check_metadata(&d.metadata)?;
        }
        if d != before {
            d.updated_at = self.clock.now();
        }
        self.replace(cap.principal(), &before, &d, &DIV).await?;
        Ok(d)
    }

    /// Creates a registration office in a division.
    pub async fn create_office(
        &self,
        cap: &Capability<perm::OrganizationsWrite>,
        input: OrgInput,
    ) -> Result<Office> {
        restricted_writer(cap.principal())?;
        let div_id = input.parent.ok_or_else(|| {
            CoreError::invalid(ErrorCode::MissingField, "`division_id` is required")
        })?;
        let div: Division =
            crate::records::get(self.store.as_ref(), &div_id.to_string()).await?.ok_or_else(
                || CoreError::invalid(ErrorCode::UnknownDivision, format!("no division {div_id}")),
            )?;
        let now = self.clock.now();
        let o = Office {
            id: Uuid::now_v7(),
            organization_id: div.organization_id,
            division_id: div.id,
            code: code(input.code.as_deref())?,
            name: name(input.name.as_deref(), "office")?,
            address: optional(input.address.flatten(), "address", 500)?,
            email: input
                .email
                .flatten()
                .as_deref()
                .map(crate::access::operator::validate_email)
                .transpose()?,
            phone: optional(input.phone.flatten(), "phone", 50)?,
            metadata: metadata(input.metadata)?,
            created_at: now,
            updated_at: now,
        };
        self.insert(cap.principal(), &o, &OFFICE).await?;
        Ok(o)
    }

    /// Lists offices (only those in scope).
    pub async fn offices(
        &self,
        cap: &Capability<perm::OrganizationsRead>,
        f: OrgFilter,
        page: PageRequest,
    ) -> Result<Page<Office>> {
        let ids = scope_offices(&cap.principal().scope);
        record_page(self.store.as_ref(), Filter::Offices { f, ids, divisions: None }, page).await
    }

    /// One office (404 outside the caller's scope).
    pub async fn office(
        &self,
        cap: &Capability<perm::OrganizationsRead>,
        id: Uuid,
    ) -> Result<Office> {
        self.office_in_scope(cap.principal(), id).await
    }

    /// An office `p` sees, or 404.
    pub async fn office_in_scope(&self, p: &Principal, id: Uuid) -> Result<Office> {
        if !p.scope.sees(Some(id)) {
            return Err(CoreError::not_found("office", id.to_string()));
        }
        self.get_record(id, "office").await
    }

    /// Changes an office's name, contact details or metadata (within the caller's scope).
    pub async fn update_office(
        &self,
        cap: &Capability<perm::OrganizationsWrite>,
        id: Uuid,
        input: OrgInput,
    ) -> Result<Office> {
        let before = self.office_in_scope(cap.principal(), id).await?;
        let mut o = before.clone();
        if input.name.is_some() {
            o.name = name(input.name.as_deref(), "office")?;
        }
        if let Some(a) = input.address {
            o.address = optional(a, "address", 500)?;
        }
        if let Some(e) = input.email {
            o.email = e.as_deref().map(crate::access::operator::validate_email).transpose()?;
        }
        if let Some(p) = input.phone {
            o.phone = optional(p, "phone", 50)?;
        }
        if let Some(m) = &input.metadata {
            crate::certs::certificates::merge_patch(&mut o.metadata, m);
            check_metadata(&o.metadata)?;
        }
        if o != before {
            o.updated_at = self.clock.now();
        }
        self.replace(cap.principal(), &before, &o, &OFFICE).await?;
        Ok(o)
    }
}

/// The scope of `op`: every office when unrestricted, else its offices and those of its
/// divisions (resolved now, so a change to an office's division applies at once).
pub async fn scope_of<S: RecordStore + Sync + ?Sized>(
    store: &S,
    op: &crate::access::operator::Operator,
) -> Result<Scope> {
    if op.unrestricted {
        return Ok(Scope::All);
    }
    let mut set: BTreeSet<Uuid> = op.offices.iter().copied().collect();
    if !op.divisions.is_empty() {
        let filter = Filter::Offices {
            f: OrgFilter::default(),
            ids: None,
            divisions: Some(op.divisions.clone()),
        };
        let offices: Vec<Office> = crate::records::select(store, filter).await?;
        set.extend(offices.iter().map(|o| o.id));
    }
    Ok(Scope::Restricted(Arc::new(Restricted {
        offices: set,
        divisions: op.divisions.iter().copied().collect(),
    })))
}
