//! The store spends a SAD (one conditional update, in the unit of the signing's audit event)
//! exactly as core's rule `Sad::spend` says, refusals worded alike, on SQLite and (with
//! SIGIL_TEST_DATABASE_URL) on PostgreSQL.
#![allow(clippy::unwrap_used)] // A test: a broken fixture should stop it loudly.

use sigil_core::ErrorCode;
use sigil_core::StoreError;
use sigil_core::access::authz::Principal;
use sigil_core::audit::{AuditAction, ChainVerifier, GENESIS_HASH, NewAuditEvent};
use sigil_core::ports::{AuditFilter, AuditLog as _, Store, WriteOp};
use sigil_core::signing::credential::{Sad, SadRefusal, SadUse};
use sigil_store::testing::TestDb;
use time::{Duration, OffsetDateTime};
use uuid::Uuid;

fn event() -> NewAuditEvent {
    NewAuditEvent::new(&Principal::system(), AuditAction::CscSignHash, "credential", "c")
}

#[tokio::test]
async fn the_store_spends_a_sad_as_the_core_rule_says() {
    let now = OffsetDateTime::from_unix_timestamp(1_800_000_000).unwrap();
    let (c, s, other) = (Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7());
    let sads = [
        Sad {
            id: "scal1".into(),
            credential_id: c,
            signer_id: s,
            remaining: 3,
            hashes: None,
            expires_at: now + Duration::minutes(5),
            created_at: now,
        },
        Sad {
            id: "scal2".into(),
            credential_id: c,
            signer_id: s,
            remaining: 3,
            hashes: Some(vec!["aa".into(), "bb".into(), "cc".into()]),
            expires_at: now + Duration::minutes(5),
            created_at: now,
        },
    ];
    let us = |d: Duration| sigil_core::audit::unix_micros(now + d);
    let use_ = |sad: &str, cred: Uuid, signer: Uuid, hashes: &[&str], at: i64| SadUse {
        id: sad.into(),
        credential_id: cred,
        signer_id: signer,
        hashes: hashes.iter().map(|h| (*h).to_owned()).collect(),
        now_us: at,
    };
    let t = us(Duration::seconds(1));
    let uses = [
        use_("scal1", c, s, &["01", "02"], t),
        use_("scal1", c, s, &["03", "04"], t), // one left
        use_("scal1", other, s, &["03"], t),
        use_("scal1", c, other, &["03"], t),
        use_("scal1", c, s, &["03"], us(Duration::minutes(5))), // expired
        use_("scal1", c, s, &["03"], t),
        use_("scal1", c, s, &["05"], t), // spent
        use_("nope", c, s, &["01"], t),
        use_("scal2", c, s, &["BB"], t),
        use_("scal2", c, s, &["bb"], t),       // signed once already
        use_("scal2", c, s, &["aa", "dd"], t), // one not authorized: nothing spent
        use_("scal2", c, s, &["cc", "aa"], t),
        use_("scal2", c, s, &["aa"], t),
    ];
    for db in TestDb::all().await {
        let store = db.store().await;
        let mut tx = store.begin().await.unwrap();
        for sad in &sads {
            tx.insert_sad(sad).await.unwrap();
        }
        tx.commit(vec![event()], now).await.unwrap();
        let mut model = sads.clone();
        let mut outcomes = Vec::new();
        for u in &uses {
            let want = match model.iter_mut().find(|m| m.id == u.id) {
                Some(m) => m.spend(u).map_err(|r| r.description().to_owned()),
                None => Err(SadRefusal::Invalid.description().to_owned()),
            };
            let got = match store
                .commit_ops(vec![WriteOp::ConsumeSad(u.clone())], vec![event()], now)
                .await
            {
                Ok(_) => Ok(()),
                Err(StoreError::Refused { code: ErrorCode::InvalidRequest, detail }) => Err(detail),
                Err(e) => panic!("{}: {e:?}", db.backend),
            };
            assert_eq!(got, want, "{}: {u:?}", db.backend);
            outcomes.push(got.is_ok());
        }
        // The sequence both spends and refuses, so the comparison is not one-sided.
        assert_eq!(outcomes.iter().filter(|o| **o).count(), 4, "{outcomes:?}");
        store.close().await;
        db.cleanup().await;
    }
}

/// Spends arriving together are written as one batch (PostgreSQL spends a batch's SADs in one
/// statement, SQLite one unit after another in one transaction); the accounting must be what
/// spending them one at a time gives: no SAD spent past its count, no SCAL 2 digest signed twice,
/// a refused use costing nothing and auditing nothing.
#[tokio::test]
async fn spends_arriving_together_are_counted_exactly() {
    let now = OffsetDateTime::from_unix_timestamp(1_800_000_000).unwrap();
    let (c, s, other) = (Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7());
    let sad = |id: &str, remaining: u32, hashes: Option<Vec<String>>| Sad {
        id: id.into(),
        credential_id: c,
        signer_id: s,
        remaining,
        hashes,
        expires_at: now + Duration::minutes(5),
        created_at: now,
    };
    let authorized: Vec<String> = (0..6).map(|i| format!("{i:02x}")).collect();
    let sads = [sad("few", 5, None), sad("many", 1_000, None), sad("scal2", 6, Some(authorized))];
    let t = sigil_core::audit::unix_micros(now + Duration::seconds(1));
    let use_ = |sad: &str, signer: Uuid, hashes: Vec<String>| SadUse {
        id: sad.into(),
        credential_id: c,
        signer_id: signer,
        hashes,
        now_us: t,
    };
    // First only uses that all pass, so that they are written as whole batches (a refusal in
    // a batch sends its units back one by one): 5 of a SAD good for 5, 40 of one good for
    // 1,000, each authorized SCAL 2 digest once. Then uses that are mostly refused: more of the
    // spent SAD, another signer's, each SCAL 2 digest again and one never authorized.
    let valid: Vec<SadUse> = (0..5)
        .map(|i| use_("few", s, vec![format!("{i:02x}")]))
        .chain((0..40).map(|i| use_("many", s, vec![format!("{i:02x}")])))
        .chain((0..6).map(|i| use_("scal2", s, vec![format!("{i:02x}")])))
        .collect();
    let mixed: Vec<SadUse> = (0..10)
        .map(|i| use_("few", s, vec![format!("{i:02x}")]))
        .chain((0..20).map(|i| use_("many", s, vec![format!("{i:02x}")])))
        .chain((0..20).map(|i| use_("many", other, vec![format!("{i:02x}")])))
        .chain((0..6).chain([9]).map(|i| use_("scal2", s, vec![format!("{i:02x}")])))
        .collect();
    for db in TestDb::all().await {
        let store = db.store().await;
        let mut tx = store.begin().await.unwrap();
        for sad in &sads {
            tx.insert_sad(sad).await.unwrap();
        }
        tx.commit(vec![event()], now).await.unwrap();
        let spend_all = |uses: &'_ [SadUse]| {
            let calls = uses.iter().map(|u| {
                store.commit_ops(vec![WriteOp::ConsumeSad(u.clone())], vec![event()], now)
            });
            futures_util::future::join_all(calls)
        };
        for (u, r) in valid.iter().zip(spend_all(&valid).await) {
            assert!(r.is_ok(), "{}: {u:?}: {r:?}", db.backend);
        }
        let mut spent = std::collections::BTreeMap::<(&str, bool), usize>::new();
        for (u, r) in mixed.iter().zip(spend_all(&mixed).await) {
            match r {
                Ok(_) => *spent.entry((u.id.as_str(), u.signer_id == s)).or_default() += 1,
                Err(StoreError::Refused { code: ErrorCode::InvalidRequest, .. }) => {}
                Err(e) => panic!("{}: {u:?}: {e:?}", db.backend),
            }
        }
        // Only the big SAD had uses left; nothing of another signer's or twice-signed passed.
        assert_eq!(spent, [(("many", true), 20)].into_iter().collect(), "{}", db.backend);
        // Exactly spent: none left of the small one, 940 of the big one.
        let next = |id: &str| {
            store.commit_ops(
                vec![WriteOp::ConsumeSad(use_(id, s, vec!["ff".into()]))],
                vec![event()],
                now,
            )
        };
        assert!(next("few").await.is_err(), "{}", db.backend);
        assert!(next("many").await.is_ok(), "{}", db.backend);
        // One event per spend (and one for the set-up), on a chain that verifies.
        let events = store.audit_events(&AuditFilter::default(), 1_000).await.unwrap();
        assert_eq!(events.len(), 1 + 5 + 40 + 6 + 20 + 1, "{}", db.backend);
        let mut v = ChainVerifier::new(1, GENESIS_HASH);
        events.into_iter().for_each(|e| v.push(e));
        let head = store.audit_head().await.unwrap();
        assert!(v.finish(Some(head.seq)).valid, "{}", db.backend);
        store.close().await;
        db.cleanup().await;
    }
}
