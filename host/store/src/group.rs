//! Group commit for SQLite. SQLite has one writer, and through sqlx every statement is a hop to
//! the connection's worker thread; under load those hand-offs, not SQLite, set the pace. So the
//! group writer owns a connection of its own (rusqlite, the same libsqlite3 as sqlx) on its own
//! thread: it takes whatever units are waiting (up to [`MAX_BATCH`]), applies them in one
//! `BEGIN IMMEDIATE` transaction with their audit events chained in order (under load, with
//! those that arrive in a short window, see [`Gather`]), commits once and answers each
//! unit. Each unit runs in a savepoint, so a refused unit is undone alone; if the
//! batch itself fails, each unit is retried alone.
//!
//! Placeholders are `?N`: SQLite numbers `$N` parameters by first appearance, not by N.
//!
//! Writes outside the group (sqlx's write pool) queue with it at one fair in-process gate
//! (SQLite's own busy handler polls, and would let a busy group writer starve them), then take
//! the writer lock with `BEGIN IMMEDIATE`; both read the audit head inside their transaction,
//! so the chain stays one.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};
use sigil_core::StoreError;
use sigil_core::audit::{AuditEvent, NewAuditEvent, unix_micros};
use sigil_core::certs::{Certificate, San};
use sigil_core::ports::{StoreResult, WriteOp};
use sigil_core::signing::credential::{SadRefusal, SadUse, spend_hashes};
use time::OffsetDateTime;
use tokio::sync::{mpsc, oneshot};
use uuid::Uuid;

use crate::checkpointer::{self, WRITER_FRAMES};
use crate::{audit, certs, csc};

/// The writer's page cache (KiB). SQLite's default (2 MiB) let the interior and leaf pages an
/// insert walks through drop out between commits, to be read back from the file each time.
const WRITER_CACHE_KIB: u32 = 16 * 1024;

/// Most units in one transaction.
pub(crate) const MAX_BATCH: usize = 256;

/// How long a commit under load stays open for more units: while it holds fewer than `units`,
/// up to `wait`, looking at the queue every `step` (sleeps are rounded up by the kernel's timer
/// slack, 50 µs by default) and applying each unit as it arrives, so the commit follows the
/// window's end at once. Under load means units were waiting when the last commit ended: an
/// idle server, or one client at a time, never waits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Gather {
    units: usize,
    wait: Duration,
    step: Duration,
}

/// For commits of new certificates. Such a commit rewrites the last page of about 17 B-trees
/// (the certificate table, its indexes, the audit table and its indexes, the chain head) and
/// syncs, whatever its size; with the WAL written in one call (sigil-sqlite-wal) the writer
/// turned around so fast that its batches fell to two units, and those fixed costs came back
/// per unit. Measured at 16 clients, alternating: writer CPU per issuance 42-57 µs against
/// 67-79, server CPU 4-12% lower, the rate 4% higher on average (within the VM's noise). The
/// window first came before the batch's statements, which then ran after it while its clients
/// waited; running them inside it gave 5,568/s against 5,280/s (six alternating pairs of 5 s,
/// five in its favour; server CPU per issuance 267 µs against 280) and 5,867/s against 5,742/s
/// in five more.
const ISSUANCE: Gather =
    Gather { units: 12, wait: Duration::from_micros(400), step: Duration::from_micros(100) };

/// For commits that spend SADs (signHash). A signature's commit touches fewer trees and its
/// clients wait on it more: the issuance window (and one of 8 units, 200 µs) cost signHash 4-11%
/// on the slower machine of earlier measurements. On the present one (AMD EPYC, 2 cores, 50-70
/// µs of server CPU per signature) the writer committed about 11,000 times a second for 18,000
/// signatures, batches of 1.6 units costing 20 µs of writer CPU per signature. One short look
/// for more (in effect a single sleep, rounded up by the timer slack) left the rate where it
/// was within the VM's noise (four alternating pairs of 5 s: 20,000/s on average either way)
/// and lowered p99 in nearly every run: 5.7-8.7 ms against 10.5-34 ms in those pairs.
const SIGNATURES: Gather =
    Gather { units: 4, wait: Duration::from_micros(50), step: Duration::from_micros(20) };

/// The window a commit of `batch` gathers with under load, if any: commits of new
/// certificates and of SAD spends; any other write commits at once.
fn gather_for(batch: &[Unit]) -> Option<Gather> {
    let any = |f: fn(&WriteOp) -> bool| batch.iter().any(|u| u.ops.iter().any(f));
    if any(|op| matches!(op, WriteOp::InsertCertificate(_))) {
        Some(ISSUANCE)
    } else if any(|op| matches!(op, WriteOp::ConsumeSad(_))) {
        Some(SIGNATURES)
    } else {
        None
    }
}

pub(crate) struct Unit {
    pub(crate) ops: Vec<WriteOp>,
    pub(crate) events: Vec<NewAuditEvent>,
    pub(crate) now: OffsetDateTime,
    pub(crate) reply: oneshot::Sender<Answer>,
}

/// A unit's outcome, with the unit's own operations and events handed back.
///
/// Memory is freed fastest by the thread that allocated it (mimalloc queues a free from another
/// thread for the owner to collect later). So the sealed events, made by the writer, are dropped
/// by the writer, and the unit's operations and events, made by the caller, go back to it: the
/// caller tells the commit observer from its own events (each sealed one carries the same action,
/// outcome and object) and drops them. Under signHash load the cross-thread frees had cost about
/// 5% of both the async threads' and the writer's time.
pub(crate) struct Answer {
    pub(crate) result: StoreResult<()>,
    /// Carried back only to be dropped by the caller.
    pub(crate) _ops: Vec<WriteOp>,
    pub(crate) events: Vec<NewAuditEvent>,
}

impl Unit {
    /// Answers the caller with `r`, dropping the sealed events here.
    pub(crate) fn answer(self, r: StoreResult<Vec<AuditEvent>>) {
        let result = r.map(drop);
        let _ = self.reply.send(Answer { result, _ops: self.ops, events: self.events });
    }
}

/// Opens the writer's connection to the database file `path` (created by sqlx first) with
/// `synchronous` (`FULL` or `NORMAL`) and starts its thread at the nice value `nice`, on CPU
/// `cpu` if one is given (see priority.rs); the thread ends when every sender is dropped.
pub(crate) fn spawn(
    path: &Path,
    synchronous: &str,
    nice: i32,
    cpu: Option<usize>,
    gate: Arc<tokio::sync::Mutex<()>>,
) -> Result<mpsc::Sender<Unit>, String> {
    let conn = Connection::open(path).map_err(|e| e.to_string())?;
    conn.busy_timeout(Duration::from_secs(10)).map_err(|e| e.to_string())?;
    conn.execute_batch(&format!(
        "PRAGMA journal_mode=WAL; PRAGMA synchronous={synchronous}; PRAGMA foreign_keys=ON; \
         PRAGMA cache_size=-{WRITER_CACHE_KIB}; PRAGMA wal_autocheckpoint={WRITER_FRAMES};"
    ))
    .map_err(|e| e.to_string())?;
    // Checkpoints run beside the writer, not inside its commits (see checkpointer.rs).
    let checkpoint = checkpointer::spawn(path)?;
    conn.set_prepared_statement_cache_capacity(32);
    let (tx, mut rx) = mpsc::channel::<Unit>(4 * MAX_BATCH);
    let mut conn = conn;
    std::thread::Builder::new()
        .name("sigil-sqlite-writer".into())
        .spawn(move || {
            crate::priority::apply_writer_nice(nice);
            crate::priority::apply_writer_cpu(cpu);
            let mut busy = false;
            while let Some(first) = rx.blocking_recv() {
                let mut batch = vec![first];
                take_waiting(&mut rx, &mut batch);
                let gather = gather_for(&batch).filter(|g| busy && batch.len() < g.units);
                // In the writers' queue (first come, first served with sqlx's writes).
                let turn = gate.blocking_lock();
                let written = match write_gathering(&mut conn, &mut rx, &mut batch, gather) {
                    Err(_) if batch.len() > 1 => batch
                        .iter()
                        .map(|u| {
                            write(&mut conn, &[(u.ops.as_slice(), u.events.as_slice(), u.now)])
                                .and_then(|mut v| v.pop().unwrap_or_else(|| Ok(Vec::new())))
                        })
                        .collect(),
                    Err(e) => vec![Err(e)],
                    Ok(each) => each,
                };
                drop(turn);
                checkpoint.nudge();
                for (u, r) in batch.into_iter().zip(written) {
                    u.answer(r);
                }
                busy = !rx.is_empty();
            }
        })
        .map_err(|e| e.to_string())?;
    Ok(tx)
}

/// Moves the units waiting in `rx` into `batch`, up to [`MAX_BATCH`].
fn take_waiting(rx: &mut mpsc::Receiver<Unit>, batch: &mut Vec<Unit>) {
    while batch.len() < MAX_BATCH {
        match rx.try_recv() {
            Ok(u) => batch.push(u),
            Err(_) => break,
        }
    }
}

/// A SQLite error as the store reports it: unique violations as conflicts naming the
/// constraint (SQLite's message, as sqlx reports it too), anything else as a backend error.
pub(crate) fn map_err(e: rusqlite::Error) -> StoreError {
    match &e {
        rusqlite::Error::SqliteFailure(f, msg)
            if matches!(
                f.extended_code,
                rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE
                    | rusqlite::ffi::SQLITE_CONSTRAINT_PRIMARYKEY
            ) =>
        {
            StoreError::Conflict { constraint: msg.clone().unwrap_or_else(|| e.to_string()) }
        }
        _ => StoreError::Backend(e.to_string()),
    }
}

/// Applies `units` in one transaction and returns each unit's outcome: its sealed events, or
/// why its operations were refused (see [`Open::add`]).
fn write(
    conn: &mut Connection,
    units: &[(&[WriteOp], &[NewAuditEvent], OffsetDateTime)],
) -> StoreResult<Vec<StoreResult<Vec<AuditEvent>>>> {
    let mut open = Open::begin(conn)?;
    let mut out = Vec::with_capacity(units.len());
    for (ops, events, now) in units {
        out.push(open.add(ops, events, *now)?);
    }
    open.commit()?;
    Ok(out)
}

/// Applies `batch` in one transaction, as [`write`] does; with a `gather` window, keeps the
/// transaction open for up to its `wait`, applying the units that arrive meanwhile (moved into
/// `batch`) until it holds its `units`. Their statements run while the window is open, so the
/// commit follows its end at once.
fn write_gathering(
    conn: &mut Connection,
    rx: &mut mpsc::Receiver<Unit>,
    batch: &mut Vec<Unit>,
    gather: Option<Gather>,
) -> StoreResult<Vec<StoreResult<Vec<AuditEvent>>>> {
    let window = gather.map(|g| (g, Instant::now() + g.wait));
    let mut open = Open::begin(conn)?;
    let mut out = Vec::with_capacity(batch.len());
    loop {
        for u in &batch[out.len()..] {
            out.push(open.add(&u.ops, &u.events, u.now)?);
        }
        let Some((g, until)) = window else { break };
        if batch.len() >= g.units || Instant::now() >= until {
            break;
        }
        std::thread::sleep(g.step);
        take_waiting(rx, batch);
    }
    open.commit()?;
    Ok(out)
}

/// A group transaction being filled: the audit chain continues from the head read at its start.
struct Open<'c> {
    tx: rusqlite::Transaction<'c>,
    chain: audit::Chain,
}

impl<'c> Open<'c> {
    fn begin(conn: &'c mut Connection) -> StoreResult<Self> {
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate).map_err(map_err)?;
        let (seq, hash): (i64, String) = tx
            .prepare_cached("SELECT seq, hash FROM audit_head WHERE id = 1")
            .and_then(|mut s| s.query_row([], |r| Ok((r.get(0)?, r.get(1)?))))
            .map_err(map_err)?;
        Ok(Self { tx, chain: audit::Chain::at(seq, hash) })
    }

    /// Applies one unit and chains its events. A unit of one statement is atomic by itself; a
    /// unit of several runs inside a savepoint. So a refused unit (a spent SAD, a renewal already
    /// claimed, a serial taken) is undone alone (the inner result); any other error fails the
    /// whole transaction (the outer one).
    fn add(
        &mut self,
        ops: &[WriteOp],
        events: &[NewAuditEvent],
        now: OffsetDateTime,
    ) -> StoreResult<StoreResult<Vec<AuditEvent>>> {
        let tx = &mut self.tx;
        let applied = if ops.len() == 1 && ops.iter().all(one_statement) {
            // One statement is atomic on its own: a failing one backs out its own changes and
            // leaves the transaction open. A savepoint would copy every page the unit touches
            // into a sub-journal (spilled to a temporary file past 64 KiB), which cost the
            // issuance path about a quarter of its rate.
            ops.iter().try_for_each(|op| apply(tx, op))
        } else {
            // Dropped without commit, a savepoint rolls back to where it began.
            let sp = tx.savepoint().map_err(map_err)?;
            ops.iter().try_for_each(|op| apply(&sp, op)).and_then(|()| sp.commit().map_err(map_err))
        };
        match applied {
            Ok(()) => {
                let sealed = self.chain.seal(events, now)?;
                for e in &sealed {
                    insert_event(&self.tx, e)?;
                }
                Ok(Ok(sealed))
            }
            // Only a refusal or a unique violation is known to leave the transaction as it was
            // before the unit (the statement backed out, or the savepoint rolled back). Any other
            // error (I/O, a full disk, memory) may have rolled back the whole transaction or left
            // the unit half-written: the batch fails, and its units are retried alone.
            Err(e @ (StoreError::Refused { .. } | StoreError::Conflict { .. }))
                if !self.tx.is_autocommit() =>
            {
                Ok(Err(e))
            }
            Err(e) => Err(e),
        }
    }

    /// Moves the head to the last sealed event and commits.
    fn commit(self) -> StoreResult<()> {
        let (seq, hash) = self.chain.head_values();
        self.tx
            .prepare_cached("UPDATE audit_head SET seq = ?1, hash = ?2 WHERE id = 1")
            .and_then(|mut s| s.execute(params![seq, hash]))
            .map_err(map_err)?;
        self.tx.commit().map_err(map_err)
    }
}

/// Whether `op` is all or nothing without a savepoint: one INSERT, or a SAD spend (whose second
/// statement runs only once the spend is sure, and whose late refusal undoes the first).
fn one_statement(op: &WriteOp) -> bool {
    matches!(op, WriteOp::InsertCertificate(_) | WriteOp::ConsumeSad(_))
}

fn apply(tx: &Connection, op: &WriteOp) -> StoreResult<()> {
    match op {
        WriteOp::InsertCertificate(c) => insert_certificate(tx, c),
        WriteOp::ConsumeSad(u) => consume_sad(tx, u),
        WriteOp::ClaimRenewal { renewed_from, renewal, at_us, superseded_until_us } => {
            tx.prepare_cached(
                "INSERT INTO certificate_renewals (renewed_from, renewal_id, claimed_at) \
                 VALUES (?1, ?2, ?3)",
            )
            .and_then(|mut s| {
                s.execute(params![renewed_from.to_string(), renewal.to_string(), at_us])
            })
            .map_err(map_err)?;
            tx.prepare_cached(
                "UPDATE certificates SET superseded_by = ?2, superseded_until = ?3, \
                 updated_at = ?4 WHERE id = ?1",
            )
            .and_then(|mut s| {
                s.execute(params![
                    renewed_from.to_string(),
                    renewal.to_string(),
                    superseded_until_us,
                    at_us
                ])
            })
            .map(|_| ())
            .map_err(map_err)
        }
        #[allow(unreachable_patterns)]
        _ => Err(StoreError::Backend("unsupported write operation".into())),
    }
}

fn insert_certificate(tx: &Connection, c: &Certificate) -> StoreResult<()> {
    let sans = serde_json::to_string(&c.sans.iter().map(San::tagged).collect::<Vec<_>>())
        .map_err(|e| StoreError::Backend(e.to_string()))?;
    let sql = format!(
        "INSERT INTO certificates ({}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, \
         ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20, ?21)",
        certs::INSERT_COLUMNS
    );
    tx.prepare_cached(&sql)
        .and_then(|mut s| {
            s.execute(params![
                c.id.to_string(),
                c.serial,
                c.ca_id,
                c.profile,
                c.status.as_str(),
                c.subject,
                sans,
                certs::search_text(c),
                c.key_type.as_str(),
                unix_micros(c.not_before),
                unix_micros(c.not_after),
                c.der,
                c.sha256,
                unix_micros(c.issued_at),
                c.issued_by,
                c.revoked_at.map(unix_micros),
                c.revocation_reason.map(|r| r.as_str()),
                c.metadata.to_string(),
                c.renewed_from.map(|u| u.to_string()),
                unix_micros(c.updated_at),
                c.office_id.map(|u| u.to_string()),
            ])
        })
        .map(|_| ())
        .map_err(map_err)
}

fn insert_event(tx: &Connection, e: &AuditEvent) -> StoreResult<()> {
    let sql = format!(
        "INSERT INTO audit_events ({}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, \
         ?12, ?13, ?14, ?15, ?16, ?17)",
        audit::INSERT_COLUMNS
    );
    tx.prepare_cached(&sql)
        .and_then(|mut s| {
            s.execute(params![
                e.seq,
                e.id.to_string(),
                e.occurred_at_us,
                e.actor_kind,
                e.actor_id,
                e.actor_name,
                e.api_key_id,
                e.operator_id,
                e.action,
                e.object_type,
                e.object_id,
                e.outcome,
                e.request_id,
                e.client_ip,
                e.details,
                e.prev_hash,
                e.hash,
            ])
        })
        .map(|_| ())
        .map_err(map_err)
}

/// Spends `u` on its SAD (as `csc::consume` does through sqlx), or refuses.
fn consume_sad(tx: &Connection, u: &SadUse) -> StoreResult<()> {
    let n = i64::try_from(u.hashes.len()).unwrap_or(i64::MAX);
    let ids = (u.credential_id.to_string(), u.signer_id.to_string());
    // A SAD for any hashes (no list) is spent by a plain UPDATE. SQLite runs a statement with
    // RETURNING like one with a trigger, keeping a statement journal (a copy of every page it
    // changes, in memory) in case it must back out: the spend was 17.5% of the writer's
    // samples under signHash load with RETURNING, 5.4% without (perf, DWARF call graphs).
    let plain = tx
        .prepare_cached(
            "UPDATE csc_sads SET remaining = remaining - ?2 \
             WHERE id = ?1 AND credential_id = ?3 AND signer_id = ?4 AND expires_at > ?5 \
             AND remaining >= ?2 AND hashes IS NULL",
        )
        .and_then(|mut s| s.execute(params![u.id, n, ids.0, ids.1, u.now_us]))
        .map_err(map_err)?;
    if plain == 1 {
        return Ok(());
    }
    // Bound to hashes, or refused: the statement that reads what is left says which.
    let spent: Option<Option<String>> = tx
        .prepare_cached(
            "UPDATE csc_sads SET remaining = remaining - ?2 \
             WHERE id = ?1 AND credential_id = ?3 AND signer_id = ?4 AND expires_at > ?5 \
             AND remaining >= ?2 RETURNING hashes",
        )
        .and_then(|mut s| {
            s.query_row(params![u.id, n, ids.0, ids.1, u.now_us], |r| r.get(0)).optional()
        })
        .map_err(map_err)?;
    let Some(allowed) = spent else {
        return Err(csc::refused(SadRefusal::of(sad_state(tx, &u.id)?, u).description()));
    };
    // SCAL 2: each signed digest must be one the SAD was authorized for, and signs once.
    if let Some(allowed) = allowed {
        let Some(left) = spend_hashes(&allowed, &u.hashes) else {
            // Refused after the count was taken: give it back, so that the spend is all or
            // nothing without a savepoint (see `write`).
            tx.prepare_cached("UPDATE csc_sads SET remaining = remaining + ?2 WHERE id = ?1")
                .and_then(|mut s| s.execute(params![u.id, n]))
                .map_err(map_err)?;
            return Err(csc::refused(SadRefusal::HashNotAuthorized.description()));
        };
        tx.prepare_cached("UPDATE csc_sads SET hashes = ?2 WHERE id = ?1")
            .and_then(|mut s| s.execute(params![u.id, left]))
            .map_err(map_err)?;
    }
    Ok(())
}

/// What the SAD row says (credential, signer, remaining, expiry), to say why it was refused.
fn sad_state(tx: &Connection, id: &str) -> StoreResult<Option<(Uuid, Uuid, u32, i64)>> {
    let row: Option<(String, String, i64, i64)> = tx
        .prepare_cached(
            "SELECT credential_id, signer_id, remaining, expires_at FROM csc_sads WHERE id = ?1",
        )
        .and_then(|mut s| {
            s.query_row(params![id], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
                .optional()
        })
        .map_err(map_err)?;
    let Some((credential, signer, remaining, expires)) = row else { return Ok(None) };
    let uuid = |t: &str, c: &str| {
        Uuid::parse_str(t).map_err(|e| StoreError::Backend(format!("csc_sads.{c}: {e}")))
    };
    Ok(Some((
        uuid(&credential, "credential_id")?,
        uuid(&signer, "signer_id")?,
        u32::try_from(remaining).unwrap_or(0),
        expires,
    )))
}

#[cfg(test)]
mod tests {
    use super::*;
    use sigil_core::signing::credential::SadUse;

    fn unit(ops: Vec<WriteOp>) -> Unit {
        let (reply, _) = oneshot::channel();
        Unit { ops, events: vec![], now: OffsetDateTime::now_utc(), reply }
    }

    fn insert() -> WriteOp {
        WriteOp::InsertCertificate(Arc::new(crate::testing::certificate("01")))
    }

    fn spend() -> WriteOp {
        WriteOp::ConsumeSad(SadUse {
            id: "00".into(),
            credential_id: Uuid::now_v7(),
            signer_id: Uuid::now_v7(),
            hashes: vec![],
            now_us: 0,
        })
    }

    fn claim() -> WriteOp {
        WriteOp::ClaimRenewal {
            renewed_from: Uuid::now_v7(),
            renewal: Uuid::now_v7(),
            at_us: 0,
            superseded_until_us: 0,
        }
    }

    #[test]
    fn certificates_gather_longest_signatures_briefly_and_other_writes_not_at_all() {
        assert_eq!(gather_for(&[unit(vec![insert()])]), Some(ISSUANCE));
        // A batch holding any new certificate takes the issuance window.
        assert_eq!(
            gather_for(&[unit(vec![spend()]), unit(vec![insert(), claim()])]),
            Some(ISSUANCE)
        );
        assert_eq!(gather_for(&[unit(vec![spend()]), unit(vec![])]), Some(SIGNATURES));
        assert_eq!(gather_for(&[unit(vec![claim()]), unit(vec![])]), None);
        assert!(SIGNATURES.units < ISSUANCE.units && SIGNATURES.wait < ISSUANCE.wait);
    }
}
