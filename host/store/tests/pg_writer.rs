//! The PostgreSQL group writer under connection loss. PostgreSQL only: it runs when
//! SIGIL_TEST_DATABASE_URL names a server (as CI's does) and says it skipped otherwise.
#![allow(clippy::unwrap_used)] // A test: a broken fixture should stop it loudly.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use sigil_core::audit::{ChainVerifier, GENESIS_HASH};
use sigil_core::ports::{AuditFilter, AuditLog};
use sigil_store::testing::{TestDb, issue_one};
use sqlx::any::AnyPoolOptions;

/// Killing the group writer's connection (and every other of the database's) again and again
/// under load breaks batches at every step: at BEGIN, mid-statement, at COMMIT (then whether the
/// batch landed is checked on a new connection), and on a connection killed while idle. A
/// failed batch is retried unit by unit on a new connection; the writer forgets the audit head
/// its last commit left and reads it again. Whatever failed, every acknowledged certificate is
/// stored, every stored one has its one audit event, the chain verifies, and the writer serves
/// again afterwards.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writer_connections_killed_under_load_lose_no_acknowledged_unit_and_keep_one_chain() {
    let Some(db) = TestDb::postgres().await else {
        eprintln!("skipped: SIGIL_TEST_DATABASE_URL is not set");
        return;
    };
    let store = Arc::new(db.store().await);
    let admin = AnyPoolOptions::new().max_connections(1).connect(&db.url).await.unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let killer = {
        let (stop, admin) = (stop.clone(), admin.clone());
        tokio::spawn(async move {
            let (mut killed, mut writers) = (0, 0);
            while !stop.load(Ordering::Relaxed) {
                tokio::time::sleep(Duration::from_millis(30)).await;
                let (all, writer): (i64, i64) = sqlx::query_as(
                    "SELECT count(*), count(*) FILTER (WHERE name = 'sigil-group-writer') \
                     FROM (SELECT application_name AS name, pg_terminate_backend(pid) \
                     FROM pg_stat_activity \
                     WHERE datname = current_database() AND pid <> pg_backend_pid()) k",
                )
                .fetch_one(&admin)
                .await
                .unwrap();
                killed += all;
                writers += writer;
            }
            (killed, writers)
        })
    };
    let mut tasks = vec![];
    for t in 0..16 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let (mut acknowledged, mut failed) = (vec![], 0);
            for i in 0..80 {
                let serial = format!("k{t}-{i}");
                match issue_one(store.as_ref(), &serial, &serial).await {
                    Ok(()) => acknowledged.push(serial),
                    Err(_) => failed += 1,
                }
            }
            (acknowledged, failed)
        }));
    }
    let (mut acknowledged, mut failed) = (vec![], 0);
    for t in tasks {
        let (a, f) = t.await.unwrap();
        acknowledged.extend(a);
        failed += f;
    }
    stop.store(true, Ordering::Relaxed);
    let (killed, writers) = killer.await.unwrap();
    assert!(writers > 0, "the writer's connection was never killed ({killed} backends were)");
    assert!(!acknowledged.is_empty(), "nothing was acknowledged between the kills");

    // The writers serve again: the first unit may meet a connection killed last and fail.
    let mut after = Err(sigil_core::StoreError::NotFound);
    for i in 0..3 {
        let serial = format!("after-{i}");
        after = issue_one(store.as_ref(), &serial, &serial).await;
        if after.is_ok() {
            acknowledged.push(format!("after-{i}"));
            break;
        }
    }
    assert!(after.is_ok(), "the writers did not recover: {after:?}");

    let stored: HashSet<String> = sqlx::query_scalar("SELECT serial FROM certificates")
        .fetch_all(&admin)
        .await
        .unwrap()
        .into_iter()
        .collect();
    let lost: Vec<&String> = acknowledged.iter().filter(|s| !stored.contains(*s)).collect();
    assert!(lost.is_empty(), "acknowledged but not stored: {lost:?}");
    let audited: HashSet<String> =
        sqlx::query_scalar("SELECT object_id FROM audit_events WHERE action = 'certificate.issue'")
            .fetch_all(&admin)
            .await
            .unwrap()
            .into_iter()
            .collect();
    assert_eq!(audited, stored, "each stored certificate has its one audit event, no other");

    let events = store.audit_events(&AuditFilter::default(), 10_000).await.unwrap();
    let mut v = ChainVerifier::new(1, GENESIS_HASH);
    events.into_iter().for_each(|e| v.push(e));
    let r = v.finish(Some(store.audit_head().await.unwrap().seq));
    assert!(r.valid, "{r:?}");
    eprintln!(
        "{} acknowledged, {failed} failed, {} stored, {killed} backends killed ({writers} of \
         the writer)",
        acknowledged.len(),
        stored.len()
    );
    admin.close().await;
    store.close().await;
    db.cleanup().await;
}
