//! The organization: organizations hold divisions, divisions hold registration offices. People,
//! enrolment requests and devices belong to an office; an operator's visibility scope is a set of
//! divisions and offices, and everything outside it is invisible to them (404, never 403, so
//! that existence does not leak).

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use uuid::Uuid;

/// An organization.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Organization {
    /// Id (UUIDv7).
    pub id: Uuid,
    /// Unique name.
    pub name: String,
    /// What it is.
    pub description: String,
    /// Free-form attributes (a JSON object).
    pub metadata: serde_json::Value,
    /// Creation time.
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    /// Last change.
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
}

/// A division of an organization.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Division {
    /// Id (UUIDv7).
    pub id: Uuid,
    /// Its organization.
    pub organization_id: Uuid,
    /// Name, unique within the organization.
    pub name: String,
    /// What it is.
    pub description: String,
    /// Free-form attributes (a JSON object).
    pub metadata: serde_json::Value,
    /// Creation time.
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    /// Last change.
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
}

/// A registration office: where people are enrolled and devices handed out.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Office {
    /// Id (UUIDv7).
    pub id: Uuid,
    /// Its organization.
    pub organization_id: Uuid,
    /// Its division.
    pub division_id: Uuid,
    /// Unique short code (e.g. `LJU-01`).
    pub code: String,
    /// Name.
    pub name: String,
    /// Postal address.
    pub address: Option<String>,
    /// Contact e-mail.
    pub email: Option<String>,
    /// Contact telephone.
    pub phone: Option<String>,
    /// Office-level metadata (opening hours, printer, cost centre, …; a JSON object).
    pub metadata: serde_json::Value,
    /// Creation time.
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    /// Last change.
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
}

/// Filters for lists of divisions and offices.
#[derive(Debug, Clone, Default)]
pub struct OrgFilter {
    /// Of this organization.
    pub organization_id: Option<Uuid>,
    /// Of this division (offices).
    pub division_id: Option<Uuid>,
    /// Name contains this (case-insensitive).
    pub q: Option<String>,
}
