//! API key rows.

use sigil_core::StoreError;
use sigil_core::access::api_key::{ApiKey, KeyStatus, RateLimit, RateUnit};
use sigil_core::access::authz::PermissionSet;
use sigil_core::audit::{from_unix_micros, unix_micros};
use sigil_core::ports::{ApiKeyFilter, PageRequest, StoreResult};
use sqlx::any::AnyRow;
use sqlx::{Any, Executor, Row};
use uuid::Uuid;

use crate::filter::Select;
use crate::{like_pattern, map_err};

pub(crate) const COLUMNS: &str = "id, name, description, key_prefix, secret_hash, permissions, \
    expires_at, rate_limit_requests, rate_limit_per, ip_whitelist, operator_id, created_at, \
    updated_at, created_by, revoked_at, revocation_reason, previous_prefix, previous_hash, \
    previous_expires_at, rotated_at, client_cert_sha256, holder_id, parent_id, last_used_at";

fn bad(what: &str) -> StoreError {
    StoreError::Backend(format!("corrupt api_keys row: {what}"))
}

pub(crate) fn from_row(r: &AnyRow) -> StoreResult<ApiKey> {
    let get_s = |c: &str| r.try_get::<String, _>(c).map_err(map_err);
    let get_os = |c: &str| r.try_get::<Option<String>, _>(c).map_err(map_err);
    let get_oi = |c: &str| r.try_get::<Option<i64>, _>(c).map_err(map_err);
    let t = |v: Option<i64>| v.map(from_unix_micros);
    let permissions: Vec<String> =
        serde_json::from_str(&get_s("permissions")?).map_err(|_| bad("permissions"))?;
    let whitelist: Vec<String> =
        serde_json::from_str(&get_s("ip_whitelist")?).map_err(|_| bad("ip_whitelist"))?;
    let rate_limit = match (get_oi("rate_limit_requests")?, get_os("rate_limit_per")?) {
        (Some(n), Some(per)) => Some(RateLimit {
            requests: u32::try_from(n).map_err(|_| bad("rate_limit_requests"))?,
            per: RateUnit::parse(&per).ok_or_else(|| bad("rate_limit_per"))?,
        }),
        _ => None,
    };
    Ok(ApiKey {
        id: Uuid::parse_str(&get_s("id")?).map_err(|_| bad("id"))?,
        name: get_s("name")?,
        description: get_s("description")?,
        prefix: get_s("key_prefix")?,
        secret_hash: get_s("secret_hash")?,
        permissions: PermissionSet::from_stored(permissions),
        expires_at: t(get_oi("expires_at")?),
        rate_limit,
        ip_whitelist: whitelist.iter().filter_map(|w| w.parse().ok()).collect(),
        operator_id: get_os("operator_id")?,
        created_at: from_unix_micros(r.try_get::<i64, _>("created_at").map_err(map_err)?),
        updated_at: from_unix_micros(r.try_get::<i64, _>("updated_at").map_err(map_err)?),
        created_by: get_s("created_by")?,
        revoked_at: t(get_oi("revoked_at")?),
        revocation_reason: get_os("revocation_reason")?,
        previous_prefix: get_os("previous_prefix")?,
        previous_hash: get_os("previous_hash")?,
        previous_expires_at: t(get_oi("previous_expires_at")?),
        rotated_at: t(get_oi("rotated_at")?),
        client_cert_sha256: get_os("client_cert_sha256")?,
        holder_id: get_os("holder_id")?.and_then(|h| Uuid::parse_str(&h).ok()),
        parent_id: get_os("parent_id")?.and_then(|h| Uuid::parse_str(&h).ok()),
        last_used_at: t(get_oi("last_used_at")?),
    })
}

/// The values bound for an insert or update, in `COLUMNS` order.
struct Values {
    permissions: String,
    whitelist: String,
}

fn values(k: &ApiKey) -> StoreResult<Values> {
    Ok(Values {
        permissions: serde_json::to_string(&k.permissions.to_vec())
            .map_err(|e| StoreError::Backend(e.to_string()))?,
        whitelist: serde_json::to_string(
            &k.ip_whitelist.iter().map(ToString::to_string).collect::<Vec<_>>(),
        )
        .map_err(|e| StoreError::Backend(e.to_string()))?,
    })
}

pub(crate) async fn insert<'c, E: Executor<'c, Database = Any>>(
    e: E,
    k: &ApiKey,
) -> StoreResult<()> {
    let v = values(k)?;
    sqlx::query(
        "INSERT INTO api_keys (id, name, description, key_prefix, secret_hash, permissions, \
         expires_at, rate_limit_requests, rate_limit_per, ip_whitelist, operator_id, created_at, \
         updated_at, created_by, revoked_at, revocation_reason, previous_prefix, previous_hash, \
         previous_expires_at, rotated_at, client_cert_sha256, holder_id, parent_id) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21, $22, $23)",
    )
    .bind(k.id.to_string())
    .bind(&k.name)
    .bind(&k.description)
    .bind(&k.prefix)
    .bind(&k.secret_hash)
    .bind(v.permissions)
    .bind(k.expires_at.map(unix_micros))
    .bind(k.rate_limit.map(|r| i64::from(r.requests)))
    .bind(k.rate_limit.map(|r| r.per.as_str()))
    .bind(v.whitelist)
    .bind(k.operator_id.clone())
    .bind(unix_micros(k.created_at))
    .bind(unix_micros(k.updated_at))
    .bind(&k.created_by)
    .bind(k.revoked_at.map(unix_micros))
    .bind(k.revocation_reason.clone())
    .bind(k.previous_prefix.clone())
    .bind(k.previous_hash.clone())
    .bind(k.previous_expires_at.map(unix_micros))
    .bind(k.rotated_at.map(unix_micros))
    .bind(k.client_cert_sha256.clone())
    .bind(k.holder_id.map(|h| h.to_string()))
    .bind(k.parent_id.map(|h| h.to_string()))
    .execute(e)
    .await
    .map(|_| ())
    .map_err(map_err)
}

pub(crate) async fn update<'c, E: Executor<'c, Database = Any>>(
    e: E,
    k: &ApiKey,
) -> StoreResult<()> {
    let v = values(k)?;
    let done = sqlx::query(
        "UPDATE api_keys SET name = $2, description = $3, key_prefix = $4, secret_hash = $5, \
         permissions = $6, expires_at = $7, rate_limit_requests = $8, rate_limit_per = $9, \
         ip_whitelist = $10, operator_id = $11, updated_at = $12, revoked_at = $13, \
         revocation_reason = $14, previous_prefix = $15, previous_hash = $16, \
         previous_expires_at = $17, rotated_at = $18, client_cert_sha256 = $19, holder_id = $20 \
         WHERE id = $1",
    )
    .bind(k.id.to_string())
    .bind(&k.name)
    .bind(&k.description)
    .bind(&k.prefix)
    .bind(&k.secret_hash)
    .bind(v.permissions)
    .bind(k.expires_at.map(unix_micros))
    .bind(k.rate_limit.map(|r| i64::from(r.requests)))
    .bind(k.rate_limit.map(|r| r.per.as_str()))
    .bind(v.whitelist)
    .bind(k.operator_id.clone())
    .bind(unix_micros(k.updated_at))
    .bind(k.revoked_at.map(unix_micros))
    .bind(k.revocation_reason.clone())
    .bind(k.previous_prefix.clone())
    .bind(k.previous_hash.clone())
    .bind(k.previous_expires_at.map(unix_micros))
    .bind(k.rotated_at.map(unix_micros))
    .bind(k.client_cert_sha256.clone())
    .bind(k.holder_id.map(|h| h.to_string()))
    .execute(e)
    .await
    .map_err(map_err)?;
    if done.rows_affected() == 0 {
        return Err(StoreError::NotFound);
    }
    Ok(())
}

pub(crate) async fn count<'c, E: Executor<'c, Database = Any>>(e: E) -> StoreResult<i64> {
    sqlx::query_scalar::<_, i64>("SELECT COUNT(*) FROM api_keys")
        .fetch_one(e)
        .await
        .map_err(map_err)
}

pub(crate) async fn by_id<'c, E: Executor<'c, Database = Any>>(
    e: E,
    id: Uuid,
) -> StoreResult<Option<ApiKey>> {
    let sql = format!("SELECT {COLUMNS} FROM api_keys WHERE id = $1");
    let row = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(id.to_string())
        .fetch_optional(e)
        .await
        .map_err(map_err)?;
    row.as_ref().map(from_row).transpose()
}

pub(crate) async fn by_prefix<'c, E: Executor<'c, Database = Any>>(
    e: E,
    prefix: &str,
) -> StoreResult<Option<ApiKey>> {
    let sql =
        format!("SELECT {COLUMNS} FROM api_keys WHERE key_prefix = $1 OR previous_prefix = $1");
    let row = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(prefix)
        .fetch_optional(e)
        .await
        .map_err(map_err)?;
    row.as_ref().map(from_row).transpose()
}

pub(crate) async fn by_certificate<'c, E: Executor<'c, Database = Any>>(
    e: E,
    sha256: &str,
) -> StoreResult<Option<ApiKey>> {
    let sql = format!("SELECT {COLUMNS} FROM api_keys WHERE client_cert_sha256 = $1");
    let row = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(sha256)
        .fetch_optional(e)
        .await
        .map_err(map_err)?;
    row.as_ref().map(from_row).transpose()
}

pub(crate) async fn list<'c, E: Executor<'c, Database = Any>>(
    e: E,
    f: &ApiKeyFilter,
    page: &PageRequest,
) -> StoreResult<Vec<ApiKey>> {
    let mut q = Select::new(COLUMNS, "api_keys");
    if let Some(after) = &page.after {
        q.and("id > ?", [after.as_str()]);
    }
    if let Some(name) = &f.name_contains {
        q.and("LOWER(name) LIKE ? ESCAPE '\\'", [like_pattern(name)]);
    }
    if let Some(op) = &f.operator_id {
        q.and("operator_id = ?", [op.as_str()]);
    }
    if let Some(parent) = &f.parent_id {
        q.and("parent_id = ?", [parent.to_string()]);
    }
    let now = f.now.map(unix_micros).unwrap_or(0);
    match f.status {
        None => {}
        Some(KeyStatus::Revoked) => {
            q.and_raw("revoked_at IS NOT NULL");
        }
        Some(KeyStatus::Expired) => {
            q.and("revoked_at IS NULL AND expires_at IS NOT NULL AND expires_at <= ?", [now]);
        }
        Some(KeyStatus::Active) => {
            q.and("revoked_at IS NULL AND (expires_at IS NULL OR expires_at > ?)", [now]);
        }
    }
    let rows = q.fetch(&format!("ORDER BY id LIMIT {}", page.limit), e).await?;
    rows.iter().map(from_row).collect()
}
