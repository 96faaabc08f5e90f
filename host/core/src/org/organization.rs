//! The organization: organizations hold divisions, divisions hold registration offices. People,
//! enrolment requests and devices belong to an office; an operator's visibility scope is a set of
//! divisions and offices, and everything outside it is invisible to them (404, never 403, so
//! that existence does not leak).

use std::collections::BTreeSet;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::access::scope::{Restricted, Scope};
use crate::records::{Cond, Record, SqlValue, Table};

/// Organizations.
pub static ORGANIZATIONS: Table = Table { name: "organizations", columns: &["name", "created_at"] };
/// Divisions.
pub static DIVISIONS: Table =
    Table { name: "divisions", columns: &["organization_id", "name", "created_at"] };
/// Registration offices.
pub static OFFICES: Table = Table {
    name: "offices",
    columns: &["organization_id", "division_id", "code", "name", "created_at"],
};

fn micros(t: OffsetDateTime) -> SqlValue {
    SqlValue::Int(crate::audit::unix_micros(t))
}

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

impl Record for Organization {
    const TABLE: &'static Table = &ORGANIZATIONS;
    fn id(&self) -> Uuid {
        self.id
    }
    fn columns(&self) -> Vec<SqlValue> {
        vec![self.name.as_str().into(), micros(self.created_at)]
    }
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

impl Record for Division {
    const TABLE: &'static Table = &DIVISIONS;
    fn id(&self) -> Uuid {
        self.id
    }
    fn columns(&self) -> Vec<SqlValue> {
        vec![self.organization_id.into(), self.name.as_str().into(), micros(self.created_at)]
    }
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

impl Record for Office {
    const TABLE: &'static Table = &OFFICES;
    fn id(&self) -> Uuid {
        self.id
    }
    fn columns(&self) -> Vec<SqlValue> {
        vec![
            self.organization_id.into(),
            self.division_id.into(),
            self.code.as_str().into(),
            self.name.as_str().into(),
            micros(self.created_at),
        ]
    }
}

/// The scope of `op`: every office when unrestricted, else its offices and those of its
/// divisions (resolved now, so a change to an office's division applies at once).
pub async fn scope_of(
    store: &dyn crate::ports::Store,
    op: &crate::access::operator::Operator,
) -> crate::Result<Scope> {
    if op.unrestricted {
        return Ok(Scope::All);
    }
    let mut set: BTreeSet<Uuid> = op.offices.iter().copied().collect();
    if !op.divisions.is_empty() {
        let q = crate::records::RecordQuery::all(vec![Cond::In(
            "division_id",
            op.divisions.iter().map(|d| SqlValue::from(*d)).collect(),
        )]);
        let offices: Vec<Office> = crate::records::decode_all(store.records(&OFFICES, &q).await?)?;
        set.extend(offices.iter().map(|o| o.id));
    }
    Ok(Scope::Restricted(Arc::new(Restricted {
        offices: set,
        divisions: op.divisions.iter().copied().collect(),
    })))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_restricted_scope_covers_only_its_own_offices_and_divisions() {
        let (a, b, d) = (Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7());
        let ab = Scope::offices([a, b]);
        assert!(Scope::All.covers(&ab));
        assert!(!ab.covers(&Scope::All));
        assert!(ab.covers(&Scope::offices([a])));
        assert!(!Scope::offices([a]).covers(&ab));
        assert!(ab.covers(&Scope::nothing()));
        // A division (even one with no office yet) is covered only by a holder of it.
        let with_div = Scope::Restricted(Arc::new(Restricted {
            offices: BTreeSet::new(),
            divisions: BTreeSet::from([d]),
        }));
        assert!(!ab.covers(&with_div));
        assert!(!ab.holds_division(d));
        assert!(with_div.holds_division(d));
        assert_eq!(ab.intersect(&Scope::offices([b])), Scope::offices([b]));
        assert_eq!(Scope::All.intersect(&ab), ab);
    }
}
