//! What a principal sees of office-bound objects: its scope, the other half of its authority
//! (with its permissions). Every object that belongs to an office is loaded through
//! [`Scope::sees`], and every grant of scope to someone else must pass [`Scope::covers`].

use std::collections::BTreeSet;
use std::sync::Arc;

use uuid::Uuid;

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

    /// Whether this is the unrestricted scope.
    pub fn is_all(&self) -> bool {
        matches!(self, Self::All)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;
    use std::sync::Arc;

    use uuid::Uuid;

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
