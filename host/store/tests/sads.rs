//! The store spends a SAD (one conditional update, in the unit of the signing's audit event)
//! exactly as core's rule `Sad::spend` says, refusals worded alike, on SQLite and (with
//! SIGIL_TEST_DATABASE_URL) on PostgreSQL.
#![allow(clippy::unwrap_used)] // A test: a broken fixture should stop it loudly.

use sigil_core::ErrorCode;
use sigil_core::StoreError;
use sigil_core::access::authz::Principal;
use sigil_core::audit::{AuditAction, NewAuditEvent};
use sigil_core::ports::{Store, WriteOp};
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
