//! Storage behaviour, run on SQLite and (with SIGIL_TEST_DATABASE_URL) on PostgreSQL.
#![allow(clippy::unwrap_used)] // A test: a broken fixture should stop it loudly.

use std::sync::Arc;
use std::time::Duration;

use sigil_core::CoreError;
use sigil_core::access::api_key::KeyStatus;
use sigil_core::access::api_keys::{ApiKeyService, CreateApiKey};
use sigil_core::access::authz::{Principal, perm};
use sigil_core::audit::{ChainVerifier, Checkpoint, GENESIS_HASH};
use sigil_core::ports::{ApiKeyFilter, AuditFilter, PageRequest, Store, SystemClock};
use sigil_store::SqlStore;
use sigil_store::testing::{TestDb, certificate as cert, issue_one};

fn create(name: &str) -> CreateApiKey {
    CreateApiKey {
        name: name.into(),
        description: "d".into(),
        expires: "30d".into(),
        permissions: vec!["audit:read".into()],
        rate_limit: None,
        ip_whitelist: vec!["10.0.0.0/8".into()],
        client_cert_sha256: None,
        holder_id: None,
        operator_id: None,
    }
}

async fn each_backend<F, Fut>(f: F)
where
    F: Fn(Arc<dyn Store>) -> Fut,
    Fut: Future<Output = ()>,
{
    for db in TestDb::all().await {
        let store = db.store().await;
        eprintln!("backend: {}", db.backend);
        f(Arc::new(store.clone())).await;
        store.close().await;
        db.cleanup().await;
    }
}

#[tokio::test]
async fn api_keys_round_trip_with_filters_and_unique_names() {
    each_backend(|store| async move {
        let svc = ApiKeyService::new(store.clone(), Arc::new(SystemClock), Duration::ZERO);
        let cli = Principal::local_cli();
        let cap = cli.authorize::<perm::ApiKeysCreate>().unwrap();
        let a = svc.create(&cap, create("hr-sync")).await.unwrap();
        let b = svc.create(&cap, create("portal")).await.unwrap();
        let dup = svc.create(&cap, create("hr-sync")).await.unwrap_err();
        assert_eq!(dup.code(), "name_taken");

        let found = store.api_key_by_prefix(&a.key.prefix).await.unwrap().unwrap();
        assert_eq!(found, a.key);

        let read = cli.authorize::<perm::ApiKeysRead>().unwrap();
        let page = svc
            .list(&read, ApiKeyFilter::default(), PageRequest { after: None, limit: 1 })
            .await
            .unwrap();
        assert_eq!(page.items.len(), 1);
        let next = svc
            .list(&read, ApiKeyFilter::default(), PageRequest { after: page.next_cursor, limit: 1 })
            .await
            .unwrap();
        assert_eq!(next.items[0].id, b.key.id);
        assert!(next.next_cursor.is_none());

        let revoke = cli.authorize::<perm::ApiKeysRevoke>().unwrap();
        svc.revoke(&revoke, a.key.id, Some("test".into()), false).await.unwrap();
        let f = ApiKeyFilter { status: Some(KeyStatus::Revoked), ..Default::default() };
        let revoked = svc.list(&read, f, PageRequest { after: None, limit: 10 }).await.unwrap();
        assert_eq!(revoked.items.iter().map(|k| k.id).collect::<Vec<_>>(), vec![a.key.id]);
        let f = ApiKeyFilter { name_contains: Some("PORT".into()), ..Default::default() };
        let named = svc.list(&read, f, PageRequest { after: None, limit: 10 }).await.unwrap();
        assert_eq!(named.items.len(), 1);

        // Every change is on the chain, which verifies.
        let events = store.audit_events(&AuditFilter::default(), 100).await.unwrap();
        let actions: Vec<_> = events.iter().map(|e| e.action.as_str()).collect();
        assert_eq!(actions, ["api_key.create", "api_key.create", "api_key.revoke"]);
        let mut v = ChainVerifier::new(1, GENESIS_HASH);
        events.into_iter().for_each(|e| v.push(e));
        let head = store.audit_head().await.unwrap();
        assert!(v.finish(Some(head.seq)).valid);
    })
    .await;
}

#[tokio::test]
async fn rate_limit_windows_count_across_callers() {
    each_backend(|store| async move {
        let mut counts = vec![];
        for _ in 0..3 {
            counts.push(store.rate_limit_hit("k", 60, 120).await.unwrap());
        }
        assert_eq!(counts, [1, 2, 3]);
        assert_eq!(store.rate_limit_hit("k", 120, 180).await.unwrap(), 1);
        assert_eq!(store.rate_limit_prune(121).await.unwrap(), 1);
    })
    .await;
}

#[tokio::test]
async fn a_failing_audit_write_rolls_the_change_back() {
    for db in TestDb::all().await {
        let store = db.store().await;
        let fail = match db.backend {
            "sqlite" => "CREATE TRIGGER fail_audit BEFORE INSERT ON audit_events \
                         BEGIN SELECT RAISE(ABORT, 'audit store is full'); END"
                .to_owned(),
            _ => "CREATE FUNCTION fail_audit() RETURNS trigger AS $$ BEGIN \
                  RAISE EXCEPTION 'audit store is full'; END $$ LANGUAGE plpgsql; \
                  CREATE TRIGGER fail_audit BEFORE INSERT ON audit_events \
                  FOR EACH ROW EXECUTE FUNCTION fail_audit()"
                .to_owned(),
        };
        store.execute_raw(&fail).await.unwrap();
        let dyn_store: Arc<dyn Store> = Arc::new(store.clone());
        let svc = ApiKeyService::new(dyn_store.clone(), Arc::new(SystemClock), Duration::ZERO);
        let cli = Principal::local_cli();
        let err = svc
            .create(&cli.authorize::<perm::ApiKeysCreate>().unwrap(), create("doomed"))
            .await
            .unwrap_err();
        assert!(matches!(err, CoreError::Storage(_)), "{err:?}");
        assert_eq!(dyn_store.count_api_keys().await.unwrap(), 0, "{}", db.backend);
        assert_eq!(dyn_store.audit_head().await.unwrap().seq, 0);
        store.close().await;
        db.cleanup().await;
    }
}

#[tokio::test]
async fn concurrent_writers_build_one_chain() {
    each_backend(|store| async move {
        let svc =
            Arc::new(ApiKeyService::new(store.clone(), Arc::new(SystemClock), Duration::ZERO));
        let mut tasks = vec![];
        for i in 0..16 {
            let svc = svc.clone();
            tasks.push(tokio::spawn(async move {
                let cli = Principal::local_cli();
                let cap = cli.authorize::<perm::ApiKeysCreate>().unwrap();
                svc.create(&cap, create(&format!("k{i}"))).await.unwrap();
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
        let events = store.audit_events(&AuditFilter::default(), 100).await.unwrap();
        assert_eq!(events.len(), 16);
        let mut v = ChainVerifier::new(1, GENESIS_HASH);
        events.into_iter().for_each(|e| v.push(e));
        let r = v.finish(Some(store.audit_head().await.unwrap().seq));
        assert!(r.valid, "{r:?}");
    })
    .await;
}

/// `n` certificates with serials `<prefix>0`, `<prefix>1`, …
fn certs(prefix: &str, n: usize) -> Vec<sigil_core::certs::Certificate> {
    (0..n).map(|i| cert(&format!("{prefix}{i}"))).collect()
}

/// The database file of a SQLite test database.
fn sqlite_file(db: &TestDb) -> std::path::PathBuf {
    std::path::PathBuf::from(db.url.trim_start_matches("sqlite://"))
}

/// The text-search file beside a SQLite test database.
fn search_file(db: &TestDb) -> std::path::PathBuf {
    sqlite_file(db).with_file_name("sigil.db-search")
}

#[tokio::test]
async fn the_chain_walks_read_of_events_after_a_seq_matches_the_filtered_query_row_for_row() {
    // On SQLite a filter of `after_seq` alone (the checkpoint's walk) is read past sqlx; it
    // must return exactly what the general query returns, nullable columns included.
    each_backend(|store| async move {
        let svc =
            Arc::new(ApiKeyService::new(store.clone(), Arc::new(SystemClock), Duration::ZERO));
        let cli = Principal::local_cli();
        let cap = cli.authorize::<perm::ApiKeysCreate>().unwrap();
        for i in 0..7 {
            svc.create(&cap, create(&format!("w{i}"))).await.unwrap();
        }
        for after in [0, 2, 6, 7] {
            let walk = store
                .audit_events(&AuditFilter { after_seq: Some(after), ..Default::default() }, 3)
                .await
                .unwrap();
            // `from_us` keeps the general query path and matches every event.
            let general = store
                .audit_events(
                    &AuditFilter { after_seq: Some(after), from_us: Some(0), ..Default::default() },
                    3,
                )
                .await
                .unwrap();
            assert_eq!(walk, general, "after {after}");
            assert_eq!(walk.len(), (7 - after).clamp(0, 3) as usize, "after {after}");
            assert!(walk.iter().all(|e| e.seq > after));
            assert!(walk.windows(2).all(|w| w[1].seq == w[0].seq + 1));
        }
    })
    .await;
}

#[tokio::test]
async fn the_chain_walk_reads_events_committed_after_its_previous_read() {
    // On SQLite the walk keeps its connection between reads: it must not keep a snapshot too.
    each_backend(|store| async move {
        let svc =
            Arc::new(ApiKeyService::new(store.clone(), Arc::new(SystemClock), Duration::ZERO));
        let cap = Principal::local_cli().authorize::<perm::ApiKeysCreate>().unwrap();
        let walk = |after: i64| {
            let store = store.clone();
            async move {
                store
                    .audit_events(
                        &AuditFilter { after_seq: Some(after), ..Default::default() },
                        100,
                    )
                    .await
                    .unwrap()
            }
        };
        for round in 0..3 {
            svc.create(&cap, create(&format!("later{round}"))).await.unwrap();
            let seen = walk(0).await;
            assert_eq!(seen.len(), round + 1, "round {round}");
            assert_eq!(walk(seen.len() as i64 - 1).await.len(), 1, "round {round}");
        }
    })
    .await;
}

#[tokio::test]
async fn concurrent_inserts_are_group_committed_and_a_bad_unit_fails_alone() {
    each_backend(|store| async move {
        let mut tasks = vec![];
        for i in 0..64 {
            let store = store.clone();
            tasks.push(tokio::spawn(async move {
                // Units 10 and 11 collide on (ca, serial): exactly one of them must fail.
                let serial = if i == 11 { "a10".to_owned() } else { format!("a{i}") };
                issue_one(store.as_ref(), &serial, &i.to_string()).await.is_ok()
            }));
        }
        let mut ok = 0;
        for t in tasks {
            ok += usize::from(t.await.unwrap());
        }
        assert_eq!(ok, 63);
        let events = store.audit_events(&AuditFilter::default(), 500).await.unwrap();
        assert_eq!(events.len(), 63, "the failed unit left no audit event");
        let mut v = ChainVerifier::new(1, GENESIS_HASH);
        events.into_iter().for_each(|e| v.push(e));
        assert!(v.finish(Some(store.audit_head().await.unwrap().seq)).valid);
    })
    .await;
}

#[tokio::test]
async fn checkpoints_are_kept_by_counter_and_a_taken_counter_is_refused() {
    each_backend(|store| async move {
        let cp = |counter: i64, seq: i64| Checkpoint {
            counter,
            seq,
            hash: format!("h{seq}"),
            prev: GENESIS_HASH.into(),
            signed_at_us: 7,
            key_id: "k".into(),
            signature: "s".into(),
        };
        assert!(store.insert_audit_checkpoint(&cp(1, 3)).await.unwrap());
        assert!(store.insert_audit_checkpoint(&cp(2, 3)).await.unwrap());
        assert!(store.insert_audit_checkpoint(&cp(3, 9)).await.unwrap());
        // Another node that signed counter 3 as well lost the race; the first one stays.
        assert!(!store.insert_audit_checkpoint(&cp(3, 10)).await.unwrap());
        assert_eq!(store.audit_checkpoints(1).await.unwrap(), vec![cp(1, 3), cp(2, 3), cp(3, 9)]);
        assert_eq!(store.audit_checkpoints(2).await.unwrap(), vec![cp(2, 3), cp(3, 9)]);
        assert!(store.audit_checkpoints(4).await.unwrap().is_empty());
    })
    .await;
}

#[tokio::test]
async fn a_role_name_with_an_underscore_counts_only_its_own_holders() {
    use sigil_core::access::authz::PermissionSet;
    use sigil_core::access::operator::{Operator, Role};
    for db in TestDb::all().await {
        let store = db.store().await;
        let now = time::OffsetDateTime::now_utc();
        let role = |name: &str| Role {
            name: name.into(),
            description: String::new(),
            permissions: PermissionSet::parse(["audit:read"]).unwrap(),
            excludes: vec![],
            built_in: false,
            created_at: now,
            updated_at: now,
        };
        let mut tx = store.begin().await.unwrap();
        tx.insert_role(&role("a_b")).await.unwrap();
        tx.insert_role(&role("axb")).await.unwrap();
        let op = Operator {
            id: uuid::Uuid::now_v7(),
            username: "ana".into(),
            display_name: "Ana".into(),
            email: None,
            roles: vec!["axb".into()],
            enabled: true,
            client_cert_sha256: None,
            unrestricted: true,
            divisions: vec![],
            offices: vec![],
            created_at: now,
            updated_at: now,
        };
        tx.insert_operator(&op).await.unwrap();
        assert_eq!(tx.count_role_holders("axb").await.unwrap(), 1, "{}", db.backend);
        // `_` would match any character: the role nobody holds must count none.
        assert_eq!(tx.count_role_holders("a_b").await.unwrap(), 0, "{}", db.backend);
        drop(tx);
        store.close().await;
        db.cleanup().await;
    }
}

/// Subjects for the text-search test: 2,100 hosts (so that "host-" is too common to narrow by
/// the trigram index and "host-7" is not), a quote, a LIKE wildcard and a SAN.
fn searchable(i: usize) -> sigil_core::certs::Certificate {
    let mut c = cert(&format!("s{i}"));
    c.subject = match i {
        2100 => "CN=say \"hi\"".into(),
        2101 => "CN=under_score".into(),
        2102 => "CN=underXscore".into(),
        _ => format!("CN=Host-{i}.corp"),
    };
    if i == 2103 {
        c.sans = vec![sigil_core::certs::San::Dns("alt.example".into())];
    }
    c
}

async fn insert_all(store: &dyn Store, certs: &[sigil_core::certs::Certificate]) {
    for chunk in certs.chunks(500) {
        let ops = chunk
            .iter()
            .map(|c| sigil_core::ports::WriteOp::InsertCertificate(Arc::new(c.clone())))
            .collect();
        let ev = sigil_core::audit::NewAuditEvent::new(
            &Principal::system(),
            sigil_core::audit::AuditAction::CertificateIssue,
            "certificate",
            "batch",
        );
        store.commit_ops(ops, vec![ev], time::OffsetDateTime::now_utc()).await.unwrap();
    }
}

/// Searches `text` page by page and checks that it finds exactly the certificates of `all`
/// whose subject or SAN contains it.
async fn search_matches_scan(
    store: &dyn Store,
    all: &[sigil_core::certs::Certificate],
    text: &str,
) {
    let t = text.to_lowercase();
    let hit = |c: &sigil_core::certs::Certificate| {
        c.subject.to_lowercase().contains(&t)
            || c.sans.iter().any(|s| s.value().to_lowercase().contains(&t))
    };
    let f = sigil_core::ports::CertFilter { text: Some(text.into()), ..Default::default() };
    let mut found = std::collections::HashSet::new();
    let mut after = None;
    loop {
        let page = store
            .list_certificates(&f, &PageRequest { after: after.clone(), limit: 500 })
            .await
            .unwrap();
        for c in &page {
            assert!(hit(c), "{text:?} found {}", c.subject);
            assert!(found.insert(c.id), "{text:?} listed {} twice", c.subject);
        }
        match page.last() {
            Some(c) if page.len() == 500 => {
                after = Some(sigil_core::certs::cert_cursor(c, f.sort));
            }
            _ => break,
        }
    }
    assert_eq!(found.len(), all.iter().filter(|c| hit(c)).count(), "{text:?}");
}

#[tokio::test]
async fn the_text_search_index_carries_over_from_batch_to_batch_and_rebuilds_across_batches() {
    // SQLite only: PostgreSQL's index is kept by the database. More than two of the indexer's
    // batches (4,000 certificates each), so a run goes on from the mark its last batch left.
    let db = TestDb::sqlite();
    let store = db.store().await;
    let all: Vec<_> = (0..8_037).map(searchable).collect();
    insert_all(&store, &all).await;
    let rows = |db: &TestDb| -> i64 {
        rusqlite::Connection::open(search_file(db))
            .unwrap()
            .query_row("SELECT COUNT(*) FROM certificates_search", [], |r| r.get(0))
            .unwrap()
    };
    assert_eq!(store.index_certificate_search().await.unwrap(), 8_037);
    // Each certificate indexed once: none lost or repeated where one batch ends.
    assert_eq!(rows(&db), 8_037);
    let edges =
        ["host-3999.", "host-4000.", "host-4001.", "host-7999.", "host-8000.", "host-8036."];
    for text in edges {
        search_matches_scan(&store, &all, text).await;
    }
    assert_eq!(store.index_certificate_search().await.unwrap(), 0);
    // A rebuild (the mark names another certificate) spans the batches as well.
    rusqlite::Connection::open(search_file(&db))
        .unwrap()
        .execute("UPDATE certificates_search_mark SET last_id = 'elsewhere'", [])
        .unwrap();
    assert_eq!(store.index_certificate_search().await.unwrap(), 8_037);
    assert_eq!(rows(&db), 8_037);
    for text in edges {
        search_matches_scan(&store, &all, text).await;
    }
    store.close().await;
    db.cleanup().await;
}

#[tokio::test]
async fn a_text_search_finds_the_same_certificates_with_or_without_the_trigram_index() {
    for db in TestDb::all().await {
        let store = db.store().await;
        eprintln!("backend: {}", db.backend);
        let mut all: Vec<_> = (0..2104).map(searchable).collect();
        insert_all(&store, &all).await;
        // A short text (no trigram), a selective one, one just common enough to narrow, one
        // too common to narrow, case, quotes, a literal underscore, a SAN, nothing, and a NUL.
        let texts = [
            "-1",
            "host-1234.corp",
            "HOST-7",
            "host-",
            "\"hi\"",
            "r_s",
            "alt.ex",
            "zzz",
            "host\0-1",
        ];
        // Nothing indexed yet: every certificate is after the mark.
        for text in texts {
            search_matches_scan(&store, &all, text).await;
        }
        let indexed = store.index_certificate_search().await.unwrap();
        if db.backend == "sqlite" {
            assert_eq!(indexed, 2104);
        }
        for text in texts {
            search_matches_scan(&store, &all, text).await;
        }
        // Certificates issued after the last indexing are found too, with the indexed ones.
        let more: Vec<_> = (0..50)
            .map(|i| {
                let mut c = cert(&format!("late{i}"));
                c.subject = format!("CN=host-7{i}.late");
                c
            })
            .collect();
        insert_all(&store, &more).await;
        all.extend(more);
        for text in ["host-7", "host-71", ".late", "host-1234.corp"] {
            search_matches_scan(&store, &all, text).await;
        }
        assert_eq!(
            store.index_certificate_search().await.unwrap(),
            if db.backend == "sqlite" { 50 } else { 0 }
        );
        assert_eq!(store.index_certificate_search().await.unwrap(), 0);
        if db.backend == "sqlite" {
            // A mark that names another certificate (rows renumbered) rebuilds the index.
            rusqlite::Connection::open(search_file(&db))
                .unwrap()
                .execute("UPDATE certificates_search_mark SET last_id = 'elsewhere'", [])
                .unwrap();
            assert_eq!(store.index_certificate_search().await.unwrap(), 2154);
        }
        for text in ["host-7", "host-1234.corp", ".late"] {
            search_matches_scan(&store, &all, text).await;
        }
        assert_eq!(all.iter().filter(|c| c.subject.contains("r_s")).count(), 1);
        store.close().await;
        db.cleanup().await;
    }
}

/// Certificates in the SQLite database file itself, leaving out its WAL: what checkpoints have
/// copied. Read from a copy, which SQLite opens without the WAL beside it.
fn checkpointed_certificates(db: &TestDb) -> i64 {
    let file = sqlite_file(db);
    let dir = tempfile::tempdir().unwrap();
    let copy = dir.path().join("copy.db");
    std::fs::copy(&file, &copy).unwrap();
    let conn = rusqlite::Connection::open(&copy).unwrap();
    conn.query_row("SELECT COUNT(*) FROM certificates", [], |r| r.get(0)).unwrap_or(-1)
}

#[tokio::test]
async fn group_commits_are_checkpointed_in_the_background_without_a_commit_waiting_for_it() {
    // SQLite only: the WAL is its mechanism. 60 commits of one certificate write far fewer WAL
    // frames than the committing connections' own checkpoint threshold, and no connection
    // closes, so only the background checkpointer can have copied them into the file.
    let db = TestDb::sqlite();
    let store = db.store().await;
    for i in 0..60 {
        let c = cert(&format!("ck{i}"));
        let ev = sigil_core::audit::NewAuditEvent::new(
            &Principal::system(),
            sigil_core::audit::AuditAction::CertificateIssue,
            "certificate",
            c.id.to_string(),
        );
        let op = sigil_core::ports::WriteOp::InsertCertificate(Arc::new(c));
        store.commit_ops(vec![op], vec![ev], time::OffsetDateTime::now_utc()).await.unwrap();
    }
    let wal = std::fs::metadata(format!("{}-wal", sqlite_file(&db).display()))
        .map(|m| m.len())
        .unwrap_or(0);
    assert!(wal < 4096 * 4120, "the WAL passed the writers' own threshold ({wal} bytes)");
    let mut copied = 0;
    for _ in 0..100 {
        copied = checkpointed_certificates(&db);
        if copied == 60 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(copied, 60, "the database file holds every committed certificate");
    store.close().await;
    db.cleanup().await;
}

#[tokio::test]
async fn text_search_indexing_neither_waits_for_nor_holds_the_main_databases_writer_lock() {
    // SQLite only (PostgreSQL's trigram index is kept by the database). Another connection
    // holds the main file's writer lock throughout; the indexer still fills the index, since
    // it writes only the search file and reads the main one.
    let db = TestDb::sqlite();
    let store = db.store().await;
    insert_all(&store, &certs("ix", 30)).await;
    let file = sqlite_file(&db);
    let writer = rusqlite::Connection::open(&file).unwrap();
    writer.execute_batch("BEGIN IMMEDIATE").unwrap();
    let indexed = tokio::time::timeout(Duration::from_secs(3), store.index_certificate_search())
        .await
        .expect("the indexer waited for the main database's writer")
        .unwrap();
    assert_eq!(indexed, 30);
    assert!(search_file(&db).is_file());
    writer.execute_batch("ROLLBACK").unwrap();
    // The other way round: while the indexer's connection holds the search file's writer
    // lock, a write transaction through the store (BEGIN IMMEDIATE) neither waits nor fails.
    let search = rusqlite::Connection::open(search_file(&db)).unwrap();
    search.execute_batch("BEGIN IMMEDIATE").unwrap();
    let svc = ApiKeyService::new(Arc::new(store.clone()), Arc::new(SystemClock), Duration::ZERO);
    let cap = Principal::local_cli().authorize::<perm::ApiKeysCreate>().unwrap();
    tokio::time::timeout(Duration::from_secs(3), svc.create(&cap, create("beside-the-indexer")))
        .await
        .expect("a write waited for the search file's lock")
        .unwrap();
    // And searches still answer (read connections attach the file; the lock blocks no reader).
    let f = sigil_core::ports::CertFilter { text: Some("x".into()), ..Default::default() };
    let as_store: &dyn Store = &store;
    as_store.list_certificates(&f, &PageRequest { after: None, limit: 10 }).await.unwrap();
    search.execute_batch("ROLLBACK").unwrap();
    store.close().await;
    db.cleanup().await;
}

#[test]
fn the_audit_table_rebuilt_on_its_sequence_number_keeps_every_event_and_drops_the_extra_index() {
    // SQLite migration 0025 on a table of the old shape (0001's `seq BIGINT PRIMARY KEY`).
    let conn = rusqlite::Connection::open_in_memory().unwrap();
    let old = include_str!("../../../migrations/sqlite/0001_foundation.sql");
    let start = old.find("CREATE TABLE audit_events").unwrap();
    let end = start + old[start..].find(");").unwrap() + 2;
    conn.execute_batch(&old[start..end]).unwrap();
    let columns = "seq, id, occurred_at, actor_kind, actor_id, actor_name, api_key_id, \
                   operator_id, action, object_type, object_id, outcome, request_id, client_ip, \
                   details, prev_hash, hash";
    for seq in [1i64, 2, 3, 10] {
        conn.execute(
            &format!(
                "INSERT INTO audit_events ({columns}) VALUES (?1, 'id' || ?1, ?1 * 1000, 'k', \
                 'a', 'n', NULL, 'op', 'x.y', 'certificate', 'o' || ?1, 'ok', NULL, '10.0.0.1', \
                 '{{}}', 'p' || ?1, 'h' || ?1)"
            ),
            [seq],
        )
        .unwrap();
    }
    let dump = |c: &rusqlite::Connection| -> Vec<Vec<String>> {
        let mut s = c
            .prepare(&format!(
                "SELECT {} FROM audit_events ORDER BY seq",
                columns.split(", ").map(|c| format!("quote({c})")).collect::<Vec<_>>().join(", ")
            ))
            .unwrap();
        s.query_map([], |r| (0..17).map(|i| r.get::<_, String>(i)).collect())
            .unwrap()
            .map(Result::unwrap)
            .collect()
    };
    let before = dump(&conn);
    conn.execute_batch(include_str!("../../../migrations/sqlite/0025_audit_seq_rowid.sql"))
        .unwrap();
    assert_eq!(dump(&conn), before);
    let rowids: Vec<i64> = conn
        .prepare("SELECT rowid FROM audit_events ORDER BY seq")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(rowids, [1, 2, 3, 10], "seq is the rowid");
    let pk_indexes: i64 = conn
        .query_row(
            "SELECT COUNT(*) FROM pragma_index_list('audit_events') WHERE origin = 'pk'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(pk_indexes, 0);
    let mut named: Vec<String> = conn
        .prepare("SELECT name FROM pragma_index_list('audit_events') WHERE origin = 'c'")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    named.sort();
    assert_eq!(
        named,
        ["audit_events_action", "audit_events_actor", "audit_events_object", "audit_events_time"]
    );
    // A seq taken twice is still refused (with an id of its own).
    let again = |seq: i64| {
        conn.execute(
            &format!(
                "INSERT INTO audit_events ({columns}) VALUES (?1, 'new', 0, 'k', 'a', 'n', NULL, \
                 NULL, 'x.y', 'certificate', 'o', 'ok', NULL, NULL, '{{}}', 'p', 'h')"
            ),
            [seq],
        )
    };
    assert!(again(2).is_err());
    assert!(again(11).is_ok());
}

#[tokio::test]
async fn certificate_lookups_use_the_partial_indexes_that_leave_active_and_officeless_rows_out() {
    // SQLite's planner (PostgreSQL's weighs statistics; the same partial indexes exist there).
    // An index an issuance no longer writes must still serve the lookups it was kept for.
    let db = TestDb::sqlite();
    let store = db.store().await;
    let conn = rusqlite::Connection::open(sqlite_file(&db)).unwrap();
    let plan = |sql: &str| -> String {
        let mut s = conn.prepare(&format!("EXPLAIN QUERY PLAN {sql}")).unwrap();
        s.query_map([], |r| r.get::<_, String>(3))
            .unwrap()
            .map(Result::unwrap)
            .collect::<Vec<_>>()
            .join("; ")
    };
    for (sql, index) in [
        (
            "SELECT serial, revoked_at, revocation_reason FROM certificates \
             WHERE ca_id = 'a' AND status IN ('revoked', 'suspended') ORDER BY revoked_at",
            "certificates_ca_revoked",
        ),
        ("SELECT id FROM certificates WHERE office_id = 'o'", "certificates_office"),
        ("SELECT id FROM certificates WHERE office_id IN ('o', 'p')", "certificates_office"),
        ("SELECT id FROM certificates WHERE renewed_from = 'r'", "certificates_renewed_from"),
        (
            "SELECT id FROM certificates WHERE superseded_until <= 5",
            "certificates_superseded_until",
        ),
        ("SELECT id FROM certificates WHERE ca_id = 'a'", "sqlite_autoindex_certificates_2"),
        // A serial without its CA (no index on the serial alone since migration 0027).
        (
            "SELECT id FROM certificates WHERE ca_id IN (SELECT id FROM cas) AND serial = 's'",
            "sqlite_autoindex_certificates_2 (ca_id=? AND serial=?)",
        ),
    ] {
        let p = plan(sql);
        assert!(p.contains(index), "{sql}: {p}");
    }
    // A serial beside a status and a profile, in the shape the certificate list gives it: the
    // serial's index drives the query and each hit is read by id, where a plain condition let
    // SQLite walk the status's index.
    let p = plan(
        "SELECT certificates.id FROM (SELECT id AS hit FROM certificates \
         WHERE ca_id IN (SELECT id FROM cas) AND serial = 's') AS by_serial \
         CROSS JOIN certificates WHERE certificates.id = by_serial.hit AND status = 'active' \
         AND +not_after > 5 AND profile = 'p' ORDER BY issued_at DESC, id DESC LIMIT 50",
    );
    let driving = p.find("sqlite_autoindex_certificates_2 (ca_id=? AND serial=?)");
    let by_id = p.find("sqlite_autoindex_certificates_1 (id=?)");
    assert!(driving.is_some() && by_id.is_some() && driving < by_id, "{p}");
    for other in ["certificates_status", "certificates_profile", "certificates_issued_at"] {
        assert!(!p.contains(other), "{p}");
    }
    store.close().await;
    db.cleanup().await;
}

#[tokio::test]
async fn a_text_search_file_removed_while_serving_is_made_anew_without_its_old_log() {
    // SQLite only. Someone removes the search file by hand but not its WAL and shared memory
    // (the read pool keeps the file attached, so both are still there): the indexer must make
    // a new file and fill it, not let SQLite replay the old file's log into the new one.
    let db = TestDb::sqlite();
    let store = db.store().await;
    insert_all(&store, &certs("rm", 12)).await;
    assert_eq!(store.index_certificate_search().await.unwrap(), 12);
    let search = search_file(&db);
    let wal = std::path::PathBuf::from(format!("{}-wal", search.display()));
    assert!(wal.exists() && std::fs::metadata(&wal).unwrap().len() > 0, "the old log is there");
    std::fs::remove_file(&search).unwrap();
    insert_all(&store, &certs("rn", 5)).await;
    assert_eq!(store.index_certificate_search().await.unwrap(), 17, "all, from scratch");
    let conn = rusqlite::Connection::open(&search).unwrap();
    let check: String = conn.query_row("PRAGMA integrity_check", [], |r| r.get(0)).unwrap();
    assert_eq!(check, "ok");
    let n: i64 =
        conn.query_row("SELECT COUNT(*) FROM certificates_search", [], |r| r.get(0)).unwrap();
    assert_eq!(n, 17);
    drop(conn);
    store.close().await;
    db.cleanup().await;
}

#[tokio::test]
async fn a_damaged_text_search_file_is_made_anew_at_start_and_filled_again() {
    // SQLite only. The search file is derived data: a server must not refuse to start over it.
    let db = TestDb::sqlite();
    let store = db.store().await;
    insert_all(&store, &certs("dm", 12)).await;
    assert_eq!(store.index_certificate_search().await.unwrap(), 12);
    store.close().await;
    let search = search_file(&db);
    for suffix in ["-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", search.display()));
    }
    std::fs::write(&search, vec![0xab; 8192]).unwrap();
    let store = db.store().await;
    assert_eq!(store.index_certificate_search().await.unwrap(), 12);
    let as_store: &dyn Store = &store;
    let f = sigil_core::ports::CertFilter { text: Some("cn=x".into()), ..Default::default() };
    let found = as_store.list_certificates(&f, &PageRequest { after: None, limit: 50 }).await;
    assert_eq!(found.unwrap().len(), 12);
    {
        use std::os::unix::fs::PermissionsExt as _;
        assert_eq!(std::fs::metadata(&search).unwrap().permissions().mode() & 0o077, 0);
    }
    store.close().await;
    db.cleanup().await;
}

#[tokio::test]
async fn two_sqlite_databases_in_one_directory_keep_text_search_indexes_of_their_own() {
    // SQLite only. `x.db` and `x.sqlite` once shared `x-search.db`: each indexer took the
    // other's mark for a stale one and rebuilt, and a search could be narrowed by the other
    // database's index (missing its own matches). An index file left by that version is
    // removed at start; a database of that name that is not an index is not.
    let db = TestDb::sqlite();
    let dir = sqlite_file(&db).parent().unwrap().to_path_buf();
    let legacy = rusqlite::Connection::open(dir.join("sigil-search.db")).unwrap();
    legacy
        .execute_batch(
            "PRAGMA journal_mode=WAL; CREATE TABLE certificates_search_mark (id INTEGER PRIMARY KEY, \
             last_rowid BIGINT NOT NULL, last_id TEXT); INSERT INTO certificates_search_mark \
             VALUES (1, 5, 'gone');",
        )
        .unwrap();
    drop(legacy);
    let a = db.store().await;
    assert!(!dir.join("sigil-search.db").exists(), "the earlier version's index is still there");
    // The same name, now someone's database: `sigil.sqlite` opening beside it leaves it be.
    let someones = rusqlite::Connection::open(dir.join("sigil-search.db")).unwrap();
    someones
        .execute_batch(
            "PRAGMA journal_mode=WAL; CREATE TABLE audit_head (id INTEGER PRIMARY KEY); \
             CREATE TABLE certificates_search_mark (id INTEGER PRIMARY KEY);",
        )
        .unwrap();
    drop(someones);
    let mut other = db.options();
    other.url = format!("sqlite://{}", dir.join("sigil.sqlite").display());
    let b = SqlStore::connect(&other).await.unwrap();
    b.migrate().await.unwrap();
    let named = |prefix: &str, n: usize, cn: &str| {
        let mut v = certs(prefix, n);
        for c in &mut v {
            c.subject = format!("CN={cn}");
        }
        v
    };
    insert_all(&a, &named("a", 12, "alpha-host")).await;
    insert_all(&b, &named("b", 7, "beta-host")).await;
    assert_eq!(a.index_certificate_search().await.unwrap(), 12);
    assert_eq!(b.index_certificate_search().await.unwrap(), 7);
    // Neither indexer found its mark moved by the other: nothing to do, no rebuild.
    assert_eq!(a.index_certificate_search().await.unwrap(), 0);
    assert_eq!(b.index_certificate_search().await.unwrap(), 0);
    assert!(dir.join("sigil.db-search").is_file() && dir.join("sigil.sqlite-search").is_file());
    assert!(dir.join("sigil-search.db").is_file(), "a database that is no index was removed");
    assert!(!dir.join("sigil-search.db-wal").exists(), "a log was made beside that database");
    let page = PageRequest { after: None, limit: 50 };
    let search = |text: &str| sigil_core::ports::CertFilter {
        text: Some(text.into()),
        ..Default::default()
    };
    let (a_dyn, b_dyn): (&dyn Store, &dyn Store) = (&a, &b);
    assert_eq!(a_dyn.list_certificates(&search("alpha-h"), &page).await.unwrap().len(), 12);
    assert_eq!(b_dyn.list_certificates(&search("beta-h"), &page).await.unwrap().len(), 7);
    assert_eq!(a_dyn.list_certificates(&search("beta-h"), &page).await.unwrap().len(), 0);
    a.close().await;
    b.close().await;
    // A CLI command reading an installation (an open of an existing database) removes nothing.
    let cli_dir = dir.join("cli");
    std::fs::create_dir(&cli_dir).unwrap();
    let mut cli = db.options();
    cli.url = format!("sqlite://{}", cli_dir.join("sigil.db").display());
    let made = SqlStore::connect(&cli).await.unwrap();
    made.migrate().await.unwrap();
    made.close().await;
    let legacy = rusqlite::Connection::open(cli_dir.join("sigil-search.db")).unwrap();
    legacy.execute_batch("CREATE TABLE certificates_search_mark (id INTEGER PRIMARY KEY)").unwrap();
    drop(legacy);
    cli.existing = true;
    SqlStore::connect(&cli).await.unwrap().close().await;
    assert!(cli_dir.join("sigil-search.db").is_file(), "a reading command removed a file");
    db.cleanup().await;
}

/// Two nodes on one database, each with its group writer. A writer chains a batch from the head
/// its last commit left where it can (PostgreSQL: a round trip less), so each node's next batch
/// here starts from a head the other node has moved: it must be chained after the other's
/// events, never beside them, and fail nothing. A change outside the group (an API key) moves
/// the head too.
#[tokio::test]
async fn a_batch_after_another_node_moved_the_audit_head_is_chained_after_its_events() {
    for db in TestDb::all().await {
        eprintln!("backend: {}", db.backend);
        let (a, b) = (db.store().await, db.store().await);
        for i in 0..3 {
            let (sa, sb) = (format!("a{i}"), format!("b{i}"));
            issue_one(&a, &sa, &sa).await.unwrap();
            issue_one(&b, &sb, &sb).await.unwrap();
        }
        let svc = ApiKeyService::new(Arc::new(a.clone()), Arc::new(SystemClock), Duration::ZERO);
        let cap = Principal::local_cli().authorize::<perm::ApiKeysCreate>().unwrap();
        svc.create(&cap, create("between")).await.unwrap();
        issue_one(&a, "a3", "a3").await.unwrap();
        issue_one(&b, "b3", "b3").await.unwrap();

        for store in [&a, &b] {
            let store: &dyn Store = store;
            let events = store.audit_events(&AuditFilter::default(), 100).await.unwrap();
            let objects: Vec<&str> = events.iter().map(|e| e.object_id.as_str()).collect();
            assert_eq!(objects.len(), 9, "{objects:?}");
            assert_eq!(
                (objects[..6].to_vec(), &objects[7..]),
                (vec!["a0", "b0", "a1", "b1", "a2", "b2"], &["a3", "b3"][..])
            );
            assert_eq!(
                events.iter().map(|e| e.seq).collect::<Vec<_>>(),
                (1..=9).collect::<Vec<_>>()
            );
            let mut v = ChainVerifier::new(1, GENESIS_HASH);
            events.into_iter().for_each(|e| v.push(e));
            let r = v.finish(Some(store.audit_head().await.unwrap().seq));
            assert!(r.valid, "{r:?}");
        }
        a.close().await;
        b.close().await;
        db.cleanup().await;
    }
}

/// PostgreSQL: the group writer's connection is its own (outside the pool), and closing the
/// store closes it too; no connection of the node is left on the server.
#[tokio::test]
async fn closing_a_postgres_store_closes_the_group_writers_connection() {
    let Some(db) = TestDb::postgres().await else { return };
    let store = db.store().await;
    issue_one(&store, "c1", "c1").await.unwrap();
    store.close().await;
    let watcher =
        sqlx::any::AnyPoolOptions::new().max_connections(1).connect(&db.url).await.unwrap();
    let mut left = -1;
    for _ in 0..50 {
        left = sqlx::query_scalar::<_, i64>(
            "SELECT count(*) FROM pg_stat_activity \
             WHERE datname = current_database() AND pid <> pg_backend_pid()",
        )
        .fetch_one(&watcher)
        .await
        .unwrap();
        if left == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(left, 0, "connections of the closed store still open");
    watcher.close().await;
    db.cleanup().await;
}
