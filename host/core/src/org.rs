//! The organization: organizations hold divisions, divisions hold registration offices. People,
//! enrolment requests and devices belong to an office; an operator's visibility scope is a set of
//! divisions and offices, and everything outside it is invisible to them (404, never 403, so
//! that existence does not leak).

use std::collections::BTreeSet;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use uuid::Uuid;

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

/// What a principal may see of office-bound objects.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Scope {
    /// Everything (applications' keys, unrestricted operators, the system).
    #[default]
    All,
    /// Only objects of these offices (an operator's offices plus those of their divisions).
    Offices(Arc<BTreeSet<Uuid>>),
}

impl Scope {
    /// Whether an object of `office` is visible; objects of no office are visible only to an
    /// unrestricted scope.
    pub fn sees(&self, office: Option<Uuid>) -> bool {
        match (self, office) {
            (Self::All, _) => true,
            (Self::Offices(set), Some(o)) => set.contains(&o),
            (Self::Offices(_), None) => false,
        }
    }

    /// The condition restricting a list to this scope, on `column` (None: no restriction).
    pub fn condition(&self, column: &'static str) -> Option<Cond> {
        match self {
            Self::All => None,
            Self::Offices(set) => {
                Some(Cond::In(column, set.iter().map(|o| SqlValue::from(*o)).collect()))
            }
        }
    }

    /// Whether this is the unrestricted scope.
    pub fn is_all(&self) -> bool {
        matches!(self, Self::All)
    }
}

/// The scope of `op`: every office when unrestricted, else its offices and those of its
/// divisions (resolved now, so a change to an office's division applies at once).
pub async fn scope_of(
    store: &dyn crate::ports::Store,
    op: &crate::operator::Operator,
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
    Ok(Scope::Offices(Arc::new(set)))
}
