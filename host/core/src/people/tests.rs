//! People's rules on the in-memory records port: scope on every read and write, and attributes
//! checked against the custom field definitions.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use crate::ErrorCode;
use std::sync::Arc;

use serde_json::json;
use uuid::Uuid;

use crate::CoreError;
use crate::access::authz::{Principal, perm};
use crate::access::scope::Scope;
use crate::org::organizations::{OrgInput, OrgService};
use crate::people::directory::{FieldInput, PeopleService, PersonInput};
use crate::people::{FieldType, PersonFilter};
use crate::ports::{NoValidators, PageRequest, SystemClock};
use crate::records::Collection;
use crate::testing::MemoryRecords;

fn restricted(offices: impl IntoIterator<Item = Uuid>) -> Arc<Principal> {
    Arc::new(Principal { scope: Scope::offices(offices), ..(*Principal::system()).clone() })
}

/// Two offices, and the people service over the same records.
async fn setup() -> (MemoryRecords, PeopleService, Uuid, Uuid) {
    let records = MemoryRecords::new();
    let org = OrgService::new(Arc::new(records.clone()), Arc::new(SystemClock));
    let w = Principal::system().authorize::<perm::OrganizationsWrite>().unwrap();
    let input = |name: &str, parent| OrgInput {
        name: Some(name.into()),
        parent: Some(parent),
        ..OrgInput::default()
    };
    let o = org
        .create_organization(&w, OrgInput { name: Some("Acme".into()), ..OrgInput::default() })
        .await
        .unwrap();
    let d = org.create_division(&w, input("North", o.id)).await.unwrap();
    let mut offices = Vec::new();
    for code in ["A-01", "B-01"] {
        let f = OrgInput { code: Some(code.into()), ..input(code, d.id) };
        offices.push(org.create_office(&w, f).await.unwrap().id);
    }
    let people = PeopleService::new(
        Arc::new(records.clone()),
        Arc::new(SystemClock),
        Arc::new(NoValidators),
    );
    (records, people, offices[0], offices[1])
}

fn person(office: Uuid, family: &str) -> PersonInput {
    PersonInput {
        office_id: Some(office),
        given_name: Some("Ana".into()),
        family_name: Some(family.into()),
        ..PersonInput::default()
    }
}

#[tokio::test]
async fn a_person_outside_the_callers_scope_is_neither_seen_nor_created_nor_moved_there() {
    let (records, svc, a, b) = setup().await;
    let all = Principal::system();
    let in_b = svc.create(&all.authorize().unwrap(), person(b, "Novak")).await.unwrap();
    let in_a = svc.create(&all.authorize().unwrap(), person(a, "Horvat")).await.unwrap();
    let only_a = restricted([a]);

    let err = svc.get(&only_a.authorize().unwrap(), in_b.id).await.unwrap_err();
    assert!(matches!(err, CoreError::NotFound { .. }), "{err:?}");
    let listed = svc
        .list(
            &only_a.authorize().unwrap(),
            PersonFilter::default(),
            PageRequest { after: None, limit: 10 },
        )
        .await
        .unwrap();
    let ids: Vec<Uuid> = listed.items.iter().map(|p| p.id).collect();
    assert_eq!(ids, [in_a.id], "a list shows exactly the people of the caller's offices");

    // Creating in an office out of scope reads as an unknown office (its existence is not told).
    let n = records.count(Collection::People);
    let err = svc.create(&only_a.authorize().unwrap(), person(b, "Kranjc")).await.unwrap_err();
    assert!(matches!(err, CoreError::Invalid { code: ErrorCode::UnknownOffice, .. }), "{err:?}");
    assert_eq!(records.count(Collection::People), n);

    // Nor may a caller move its own person into an office it does not see.
    let moved = PersonInput { office_id: Some(b), ..PersonInput::default() };
    let err = svc.update(&only_a.authorize().unwrap(), in_a.id, moved).await.unwrap_err();
    assert!(matches!(err, CoreError::Invalid { code: ErrorCode::UnknownOffice, .. }), "{err:?}");
    assert_eq!(svc.get(&all.authorize().unwrap(), in_a.id).await.unwrap().office_id, a);
}

#[tokio::test]
async fn attributes_are_held_to_the_custom_field_definitions() {
    let (records, svc, a, _) = setup().await;
    let all = Principal::system();
    let field = FieldInput {
        label: Some("Badge".into()),
        description: None,
        field_type: FieldType::Integer,
        required: true,
        pattern: None,
        allowed_values: vec![],
        min_length: None,
        max_length: None,
    };
    svc.put_field(&all.authorize().unwrap(), "badge", field).await.unwrap();

    let n = records.count(Collection::People);
    for attrs in [json!({}), json!({"badge": "seven"}), json!({"badge": 7, "unknown": 1})] {
        let input = PersonInput {
            attributes: Some(attrs.as_object().unwrap().clone()),
            ..person(a, "Novak")
        };
        let err = svc.create(&all.authorize().unwrap(), input).await.unwrap_err();
        assert!(
            matches!(err, CoreError::Invalid { code: ErrorCode::InvalidAttributes, .. }),
            "{attrs}: {err:?}"
        );
    }
    assert_eq!(records.count(Collection::People), n, "a refused person is not stored");

    let ok = PersonInput {
        attributes: Some(json!({"badge": 7}).as_object().unwrap().clone()),
        ..person(a, "Novak")
    };
    let p = svc.create(&all.authorize().unwrap(), ok).await.unwrap();
    assert_eq!(p.attributes["badge"], 7);
    let last = records.events().pop().unwrap();
    assert_eq!(
        (last.action.as_str(), last.object_id.as_str()),
        ("person.create", p.id.to_string().as_str())
    );
}
