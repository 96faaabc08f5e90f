//! The organisation's rules on the in-memory records port: what a restricted caller sees, who
//! changes the structure, and that every change carries its audit event.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use crate::ErrorCode;
use std::sync::Arc;

use uuid::Uuid;

use crate::CoreError;
use crate::access::authz::{Principal, perm};
use crate::access::scope::Scope;
use crate::org::organizations::{OrgInput, OrgService};
use crate::org::{Division, Office, OrgFilter, Organization};
use crate::ports::{PageRequest, SystemClock};
use crate::testing::MemoryRecords;

fn service(records: &MemoryRecords) -> OrgService {
    OrgService::new(Arc::new(records.clone()), Arc::new(SystemClock))
}

fn admin() -> Arc<Principal> {
    Principal::system()
}

/// An operator who sees only `offices`.
fn restricted(offices: impl IntoIterator<Item = Uuid>) -> Arc<Principal> {
    Arc::new(Principal { scope: Scope::offices(offices), ..(*Principal::system()).clone() })
}

fn page() -> PageRequest {
    PageRequest { after: None, limit: 50 }
}

fn named(name: &str, parent: Option<Uuid>) -> OrgInput {
    OrgInput { name: Some(name.into()), parent, ..OrgInput::default() }
}

/// Two organizations, each with one division holding one office.
async fn two_trees(svc: &OrgService) -> [(Organization, Division, Office); 2] {
    let w = admin().authorize::<perm::OrganizationsWrite>().unwrap();
    let mut out = Vec::new();
    for (n, code) in [("Acme", "ACM-01"), ("Beta", "BET-01")] {
        let o = svc.create_organization(&w, named(n, None)).await.unwrap();
        let d = svc.create_division(&w, named(&format!("{n} north"), Some(o.id))).await.unwrap();
        let f = svc
            .create_office(
                &w,
                OrgInput { code: Some(code.into()), ..named(&format!("{n} office"), Some(d.id)) },
            )
            .await
            .unwrap();
        out.push((o, d, f));
    }
    out.try_into().unwrap()
}

#[tokio::test]
async fn a_restricted_caller_sees_only_its_offices_and_what_holds_them() {
    let records = MemoryRecords::new();
    let svc = service(&records);
    let [(a, a_div, a_off), (b, b_div, b_off)] = two_trees(&svc).await;
    let r = restricted([a_off.id]).authorize::<perm::OrganizationsRead>().unwrap();

    let orgs = svc.organizations(&r, None, page()).await.unwrap();
    assert_eq!(orgs.items.iter().map(|o| o.id).collect::<Vec<_>>(), [a.id]);
    let divs = svc.divisions(&r, OrgFilter::default(), page()).await.unwrap();
    assert_eq!(divs.items.iter().map(|d| d.id).collect::<Vec<_>>(), [a_div.id]);
    let offices = svc.offices(&r, OrgFilter::default(), page()).await.unwrap();
    assert_eq!(offices.items.iter().map(|o| o.id).collect::<Vec<_>>(), [a_off.id]);

    // What lies outside is not found, not forbidden: its existence is not disclosed.
    for err in [
        svc.organization(&r, b.id).await.unwrap_err(),
        svc.division(&r, b_div.id).await.unwrap_err(),
        svc.office(&r, b_off.id).await.unwrap_err(),
    ] {
        assert!(matches!(err, CoreError::NotFound { .. }), "{err:?}");
    }
    assert_eq!(svc.office(&r, a_off.id).await.unwrap().id, a_off.id);

    // An unrestricted caller sees both trees; a caller of no office sees nothing.
    let all = admin().authorize::<perm::OrganizationsRead>().unwrap();
    assert_eq!(svc.offices(&all, OrgFilter::default(), page()).await.unwrap().items.len(), 2);
    let none = restricted([]).authorize::<perm::OrganizationsRead>().unwrap();
    assert!(svc.organizations(&none, None, page()).await.unwrap().items.is_empty());
}

#[tokio::test]
async fn only_an_unrestricted_caller_changes_the_structure_above_an_office() {
    let records = MemoryRecords::new();
    let svc = service(&records);
    let [(a, _, a_off), _] = two_trees(&svc).await;
    let before = records.events().len();
    // The permission is one a restricted operator may hold (it edits its offices); the
    // structure above them is the service's own refusal.
    let w = restricted([a_off.id]).authorize::<perm::OrganizationsWrite>().unwrap();
    let refused = svc.update_organization(&w, a.id, named("Renamed", None)).await.unwrap_err();
    assert!(
        matches!(refused, CoreError::Forbidden { code: ErrorCode::ScopeRestricted, .. }),
        "{refused:?}"
    );
    let refused = svc.create_division(&w, named("Mine", Some(a.id))).await.unwrap_err();
    assert!(
        matches!(refused, CoreError::Forbidden { code: ErrorCode::ScopeRestricted, .. }),
        "{refused:?}"
    );
    assert_eq!(records.events().len(), before, "a refused change writes no audit event");
    let r = admin().authorize::<perm::OrganizationsRead>().unwrap();
    assert_eq!(svc.organization(&r, a.id).await.unwrap().name, "Acme");
}

#[tokio::test]
async fn an_office_belongs_to_its_divisions_organization_and_each_change_is_audited() {
    let records = MemoryRecords::new();
    let svc = service(&records);
    let [(a, a_div, a_off), _] = two_trees(&svc).await;
    assert_eq!((a_off.organization_id, a_off.division_id), (a.id, a_div.id));
    let actions: Vec<String> = records.events().into_iter().map(|e| e.action).collect();
    assert_eq!(actions.len(), 6);
    assert_eq!(actions[..3], ["organization.create", "division.create", "office.create"]);

    let w = admin().authorize::<perm::OrganizationsWrite>().unwrap();
    // Parents must exist.
    let err = svc.create_division(&w, named("Orphan", Some(Uuid::now_v7()))).await.unwrap_err();
    assert!(
        matches!(err, CoreError::Invalid { code: ErrorCode::UnknownOrganization, .. }),
        "{err:?}"
    );
    let err = svc.create_office(&w, named("Orphan", Some(Uuid::now_v7()))).await.unwrap_err();
    assert!(matches!(err, CoreError::Invalid { code: ErrorCode::UnknownDivision, .. }), "{err:?}");

    // A rename is audited with before and after; a change to nothing writes nothing.
    svc.update_organization(&w, a.id, named("Acme Ltd", None)).await.unwrap();
    let last = records.events().pop().unwrap();
    assert_eq!(last.action, "organization.update");
    assert_eq!(last.details["before"]["name"], "Acme");
    assert_eq!(last.details["after"]["name"], "Acme Ltd");
    let n = records.events().len();
    svc.update_organization(&w, a.id, named("Acme Ltd", None)).await.unwrap();
    assert_eq!(records.events().len(), n);
}

#[tokio::test]
async fn lists_page_in_creation_order_with_their_filters() {
    let records = MemoryRecords::new();
    let svc = service(&records);
    let w = admin().authorize::<perm::OrganizationsWrite>().unwrap();
    for n in ["Alpha", "beta", "Gamma", "alphabet"] {
        svc.create_organization(&w, named(n, None)).await.unwrap();
    }
    let r = admin().authorize::<perm::OrganizationsRead>().unwrap();
    let first = svc.organizations(&r, None, PageRequest { after: None, limit: 3 }).await.unwrap();
    let names: Vec<_> = first.items.iter().map(|o| o.name.as_str()).collect();
    assert_eq!(names, ["Alpha", "beta", "Gamma"]);
    let cursor = first.next_cursor.expect("a second page");
    let rest =
        svc.organizations(&r, None, PageRequest { after: Some(cursor), limit: 3 }).await.unwrap();
    assert_eq!(rest.items.iter().map(|o| o.name.as_str()).collect::<Vec<_>>(), ["alphabet"]);
    assert!(rest.next_cursor.is_none());
    let alpha = svc.organizations(&r, Some("ALPHA".into()), page()).await.unwrap();
    assert_eq!(alpha.items.len(), 2);
    let err = svc
        .organizations(&r, None, PageRequest { after: Some("nope".into()), limit: 3 })
        .await
        .unwrap_err();
    assert!(matches!(err, CoreError::Invalid { code: ErrorCode::InvalidCursor, .. }), "{err:?}");
}
