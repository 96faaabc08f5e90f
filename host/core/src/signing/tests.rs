//! CSC provider rules on the in-memory records port: one default, checked fields, audited
//! changes, and what `info` answers from.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;

use crate::CoreError;
use crate::access::authz::{Principal, perm};
use crate::ports::SystemClock;
use crate::records::Collection;
use crate::signing::providers::{CscProviderService, ProviderInput};
use crate::testing::MemoryRecords;

fn input(name: &str, default: bool) -> ProviderInput {
    ProviderInput {
        name: Some(name.into()),
        region: Some("SI".into()),
        default: Some(default),
        ..ProviderInput::default()
    }
}

#[tokio::test]
async fn a_new_default_provider_takes_the_default_from_the_others() {
    let records = MemoryRecords::new();
    let svc = CscProviderService::new(Arc::new(records.clone()), Arc::new(SystemClock));
    assert!(svc.current().await.unwrap().is_none(), "no provider: info uses built-in values");
    let w = Principal::system().authorize::<perm::CscProvidersWrite>().unwrap();
    let a = svc.create(&w, input("Main", true)).await.unwrap();
    let b = svc.create(&w, input("Backup", false)).await.unwrap();
    assert_eq!(svc.current().await.unwrap().unwrap().id, a.id);

    let c = svc.create(&w, input("New main", true)).await.unwrap();
    let defaults: Vec<_> =
        svc.list().await.unwrap().into_iter().filter(|p| p.default).map(|p| p.id).collect();
    assert_eq!(defaults, [c.id], "exactly one default");
    assert_eq!(svc.current().await.unwrap().unwrap().id, c.id);

    // Without a default, info answers from the oldest.
    svc.delete(&w, c.id).await.unwrap();
    assert_eq!(svc.current().await.unwrap().unwrap().id, a.id);
    assert!(!svc.get(a.id).await.unwrap().default);
    let actions: Vec<_> = records.events().into_iter().map(|e| e.action).collect();
    assert_eq!(
        actions,
        [
            "csc_provider.create",
            "csc_provider.create",
            "csc_provider.create",
            "csc_provider.delete"
        ]
    );
    assert_eq!(svc.get(b.id).await.unwrap().name, "Backup");
}

#[tokio::test]
async fn a_provider_with_bad_fields_is_refused_and_not_stored() {
    let records = MemoryRecords::new();
    let svc = CscProviderService::new(Arc::new(records.clone()), Arc::new(SystemClock));
    let w = Principal::system().authorize::<perm::CscProvidersWrite>().unwrap();
    let cases = [
        (ProviderInput { region: Some("si".into()), ..input("A", false) }, "invalid_region"),
        (
            ProviderInput { language: Some("english!".into()), ..input("A", false) },
            "invalid_language",
        ),
        (ProviderInput { auth_types: Some(vec![]), ..input("A", false) }, "invalid_auth_types"),
        // Says PNG, holds something else.
        (
            ProviderInput {
                logo: Some("data:image/png;base64,R0lGODlh".into()),
                ..input("A", false)
            },
            "invalid_logo",
        ),
        (
            ProviderInput {
                logo: Some("data:image/svg+xml;base64,PHN2Zz4=".into()),
                ..input("A", false)
            },
            "invalid_logo",
        ),
        (input(" ", false), "invalid_name"),
    ];
    for (i, code) in cases {
        let err = svc.create(&w, i).await.unwrap_err();
        assert!(matches!(err, CoreError::Invalid { code: c, .. } if c == code), "{code}: {err:?}");
    }
    assert_eq!(records.count(Collection::Providers), 0);
    assert!(records.events().is_empty(), "a refused change is not audited as done");
    // An update that changes nothing writes nothing.
    let p = svc.create(&w, input("Main", true)).await.unwrap();
    svc.update(&w, p.id, input("Main", true)).await.unwrap();
    assert_eq!(records.events().len(), 1);
}
