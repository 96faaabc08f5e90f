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
    let clock = crate::testing::TestClock::new();
    let svc = ApiKeyService::new(Arc::new(store.clone()), Arc::new(clock.clone()), Duration::ZERO);
    let (issued, _) = key_with(&svc, "rotating", &["certificates:read"], "30d").await;
    let cap = Principal::system().authorize::<perm::ApiKeysRotate>().unwrap();
    let ctx = RequestContext::default;

    let rotated = svc.rotate(&cap, issued.key.id, Some(3600)).await.unwrap();
    svc.authenticate(&rotated.secret.value, ctx()).await.unwrap();
    clock.advance(time::Duration::seconds(3599));
    svc.authenticate(&issued.secret.value, ctx()).await.expect("the old secret, within grace");
    clock.advance(time::Duration::seconds(2));
    let e = svc.authenticate(&issued.secret.value, ctx()).await.unwrap_err();
    assert!(matches!(e, CoreError::Unauthenticated(_)), "the grace is over: {e:?}");
    svc.authenticate(&rotated.secret.value, ctx()).await.expect("the new secret stays");

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
    // Revoking again is a no-op: nothing changes and nothing more is audited.
    let revokes =
        |s: &MemoryRecords| s.events().iter().filter(|e| e.action == "api_key.revoke").count();
    let (before, n) = (
        svc.get(&Principal::system().authorize().unwrap(), parent.key.id).await.unwrap(),
        revokes(&store),
    );
    let again = svc.revoke(&admin, parent.key.id, None, false).await.unwrap();
    assert_eq!(
        (again.revoked_at, again.revocation_reason),
        (before.revoked_at, before.revocation_reason)
    );
    assert_eq!(revokes(&store), n);
    let rotate = Principal::system().authorize::<perm::ApiKeysRotate>().unwrap();
    let e = svc.rotate(&rotate, parent.key.id, None).await.unwrap_err();
    assert_eq!(code(e), "api_key_revoked");
}

mod roles_and_operators {
    use std::sync::Arc;

    use uuid::Uuid;

    use crate::access::authz::{Principal, perm};
    use crate::access::operators::{CreateOperator, OperatorService};
    use crate::access::roles::{RoleInput, RoleService};
    use crate::access::scope::Scope;
    use crate::org::organizations::{OrgInput, OrgService};
    use crate::ports::SystemClock;
    use crate::testing::MemoryRecords;

    fn role(permissions: &[&str], excludes: &[&str]) -> RoleInput {
        RoleInput {
            description: String::new(),
            permissions: permissions.iter().map(|p| (*p).to_owned()).collect(),
            excludes: excludes.iter().map(|p| (*p).to_owned()).collect(),
        }
    }

    fn operator(name: &str, roles: &[&str]) -> CreateOperator {
        CreateOperator {
            username: name.into(),
            display_name: None,
            email: None,
            roles: roles.iter().map(|r| (*r).to_owned()).collect(),
            client_cert_sha256: None,
            unrestricted: None,
            divisions: vec![],
            offices: vec![],
        }
    }

    fn code(e: crate::CoreError) -> &'static str {
        e.code().as_str()
    }

    /// An office, and the role and operator services over the same store.
    async fn setup() -> (MemoryRecords, RoleService, OperatorService, Uuid) {
        let store = MemoryRecords::new();
        let org = OrgService::new(Arc::new(store.clone()), Arc::new(SystemClock));
        let w = Principal::system().authorize::<perm::OrganizationsWrite>().unwrap();
        let named =
            |n: &str, parent| OrgInput { name: Some(n.into()), parent, ..OrgInput::default() };
        let o = org.create_organization(&w, named("Acme", None)).await.unwrap();
        let d = org.create_division(&w, named("North", Some(o.id))).await.unwrap();
        let office = OrgInput { code: Some("N-01".into()), ..named("North office", Some(d.id)) };
        let office = org.create_office(&w, office).await.unwrap();
        let roles = RoleService::new(Arc::new(store.clone()), Arc::new(SystemClock));
        let ops = OperatorService::new(Arc::new(store.clone()), Arc::new(SystemClock));
        (store, roles, ops, office.id)
    }

    #[tokio::test]
    async fn roles_that_exclude_each_other_are_never_held_together() {
        let (_store, roles, ops, _) = setup().await;
        let w = Principal::system().authorize::<perm::RolesWrite>().unwrap();
        roles.create(&w, "issuer", role(&["certificate:issue"], &[])).await.unwrap();
        roles.create(&w, "approver", role(&["requests:approve"], &["issuer"])).await.unwrap();
        let c = Principal::system().authorize::<perm::OperatorsCreate>().unwrap();
        let both = ops.create(&c, operator("ana", &["issuer", "approver"])).await.unwrap_err();
        assert_eq!(code(both), "conflicting_roles");
        ops.create(&c, operator("bob", &["issuer", "approver"][..1])).await.unwrap();
        // A new exclusion may not split an operator who already holds both roles.
        roles.create(&w, "reviewer", role(&["audit:read"], &[])).await.unwrap();
        ops.create(&c, operator("eve", &["issuer", "reviewer"])).await.unwrap();
        let split = roles.update(&w, "reviewer", role(&["audit:read"], &["issuer"])).await;
        assert_eq!(code(split.unwrap_err()), "roles_held_together");
        let self_excl = roles.create(&w, "odd", role(&["audit:read"], &["odd"])).await;
        assert_eq!(code(self_excl.unwrap_err()), "invalid_excludes");
        // A role some operator holds is not deleted from under them.
        assert_eq!(code(roles.delete(&w, "issuer").await.unwrap_err()), "role_in_use");
    }

    #[tokio::test]
    async fn nobody_hands_out_more_authority_or_scope_than_they_hold() {
        let (_store, roles, ops, office) = setup().await;
        let w = Principal::system().authorize::<perm::RolesWrite>().unwrap();
        roles.create(&w, "reader", role(&["certificates:read"], &[])).await.unwrap();
        roles.create(&w, "reviewer", role(&["audit:read"], &[])).await.unwrap();
        // A restricted manager holding only what `reader` grants, plus making operators.
        let manager = Arc::new(Principal {
            permissions: crate::access::authz::PermissionSet::parse([
                "operators:create",
                "certificates:read",
            ])
            .unwrap(),
            scope: Scope::offices([office]),
            ..(*Principal::system()).clone()
        });
        let c = manager.authorize::<perm::OperatorsCreate>().unwrap();
        let more = CreateOperator { offices: vec![office], ..operator("ana", &["reviewer"]) };
        let more = ops.create(&c, more).await.unwrap_err();
        assert_eq!(code(more), "permission_escalation");
        let wide = CreateOperator { unrestricted: Some(true), ..operator("bob", &["reader"]) };
        assert_eq!(code(ops.create(&c, wide).await.unwrap_err()), "scope_escalation");
        // An operator of no office and no division would see everything: also out of reach.
        let everywhere = ops.create(&c, operator("cy", &["reader"])).await.unwrap_err();
        assert_eq!(code(everywhere), "scope_escalation");
        let elsewhere =
            CreateOperator { offices: vec![Uuid::now_v7()], ..operator("eve", &["reader"]) };
        assert_eq!(code(ops.create(&c, elsewhere).await.unwrap_err()), "unknown_office");
        let inside = CreateOperator { offices: vec![office], ..operator("dan", &["reader"]) };
        let dan = ops.create(&c, inside).await.unwrap();
        assert_eq!((dan.offices.as_slice(), dan.unrestricted), (&[office][..], false));
        // Nor does a role's author grant through it what they lack.
        let role_author = Arc::new(Principal {
            permissions: crate::access::authz::PermissionSet::parse([
                "roles:write",
                "certificates:read",
            ])
            .unwrap(),
            ..(*Principal::system()).clone()
        });
        let rw = role_author.authorize::<perm::RolesWrite>().unwrap();
        let grab = roles.create(&rw, "grab", role(&["audit:read"], &[])).await.unwrap_err();
        assert_eq!(code(grab), "permission_escalation");
    }
}

mod ui_sessions {
    use super::*;
    use crate::access::ui_session::{SessionPolicy, csrf_matches};
    use crate::error::AuthFailure;

    fn policy() -> SessionPolicy {
        SessionPolicy { lifetime: time::Duration::hours(8), idle: time::Duration::minutes(30) }
    }

    #[tokio::test]
    async fn a_session_ends_when_idle_too_long_or_past_its_lifetime_whatever_its_activity() {
        let store = MemoryRecords::new();
        let clock = crate::testing::TestClock::new();
        let svc =
            ApiKeyService::new(Arc::new(store.clone()), Arc::new(clock.clone()), Duration::ZERO);
        let (issued, _) = key_with(&svc, "ops", &["certificates:read"], "never").await;
        let ctx = RequestContext::default;
        let (idle, _) = svc.sign_in(&issued.secret.value, ctx(), policy()).await.unwrap();
        clock.advance(time::Duration::minutes(29));
        svc.resume_session(&idle.token, ctx(), policy()).await.expect("within the idle time");
        clock.advance(time::Duration::minutes(29));
        svc.resume_session(&idle.token, ctx(), policy()).await.expect("a request renewed it");
        clock.advance(time::Duration::minutes(31));
        let e = svc.resume_session(&idle.token, ctx(), policy()).await.unwrap_err();
        assert!(matches!(e, CoreError::Unauthenticated(AuthFailure::Unknown)), "{e:?}");

        let (busy, p) = svc.sign_in(&issued.secret.value, ctx(), policy()).await.unwrap();
        assert_eq!(p.api_key_id, Some(issued.key.id));
        for _ in 0..17 {
            clock.advance(time::Duration::minutes(29));
            let _ = svc.resume_session(&busy.token, ctx(), policy()).await;
        }
        // 17 × 29 min > 8 h: kept busy, it still ends.
        let e = svc.resume_session(&busy.token, ctx(), policy()).await.unwrap_err();
        assert!(matches!(e, CoreError::Unauthenticated(AuthFailure::Unknown)), "{e:?}");
        assert!(svc.resume_session("not-a-token", ctx(), policy()).await.is_err());
        // Ended sessions are pruned once past their lifetime.
        assert_eq!(svc.prune_ui_sessions().await.unwrap(), 2);
    }

    #[tokio::test]
    async fn a_session_is_its_key_and_stops_with_it_and_its_csrf_token_is_its_own() {
        let store = MemoryRecords::new();
        let svc = service(&store);
        let (issued, _) = key_with(&svc, "desk", &["certificates:read"], "30d").await;
        let ctx = RequestContext::default;
        let (one, _) = svc.sign_in(&issued.secret.value, ctx(), policy()).await.unwrap();
        let (two, _) = svc.sign_in(&issued.secret.value, ctx(), policy()).await.unwrap();
        assert_ne!(one.token, two.token);
        // The store keeps only the token's hash.
        assert_ne!(one.session.token_hash, one.token);
        assert!(csrf_matches(&one.session, &one.session.csrf_token));
        assert!(!csrf_matches(&one.session, &two.session.csrf_token));
        assert!(!csrf_matches(&one.session, ""));
        let (_, p) = svc.resume_session(&one.token, ctx(), policy()).await.unwrap();
        assert!(p.permissions.allows("certificates:read") && !p.permissions.allows("audit:read"));
        // Signing out ends that session only.
        svc.sign_out(&one.token, &p).await.unwrap();
        assert!(svc.resume_session(&one.token, ctx(), policy()).await.is_err());
        svc.resume_session(&two.token, ctx(), policy()).await.expect("the other session");
        // Revoking the key ends every session of it at once.
        let cap = Principal::system().authorize::<perm::ApiKeysRevoke>().unwrap();
        svc.revoke(&cap, issued.key.id, None, false).await.unwrap();
        let e = svc.resume_session(&two.token, ctx(), policy()).await.unwrap_err();
        assert!(matches!(e, CoreError::Unauthenticated(AuthFailure::Revoked)), "{e:?}");
        let actions: Vec<String> = store.events().into_iter().map(|e| e.action).collect();
        assert_eq!(
            actions.iter().filter(|a| a.starts_with("ui_session.")).collect::<Vec<_>>(),
            ["ui_session.sign_in", "ui_session.sign_in", "ui_session.sign_out"]
        );
    }

    #[tokio::test]
    async fn rotating_the_key_ends_its_sessions_and_a_short_idle_limit_still_keeps_a_busy_one() {
        let store = MemoryRecords::new();
        let clock = crate::testing::TestClock::new();
        let svc =
            ApiKeyService::new(Arc::new(store.clone()), Arc::new(clock.clone()), Duration::ZERO);
        let (issued, _) = key_with(&svc, "leaked", &["certificates:read"], "never").await;
        let ctx = RequestContext::default;
        let short =
            SessionPolicy { lifetime: time::Duration::hours(8), idle: time::Duration::minutes(1) };
        let (s, _) = svc.sign_in(&issued.secret.value, ctx(), short).await.unwrap();
        for _ in 0..10 {
            clock.advance(time::Duration::seconds(45));
            svc.resume_session(&s.token, ctx(), short).await.expect("in use, never idle");
        }
        let cap = Principal::system().authorize::<perm::ApiKeysRotate>().unwrap();
        svc.rotate(&cap, issued.key.id, Some(3600)).await.unwrap();
        let e = svc.resume_session(&s.token, ctx(), short).await.unwrap_err();
        assert!(matches!(e, CoreError::Unauthenticated(AuthFailure::Unknown)), "{e:?}");
        let rotation = store.events().into_iter().find(|e| e.action == "api_key.rotate").unwrap();
        assert_eq!(rotation.details["ui_sessions_ended"], 1);
    }
}
