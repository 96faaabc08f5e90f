//! Roles: named groups of permissions that operators hold.

use crate::ErrorCode;
use crate::audit::AuditAction;
use std::sync::Arc;

use crate::access::authz::{Capability, PermissionSet, perm};
use crate::access::operator::{Role, validate_role_name};
use crate::audit::NewAuditEvent;
use crate::error::{CoreError, Result};
use crate::ports::{AccessPort, Clock};

/// What a caller gives to create or replace a role.
#[derive(Debug, Clone)]
pub struct RoleInput {
    /// Description.
    pub description: String,
    /// Permission patterns.
    pub permissions: Vec<String>,
    /// Roles that may not be held together with this one.
    pub excludes: Vec<String>,
}

/// Role operations.
pub struct RoleService {
    store: Arc<dyn AccessPort>,
    clock: Arc<dyn Clock>,
}

impl std::fmt::Debug for RoleService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RoleService").finish_non_exhaustive()
    }
}

fn describe(r: &Role) -> serde_json::Value {
    serde_json::json!({
        "description": r.description, "permissions": r.permissions.to_vec(), "excludes": r.excludes,
    })
}

impl RoleService {
    /// Wires the service.
    pub fn new(store: Arc<dyn AccessPort>, clock: Arc<dyn Clock>) -> Self {
        Self { store, clock }
    }

    /// Every role.
    pub async fn list(&self, _cap: &Capability<perm::RolesRead>) -> Result<Vec<Role>> {
        Ok(self.store.roles().await?)
    }

    /// One role.
    pub async fn get(&self, _cap: &Capability<perm::RolesRead>, name: &str) -> Result<Role> {
        self.store
            .roles()
            .await?
            .into_iter()
            .find(|r| r.name == name)
            .ok_or_else(|| CoreError::not_found("role", name))
    }

    fn permissions(cap_holder: &PermissionSet, requested: &[String]) -> Result<PermissionSet> {
        let set = PermissionSet::parse(requested)?;
        if !set.is_subset_of(cap_holder) {
            return Err(CoreError::Forbidden {
                code: ErrorCode::PermissionEscalation,
                detail: "a role cannot grant permissions its author does not hold".into(),
            });
        }
        Ok(set)
    }

    /// Checks an exclusion list: known roles, not the role itself, and no operator holding the
    /// role together with one it would exclude.
    async fn check_excludes(&self, name: &str, excludes: &[String]) -> Result<Vec<String>> {
        let known = self.store.roles().await?;
        let mut out = Vec::new();
        for x in excludes {
            if x == name {
                return Err(CoreError::invalid(
                    ErrorCode::InvalidExcludes,
                    "a role cannot exclude itself",
                ));
            }
            if !known.iter().any(|r| &r.name == x) {
                return Err(CoreError::invalid(
                    ErrorCode::UnknownRole,
                    format!("unknown role `{x}`"),
                ));
            }
            let mut after = None;
            loop {
                let holders = self
                    .store
                    .list_operators(
                        &crate::ports::OperatorFilter {
                            role: Some(name.to_owned()),
                            ..Default::default()
                        },
                        &crate::ports::PageRequest { after: after.clone(), limit: 500 },
                    )
                    .await?;
                if let Some(o) = holders.iter().find(|o| o.roles.contains(x)) {
                    return Err(CoreError::conflict(
                        ErrorCode::RolesHeldTogether,
                        format!("operator `{}` holds both `{name}` and `{x}`", o.username),
                    ));
                }
                if holders.len() < 500 {
                    break;
                }
                after = holders.last().map(|o| o.id.to_string());
            }
            out.push(x.clone());
        }
        out.sort();
        out.dedup();
        Ok(out)
    }

    /// Creates a role.
    pub async fn create(
        &self,
        cap: &Capability<perm::RolesWrite>,
        name: &str,
        input: RoleInput,
    ) -> Result<Role> {
        let now = self.clock.now();
        let role = Role {
            name: validate_role_name(name)?,
            description: crate::access::api_key::validate_description(&input.description)?,
            permissions: Self::permissions(&cap.principal().permissions, &input.permissions)?,
            excludes: self.check_excludes(name, &input.excludes).await?,
            built_in: false,
            created_at: now,
            updated_at: now,
        };
        let mut tx = self.store.begin_access().await?;
        tx.insert_role(&role).await.map_err(|e| match e {
            crate::StoreError::Conflict { .. } => {
                CoreError::conflict(ErrorCode::NameTaken, format!("role `{name}` exists"))
            }
            other => other.into(),
        })?;
        let ev = NewAuditEvent::new(cap.principal(), AuditAction::RoleCreate, "role", &role.name)
            .details(describe(&role));
        tx.commit(vec![ev], now).await?;
        Ok(role)
    }

    /// Replaces a role's description and permissions. Built-in roles are fixed.
    pub async fn update(
        &self,
        cap: &Capability<perm::RolesWrite>,
        name: &str,
        input: RoleInput,
    ) -> Result<Role> {
        let now = self.clock.now();
        let excludes = self.check_excludes(name, &input.excludes).await?;
        let mut tx = self.store.begin_access().await?;
        let before =
            tx.role_for_update(name).await?.ok_or_else(|| CoreError::not_found("role", name))?;
        if before.built_in {
            return Err(CoreError::conflict(
                ErrorCode::BuiltInRole,
                format!("built-in role `{name}` cannot be changed"),
            ));
        }
        // A role is changed only by someone who holds all it grants: otherwise a caller could
        // strip (or reshape) the authority of operators who hold more than it does.
        if !before.permissions.is_subset_of(&cap.principal().permissions) {
            return Err(CoreError::Forbidden {
                code: ErrorCode::AuthorityExceeded,
                detail: format!("role `{name}` grants permissions the caller does not hold"),
            });
        }
        let mut role = before.clone();
        role.excludes = excludes;
        role.description = crate::access::api_key::validate_description(&input.description)?;
        role.permissions = Self::permissions(&cap.principal().permissions, &input.permissions)?;
        if role == before {
            return Ok(before);
        }
        role.updated_at = now;
        tx.update_role(&role).await?;
        let ev = NewAuditEvent::new(cap.principal(), AuditAction::RoleUpdate, "role", name)
            .details(serde_json::json!({"before": describe(&before), "after": describe(&role)}));
        tx.commit(vec![ev], now).await?;
        Ok(role)
    }

    /// Deletes a role that no operator holds.
    pub async fn delete(&self, cap: &Capability<perm::RolesWrite>, name: &str) -> Result<()> {
        let now = self.clock.now();
        let mut tx = self.store.begin_access().await?;
        let role =
            tx.role_for_update(name).await?.ok_or_else(|| CoreError::not_found("role", name))?;
        if role.built_in {
            return Err(CoreError::conflict(
                ErrorCode::BuiltInRole,
                format!("built-in role `{name}` cannot be deleted"),
            ));
        }
        let holders = tx.count_role_holders(name).await?;
        if holders > 0 {
            return Err(CoreError::conflict(
                ErrorCode::RoleInUse,
                format!("{holders} operator(s) hold role `{name}`"),
            ));
        }
        tx.delete_role(name).await?;
        let ev = NewAuditEvent::new(cap.principal(), AuditAction::RoleDelete, "role", name)
            .details(describe(&role));
        tx.commit(vec![ev], now).await?;
        Ok(())
    }
}
