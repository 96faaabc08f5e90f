//! Audit rows: events, head, checkpoints and public keys.

use sigil_core::StoreError;
use sigil_core::audit::{AuditEvent, Checkpoint, NewAuditEvent};
use sigil_core::ports::{AuditFilter, AuditHead, AuditKeyRecord, StoreResult};
use sqlx::any::AnyRow;
use sqlx::{Any, AnyConnection, Executor, Row};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::filter::{Select, escape_like};
use crate::map_err;

pub(crate) const COLUMNS: &str = "seq, id, occurred_at, actor_kind, actor_id, actor_name, api_key_id, \
    operator_id, action, object_type, object_id, outcome, request_id, client_ip, details, \
    prev_hash, hash";

fn from_row(r: &AnyRow) -> StoreResult<AuditEvent> {
    let s = |c: &str| r.try_get::<String, _>(c).map_err(map_err);
    let os = |c: &str| r.try_get::<Option<String>, _>(c).map_err(map_err);
    Ok(AuditEvent {
        seq: r.try_get("seq").map_err(map_err)?,
        // An id that does not parse is kept visible as the nil UUID; the hash check then fails.
        id: Uuid::parse_str(&s("id")?).unwrap_or_default(),
        occurred_at_us: r.try_get("occurred_at").map_err(map_err)?,
        actor_kind: s("actor_kind")?,
        actor_id: s("actor_id")?,
        actor_name: s("actor_name")?,
        api_key_id: os("api_key_id")?,
        operator_id: os("operator_id")?,
        action: s("action")?,
        object_type: s("object_type")?,
        object_id: s("object_id")?,
        outcome: s("outcome")?,
        request_id: os("request_id")?,
        client_ip: os("client_ip")?,
        details: s("details")?,
        prev_hash: s("prev_hash")?,
        hash: s("hash")?,
    })
}

pub(crate) const INSERT_COLUMNS: &str = "seq, id, occurred_at, actor_kind, actor_id, actor_name, \
    api_key_id, operator_id, action, object_type, object_id, outcome, request_id, client_ip, \
    details, prev_hash, hash";

/// Stores sealed events, many rows per statement (one round trip per run of rows rather than
/// one per event: on SQLite each statement is a hop to sqlx's worker thread).
pub(crate) async fn insert_events(
    conn: &mut AnyConnection,
    events: &[AuditEvent],
) -> StoreResult<()> {
    for run in crate::insert_runs(events) {
        let sql = crate::multi_insert("audit_events", INSERT_COLUMNS, 17, run.len());
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
        for ev in run {
            q = q
                .bind(ev.seq)
                .bind(ev.id.to_string())
                .bind(ev.occurred_at_us)
                .bind(&ev.actor_kind)
                .bind(&ev.actor_id)
                .bind(&ev.actor_name)
                .bind(ev.api_key_id.clone())
                .bind(ev.operator_id.clone())
                .bind(&ev.action)
                .bind(&ev.object_type)
                .bind(&ev.object_id)
                .bind(&ev.outcome)
                .bind(ev.request_id.clone())
                .bind(ev.client_ip.clone())
                .bind(&ev.details)
                .bind(&ev.prev_hash)
                .bind(&ev.hash);
        }
        q.execute(&mut *conn).await.map_err(map_err)?;
    }
    Ok(())
}

/// PostgreSQL only: stores a batch's sealed events and moves the audit head to the last of them
/// (`seq`, `hash`) in one statement. The events travel as one JSON parameter (their own
/// serialization, the one JSON exports use), so the statement has one shape (one prepared plan)
/// whatever the batch size, where [`insert_events`] needs a statement per power-of-two run and
/// the head its own UPDATE.
///
/// `from` is the head the events were chained from. `None`: the caller's transaction already
/// holds the head's lock (it read the head `FOR UPDATE`). `Some`: the head was not read in this
/// transaction (the group writer remembers where its last commit left it); the statement takes
/// the lock itself and stores nothing unless the head is still there, and returns `false` then
/// (another writer moved it: the caller rolls back and chains again from the locked head).
pub(crate) async fn insert_events_moving_head(
    conn: &mut AnyConnection,
    events: &[AuditEvent],
    seq: i64,
    hash: &str,
    from: Option<(i64, &str)>,
) -> StoreResult<bool> {
    let json = serde_json::to_string(events).map_err(|e| StoreError::Backend(e.to_string()))?;
    // Under READ COMMITTED an UPDATE that waited for the head's lock re-checks its condition
    // on the row as the other transaction left it: a moved head matches nothing.
    let (head, only_if) = match from {
        None => ("UPDATE audit_head SET seq = $1, hash = $2 WHERE id = 1", ""),
        Some(_) => (
            "UPDATE audit_head SET seq = $1, hash = $2 WHERE id = 1 AND seq = $4 AND hash = $5 \
             RETURNING 1",
            " WHERE EXISTS (SELECT 1 FROM head)",
        ),
    };
    let sql = format!(
        "WITH head AS ({head}) \
         INSERT INTO audit_events ({INSERT_COLUMNS}) SELECT seq, id, occurred_at_us, \
         actor_kind, actor_id, actor_name, api_key_id, operator_id, action, object_type, \
         object_id, outcome, request_id, client_ip, details, prev_hash, hash \
         FROM json_to_recordset($3::json) AS x(seq bigint, id text, occurred_at_us bigint, \
         actor_kind text, actor_id text, actor_name text, api_key_id text, operator_id text, \
         action text, object_type text, object_id text, outcome text, request_id text, \
         client_ip text, details text, prev_hash text, hash text){only_if}"
    );
    let mut q = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(seq).bind(hash).bind(json);
    if let Some((from_seq, from_hash)) = from {
        q = q.bind(from_seq).bind(from_hash.to_owned());
    }
    let done = q.execute(&mut *conn).await.map_err(map_err)?;
    if from.is_some() && done.rows_affected() == 0 {
        return Ok(false);
    }
    if usize::try_from(done.rows_affected()).ok() != Some(events.len()) {
        return Err(StoreError::Backend(format!(
            "{} of {} audit events stored",
            done.rows_affected(),
            events.len()
        )));
    }
    Ok(true)
}

pub(crate) async fn events<'c, E: Executor<'c, Database = Any>>(
    e: E,
    f: &AuditFilter,
    limit: u32,
) -> StoreResult<Vec<AuditEvent>> {
    let mut q = Select::new(COLUMNS, "audit_events");
    if let Some(v) = &f.actor_id {
        q.and("actor_id = ?", [v.as_str()]);
    }
    if let Some(v) = &f.object_type {
        q.and("object_type = ?", [v.as_str()]);
    }
    if let Some(v) = &f.object_id {
        q.and("object_id = ?", [v.as_str()]);
    }
    if let Some(v) = &f.action {
        match v.strip_suffix('*') {
            Some(prefix) => {
                q.and("action LIKE ? ESCAPE '\\'", [format!("{}%", escape_like(prefix))])
            }
            None => q.and("action = ?", [v.as_str()]),
        };
    }
    if let Some(v) = &f.outcome {
        q.and("outcome = ?", [v.as_str()]);
    }
    if let Some(v) = f.from_us {
        q.and("occurred_at >= ?", [v]);
    }
    if let Some(v) = f.until_us {
        q.and("occurred_at < ?", [v]);
    }
    if let Some(v) = f.after_seq {
        q.and("seq > ?", [v]);
    }
    let rows = q.fetch(&format!("ORDER BY seq LIMIT {limit}"), e).await?;
    rows.iter().map(from_row).collect()
}

pub(crate) async fn head<'c, E: Executor<'c, Database = Any>>(e: E) -> StoreResult<AuditHead> {
    let r = sqlx::query("SELECT seq, hash FROM audit_head WHERE id = 1")
        .fetch_one(e)
        .await
        .map_err(map_err)?;
    Ok(AuditHead {
        seq: r.try_get("seq").map_err(map_err)?,
        hash: r.try_get("hash").map_err(map_err)?,
    })
}

pub(crate) async fn checkpoints<'c, E: Executor<'c, Database = Any>>(
    e: E,
    from_counter: i64,
) -> StoreResult<Vec<Checkpoint>> {
    let rows = sqlx::query(
        "SELECT counter, seq, hash, prev, signed_at, key_id, signature FROM audit_checkpoints \
         WHERE counter >= $1 ORDER BY counter",
    )
    .bind(from_counter)
    .fetch_all(e)
    .await
    .map_err(map_err)?;
    rows.iter()
        .map(|r| {
            Ok(Checkpoint {
                counter: r.try_get("counter").map_err(map_err)?,
                seq: r.try_get("seq").map_err(map_err)?,
                hash: r.try_get("hash").map_err(map_err)?,
                prev: r.try_get("prev").map_err(map_err)?,
                signed_at_us: r.try_get("signed_at").map_err(map_err)?,
                key_id: r.try_get("key_id").map_err(map_err)?,
                signature: r.try_get("signature").map_err(map_err)?,
            })
        })
        .collect()
}

pub(crate) async fn insert_checkpoint<'c, E: Executor<'c, Database = Any>>(
    e: E,
    c: &Checkpoint,
) -> StoreResult<bool> {
    sqlx::query(
        "INSERT INTO audit_checkpoints (counter, seq, hash, prev, signed_at, key_id, signature) \
         VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (counter) DO NOTHING",
    )
    .bind(c.counter)
    .bind(c.seq)
    .bind(&c.hash)
    .bind(&c.prev)
    .bind(c.signed_at_us)
    .bind(&c.key_id)
    .bind(&c.signature)
    .execute(e)
    .await
    .map(|r| r.rows_affected() == 1)
    .map_err(map_err)
}

pub(crate) async fn register_key<'c, E: Executor<'c, Database = Any>>(
    e: E,
    k: &AuditKeyRecord,
) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO audit_keys (key_id, public_key_pem, created_at) VALUES ($1, $2, $3) \
         ON CONFLICT (key_id) DO NOTHING",
    )
    .bind(&k.key_id)
    .bind(&k.public_key_pem)
    .bind(k.created_at_us)
    .execute(e)
    .await
    .map(|_| ())
    .map_err(map_err)
}

pub(crate) async fn keys<'c, E: Executor<'c, Database = Any>>(
    e: E,
) -> StoreResult<Vec<AuditKeyRecord>> {
    let rows = sqlx::query(
        "SELECT key_id, public_key_pem, created_at FROM audit_keys ORDER BY created_at",
    )
    .fetch_all(e)
    .await
    .map_err(map_err)?;
    rows.iter()
        .map(|r| {
            Ok(AuditKeyRecord {
                key_id: r.try_get("key_id").map_err(map_err)?,
                public_key_pem: r.try_get("public_key_pem").map_err(map_err)?,
                created_at_us: r.try_get("created_at").map_err(map_err)?,
            })
        })
        .collect()
}

/// The head of the audit chain within one transaction: events are sealed after it and stored,
/// then the head is saved. The one way events join the chain (a single commit and a group
/// commit alike).
pub(crate) struct Chain {
    seq: i64,
    prev: String,
}

impl Chain {
    /// Reads the head; with `lock`, locks it until the transaction ends (PostgreSQL: concurrent
    /// writers queue here; SQLite's writer lock already serialises them).
    pub(crate) async fn head(conn: &mut AnyConnection, lock: bool) -> StoreResult<Self> {
        let sql = if lock {
            "SELECT seq, hash FROM audit_head WHERE id = 1 FOR UPDATE"
        } else {
            "SELECT seq, hash FROM audit_head WHERE id = 1"
        };
        let head = sqlx::query(sql).fetch_one(&mut *conn).await.map_err(map_err)?;
        Ok(Self {
            seq: head.try_get("seq").map_err(map_err)?,
            prev: head.try_get("hash").map_err(map_err)?,
        })
    }

    /// A chain whose head is `seq` with hash `prev` (read by the caller).
    pub(crate) fn at(seq: i64, prev: String) -> Self {
        Self { seq, prev }
    }

    /// The head after what was sealed: sequence number and hash.
    pub(crate) fn head_values(&self) -> (i64, &str) {
        (self.seq, &self.prev)
    }

    /// Seals and stores `events` at `now` after the head; refuses a change without events.
    pub(crate) async fn append(
        &mut self,
        conn: &mut AnyConnection,
        events: &[NewAuditEvent],
        now: OffsetDateTime,
    ) -> StoreResult<Vec<AuditEvent>> {
        let sealed = self.seal(events, now)?;
        insert_events(conn, &sealed).await?;
        Ok(sealed)
    }

    /// Seals `events` at `now` after the head without storing them (the group writer stores a
    /// whole batch's events at once); refuses a change without events.
    pub(crate) fn seal(
        &mut self,
        events: &[NewAuditEvent],
        now: OffsetDateTime,
    ) -> StoreResult<Vec<AuditEvent>> {
        if events.is_empty() {
            return Err(StoreError::Backend(
                "a change must be committed with its audit events".into(),
            ));
        }
        let mut sealed = Vec::with_capacity(events.len());
        for ev in events {
            self.seq += 1;
            let e = ev.seal(self.seq, now, &self.prev);
            self.prev.clone_from(&e.hash);
            sealed.push(e);
        }
        Ok(sealed)
    }

    /// Saves the head.
    pub(crate) async fn save(self, conn: &mut AnyConnection) -> StoreResult<()> {
        sqlx::query("UPDATE audit_head SET seq = $1, hash = $2 WHERE id = 1")
            .bind(self.seq)
            .bind(&self.prev)
            .execute(&mut *conn)
            .await
            .map(|_| ())
            .map_err(map_err)
    }
}
