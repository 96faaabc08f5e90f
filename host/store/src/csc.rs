//! The CSC SAD table: insert, the conditional spend of a signHash, and pruning of expired SADs
//! and tokens. The spend is one `UPDATE … RETURNING` on the happy path, so that it can ride in
//! SQLite's group commit next to the signing's audit event.

use sigil_core::ErrorCode;
use sigil_core::StoreError;
use sigil_core::audit::unix_micros;
use sigil_core::ports::StoreResult;
use sigil_core::signing::credential::{Sad, SadRefusal, SadUse, join_hashes, spend_hashes};
use sqlx::{Any, AnyConnection, Executor, Row};
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
