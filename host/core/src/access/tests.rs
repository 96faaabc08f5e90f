//! API key rules on the in-memory access port: a key never holds more authority than the key
//! that mints it nor outlives it, rotation and revocation take effect at once, and each change
//! carries its audit event.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;
use std::time::Duration;

use crate::CoreError;
use crate::access::api_keys::{ApiKeyService, CreateApiKey};
use crate::access::authz::{Principal, RequestContext, perm};
use crate::ports::SystemClock;
use crate::testing::MemoryRecords;

fn service(store: &MemoryRecords) -> ApiKeyService {
    // No cache: each authentication reads the store, as another node would.
    ApiKeyService::new(Arc::new(store.clone()), Arc::new(SystemClock), Duration::ZERO)
}

fn create(name: &str, permissions: &[&str], expires: &str) -> CreateApiKey {
    CreateApiKey {
        name: name.into(),
        description: String::new(),
        expires: expires.into(),
        permissions: permissions.iter().map(|p| (*p).to_owned()).collect(),
        rate_limit: None,
        ip_whitelist: vec![],
        client_cert_sha256: None,
        holder_id: None,
        operator_id: None,
    }
}

/// A key minted by the system with `permissions`, and the principal it authenticates as.
async fn key_with(
    svc: &ApiKeyService,
    name: &str,
    permissions: &[&str],
    expires: &str,
) -> (crate::access::api_keys::IssuedApiKey, Arc<Principal>) {
    let cap = Principal::system().authorize::<perm::ApiKeysCreate>().unwrap();
    let issued = svc.create(&cap, create(name, permissions, expires)).await.unwrap();
    let p = svc.authenticate(&issued.secret.value, RequestContext::default()).await.unwrap();
    (issued, p)
}

/// An expiry `days` from now, as an RFC 3339 time.
fn in_days(days: i64) -> String {
    let t = time::OffsetDateTime::now_utc() + time::Duration::days(days);
    t.format(&time::format_description::well_known::Rfc3339).unwrap()
}

fn code(e: CoreError) -> &'static str {
    e.code().as_str()
}

#[tokio::test]
async fn a_key_mints_only_keys_within_its_own_authority() {
    let store = MemoryRecords::new();
    let svc = service(&store);
    let (parent, p) =
        key_with(&svc, "minter", &["api_keys:create", "certificates:read"], "30d").await;
    let cap = p.authorize::<perm::ApiKeysCreate>().unwrap();

    let wider = svc.create(&cap, create("wider", &["audit:read"], &in_days(7))).await.unwrap_err();
    assert_eq!(code(wider), "permission_escalation");
    let star = svc.create(&cap, create("star", &["*"], &in_days(7))).await.unwrap_err();
    assert_eq!(code(star), "permission_escalation");
    let longer = svc.create(&cap, create("longer", &["certificates:read"], "60d")).await;
    assert_eq!(code(longer.unwrap_err()), "expiry_beyond_creator");
    let never = svc.create(&cap, create("never", &["certificates:read"], "never")).await;
    assert_eq!(code(never.unwrap_err()), "expiry_beyond_creator");

    let child =
        svc.create(&cap, create("child", &["certificates:read"], &in_days(7))).await.unwrap();
    assert_eq!(child.key.parent_id, Some(parent.key.id), "the minting key is recorded");
    let creates: Vec<_> =
        store.events().into_iter().filter(|e| e.action == "api_key.create").collect();
    assert_eq!(creates.len(), 2, "only the two keys made are audited as created");
}

#[tokio::test]
async fn a_rotated_key_answers_to_the_new_secret_and_the_old_one_only_within_its_grace() {
    let store = MemoryRecords::new();
    let svc = service(&store);
    let (issued, _) = key_with(&svc, "rotating", &["certificates:read"], "30d").await;
    let cap = Principal::system().authorize::<perm::ApiKeysRotate>().unwrap();
    let ctx = RequestContext::default;

    let rotated = svc.rotate(&cap, issued.key.id, Some(3600)).await.unwrap();
    svc.authenticate(&rotated.secret.value, ctx()).await.unwrap();
    svc.authenticate(&issued.secret.value, ctx()).await.expect("the old secret, within grace");

    let again = svc.rotate(&cap, issued.key.id, None).await.unwrap();
    svc.authenticate(&again.secret.value, ctx()).await.unwrap();
    for stale in [&issued.secret.value, &rotated.secret.value] {
        let e = svc.authenticate(stale, ctx()).await.unwrap_err();
        assert!(matches!(e, CoreError::Unauthenticated(_)), "{e:?}");
    }
    let rotations = store.events().into_iter().filter(|e| e.action == "api_key.rotate").count();
    assert_eq!(rotations, 2);
}

#[tokio::test]
async fn a_revoked_key_stops_at_once_and_its_revocation_can_reach_the_keys_it_minted() {
    let store = MemoryRecords::new();
    let svc = service(&store);
    let (parent, p) =
        key_with(&svc, "parent", &["api_keys:create", "certificates:read"], "30d").await;
    let cap = p.authorize::<perm::ApiKeysCreate>().unwrap();
    let child =
        svc.create(&cap, create("child", &["certificates:read"], &in_days(7))).await.unwrap();

    let admin = Principal::system().authorize::<perm::ApiKeysRevoke>().unwrap();
    svc.revoke(&admin, parent.key.id, Some("left".into()), true).await.unwrap();
    for secret in [&parent.secret.value, &child.secret.value] {
        let e = svc.authenticate(secret, RequestContext::default()).await.unwrap_err();
        assert!(matches!(e, CoreError::Unauthenticated(_)), "{e:?}");
    }
    let again = svc.revoke(&admin, parent.key.id, None, false).await;
    assert!(again.is_ok() || matches!(again, Err(CoreError::Conflict { .. })), "{again:?}");
    let rotate = Principal::system().authorize::<perm::ApiKeysRotate>().unwrap();
    let e = svc.rotate(&rotate, parent.key.id, None).await.unwrap_err();
    assert_eq!(code(e), "api_key_revoked");
}
