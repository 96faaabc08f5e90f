//! Roles (named groups of permissions) and operators (people who act through Sigil and hold
//! roles). The full operator lifecycle (divisions, offices, batch import, separation of duties)
//! builds on these types.

use crate::ErrorCode;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::access::authz::PermissionSet;
use crate::error::{CoreError, Result};

/// A role.
#[derive(Debug, Clone, PartialEq)]
pub struct Role {
    /// Unique name: lowercase letters, digits, `-` and `_`, 1 to 64 characters.
    pub name: String,
    /// What it is for.
    pub description: String,
    /// What it grants.
    pub permissions: PermissionSet,
    /// Roles that may not be held together with this one (separation of duties; the
    /// exclusion applies both ways).
    pub excludes: Vec<String>,
    /// Shipped with Sigil; cannot be changed or deleted.
    pub built_in: bool,
    /// Creation time.
    pub created_at: OffsetDateTime,
    /// Last change.
    pub updated_at: OffsetDateTime,
}

/// An operator.
#[derive(Debug, Clone, PartialEq)]
pub struct Operator {
    /// Identifier (UUIDv7).
    pub id: Uuid,
    /// Unique login name.
    pub username: String,
    /// Display name.
    pub display_name: String,
    /// Contact address.
    pub email: Option<String>,
    /// Role names.
    pub roles: Vec<String>,
    /// Disabled operators, and every key bound to them, are refused at once.
    pub enabled: bool,
    /// Client certificate (SHA-256 fingerprint) that authenticates as this operator.
    pub client_cert_sha256: Option<String>,
    /// Sees every office (otherwise only `divisions` and `offices`).
    pub unrestricted: bool,
    /// Divisions whose offices the operator sees.
    pub divisions: Vec<Uuid>,
    /// Offices the operator sees.
    pub offices: Vec<Uuid>,
    /// Creation time.
    pub created_at: OffsetDateTime,
    /// Last change.
    pub updated_at: OffsetDateTime,
}

/// Validates a role name.
pub fn validate_role_name(s: &str) -> Result<String> {
    let ok = (1..=64).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_');
    if !ok {
        return Err(CoreError::invalid(
            ErrorCode::InvalidName,
            "a role name is 1 to 64 lowercase letters, digits, `-` or `_`",
        ));
    }
    Ok(s.to_owned())
}

/// Validates a username: 1 to 128 characters of letters, digits, `.`, `-`, `_`, `@`.
pub fn validate_username(s: &str) -> Result<String> {
    let s = s.trim();
    let ok = (1..=128).contains(&s.len())
        && s.chars().all(|c| c.is_alphanumeric() || matches!(c, '.' | '-' | '_' | '@'));
    if !ok {
        return Err(CoreError::invalid(
            ErrorCode::InvalidUsername,
            "a username is 1 to 128 letters, digits, `.`, `-`, `_` or `@`",
        ));
    }
    Ok(s.to_owned())
}

/// Validates an e-mail address loosely (one `@`, something on both sides, no spaces).
pub fn validate_email(s: &str) -> Result<String> {
    let s = s.trim();
    match s.split_once('@') {
        Some((a, b))
            if !a.is_empty()
                && b.contains('.')
                && !s.contains(char::is_whitespace)
                && s.len() <= 254 =>
        {
            Ok(s.to_owned())
        }
        _ => Err(CoreError::invalid(
            ErrorCode::InvalidEmail,
            format!("`{s}` is not an e-mail address"),
        )),
    }
}

/// The first pair of `roles` that exclude each other (either side declaring it suffices).
pub fn conflicting_pair(roles: &[Role]) -> Option<(String, String)> {
    roles.iter().find_map(|a| {
        roles
            .iter()
            .find(|b| {
                a.name != b.name && (a.excludes.contains(&b.name) || b.excludes.contains(&a.name))
            })
            .map(|b| (a.name.clone(), b.name.clone()))
    })
}

/// The union of what `roles` grant.
pub fn role_permissions(roles: &[Role]) -> PermissionSet {
    PermissionSet::from_stored(roles.iter().flat_map(|r| r.permissions.to_vec()))
}

/// Filters for listing operators.
#[derive(Debug, Clone, Default)]
pub struct OperatorFilter {
    /// Only enabled (true) or disabled (false) operators.
    pub enabled: Option<bool>,
    /// Holding this role.
    pub role: Option<String>,
    /// Username or display name contains this (case-insensitive).
    pub name_contains: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_checked() {
        assert!(validate_role_name("help-desk_2").is_ok());
        assert!(validate_role_name("Help Desk").is_err());
        assert!(validate_username("alice@example.org").is_ok());
        assert!(validate_username("alice smith").is_err());
        assert!(validate_email("a@b.org").is_ok());
        assert!(validate_email("a@b").is_err());
    }
}
