//! ACME nonces (`acme_nonces`): issued on every ACME answer, spent once by any node.

use sigil_core::ports::StoreResult;
use sqlx::{Any, Executor};

use crate::map_err;

pub(crate) async fn issue<'c, E: Executor<'c, Database = Any>>(
    e: E,
    nonce: &str,
    expires_us: i64,
) -> StoreResult<()> {
    sqlx::query("INSERT INTO acme_nonces (nonce, expires_at) VALUES ($1, $2)")
        .bind(nonce)
        .bind(expires_us)
        .execute(e)
        .await
        .map(|_| ())
        .map_err(map_err)
}

pub(crate) async fn consume<'c, E: Executor<'c, Database = Any>>(
    e: E,
    nonce: &str,
    now_us: i64,
) -> StoreResult<bool> {
    // One statement: two nodes spending the same nonce cannot both see it.
    let spent: Option<String> = sqlx::query_scalar(
        "DELETE FROM acme_nonces WHERE nonce = $1 AND expires_at > $2 RETURNING nonce",
    )
    .bind(nonce)
    .bind(now_us)
    .fetch_optional(e)
    .await
    .map_err(map_err)?;
    Ok(spent.is_some())
}

pub(crate) async fn prune<'c, E: Executor<'c, Database = Any>>(
    e: E,
    before_us: i64,
) -> StoreResult<u64> {
    sqlx::query("DELETE FROM acme_nonces WHERE expires_at <= $1")
        .bind(before_us)
        .execute(e)
        .await
        .map(|r| r.rows_affected())
        .map_err(map_err)
}
