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
///
/// This is half of a principal's authority (the other half is its permissions): every object
/// that belongs to an office is loaded through [`Scope::sees`], and every grant of scope to
/// someone else (an operator, a key) must pass [`Scope::covers`].
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Scope {
    /// Everything (applications' keys, unrestricted operators, the system).
    #[default]
    All,
    /// Only objects of some offices (an operator's offices plus those of their divisions).
    Restricted(Arc<Restricted>),
}

/// A restricted scope: the offices seen now, and the divisions that bring their offices in
/// (kept so that granting a division, whose future offices come with it, can be checked).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Restricted {
    /// Every office seen: those assigned and those of the divisions, resolved now.
    pub offices: BTreeSet<Uuid>,
    /// The divisions assigned (their offices, present and future, are seen).
    pub divisions: BTreeSet<Uuid>,
}

impl Scope {
    /// A scope that sees nothing office-bound (a token holder's key: it reaches its own
    /// objects only through self-service).
    pub fn nothing() -> Self {
        Self::Restricted(Arc::new(Restricted::default()))
    }

    /// A scope of exactly these offices.
    pub fn offices(offices: impl IntoIterator<Item = Uuid>) -> Self {
        Self::Restricted(Arc::new(Restricted {
            offices: offices.into_iter().collect(),
            divisions: BTreeSet::new(),
        }))
    }

    /// Whether this is a restricted scope with no office and no division.
    pub fn is_nothing(&self) -> bool {
        match self {
            Self::All => false,
            Self::Restricted(r) => r.offices.is_empty() && r.divisions.is_empty(),
        }
    }

    /// Whether an object of `office` is visible; objects of no office are visible only to an
    /// unrestricted scope.
    pub fn sees(&self, office: Option<Uuid>) -> bool {
        match (self, office) {
            (Self::All, _) => true,
            (Self::Restricted(r), Some(o)) => r.offices.contains(&o),
            (Self::Restricted(_), None) => false,
        }
    }

    /// Whether this scope includes all of `other`, now and later: every office it sees, and
    /// every division it holds (a division brings offices opened in it later).
    pub fn covers(&self, other: &Scope) -> bool {
        match (self, other) {
            (Self::All, _) => true,
            (Self::Restricted(_), Self::All) => false,
            (Self::Restricted(a), Self::Restricted(b)) => {
                b.offices.is_subset(&a.offices) && b.divisions.is_subset(&a.divisions)
            }
        }
    }

    /// Whether a principal of this scope manages what has scope `other` (an operator, a key):
    /// `other` lies within this scope, and, unless this scope is unrestricted, reaches at
    /// least one office or division (what belongs to no office is managed only by those who
    /// see every office).
    pub fn manages(&self, other: &Scope) -> bool {
        self.covers(other) && (self.is_all() || !other.is_nothing())
    }

    /// Whether the division `d` lies wholly in this scope (including offices opened later).
    pub fn holds_division(&self, d: Uuid) -> bool {
        match self {
            Self::All => true,
            Self::Restricted(r) => r.divisions.contains(&d),
        }
    }

    /// The narrower of two scopes (what both see).
    pub fn intersect(&self, other: &Scope) -> Scope {
        match (self, other) {
            (Self::All, o) | (o, Self::All) => o.clone(),
            (Self::Restricted(a), Self::Restricted(b)) => Self::Restricted(Arc::new(Restricted {
                offices: a.offices.intersection(&b.offices).copied().collect(),
                divisions: a.divisions.intersection(&b.divisions).copied().collect(),
            })),
        }
    }

    /// The offices seen, or None for an unrestricted scope.
    pub fn office_set(&self) -> Option<&BTreeSet<Uuid>> {
        match self {
            Self::All => None,
            Self::Restricted(r) => Some(&r.offices),
        }
    }

    /// The condition restricting a list to this scope, on `column` (None: no restriction).
    pub fn condition(&self, column: &'static str) -> Option<Cond> {
        match self {
            Self::All => None,
            Self::Restricted(r) => {
                Some(Cond::In(column, r.offices.iter().map(|o| SqlValue::from(*o)).collect()))
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
