//! Admin web UI session rows (`ui_sessions`).

use sigil_core::StoreError;
use sigil_core::access::ui_session::{SessionOwner, UiSession};
use sigil_core::audit::{from_unix_micros, unix_micros};
use sigil_core::ports::StoreResult;
use sqlx::any::AnyRow;
use sqlx::{Any, Executor, Row};
use uuid::Uuid;

use crate::map_err;

const COLUMNS: &str =
    "token_hash, id, api_key_id, csrf_token, created_at, last_seen_at, expires_at";

fn from_row(r: &AnyRow) -> StoreResult<UiSession> {
    let s = |c: &str| r.try_get::<String, _>(c).map_err(map_err);
    let t = |c: &str| r.try_get::<i64, _>(c).map(from_unix_micros).map_err(map_err);
    let uuid = |c: &str| {
        Uuid::parse_str(&s(c)?)
            .map_err(|_| StoreError::Backend(format!("corrupt ui_sessions row: {c}")))
    };
    Ok(UiSession {
        token_hash: s("token_hash")?,
        id: uuid("id")?,
        api_key_id: uuid("api_key_id")?,
        csrf_token: s("csrf_token")?,
        created_at: t("created_at")?,
        last_seen_at: t("last_seen_at")?,
        expires_at: t("expires_at")?,
    })
}

pub(crate) async fn get<'c, E: Executor<'c, Database = Any>>(
    e: E,
    token_hash: &str,
) -> StoreResult<Option<UiSession>> {
    let sql = format!("SELECT {COLUMNS} FROM ui_sessions WHERE token_hash = $1");
    let row = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(token_hash)
        .fetch_optional(e)
        .await
        .map_err(map_err)?;
    row.as_ref().map(from_row).transpose()
}

pub(crate) async fn touch<'c, E: Executor<'c, Database = Any>>(
    e: E,
    token_hash: &str,
    now_us: i64,
) -> StoreResult<()> {
    sqlx::query("UPDATE ui_sessions SET last_seen_at = $1 WHERE token_hash = $2")
        .bind(now_us)
        .bind(token_hash)
        .execute(e)
        .await
        .map(|_| ())
        .map_err(map_err)
}

pub(crate) async fn prune<'c, E: Executor<'c, Database = Any>>(
    e: E,
    before_us: i64,
) -> StoreResult<u64> {
    sqlx::query("DELETE FROM ui_sessions WHERE expires_at < $1")
        .bind(before_us)
        .execute(e)
        .await
        .map(|r| r.rows_affected())
        .map_err(map_err)
}

pub(crate) async fn insert<'c, E: Executor<'c, Database = Any>>(
    e: E,
    s: &UiSession,
) -> StoreResult<()> {
    let sql = format!("INSERT INTO ui_sessions ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7)");
    sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(&s.token_hash)
        .bind(s.id.to_string())
        .bind(s.api_key_id.to_string())
        .bind(&s.csrf_token)
        .bind(unix_micros(s.created_at))
        .bind(unix_micros(s.last_seen_at))
        .bind(unix_micros(s.expires_at))
        .execute(e)
        .await
        .map(|_| ())
        .map_err(map_err)
}

pub(crate) async fn delete<'c, E: Executor<'c, Database = Any>>(
    e: E,
    token_hash: &str,
) -> StoreResult<Option<Uuid>> {
    let id: Option<String> =
        sqlx::query_scalar("DELETE FROM ui_sessions WHERE token_hash = $1 RETURNING id")
            .bind(token_hash)
            .fetch_optional(e)
            .await
            .map_err(map_err)?;
    Ok(id.and_then(|i| Uuid::parse_str(&i).ok()))
}

pub(crate) async fn end<'c, E: Executor<'c, Database = Any>>(
    e: E,
    owner: &SessionOwner,
) -> StoreResult<u64> {
    let q = match owner {
        SessionOwner::Key(k) => {
            sqlx::query("DELETE FROM ui_sessions WHERE api_key_id = $1").bind(k.to_string())
        }
        SessionOwner::Operator(o) => sqlx::query(
            "DELETE FROM ui_sessions WHERE api_key_id IN \
             (SELECT id FROM api_keys WHERE operator_id = $1)",
        )
        .bind(o.clone()),
    };
    q.execute(e).await.map(|r| r.rows_affected()).map_err(map_err)
}
