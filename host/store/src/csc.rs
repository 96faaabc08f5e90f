//! The CSC SAD table: insert, the conditional spend of a signHash, and pruning of expired SADs
//! and tokens. The spend is one `UPDATE … RETURNING` on the happy path, so that it can ride in
//! SQLite's group commit next to the signing's audit event.

use sigil_core::ErrorCode;
use sigil_core::StoreError;
use sigil_core::audit::unix_micros;
use sigil_core::ports::StoreResult;
use sigil_core::signing::credential::{Sad, SadRefusal, SadUse, join_hashes, spend_hashes};
use sqlx::{Any, AnyConnection, Executor, Row};
use std::collections::BTreeMap;
use uuid::Uuid;

use crate::map_err;

pub(crate) async fn insert<'c, E: Executor<'c, Database = Any>>(e: E, s: &Sad) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO csc_sads (id, credential_id, signer_id, remaining, hashes, expires_at, \
         created_at) VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(s.id.clone())
    .bind(s.credential_id.to_string())
    .bind(s.signer_id.to_string())
    .bind(i64::from(s.remaining))
    .bind(s.hashes.as_deref().map(join_hashes))
    .bind(unix_micros(s.expires_at))
    .bind(unix_micros(s.created_at))
    .execute(e)
    .await
    .map(|_| ())
    .map_err(map_err)
}

pub(crate) fn refused(detail: &'static str) -> StoreError {
    StoreError::Refused { code: ErrorCode::InvalidRequest, detail: detail.to_owned() }
}

/// Spends `u` on its SAD, or refuses (the caller's transaction must then be dropped).
pub(crate) async fn consume(conn: &mut AnyConnection, u: &SadUse) -> StoreResult<()> {
    let n = i64::try_from(u.hashes.len()).unwrap_or(i64::MAX);
    let row = sqlx::query(
        "UPDATE csc_sads SET remaining = remaining - $2 \
         WHERE id = $1 AND credential_id = $3 AND signer_id = $4 AND expires_at > $5 \
         AND remaining >= $2 RETURNING hashes",
    )
    .bind(u.id.clone())
    .bind(n)
    .bind(u.credential_id.to_string())
    .bind(u.signer_id.to_string())
    .bind(u.now_us)
    .fetch_optional(&mut *conn)
    .await
    .map_err(map_err)?;
    let Some(row) = row else {
        return Err(refused(SadRefusal::of(why(conn, &u.id).await?, u).description()));
    };
    // SCAL 2: each signed digest must be one the SAD was authorized for, and signs once.
    let allowed: Option<String> = row.try_get("hashes").map_err(map_err)?;
    if let Some(allowed) = allowed {
        let left = spend_hashes(&allowed, &u.hashes)
            .ok_or_else(|| refused(SadRefusal::HashNotAuthorized.description()))?;
        sqlx::query("UPDATE csc_sads SET hashes = $2 WHERE id = $1")
            .bind(u.id.clone())
            .bind(left)
            .execute(&mut *conn)
            .await
            .map_err(map_err)?;
    }
    Ok(())
}

/// One SAD's share of a batch, as a row of [`consume_many`]'s JSON parameter.
#[derive(serde::Serialize)]
struct Spend<'a> {
    id: &'a str,
    n: i64,
    cred: String,
    signer: String,
    now: i64,
}

/// Spends several uses in one statement (PostgreSQL's group writer): one round trip and one
/// prepared plan whatever the batch size, where a [`consume`] per use cost a round trip per
/// signature. All or nothing: if any use would be refused, nothing is spent and the caller must
/// drop its transaction; its units are then retried one by one, each getting its own reason.
pub(crate) async fn consume_many(conn: &mut AnyConnection, uses: &[&SadUse]) -> StoreResult<()> {
    match uses {
        [] => return Ok(()),
        [u] => return consume(conn, u).await,
        _ => {}
    }
    // One row per SAD with its uses summed: an UPDATE joins each target row to one source row
    // only, so two uses of one SAD in separate rows would be spent once.
    let mut by_sad: BTreeMap<&str, Vec<&SadUse>> = BTreeMap::new();
    for u in uses {
        by_sad.entry(u.id.as_str()).or_default().push(u);
    }
    let mut rows = Vec::with_capacity(by_sad.len());
    for (id, group) in &by_sad {
        let Some(first) = group.first() else { continue };
        if group
            .iter()
            .any(|u| u.credential_id != first.credential_id || u.signer_id != first.signer_id)
        {
            return Err(refused("one SAD presented for two credentials or signers in a batch"));
        }
        let n: usize = group.iter().map(|u| u.hashes.len()).sum();
        rows.push(Spend {
            id,
            n: i64::try_from(n).unwrap_or(i64::MAX),
            cred: first.credential_id.to_string(),
            signer: first.signer_id.to_string(),
            // The latest clock of the group: a use that would pass alone at the expiry
            // boundary is refused here and passes on its retry alone.
            now: group.iter().map(|u| u.now_us).max().unwrap_or(first.now_us),
        });
    }
    let json = serde_json::to_string(&rows).map_err(|e| StoreError::Backend(e.to_string()))?;
    // The SAD rows are locked in id order (the locking CTE sorts below its lock), as a batch of
    // single spends sorted by id would lock them: two writers' batches cannot wait in a circle.
    let spent = sqlx::query(
        "WITH v AS MATERIALIZED (SELECT * FROM json_to_recordset($1::json)            AS x(id text, n bigint, cred text, signer text, now bigint)),          locked AS MATERIALIZED (SELECT s.id FROM csc_sads s            WHERE s.id IN (SELECT id FROM v) ORDER BY s.id FOR UPDATE OF s)          UPDATE csc_sads s SET remaining = s.remaining - v.n FROM v, locked          WHERE s.id = v.id AND locked.id = s.id AND s.credential_id = v.cred          AND s.signer_id = v.signer AND s.expires_at > v.now AND s.remaining >= v.n          RETURNING s.id, s.hashes",
    )
    .bind(json)
    .fetch_all(&mut *conn)
    .await
    .map_err(map_err)?;
    if spent.len() != rows.len() {
        return Err(refused("a SAD in the batch cannot be spent"));
    }
    // SCAL 2: every digest of the SAD's uses must be one it authorized, each signing once.
    for r in &spent {
        let Some(allowed) = r.try_get::<Option<String>, _>("hashes").map_err(map_err)? else {
            continue;
        };
        let id: String = r.try_get("id").map_err(map_err)?;
        let requested: Vec<String> = by_sad
            .get(id.as_str())
            .into_iter()
            .flatten()
            .flat_map(|u| u.hashes.iter().cloned())
            .collect();
        let left = spend_hashes(&allowed, &requested)
            .ok_or_else(|| refused(SadRefusal::HashNotAuthorized.description()))?;
        sqlx::query("UPDATE csc_sads SET hashes = $2 WHERE id = $1")
            .bind(id)
            .bind(left)
            .execute(&mut *conn)
            .await
            .map_err(map_err)?;
    }
    Ok(())
}

/// What the SAD row says, to tell the client why it was refused (error path only).
async fn why(conn: &mut AnyConnection, id: &str) -> StoreResult<Option<(Uuid, Uuid, u32, i64)>> {
    let row = sqlx::query(
        "SELECT credential_id, signer_id, remaining, expires_at FROM csc_sads WHERE id = $1",
    )
    .bind(id)
    .fetch_optional(&mut *conn)
    .await
    .map_err(map_err)?;
    let Some(r) = row else { return Ok(None) };
    let uuid = |c: &str| -> StoreResult<Uuid> {
        let t: String = r.try_get(c).map_err(map_err)?;
        Uuid::parse_str(&t).map_err(|e| StoreError::Backend(format!("csc_sads.{c}: {e}")))
    };
    let remaining: i64 = r.try_get("remaining").map_err(map_err)?;
    let expires: i64 = r.try_get("expires_at").map_err(map_err)?;
    Ok(Some((
        uuid("credential_id")?,
        uuid("signer_id")?,
        u32::try_from(remaining).unwrap_or(0),
        expires,
    )))
}

/// Deletes SADs and tokens that expired before `before`.
pub(crate) async fn prune<'c, E>(e: E, before: i64) -> StoreResult<u64>
where
    E: Executor<'c, Database = Any> + Copy,
{
    let a = sqlx::query("DELETE FROM csc_sads WHERE expires_at < $1")
        .bind(before)
        .execute(e)
        .await
        .map_err(map_err)?;
    let b = sqlx::query("DELETE FROM csc_tokens WHERE expires_at < $1")
        .bind(before)
        .execute(e)
        .await
        .map_err(map_err)?;
    Ok(a.rows_affected() + b.rows_affected())
}

/// Deletes every token and SAD of signer `signer` (a password change, a disable or a lockout
/// ends them in the transaction that makes the change).
pub(crate) async fn end_sessions(
    tx: &mut sqlx::Transaction<'static, Any>,
    signer: &str,
) -> StoreResult<u64> {
    let a = sqlx::query("DELETE FROM csc_sads WHERE signer_id = $1")
        .bind(signer)
        .execute(&mut **tx)
        .await
        .map_err(map_err)?;
    let b = sqlx::query("DELETE FROM csc_tokens WHERE signer_id = $1")
        .bind(signer)
        .execute(&mut **tx)
        .await
        .map_err(map_err)?;
    Ok(a.rows_affected() + b.rows_affected())
}
