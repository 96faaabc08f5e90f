//! Operators: create, list, show, update, enable and disable. A disabled operator, and every API
//! key and client certificate that acts for it, is refused on the next request.

use crate::ErrorCode;
use crate::audit::AuditAction;
use std::sync::Arc;

use uuid::Uuid;

use crate::access::api_key::parse_fingerprint;
use crate::access::authz::{Capability, perm};
use crate::access::operator::{Operator, validate_email, validate_username};
use crate::audit::NewAuditEvent;
use crate::error::{CoreError, Result};
use crate::org;
use crate::page::{Page, paginate};
use crate::ports::{AccessPort, Clock, OperatorFilter, PageRequest};
use crate::records::{Collection, Filter, Record, select};

/// What a caller gives to create an operator.
#[derive(Debug, Clone)]
pub struct CreateOperator {
    /// Unique login name.
    pub username: String,
    /// Display name (defaults to the username).
    pub display_name: Option<String>,
    /// E-mail.
    pub email: Option<String>,
    /// Role names.
    pub roles: Vec<String>,
    /// Client certificate fingerprint.
    pub client_cert_sha256: Option<String>,
    /// Sees every office; defaults to true when neither divisions nor offices are given.
    pub unrestricted: Option<bool>,
    /// Divisions whose offices the operator sees.
    pub divisions: Vec<Uuid>,
    /// Offices the operator sees.
    pub offices: Vec<Uuid>,
}

/// A change to an operator; `None` leaves a field, `Some(None)` clears an optional one.
#[derive(Debug, Clone, Default)]
pub struct UpdateOperator {
    /// New display name.
    pub display_name: Option<String>,
    /// New e-mail.
    pub email: Option<Option<String>>,
    /// New roles.
    pub roles: Option<Vec<String>>,
    /// New certificate binding.
    pub client_cert_sha256: Option<Option<String>>,
    /// New scope: unrestricted or not.
    pub unrestricted: Option<bool>,
    /// New divisions.
    pub divisions: Option<Vec<Uuid>>,
    /// New offices.
    pub offices: Option<Vec<Uuid>>,
}

/// Operator operations.
pub struct OperatorService {
    store: Arc<dyn AccessPort>,
    clock: Arc<dyn Clock>,
}

impl std::fmt::Debug for OperatorService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OperatorService").finish_non_exhaustive()
    }
}

fn describe(o: &Operator) -> serde_json::Value {
    serde_json::json!({
        "username": o.username, "display_name": o.display_name, "email": o.email,
        "roles": o.roles, "enabled": o.enabled, "client_cert_sha256": o.client_cert_sha256,
        "unrestricted": o.unrestricted, "divisions": o.divisions, "offices": o.offices,
    })
}

fn conflict(e: crate::StoreError) -> CoreError {
    match e {
        crate::StoreError::Conflict { constraint } if constraint.contains("cert") => {
            CoreError::conflict(
                ErrorCode::CertificateTaken,
                "this client certificate is bound to another operator",
            )
        }
        crate::StoreError::Conflict { .. } => {
            CoreError::conflict(ErrorCode::NameTaken, "an operator with this username exists")
        }
        other => other.into(),
    }
}

impl OperatorService {
    /// Wires the service.
    pub fn new(store: Arc<dyn AccessPort>, clock: Arc<dyn Clock>) -> Self {
        Self { store, clock }
    }

    async fn check_roles(
        &self,
        principal: &crate::access::authz::Principal,
        roles: &[String],
    ) -> Result<Vec<String>> {
        let known = self.store.roles().await?;
        let mut granted = Vec::new();
        for name in roles {
            let role = known.iter().find(|r| &r.name == name).ok_or_else(|| {
                CoreError::invalid(
                    ErrorCode::UnknownRole,
                    format!("unknown role `{name}` (see GET /api/v1/roles)"),
                )
            })?;
            granted.push(role.clone());
        }
        if let Some((a, b)) = crate::access::operator::conflicting_pair(&granted) {
            return Err(CoreError::conflict(
                ErrorCode::ConflictingRoles,
                format!("roles `{a}` and `{b}` exclude each other (separation of duties)"),
            ));
        }
        // Nobody hands out more than they hold.
        if !crate::access::operator::role_permissions(&granted).is_subset_of(&principal.permissions)
        {
            return Err(CoreError::Forbidden {
                code: ErrorCode::PermissionEscalation,
                detail:
                    "an operator cannot be given roles that grant more than their grantor holds"
                        .into(),
            });
        }
        let mut names: Vec<String> = granted.into_iter().map(|r| r.name).collect();
        names.sort();
        names.dedup();
        Ok(names)
    }

    /// Checks a scope assignment: the divisions and offices exist, and nobody hands out a wider
    /// scope than they have. Returns them sorted and deduplicated.
    async fn check_scope(
        &self,
        principal: &crate::access::authz::Principal,
        unrestricted: bool,
        mut divisions: Vec<Uuid>,
        mut offices: Vec<Uuid>,
    ) -> Result<(Vec<Uuid>, Vec<Uuid>)> {
        divisions.sort();
        divisions.dedup();
        offices.sort();
        offices.dedup();
        if divisions.len() + offices.len() > 1000 {
            return Err(CoreError::invalid(
                ErrorCode::InvalidScope,
                "at most 1000 divisions and offices",
            ));
        }
        let scope = &principal.scope;
        if unrestricted && !scope.is_all() {
            return Err(CoreError::Forbidden {
                code: ErrorCode::ScopeEscalation,
                detail: "only an unrestricted caller can make an operator unrestricted".into(),
            });
        }
        for d in &divisions {
            // A restricted caller passes on only a division it holds itself: a division brings
            // the offices opened in it later, which seeing today's offices does not cover.
            let div = self.store.record(Collection::Divisions, &d.to_string()).await?;
            if div.is_none() || !scope.holds_division(*d) {
                return Err(CoreError::invalid(
                    ErrorCode::UnknownDivision,
                    format!("no division {d}"),
                ));
            }
        }
        for o in &offices {
            let known = self.store.record(Collection::Offices, &o.to_string()).await?.is_some();
            if !known || !scope.sees(Some(*o)) {
                return Err(CoreError::invalid(ErrorCode::UnknownOffice, format!("no office {o}")));
            }
        }
        Ok((divisions, offices))
    }

    /// Whether `principal` may see operator `op`: an unrestricted caller sees everyone; a
    /// restricted one sees restricted operators whose whole scope (offices and divisions) lies
    /// inside its own.
    async fn visible(
        &self,
        principal: &crate::access::authz::Principal,
        op: &Operator,
    ) -> Result<bool> {
        if principal.scope.is_all() {
            return Ok(true);
        }
        Ok(principal.scope.manages(&org::organizations::scope_of(self.store.as_ref(), op).await?))
    }

    async fn find(
        &self,
        principal: &crate::access::authz::Principal,
        id: Uuid,
    ) -> Result<Operator> {
        match self.store.operator(id).await? {
            Some(op) if self.visible(principal, &op).await? => Ok(op),
            _ => Err(CoreError::not_found("operator", id.to_string())),
        }
    }

    /// The authority operator `op` acts with: its roles' permissions and its scope.
    pub async fn authority(&self, op: &Operator) -> Result<crate::access::authz::Authority> {
        let roles: Vec<_> =
            self.store.roles().await?.into_iter().filter(|r| op.roles.contains(&r.name)).collect();
        Ok(crate::access::authz::Authority {
            permissions: crate::access::operator::role_permissions(&roles),
            scope: org::organizations::scope_of(self.store.as_ref(), op).await?,
        })
    }

    /// An operator `principal` may change: visible, and with no more authority than it.
    async fn changeable(
        &self,
        principal: &crate::access::authz::Principal,
        id: Uuid,
    ) -> Result<Operator> {
        let op = self.find(principal, id).await?;
        principal.ensure_covers(&self.authority(&op).await?, "operator")?;
        Ok(op)
    }

    /// The effective scope of an operator: divisions, and every office it sees.
    pub async fn scope(
        &self,
        cap: &Capability<perm::OperatorsRead>,
        id: Uuid,
    ) -> Result<(Operator, Vec<org::Division>, Vec<org::Office>)> {
        let op = self.find(cap.principal(), id).await?;
        let mut divisions = Vec::new();
        for d in &op.divisions {
            if let Some(b) = self.store.record(Collection::Divisions, &d.to_string()).await? {
                divisions.push(<org::Division as Record>::from_body(&b)?);
            }
        }
        let offices =
            match org::organizations::scope_of(self.store.as_ref(), &op).await?.office_set() {
                None => Vec::new(),
                Some(set) => {
                    let ids = Some(set.iter().copied().collect());
                    let filter =
                        Filter::Offices { f: org::OrgFilter::default(), ids, divisions: None };
                    select(self.store.as_ref(), filter).await?
                }
            };
        Ok((op, divisions, offices))
    }

    /// Validates `req` into the operator it would create (nothing is written).
    pub(crate) async fn prepare(
        &self,
        principal: &crate::access::authz::Principal,
        req: CreateOperator,
    ) -> Result<Operator> {
        let now = self.clock.now();
        let username = validate_username(&req.username)?;
        let unrestricted =
            req.unrestricted.unwrap_or(req.divisions.is_empty() && req.offices.is_empty());
        let (divisions, offices) =
            self.check_scope(principal, unrestricted, req.divisions, req.offices).await?;
        Ok(Operator {
            id: Uuid::now_v7(),
            display_name: crate::access::api_key::validate_name(
                req.display_name.as_deref().unwrap_or(&username),
            )?,
            username,
            email: req.email.as_deref().map(validate_email).transpose()?,
            roles: self.check_roles(principal, &req.roles).await?,
            enabled: true,
            client_cert_sha256: req
                .client_cert_sha256
                .as_deref()
                .map(parse_fingerprint)
                .transpose()?,
            unrestricted,
            divisions,
            offices,
            created_at: now,
            updated_at: now,
        })
    }

    /// Inserts prepared operators in one transaction, with one audit event each. A failure
    /// names the index of the operator that caused it (None: the transaction itself failed).
    pub(crate) async fn insert_all(
        &self,
        principal: &Arc<crate::access::authz::Principal>,
        ops: &[Operator],
        batch: Option<&str>,
    ) -> std::result::Result<(), (Option<usize>, CoreError)> {
        let now = self.clock.now();
        let mut tx = self.store.begin_access().await.map_err(|e| (None, e.into()))?;
        let mut events = Vec::with_capacity(ops.len());
        for (i, op) in ops.iter().enumerate() {
            tx.insert_operator(op).await.map_err(|e| (Some(i), conflict(e)))?;
            let mut details = describe(op);
            if let Some(b) = batch {
                details["import"] = serde_json::json!(b);
            }
            events.push(
                NewAuditEvent::new(principal, AuditAction::OperatorCreate, "operator", op.id)
                    .details(details),
            );
        }
        tx.commit(events, now).await.map_err(|e| (None, e.into()))?;
        Ok(())
    }

    /// Creates an enabled operator.
    pub async fn create(
        &self,
        cap: &Capability<perm::OperatorsCreate>,
        req: CreateOperator,
    ) -> Result<Operator> {
        let op = self.prepare(cap.principal(), req).await?;
        self.insert_all(cap.principal(), std::slice::from_ref(&op), None).await.map_err(|e| e.1)?;
        Ok(op)
    }

    /// Lists operators.
    pub async fn list(
        &self,
        cap: &Capability<perm::OperatorsRead>,
        filter: OperatorFilter,
        page: PageRequest,
    ) -> Result<Page<Operator>> {
        if let Some(a) = &page.after {
            Uuid::parse_str(a)
                .map_err(|_| CoreError::invalid(ErrorCode::InvalidCursor, "cursor is not valid"))?;
        }
        let principal = cap.principal();
        if principal.scope.is_all() {
            let rows = self
                .store
                .list_operators(&filter, &PageRequest { after: page.after, limit: page.limit + 1 })
                .await?;
            return Ok(paginate(rows, page.limit, |o| o.id.to_string()));
        }
        // A restricted caller: keep reading pages until this one is full of visible operators.
        let mut out = Vec::new();
        let mut after = page.after;
        loop {
            let batch = self
                .store
                .list_operators(&filter, &PageRequest { after: after.clone(), limit: 200 })
                .await?;
            let done = batch.len() < 200;
            after = batch.last().map(|o| o.id.to_string());
            for op in batch {
                if self.visible(principal, &op).await? {
                    out.push(op);
                }
            }
            if done || out.len() > page.limit as usize {
                break;
            }
        }
        Ok(paginate(out, page.limit, |o| o.id.to_string()))
    }

    /// One operator.
    pub async fn get(&self, cap: &Capability<perm::OperatorsRead>, id: Uuid) -> Result<Operator> {
        self.find(cap.principal(), id).await
    }

    /// Changes details, roles, scope or the certificate binding of an operator whose authority
    /// (roles and scope) lies within the caller's; the new roles and scope must too.
    pub async fn update(
        &self,
        cap: &Capability<perm::OperatorsUpdate>,
        id: Uuid,
        patch: UpdateOperator,
    ) -> Result<Operator> {
        let now = self.clock.now();
        let roles = match &patch.roles {
            Some(r) => Some(self.check_roles(cap.principal(), r).await?),
            None => None,
        };
        let current = self.changeable(cap.principal(), id).await?;
        let scope =
            if patch.unrestricted.is_some() || patch.divisions.is_some() || patch.offices.is_some()
            {
                let unrestricted = patch.unrestricted.unwrap_or(current.unrestricted);
                let divisions = patch.divisions.clone().unwrap_or(current.divisions.clone());
                let offices = patch.offices.clone().unwrap_or(current.offices.clone());
                Some((
                    unrestricted,
                    self.check_scope(cap.principal(), unrestricted, divisions, offices).await?,
                ))
            } else {
                None
            };
        let mut tx = self.store.begin_access().await?;
        let before = tx
            .operator_for_update(id)
            .await?
            .ok_or_else(|| CoreError::not_found("operator", id.to_string()))?;
        let mut op = before.clone();
        if let Some((unrestricted, (divisions, offices))) = scope {
            op.unrestricted = unrestricted;
            op.divisions = divisions;
            op.offices = offices;
        }
        if let Some(d) = &patch.display_name {
            op.display_name = crate::access::api_key::validate_name(d)?;
        }
        if let Some(e) = &patch.email {
            op.email = e.as_deref().map(validate_email).transpose()?;
        }
        if let Some(r) = roles {
            op.roles = r;
        }
        if let Some(c) = &patch.client_cert_sha256 {
            op.client_cert_sha256 = c.as_deref().map(parse_fingerprint).transpose()?;
        }
        if op == before {
            return Ok(before);
        }
        op.updated_at = now;
        tx.update_operator(&op).await.map_err(conflict)?;
        let ev = NewAuditEvent::new(cap.principal(), AuditAction::OperatorUpdate, "operator", id)
            .details(serde_json::json!({"before": describe(&before), "after": describe(&op)}));
        tx.commit(vec![ev], now).await?;
        Ok(op)
    }

    /// Enables or disables an operator whose authority lies within the caller's; repeating the
    /// same state is a harmless no-op.
    pub async fn set_enabled(
        &self,
        cap: &Capability<perm::OperatorsDisable>,
        id: Uuid,
        enabled: bool,
    ) -> Result<Operator> {
        let now = self.clock.now();
        self.changeable(cap.principal(), id).await?;
        let mut tx = self.store.begin_access().await?;
        let mut op = tx
            .operator_for_update(id)
            .await?
            .ok_or_else(|| CoreError::not_found("operator", id.to_string()))?;
        if op.enabled == enabled {
            return Ok(op);
        }
        if !enabled && cap.principal().operator_id.as_deref() == Some(id.to_string().as_str()) {
            return Err(CoreError::conflict(
                ErrorCode::SelfDisable,
                "an operator cannot disable themselves",
            ));
        }
        op.enabled = enabled;
        op.updated_at = now;
        tx.update_operator(&op).await?;
        // A disabled operator's UI sessions end (enabling it again does not revive them).
        if !enabled {
            tx.end_ui_sessions(&crate::access::ui_session::SessionOwner::Operator(id.to_string()))
                .await?;
        }
        let action =
            if enabled { AuditAction::OperatorEnable } else { AuditAction::OperatorDisable };
        let ev = NewAuditEvent::new(cap.principal(), action, "operator", id)
            .details(serde_json::json!({"username": op.username}));
        tx.commit(vec![ev], now).await?;
        Ok(op)
    }
}
