//! Group commit for PostgreSQL. Every change appends to the one audit chain, whose head row each
//! transaction locks until it commits; one transaction per change therefore queues every writer
//! behind one commit (fsync) at a time. A group writer takes whatever units are waiting (up to
//! [`MAX_BATCH`]), applies them in one transaction that locks the head once (after the rows,
//! as every write transaction does), stores the batch's certificates in multi-row INSERTs,
//! spends its SADs in one statement and its events with the head's move in another, and commits
//! once. Each node runs [`WRITERS`] of them, and several nodes may share one database; the head
//! lock orders all their batches into one chain. If a batch fails, each unit is retried alone,
//! so one bad unit never takes others down with it.
//!
//! The writer's batches are latency-bound, not CPU-bound (the cores were 39% idle under signHash
//! load): each round trip adds to every client's wait. So a writer keeps a connection of its own
//! (a pool checkout pings the server first) and chains a batch from the head its last commit
//! left, checked and locked by the statement that moves it, instead of reading the head `FOR
//! UPDATE` first. Together: signHash 5,804/s against 4,865/s (three alternating pairs, every
//! one higher), server CPU per signature 127 µs against 141.

use sigil_core::StoreError;
use sigil_core::audit::{AuditEvent, NewAuditEvent};
use sigil_core::certs::Certificate;
use sigil_core::ports::{StoreResult, WriteOp};
use sigil_core::signing::credential::SadUse;
use std::sync::Arc;
use std::time::{Duration, Instant};

use sqlx::{AnyConnection, AnyPool, ConnectOptions as _, Connection as _};
use time::OffsetDateTime;
use tokio::sync::{Mutex, mpsc};

use crate::group::{MAX_BATCH, Unit};
use crate::{audit, certs, csc, map_err, ops};

/// Writer tasks per node. A batch takes the audit head lock last, just before it commits, so a
/// second writer could apply its batch's rows while the first one commits; the head lock orders
/// them into one chain as it orders two nodes' batches. Measured on 2 cores (compare
/// --postgres), two writers made smaller batches and lowered both rates (issuance 2,691/s
/// against 2,967-3,060/s, signHash 3,089/s against 3,605-3,762/s): the path is CPU-bound, and
/// fewer, larger batches cost less per change. Measured again with the writers on their own
/// thread (Intel, 2 vCPUs, five alternating 5 s signHash rounds): two writers pipelined by a
/// baton (one applying its batch and moving the head while the other committed, chained from
/// the head that commit would leave) signed 1,451-4,632/s (median 3,332) against one writer's
/// 2,657-7,034/s (median 5,584), at more server CPU per signature (130-298 µs against 120-183).
const WRITERS: usize = 1;

/// Starts the writer tasks, on a thread of their own with a single-threaded runtime; they end
/// when every sender is dropped or the pool is closed (their connections close with them; later
/// units are refused).
///
/// Why a thread: a batch is a chain of round trips (BEGIN, statements, COMMIT), and each reply
/// wakes the writer. On the server's runtime that wake-up queued behind the request tasks
/// (TLS, signatures) of a busy worker, and the replies' readiness was seen only when a worker
/// polled the I/O driver; every client waits on the writer's chain. The thread's runtime
/// polls only the writer's connection, and the kernel schedules the thread on its own.
pub(crate) fn spawn(pool: AnyPool) -> mpsc::Sender<Unit> {
    let (tx, rx) = mpsc::channel::<Unit>(4 * MAX_BATCH);
    let rx = Arc::new(Mutex::new(rx));
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build();
    let thread = runtime.map_err(|e| e.to_string()).and_then(|rt| {
        let (pool, rx) = (pool.clone(), rx.clone());
        let mut rt = OwnRuntime(Some(rt));
        std::thread::Builder::new()
            .name("sigil-pg-writer".into())
            .spawn(move || {
                if let Some(rt) = rt.0.take() {
                    rt.block_on(writers(pool, rx));
                }
            })
            .map_err(|e| e.to_string())
    });
    if let Err(e) = thread {
        // Without a thread the writers run on the caller's runtime: slower, still correct.
        tracing::warn!(error = %e, "no thread for the PostgreSQL group writer; it runs on the server's runtime");
        tokio::spawn(writers(pool, rx));
    }
    tx
}

/// The writer thread's runtime until the thread takes it. If the thread cannot be started, its
/// closure (holding this) is dropped where `spawn` was called, inside the server's runtime,
/// where dropping a runtime the usual way panics; this one is shut down in the background.
struct OwnRuntime(Option<tokio::runtime::Runtime>);

impl Drop for OwnRuntime {
    fn drop(&mut self) {
        if let Some(rt) = self.0.take() {
            rt.shutdown_background();
        }
    }
}

/// Runs [`WRITERS`] writer tasks on the current runtime until they all end.
async fn writers(pool: AnyPool, rx: Arc<Mutex<mpsc::Receiver<Unit>>>) {
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..WRITERS {
        let (pool, rx) = (pool.clone(), rx.clone());
        tasks.spawn(async move {
            let mut closed = std::pin::pin!(pool.close_event());
            let mut writer = Writer { pool, conn: None, used: None, head: None, locked_batches: 0 };
            loop {
                // Cancel-safe: a unit is taken only by the `recv` the close interrupts.
                let batch = tokio::select! {
                    b = next_batch(&rx) => b,
                    () = &mut closed => None,
                };
                let Some(batch) = batch else { break };
                writer.run(batch).await;
            }
        });
    }
    while tasks.join_next().await.is_some() {}
}

/// Waits for a unit and takes whatever else is waiting, up to [`MAX_BATCH`]; `None` once every
/// sender is gone.
async fn next_batch(rx: &Mutex<mpsc::Receiver<Unit>>) -> Option<Vec<Unit>> {
    let mut rx = rx.lock().await;
    let first = rx.recv().await?;
    let mut batch = vec![first];
    while batch.len() < MAX_BATCH {
        match rx.try_recv() {
            Ok(u) => batch.push(u),
            Err(_) => break,
        }
    }
    Some(batch)
}

/// The first existing row a unit locks (a renewed certificate, a SAD), if any.
fn lock_key(u: &Unit) -> Option<(u8, String)> {
    u.ops.iter().find_map(|op| match op {
        WriteOp::ClaimRenewal { renewed_from, .. } => Some((0, renewed_from.to_string())),
        WriteOp::ConsumeSad(s) => Some((1, s.id.clone())),
        _ => None,
    })
}

/// A kept connection idle this long is pinged (within the pool's acquire timeout) before its
/// next batch, and replaced if it does not answer: one a NAT dropped while the node was quiet
/// would otherwise hold the next batch until TCP gave up on it.
const IDLE_RECHECK: Duration = Duration::from_secs(5);

/// After another writer moved the audit head under this one, this many batches read the head
/// (locked) instead of chaining from where this writer left it: two nodes writing at once would
/// otherwise miss most of the time, each miss costing a batch's statements twice.
const LOCKED_AFTER_MISS: u32 = 64;

/// The writer's session settings. Every statement a batch runs looks its rows up by key (a
/// SAD, a renewed certificate, the audit head) or inserts; the planner, estimating 100 rows for
/// a batch's `json_to_recordset` and seeing a small table, chose to read the whole table and
/// hash it instead: the SAD spend read every SAD twice per batch. Without those plans, under
/// signHash load with 320 SADs, postgres's CPU per signature fell from 147-193 µs to 80-91 µs.
/// Off for this connection only, those plans are taken only where no index serves. The name
/// shows the writer in `pg_stat_activity`. (Session settings need a session of one's own: a
/// transaction-pooling proxy would hand them to other clients, as it breaks sqlx's prepared
/// statements.)
const WRITER_SESSION: &str = "SET application_name = 'sigil-group-writer'; \
     SET enable_seqscan = off; SET enable_hashjoin = off; SET enable_mergejoin = off";

/// One group writer: its own connection, held across batches (a pool checkout pings the
/// server first, a round trip per batch), and the audit head as its last commit left it.
///
/// The connection is opened by the writer, outside the pool (so one more than the pool's size
/// may be open): it belongs to the writer thread's runtime, and a pool waits, when closed, for
/// every connection checked out of it.
struct Writer {
    pool: AnyPool,
    conn: Option<AnyConnection>,
    /// When `conn` last finished a batch.
    used: Option<Instant>,
    /// `(seq, hash)` after this writer's last commit, while no miss has made it doubtful.
    head: Option<(i64, String)>,
    /// Batches left that read the head instead (see [`LOCKED_AFTER_MISS`]).
    locked_batches: u32,
}

impl Writer {
    /// Writes a batch and answers each unit; if the batch fails, each unit is retried alone.
    ///
    /// The units are ordered by the rows they lock, so that two writers' batches (or two
    /// nodes') take their row locks in one order and cannot wait on each other in a circle.
    async fn run(&mut self, mut batch: Vec<Unit>) {
        batch.sort_by_cached_key(lock_key);
        let refs: Vec<(&[WriteOp], &[NewAuditEvent], OffsetDateTime)> =
            batch.iter().map(|u| (u.ops.as_slice(), u.events.as_slice(), u.now)).collect();
        match self.write(&refs).await {
            Ok(results) => {
                for (u, r) in batch.into_iter().zip(results) {
                    u.answer(Ok(r));
                }
            }
            // A batch whose COMMIT failed and whose outcome is unknown is never retried: it may
            // have landed, and a retry would spend its SADs twice.
            Err(Failed::Unknown(e)) => {
                for u in batch {
                    u.answer(Err(StoreError::Backend(e.clone())));
                }
            }
            Err(Failed::Before(_)) if batch.len() > 1 => {
                for u in batch {
                    let r = self
                        .write(&[(u.ops.as_slice(), u.events.as_slice(), u.now)])
                        .await
                        .map(|mut v| v.pop().unwrap_or_default())
                        .map_err(Failed::into_store);
                    u.answer(r);
                }
            }
            Err(e) => {
                if let Some(u) = batch.into_iter().next() {
                    u.answer(Err(e.into_store()));
                }
            }
        }
    }

    /// Applies `units` in one transaction, chained from the remembered head if there is one
    /// and again from the locked head if another writer had moved it; returns each unit's
    /// sealed events. A failure other than a refusal drops the connection (a new one serves
    /// the next batch); any failure forgets the head.
    async fn write(
        &mut self,
        units: &[(&[WriteOp], &[NewAuditEvent], OffsetDateTime)],
    ) -> Result<Vec<Vec<AuditEvent>>, Failed> {
        let mut from = match self.locked_batches {
            0 => self.head.take(),
            _ => {
                self.locked_batches -= 1;
                self.head = None;
                None
            }
        };
        loop {
            if self.pool.is_closed() {
                self.conn = None;
                return Err(Failed::Before(StoreError::Backend("the store is closed".into())));
            }
            if self.used.is_some_and(|t| t.elapsed() > IDLE_RECHECK)
                && let Some(conn) = self.conn.as_mut()
            {
                let wait = self.pool.options().get_acquire_timeout();
                if !matches!(tokio::time::timeout(wait, conn.ping()).await, Ok(Ok(()))) {
                    self.conn = None;
                }
            }
            let conn = match self.conn.as_mut() {
                Some(c) => c,
                None => self.conn.insert(open(&self.pool).await.map_err(Failed::Before)?),
            };
            let guessed = from.is_some();
            let written = write(conn, &self.pool, units, from.take()).await;
            self.used = Some(Instant::now());
            match written {
                Ok(Written::Committed(out, head, healthy)) => {
                    self.head = Some(head);
                    if !healthy {
                        self.conn = None;
                    }
                    return Ok(out);
                }
                Ok(Written::HeadMoved) if guessed => {
                    self.locked_batches = LOCKED_AFTER_MISS;
                }
                Ok(Written::HeadMoved) => {
                    self.conn = None;
                    return Err(Failed::Before(StoreError::Backend(
                        "the audit head moved under its lock".into(),
                    )));
                }
                // A refusal (a spent SAD, a serial taken) is the statement's answer: the
                // connection is sound, and its transaction's rollback goes out before the next
                // BEGIN. Anything else may have broken it.
                Err(
                    e @ Failed::Before(StoreError::Refused { .. } | StoreError::Conflict { .. }),
                ) => {
                    return Err(e);
                }
                Err(e) => {
                    self.conn = None;
                    return Err(e);
                }
            }
        }
    }
}

/// What [`write`] did.
enum Written {
    /// Committed: each unit's sealed events, the head they left, and whether the connection
    /// answered the commit (`false`: it failed, and the batch was found in the chain).
    Committed(Vec<Vec<AuditEvent>>, (i64, String), bool),
    /// Nothing: the head was not where `from` said (the transaction was rolled back).
    HeadMoved,
}

/// Applies `units` in one transaction on `conn` and returns each unit's sealed events.
///
/// Rows first, the audit head last, as every other write transaction does (they lock the head
/// when they commit): the same lock order everywhere, so a batch and a revocation of a
/// certificate it renews cannot wait on each other. With `from`, the events are chained from
/// that head without reading it: the statement that stores them locks the head and stores
/// nothing if it moved, a round trip less per batch than reading it `FOR UPDATE` first.
async fn write(
    conn: &mut AnyConnection,
    pool: &AnyPool,
    units: &[(&[WriteOp], &[NewAuditEvent], OffsetDateTime)],
    from: Option<(i64, String)>,
) -> Result<Written, Failed> {
    let mut tx = conn.begin().await.map_err(map_err)?;
    // New certificates wait for a multi-row INSERT; those waiting are stored before any other
    // operation, which may refer to them.
    let mut waiting: Vec<&Certificate> = Vec::new();
    // SAD spends wait for one statement after the other operations: the batch is sorted so
    // that renewals' row locks come before SADs', and nothing else refers to a SAD.
    let mut spends: Vec<&SadUse> = Vec::new();
    for (ops, _, _) in units {
        for op in *ops {
            match op {
                WriteOp::InsertCertificate(c) => waiting.push(c),
                WriteOp::ConsumeSad(u) => spends.push(u),
                other => {
                    certs::insert_certificates(&mut tx, &waiting).await?;
                    waiting.clear();
                    ops::apply(&mut tx, other).await?;
                }
            }
        }
    }
    certs::insert_certificates(&mut tx, &waiting).await?;
    csc::consume_many(&mut tx, &spends).await?;
    let mut chain = match &from {
        Some((seq, hash)) => audit::Chain::at(*seq, hash.clone()),
        None => audit::Chain::head(&mut tx, true).await?,
    };
    let mut out = Vec::with_capacity(units.len());
    for (_, events, now) in units {
        out.push(chain.seal(events, *now)?);
    }
    let (seq, hash) = chain.head_values();
    let (seq, hash) = (seq, hash.to_owned());
    let from = from.as_ref().map(|(s, h)| (*s, h.as_str()));
    if !audit::insert_events_moving_head(&mut tx, &out.concat(), seq, &hash, from).await? {
        tx.rollback().await.map_err(map_err)?;
        return Ok(Written::HeadMoved);
    }
    match tx.commit().await {
        Ok(()) => Ok(Written::Committed(out, (seq, hash), true)),
        // The connection may have failed after the server committed: retrying would apply
        // everything twice (a SAD spent twice, events audited twice). Whether the batch's last
        // event is in the chain says which.
        Err(e) => match landed(pool, seq, &hash).await {
            Ok(true) => Ok(Written::Committed(out, (seq, hash), false)),
            Ok(false) => Err(Failed::Before(map_err(e))),
            Err(check) => Err(Failed::Unknown(format!(
                "a batch's commit failed ({e}) and whether it landed could not be checked: {check}"
            ))),
        },
    }
}

/// A connection opened on the calling (writer's) runtime, outside the pool (a pooled one may
/// belong to the server's runtime, and one opened here would go back into the pool belonging
/// to this one), within the pool's acquire timeout, and set to look rows up by key (see
/// [`WRITER_SESSION`]).
async fn open(pool: &AnyPool) -> StoreResult<AnyConnection> {
    let opts = pool.connect_options();
    let wait = pool.options().get_acquire_timeout();
    let open = async {
        let mut conn = opts.connect().await?;
        sqlx::raw_sql(WRITER_SESSION).execute(&mut conn).await?;
        Ok::<_, sqlx::Error>(conn)
    };
    match tokio::time::timeout(wait, open).await {
        Ok(c) => c.map_err(map_err),
        Err(_) => Err(StoreError::Backend(
            "PostgreSQL did not accept a connection within the acquire timeout".into(),
        )),
    }
}

/// Whether the batch whose last event is (`seq`, `hash`) was committed. Its transaction held
/// the audit head lock until it ended; taking that lock first waits for it to end (commit or
/// abort), so a plain read afterwards gives the final answer.
async fn landed(pool: &AnyPool, seq: i64, hash: &str) -> StoreResult<bool> {
    let mut conn = open(pool).await?;
    let mut tx = conn.begin().await.map_err(map_err)?;
    sqlx::query("SET LOCAL lock_timeout = '10s'").execute(&mut *tx).await.map_err(map_err)?;
    sqlx::query("SELECT seq FROM audit_head WHERE id = 1 FOR UPDATE")
        .execute(&mut *tx)
        .await
        .map_err(map_err)?;
    let stored: Option<String> = sqlx::query_scalar("SELECT hash FROM audit_events WHERE seq = $1")
        .bind(seq)
        .fetch_optional(&mut *tx)
        .await
        .map_err(map_err)?;
    tx.rollback().await.map_err(map_err)?;
    // A failed close loses nothing: the answer is in hand.
    let _ = conn.close().await;
    Ok(stored.as_deref() == Some(hash))
}

/// Why a batch failed.
enum Failed {
    /// Before its commit: nothing of it was written, and its units may be retried.
    Before(StoreError),
    /// At its commit, and whether it landed could not be told: it must not be retried.
    Unknown(String),
}

impl From<StoreError> for Failed {
    fn from(e: StoreError) -> Self {
        Failed::Before(e)
    }
}

impl Failed {
    fn into_store(self) -> StoreError {
        match self {
            Failed::Before(e) => e,
            Failed::Unknown(m) => StoreError::Backend(m),
        }
    }
}
